/**
 * `secai chat MODEL [MESSAGE] [--system TEXT] [--max-tokens N] [--temperature T] [--home DIR]`:
 * talks to a promoted model of the running instance through its OpenAI-compatible API,
 * printing the answer as it streams. With MESSAGE (or piped stdin) it answers once; on a
 * terminal it keeps a conversation until Ctrl-D. Ctrl-C stops the current answer (the
 * server cancels the generation); a second Ctrl-C quits.
 *
 * It authenticates with the running instance's local CLI token
 * (`<state dir>/inference/cli-token`, written 0600 by the inference control at each start).
 * @module
 */
import { CLI_TOKEN_FILE } from "./kit/api_tokens.ts";
import { parseArgs, UsageError } from "./cli_args.ts";
import { resolveHome } from "./home.ts";
import { printError } from "./log.ts";

/** Longest message read from stdin. */
const MAX_INPUT_BYTES = 1 << 20;

/** Options of {@linkcode chatCommand}; tests redirect input and output. */
export interface ChatCommandOptions {
  /** Receives the answer as it streams. */
  write?: (text: string) => void;
  writeError?: (text: string) => void;
  /** Lines typed by the user (default: stdin). */
  input?: ReadableStream<Uint8Array>;
  /** Whether to hold a conversation (default: stdin is a terminal and no MESSAGE given). */
  isInteractive?: boolean;
  env?: { get(key: string): string | undefined };
}

interface Message {
  role: "system" | "user" | "assistant";
  content: string;
}

/**
 * Runs `secai chat`.
 * @param argv the arguments after `chat`
 * @returns 0 when every answer arrived, 1 on a refusal or when the instance is not running
 * @throws {UsageError} on a wrong command line (exit 2)
 * @example
 * ```ts
 * Deno.exit(await chatCommand(["tiny-chat", "Say hello"]));
 * ```
 */
export async function chatCommand(
  argv: string[],
  options: ChatCommandOptions = {},
): Promise<number> {
  const encoder = new TextEncoder();
  const write = options.write ??
    ((text: string) => void Deno.stdout.writeSync(encoder.encode(text)));
  const writeError = options.writeError ?? printError;
  const { flags, positional } = parseArgs(argv, {
    home: "string",
    system: "string",
    "max-tokens": "string",
    temperature: "string",
  });
  const [model, ...words] = positional;
  if (model === undefined) {
    throw new UsageError("Usage: secai chat MODEL [MESSAGE] (MODEL: a registry id or name)");
  }
  const maxTokens = flags["max-tokens"] === undefined ? undefined : Number(flags["max-tokens"]);
  if (maxTokens !== undefined && (!Number.isInteger(maxTokens) || maxTokens < 1)) {
    throw new UsageError(`--max-tokens must be a positive integer, got "${flags["max-tokens"]}"`);
  }
  const temperature = flags.temperature === undefined ? undefined : Number(flags.temperature);
  if (temperature !== undefined && !(temperature >= 0 && temperature <= 2)) {
    throw new UsageError(`--temperature must be between 0 and 2, got "${flags.temperature}"`);
  }
  const home = resolveHome(flags.home as string | undefined, options.env ?? Deno.env);
  const connection = await connect(home);
  if (typeof connection === "string") {
    writeError(`secai chat: ${connection}`);
    return 1;
  }
  const history: Message[] = typeof flags.system === "string"
    ? [{ role: "system", content: flags.system }]
    : [];
  const ask = async (text: string): Promise<boolean> => {
    history.push({ role: "user", content: text });
    const answer = await streamAnswer(connection, {
      model,
      messages: history,
      ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
      ...(temperature === undefined ? {} : { temperature }),
    }, { write, writeError });
    if (answer === null) {
      history.pop();
      return false;
    }
    history.push({ role: "assistant", content: answer });
    return true;
  };

  const input = options.input ?? Deno.stdin.readable;
  if (words.length > 0) return await ask(words.join(" ")) ? 0 : 1;
  const isInteractive = options.isInteractive ?? Deno.stdin.isTerminal();
  if (!isInteractive) {
    const text = (await readAll(input)).trim();
    if (text.length === 0) throw new UsageError("No message: pass MESSAGE or pipe one on stdin");
    return await ask(text) ? 0 : 1;
  }
  writeError(`Chatting with ${model}. Ctrl-D ends, Ctrl-C stops an answer.`);
  let isOk = true;
  for await (const line of readLines(input, () => write("> "))) {
    if (line.trim().length === 0) continue;
    isOk = await ask(line) && isOk;
  }
  write("\n");
  return isOk ? 0 : 1;
}

