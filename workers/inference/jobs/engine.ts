/**
 * The inference engine: a long-lived sandboxed process (started only by the supervisor's
 * engine host, runtime/engine) that runs one model file with llama.cpp through
 * node-llama-cpp on the CPU. It can read only that file and the llama.cpp binaries, write
 * only its scratch dir, open no socket, start no process (seccomp), and it talks JSON lines
 * on stdin/stdout, validated with the zod schemas of runtime/kit/engine_api.ts.
 *
 * Requests: `load` (once), `generate` (one at a time), `cancel`, `unload` (frees and exits).
 * Messages: `loaded`, `text` pieces as they are generated, `done` with usage and timings, and
 * `error`. Everything else it could print goes to stderr.
 *
 * Native code ignores Deno permissions, so the boundary is the process: Landlock, seccomp,
 * rlimits (RLIMIT_AS caps the memory the weights and context may take), no_new_privs. The
 * `ffi` grant (scoped to the llama.cpp build) is revoked once the binding is loaded, `sys`
 * and `env` (node-llama-cpp reads the home dir and the clean environment) once the model is.
 *
 * argv: `[--secai-job, <model file>, <scratch dir>]`.
 * @module
 */
import {
  type EngineMessage,
  type EngineRequest,
  EngineRequestSchema,
  type GenerateOptions,
  type LoadOptions,
  MAX_PIECE_CHARS,
  MAX_PIPE_LINE_BYTES,
  type ModelInfo,
  type Prompt,
} from "../../../runtime/kit/engine_api.ts";
import { JOB_ARGV_TAG } from "../../../runtime/kit/job.ts";
import { describeZodError } from "../../../runtime/kit/validate.ts";
import { type ChatTemplate, compileChatTemplate, TemplateError } from "../template.ts";
import { commonPrefixLength, PieceAssembler, StopMatcher } from "../text.ts";

import type { Token } from "node-llama-cpp";

type NodeLlamaCpp = typeof import("node-llama-cpp");
type Llama = Awaited<ReturnType<NodeLlamaCpp["getLlama"]>>;
type LlamaModel = Awaited<ReturnType<Llama["loadModel"]>>;
type LlamaContext = Awaited<ReturnType<LlamaModel["createContext"]>>;
type LlamaContextSequence = ReturnType<LlamaContext["getSequence"]>;

const MIB = 1024 * 1024;
const encoder = new TextEncoder();

/** An error the engine reports with its code. */
class EngineFault extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "EngineFault";
    this.code = code;
  }
}

/**
 * Writes one message as one line (JSON escapes newlines inside strings). Native code may
 * print to stdout too (the llama addon does, through C stdio); the leading newline makes
 * sure a message always starts a line of its own, and the host treats lines that do not
 * start with `{"t":` as diagnostics.
 */
function send(message: EngineMessage): void {
  const bytes = encoder.encode(`\n${JSON.stringify(message)}\n`);
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
}

function writeStderr(text: string): void {
  const bytes = encoder.encode(text.endsWith("\n") ? text : `${text}\n`);
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stderr.writeSync(bytes.subarray(offset));
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ").slice(
    0,
    600,
  );
}

/** stdout carries the protocol only: console output of any library goes to stderr. */
function divertConsole(): void {
  const log = (...args: unknown[]) => writeStderr(args.map(String).join(" "));
  Object.assign(globalThis.console, { log, info: log, debug: log, warn: log });
}

/** The loaded model and what generation needs. */
interface Loaded {
  llama: Llama;
  model: LlamaModel;
  context: LlamaContext;
  sequence: LlamaContextSequence;
  template: ChatTemplate;
  info: ModelInfo;
}

class Engine {
  readonly #modelPath: string;
  #loaded: Loaded | null = null;
  #isLoading = false;
  /** The running generation: its id and whether it was cancelled. */
  #current: { id: number; isCancelled: boolean } | null = null;

  constructor(modelPath: string) {
    this.#modelPath = modelPath;
  }

