/**
 * Job side of the sandbox: what a job module (`workers/<control>/jobs/*.ts`) calls to get its
 * input and hand back its result. It runs inside the sandboxed subprocess, so it imports
 * nothing heavy (every import costs start-up time on every job).
 *
 * Protocol with the runner (runtime/sandbox): argv is
 * `[JOB_ARGV_TAG, <input file path, or "-" for inline input on stdin>, <out dir>, ...args]`,
 * or for a batch of files `[JOB_ARGV_TAG, FILES_INPUT_ARG, <out dir>, <count>, ...paths, ...args]`;
 * the job writes exactly one JSON object to stdout, `{"ok":true,"result":…}` or
 * `{"ok":false,"error":{"code","message"}}`, and exits 0 or 1.
 * @module
 */
import { ERROR_CODE_PATTERN } from "./errors.ts";

/** First argument of every job started by the runner. */
export const JOB_ARGV_TAG = "--secai-job";
/** Second argument when the input comes on stdin. */
export const INLINE_INPUT_ARG = "-";
/** Second argument when the input is a batch of files (their count and paths follow). */
export const FILES_INPUT_ARG = "+files";
/** Code of an error the job did not give a code to. */
export const JOB_FAILED = "JOB_FAILED";

const MAX_INLINE_BYTES = 4 << 20;
const MAX_MESSAGE = 4000;

/** What a job function receives. */
export interface JobContext {
  /** Inline input (stdin) as text, or null when the input is a file. */
  input: string | null;
  /** Absolute path of the input file (read-only to the job), or null for other inputs. */
  inputPath: string | null;
  /** Absolute paths of a batch of input files (read-only to the job), or null. */
  inputPaths: string[] | null;
  /** The job's own fresh directory, the only place it may write; deleted after the job. */
  outDir: string;
  /** Arguments from the caller. */
  args: string[];
  /** The input as bytes, whichever way it came (not for a batch of files). */
  readInput(): Promise<Uint8Array>;
}

/** A job: returns a JSON-serializable result, or throws (an error's `code` is kept). */
export type JobFunction = (context: JobContext) => unknown;

/** What a job writes to stdout. */
export type JobOutput =
  | { ok: true; result: unknown }
  | { ok: false; error: { code: string; message: string } };

/**
 * Runs a job function with the runner's protocol, then exits the process: 0 after a result,
 * 1 after an error. While it runs, `console.log/info/debug` go to stderr so that stdout
 * carries nothing but the one JSON object.
 * @param job the job function
 * @returns never: it ends the process
 * @example
 * ```ts
 * import { runJob } from "../../../runtime/kit/job.ts";
 * await runJob(({ input }) => ({ length: input?.length ?? 0 }));
 * ```
 */
export async function runJob(job: JobFunction): Promise<never> {
  let output: JobOutput;
  const restoreConsole = divertConsoleToStderr();
  try {
    // A job granted native libraries opened them at module top level; nothing past this
    // point may load or call new native code (the job never sees its input with ffi).
    Deno.permissions.revokeSync({ name: "ffi" });
    const context = await readContext(Deno.args);
    const result = await job(context);
    output = { ok: true, result: result === undefined ? null : result };
    // Serialize here, so that an unserializable result becomes a job error.
    writeStdout(JSON.stringify(output));
    return Deno.exit(0);
  } catch (error) {
    output = { ok: false, error: describeError(error) };
  } finally {
    restoreConsole();
  }
  writeStdout(JSON.stringify(output));
  return Deno.exit(1);
}

async function readContext(argv: readonly string[]): Promise<JobContext> {
  const [tag, input, outDir, ...args] = argv;
  if (tag !== JOB_ARGV_TAG || input === undefined || outDir === undefined) {
    throw Object.assign(new TypeError("Cannot run job: not started by the sandbox runner"), {
      code: "INVALID_INVOCATION",
    });
  }
  if (input === INLINE_INPUT_ARG) {
    const text = new TextDecoder().decode(await readStdin());
    return {
      input: text,
      inputPath: null,
      inputPaths: null,
      outDir,
      args,
      readInput: () => Promise.resolve(new TextEncoder().encode(text)),
    };
  }
  if (input === FILES_INPUT_ARG) {
    const count = Number(args[0]);
    if (!Number.isSafeInteger(count) || count < 1 || count > args.length - 1) {
      throw Object.assign(new TypeError("Cannot run job: malformed list of input files"), {
        code: "INVALID_INVOCATION",
      });
    }
    return {
      input: null,
      inputPath: null,
      inputPaths: args.slice(1, 1 + count),
      outDir,
      args: args.slice(1 + count),
      readInput: () =>
        Promise.reject(new TypeError("Cannot read input: the input is a batch of files")),
    };
  }
  return {
    input: null,
    inputPath: input,
    inputPaths: null,
    outDir,
    args,
    readInput: () => Deno.readFile(input),
  };
}

/** Reads stdin to its end. Plain reads: `Deno.stdin.readable` costs ~6 ms of set-up. */
async function readStdin(): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const chunk = new Uint8Array(64 * 1024);
    const count = await Deno.stdin.read(chunk);
    if (count === null) break;
    total += count;
    if (total > MAX_INLINE_BYTES) throw new RangeError("Cannot read input: too large");
    chunks.push(chunk.subarray(0, count));
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

function describeError(error: unknown): { code: string; message: string } {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: typeof code === "string" && ERROR_CODE_PATTERN.test(code) ? code : JOB_FAILED,
    message: message.slice(0, MAX_MESSAGE),
  };
}

/**
 * Sends console.log/info/debug to stderr so a job's chatter cannot corrupt the one JSON
 * object on stdout.
 * @returns a function that restores them
 */
function divertConsoleToStderr(): () => void {
  const target = globalThis.console;
  const saved = { log: target.log, info: target.info, debug: target.debug };
  target.log = target.info = target.debug = target.error;
  return () => {
    Object.assign(target, saved);
  };
}

function writeStdout(text: string): void {
  const bytes = new TextEncoder().encode(`${text}\n`);
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
}