interface Connection {
  base: string;
  token: string;
}

/** The running instance's gateway and the local CLI token, or why not. */
async function connect(home: string): Promise<Connection | string> {
  let address: { transport?: string; host?: string; port?: number };
  try {
    address = JSON.parse(await Deno.readTextFile(`${home}/run/gateway.json`));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof SyntaxError) {
      return `SecAI Runtime is not running (state dir "${home}"); start it with ./secai start`;
    }
    throw error;
  }
  if (address.transport !== "tcp" || typeof address.port !== "number") {
    return "The gateway listens on a unix socket; use curl --unix-socket with a client token";
  }
  let token: string;
  try {
    token = (await Deno.readTextFile(`${home}/${CLI_TOKEN_FILE}`)).trim();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return `No local CLI token in "${home}/${CLI_TOKEN_FILE}": is the inference control running?`;
    }
    throw error;
  }
  const host = address.host?.includes(":") ? `[${address.host}]` : address.host;
  return { base: `http://${host}:${address.port}`, token };
}

/**
 * Sends the conversation with `stream: true` and writes the answer as it arrives.
 * @returns the whole answer, or null when it was refused or failed (already reported)
 */
async function streamAnswer(
  connection: Connection,
  body: Record<string, unknown>,
  out: { write: (text: string) => void; writeError: (text: string) => void },
): Promise<string | null> {
  const controller = new AbortController();
  let interrupts = 0;
  const onInterrupt = () => {
    interrupts++;
    if (interrupts > 1) Deno.exit(130);
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  let answer = "";
  try {
    const res = await fetch(`${connection.base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${connection.token}` },
      body: JSON.stringify({ ...body, stream: true }),
      signal: controller.signal,
    });
    if (!res.ok || res.body === null) {
      const error = await res.json().catch(() => null) as { error?: { message?: string } } | null;
      out.writeError(`secai chat: ${res.status} ${error?.error?.message ?? res.statusText}`);
      return null;
    }
    for await (const data of sseData(res.body)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data) as {
        error?: { message?: string };
        choices?: { delta?: { content?: string } }[];
      };
      if (chunk.error) {
        out.writeError(`\nsecai chat: ${chunk.error.message ?? "the answer failed"}`);
        return null;
      }
      const piece = chunk.choices?.[0]?.delta?.content ?? "";
      answer += piece;
      out.write(piece);
    }
    out.write("\n");
    return answer;
  } catch (error) {
    if (controller.signal.aborted) {
      out.write("\n");
      out.writeError("(stopped)");
      return answer.length > 0 ? answer : null;
    }
    if (error instanceof TypeError) {
      out.writeError(`secai chat: cannot reach ${connection.base} (${error.message})`);
      return null;
    }
    throw error;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

/** The `data:` payloads of an event stream. */
async function* sseData(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const chunk of decodeText(stream)) {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6));
      if (data.length > 0) yield data.join("\n");
    }
  }
}

async function* readLines(
  stream: ReadableStream<Uint8Array>,
  prompt: () => void,
): AsyncGenerator<string> {
  let buffer = "";
  prompt();
  for await (const chunk of decodeText(stream)) {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf("\n")) !== -1) {
      yield buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      prompt();
    }
  }
  if (buffer.length > 0) yield buffer;
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of decodeText(stream)) {
    text += chunk;
    if (text.length > MAX_INPUT_BYTES) throw new UsageError("The message on stdin is too long");
  }
  return text;
}

/** A byte stream as text chunks (UTF-8, characters split across chunks kept whole). */
async function* decodeText(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  for await (const bytes of stream) yield decoder.decode(bytes, { stream: true });
  const rest = decoder.decode();
  if (rest.length > 0) yield rest;
}