  async handle(request: EngineRequest): Promise<void> {
    switch (request.t) {
      case "load":
        try {
          send({ t: "loaded", info: await this.#load(request.options) });
        } catch (error) {
          send({ t: "error", id: null, ...describe(error, "MODEL_LOAD_FAILED") });
          // A failed load leaves nothing to serve: end the process, the host reports why.
          Deno.exit(1);
        }
        return;
      case "generate":
        if (this.#current !== null) {
          send({
            t: "error",
            id: request.id,
            code: "ENGINE_BUSY",
            message: "Another generation is running on this engine",
          });
          return;
        }
        this.#current = { id: request.id, isCancelled: false };
        try {
          await this.#generate(request.id, request.prompt, request.options);
        } catch (error) {
          send({ t: "error", id: request.id, ...describe(error, "GENERATION_FAILED") });
        } finally {
          this.#current = null;
        }
        return;
      case "cancel":
        if (this.#current?.id === request.id) this.#current.isCancelled = true;
        return;
      case "unload":
        await this.#loaded?.llama.dispose();
        this.#loaded = null;
        Deno.exit(0);
    }
  }

  async #load(options: LoadOptions): Promise<ModelInfo> {
    if (this.#loaded !== null || this.#isLoading) {
      throw new EngineFault("ALREADY_LOADED", "This engine has loaded its model already");
    }
    this.#isLoading = true;
    const started = performance.now();
    let lib: NodeLlamaCpp;
    try {
      lib = await import("node-llama-cpp");
    } catch (error) {
      throw new EngineFault(
        "ENGINE_UNAVAILABLE",
        `Cannot load node-llama-cpp in the engine: ${messageOf(error)}`,
        { cause: error },
      );
    }
    let llama: Llama;
    try {
      llama = await lib.getLlama({
        gpu: false,
        // Never build from source or download: a missing binary is an error, said plainly.
        build: "never",
        maxThreads: options.threads,
        logLevel: lib.LlamaLogLevel.warn,
        logger: (_level, message) => writeStderr(message.slice(0, 2000)),
      });
    } catch (error) {
      throw new EngineFault(
        "ENGINE_UNAVAILABLE",
        `The llama.cpp CPU binary cannot be loaded on this machine (${messageOf(error)}); ` +
          "run tools/setup, which seeds node-llama-cpp's prebuilt CPU build",
        { cause: error },
      );
    }
    // The binding and its libraries are loaded: no more native code may be opened.
    Deno.permissions.revokeSync({ name: "ffi" });

    // Memory budget first, from the file's metadata, before any weight is loaded.
    let memory: ModelInfo["memoryMb"];
    let contextSize = options.contextSize;
    try {
      const file = await lib.readGgufFileInfo(this.#modelPath);
      const insights = await lib.GgufInsights.from(file, llama);
      // Never more context than the model was trained for: beyond it, answers degrade.
      const trained = insights.trainContextSize;
      if (trained !== undefined && trained > 0) contextSize = Math.min(contextSize, trained);
      const model = await insights.estimateModelResourceRequirementsV2({ gpuLayers: 0 });
      const context = await insights.estimateContextResourceRequirementsV2({
        contextSize,
        modelGpuLayers: 0,
        batchSize: options.batchSize,
        sequences: 1,
      });
      const modelMb = model.cpuRam / MIB;
      const contextMb = context.cpuRam / MIB;
      memory = {
        model: round(modelMb),
        context: round(contextMb),
        total: round(modelMb + contextMb),
      };
    } catch (error) {
      throw new EngineFault(
        "MODEL_LOAD_FAILED",
        `Cannot read the model's metadata: ${messageOf(error)}`,
        { cause: error },
      );
    }
    if (memory.total > options.memoryBudgetMb) {
      throw new EngineFault(
        "MODEL_TOO_LARGE",
        `The model needs about ${Math.ceil(memory.total)} MiB (weights ${
          Math.ceil(memory.model)
        } MiB, context of ${contextSize} tokens ${
          Math.ceil(memory.context)
        } MiB), more than the inference memory budget of ${options.memoryBudgetMb} MiB; ` +
          "raise inference.memoryBudgetMb or lower inference.contextSize",
      );
    }

    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: this.#modelPath, gpuLayers: 0 });
    } catch (error) {
      throw new EngineFault(
        "MODEL_LOAD_FAILED",
        `llama.cpp cannot load the model: ${messageOf(error)}`,
        { cause: error },
      );
    }
    let context: LlamaContext;
    try {
      context = await model.createContext({
        contextSize,
        sequences: 1,
        threads: options.threads,
        batchSize: options.batchSize,
      });
    } catch (error) {
      throw new EngineFault(
        "MODEL_LOAD_FAILED",
        `llama.cpp cannot create a context of ${contextSize} tokens: ${messageOf(error)}`,
        { cause: error },
      );
    }
    // Loaded: nothing past this point needs the home dir, the uid or the environment.
    Deno.permissions.revokeSync({ name: "sys" });
    Deno.permissions.revokeSync({ name: "env" });
    const metadata = model.fileInfo.metadata;
    const templateText = metadata.tokenizer?.chat_template;
    const template = compileChatTemplate(typeof templateText === "string" ? templateText : null, {
      bos: model.tokens.bosString ?? "",
      eos: model.tokens.eosString ?? "",
    });
    const info: ModelInfo = {
      architecture: String(metadata.general?.architecture ?? "unknown").slice(0, 64),
      name: typeof metadata.general?.name === "string" ? metadata.general.name.slice(0, 256) : null,
      trainContextSize: model.trainContextSize,
      contextSize: context.contextSize,
      vocabularySize: Number(metadata.tokenizer?.ggml?.tokens?.length ?? 0),
      chatTemplate: template.source,
      threads: context.currentThreads,
      backend: "cpu",
      memoryMb: memory,
      loadMs: round(performance.now() - started),
    };
    this.#loaded = { llama, model, context, sequence: context.getSequence(), template, info };
    this.#isLoading = false;
    return info;
  }

  async #generate(id: number, prompt: Prompt, options: GenerateOptions): Promise<void> {
    const loaded = this.#loaded;
    if (loaded === null) throw new EngineFault("NOT_LOADED", "No model is loaded");
    const started = performance.now();
    const { model, sequence } = loaded;
    const stops = [...options.stop, ...(prompt.kind === "chat" ? loaded.template.stops : [])];
    let tokens: Token[];
    if (prompt.kind === "chat") {
      // Rendered text carries the template's special tokens (BOS among them) as text.
      tokens = model.tokenize(loaded.template.render(prompt.messages), true);
    } else {
      tokens = model.tokenize(prompt.text, false);
      const bos = model.tokens.bos;
      if (model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos) {
        tokens.unshift(bos);
      }
    }
    const contextSize = loaded.context.contextSize;
    if (tokens.length === 0) throw new EngineFault("EMPTY_PROMPT", "The prompt is empty");
    if (tokens.length >= contextSize) {
      throw new EngineFault(
        "CONTEXT_LENGTH_EXCEEDED",
        `The prompt has ${tokens.length} tokens; the context holds ${contextSize}, and at least one must be left for the answer`,
      );
    }
    const maxTokens = Math.min(options.maxTokens, contextSize - tokens.length);

    // Reuse what the context already holds of this prompt (a chat's earlier turns).
    let cached = commonPrefixLength(sequence.contextTokens, tokens);
    if (cached >= tokens.length) cached = tokens.length - 1; // one token must be evaluated
    if (cached < sequence.nextTokenIndex) {
      await sequence.eraseContextTokenRanges([{ start: cached, end: sequence.nextTokenIndex }]);
    }

    const assembler = new PieceAssembler<Token>((t, previous) =>
      model.detokenize(t, false, previous)
    );
    const stopper = new StopMatcher(stops);
    let generated = 0;
    let firstAt = 0;
    let lastAt = 0;
    let reason: "stop" | "length" | "cancelled" = "length";
    const emit = (text: string, count: number) => {
      for (let i = 0; i < text.length; i += MAX_PIECE_CHARS) {
        const part = text.slice(i, i + MAX_PIECE_CHARS);
        send({ t: "text", id, text: part, tokens: i === 0 ? Math.max(1, count) : 1 });
      }
    };
    let unsent = 0;
    const iterator = sequence.evaluate(tokens.slice(cached), {
      temperature: options.temperature,
      topP: options.topP,
      topK: options.topK,
      ...(options.seed === undefined ? {} : { seed: options.seed }),
    });
    for await (const token of iterator) {
      const now = performance.now();
      if (generated === 0) firstAt = now;
      lastAt = now;
      if (this.#current?.isCancelled) {
        reason = "cancelled";
        break;
      }
      if (model.isEogToken(token)) {
        reason = "stop";
        break;
      }
      generated++;
      unsent++;
      const step = stopper.push(assembler.push(token));
      if (step.text.length > 0) {
        emit(step.text, unsent);
        unsent = 0;
      }
      if (step.isStopped) {
        reason = "stop";
        break;
      }
      if (generated >= maxTokens) {
        reason = "length";
        break;
      }
    }
    if (reason !== "cancelled") {
      // Pending bytes of a character, and text held back as a possible stop string.
      const rest = stopper.push(assembler.flush()).text + stopper.flush();
      if (rest.length > 0 || unsent > 0) emit(rest, unsent);
    }
    const ended = performance.now();
    const decodeMs = generated > 0 ? lastAt - firstAt : 0;
    send({
      t: "done",
      id,
      reason,
      usage: { promptTokens: tokens.length, completionTokens: generated, cachedTokens: cached },
      timings: {
        ttftMs: round((firstAt > 0 ? firstAt : ended) - started),
        promptMs: round((firstAt > 0 ? firstAt : ended) - started),
        decodeMs: round(decodeMs),
        totalMs: round(ended - started),
        tokensPerSecond: generated > 1 && decodeMs > 0
          ? round((generated - 1) / (decodeMs / 1000))
          : 0,
      },
    });
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

function describe(error: unknown, fallback: string): { code: string; message: string } {
  if (error instanceof EngineFault || error instanceof TemplateError) {
    return { code: error.code, message: error.message.slice(0, 2000) };
  }
  return { code: fallback, message: messageOf(error) };
}

/** Reads stdin as lines, each at most {@link MAX_PIPE_LINE_BYTES}. */
async function* readLines(): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = new Uint8Array(0);
  const chunk = new Uint8Array(64 * 1024);
  for (;;) {
    const count = await Deno.stdin.read(chunk);
    if (count === null) return;
    const joined = new Uint8Array(buffer.length + count);
    joined.set(buffer);
    joined.set(chunk.subarray(0, count), buffer.length);
    let start = 0;
    for (let i = buffer.length; i < joined.length; i++) {
      if (joined[i] !== 0x0a) continue;
      yield decoder.decode(joined.subarray(start, i));
      start = i + 1;
    }
    buffer = joined.slice(start);
    if (buffer.length > MAX_PIPE_LINE_BYTES) {
      throw new EngineFault("PROTOCOL_ERROR", "A request line is too long");
    }
  }
}

async function main(): Promise<void> {
  divertConsole();
  const [tag, modelPath] = Deno.args;
  if (tag !== JOB_ARGV_TAG || modelPath === undefined) {
    send({
      t: "error",
      id: null,
      code: "INVALID_INVOCATION",
      message: "The engine must be started by the supervisor's engine host",
    });
    Deno.exit(2);
  }
  const engine = new Engine(modelPath);
  const running = new Set<Promise<void>>();
  for await (const line of readLines()) {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      send({ t: "error", id: null, code: "PROTOCOL_ERROR", message: "A request is not JSON" });
      Deno.exit(2);
    }
    const parsed = EngineRequestSchema.safeParse(json);
    if (!parsed.success) {
      send({
        t: "error",
        id: null,
        code: "PROTOCOL_ERROR",
        message: `Invalid request ${describeZodError(parsed.error)}`,
      });
      Deno.exit(2);
    }
    // Cancel must be seen while a generation runs: requests are not awaited in order.
    const task = engine.handle(parsed.data).finally(() => running.delete(task));
    running.add(task);
  }
  // stdin closed: the host is gone.
  await Promise.allSettled(running);
  Deno.exit(0);
}

await main();
