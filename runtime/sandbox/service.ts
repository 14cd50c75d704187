/**
 * Long-lived sandboxed services, supervisor side: the same chain as a job (launcher:
 * rlimits, capabilities dropped, no_new_privs, Landlock, execve; boot: not dumpable,
 * RLIMIT_AS, seccomp with TSYNC), but the process stays up and talks over its stdin/stdout
 * pipes in lines, until it is stopped. Used for the inference engine (runtime/engine).
 *
 * Differences from a job, all explicit in {@link ServiceSpec}: no wall-clock limit (the
 * owner stops it), a CPU-time limit sized for a long life, extra read-only paths, a scoped
 * FFI grant the service itself revokes once its native binding is loaded, and optionally the
 * (clean) environment. Its scratch dir is a fresh job dir, removed when it ends.
 * @module
 */
import type { SandboxLayers } from "../kit/sandbox_api.ts";
import { SandboxError } from "./errors.ts";
import { layersOf, parseSandboxStart, type SandboxStart, stripMarkers } from "./outcome.ts";
import { isSafePath, resolveInputPath, resolveModulePath } from "./paths.ts";
import { planLaunch, type ServiceGrants } from "./plan.ts";
import { killGroup, launcherFlags, prepare, type Prepared, removeTree } from "./runner.ts";

/** Bytes of stderr kept from the start (the sandbox's own report) and from the end. */
const STDERR_HEAD_BYTES = 16 << 10;
const STDERR_TAIL_BYTES = 8192;
/** Time a service has from spawn to its sandbox report before it is killed. */
const DEFAULT_START_TIMEOUT_MS = 30_000;

/** Options of {@link ServiceRunner}. */
export interface ServiceRunnerOptions {
  /** Absolute state dir: inputs resolve inside it; scratch dirs go under `<home>/jobs/`. */
  home: string;
  /** Absolute dirs of service modules and what they import; read-only to the service. */
  codeRoots: string[];
  /** Absolute path of the project's deno.json. */
  configPath: string;
  /** Deno binary; default `Deno.execPath()`. */
  denoPath?: string;
  /**
   * Sonames of system libraries services may be given (probed once), e.g. `libstdc++.so.6`
   * for a native binding linked against it.
   */
  libraries?: string[];
}

/** Limits of a service process. */
export interface ServiceLimits {
  /** V8 old-space cap. */
  heapMb: number;
  /** Address space the service may add after start (weights, buffers, thread stacks). */
  memMb: number;
  /** RLIMIT_CPU seconds over its whole life (SIGXCPU, then SIGKILL a second later). */
  cpuSec: number;
}

/** One service to start. */
export interface ServiceSpec {
  /** Absolute path of the service module (inside a code root). */
  module: string;
  /** Its one input file, relative to the state dir: read-only to it. */
  input: string;
  args: string[];
  limits: ServiceLimits;
  /** Grants; `libraryFiles` is filled in from `libraries`. */
  grants: Omit<ServiceGrants, "libraryFiles">;
  /** Sonames of system libraries its native code links; each in the runner's `libraries`. */
  libraries: string[];
  /** Time to the sandbox's report; default 30 s. */
  startTimeoutMs?: number;
  /** Longest stdout line accepted; a longer one ends the service. */
  maxLineBytes: number;
}

/** How a service process ended. */
export interface ServiceExit {
  code: number;
  signal: Deno.Signal | null;
  /** Last part of stderr, the sandbox's marker lines removed. */
  stderrTail: string;
  /** Set when the runner ended it: why. */
  killedBecause: string | null;
}

/** A running service process. */
export interface ServiceProcess {
  /** Id of its scratch dir. */
  readonly id: string;
  readonly pid: number;
  /** The layers boot verified before the service module ran. */
  readonly layers: SandboxLayers;
  /** Milliseconds from spawn to the sandbox's report. */
  readonly startMs: number;
  /** stdout, line by line (without the newline). Iterate once. */
  readonly lines: AsyncIterable<string>;
  /** Resolves when the process has ended and its scratch dir is gone. */
  readonly exited: Promise<ServiceExit>;
  /** Writes one line to stdin. Rejects once the process is gone. */
  send(line: string): Promise<void>;
  /** Kills the process group (if still running) and waits for the end. */
  kill(reason: string): Promise<ServiceExit>;
}

/**
 * Starts sandboxed service processes.
 * @example
 * ```ts
 * const services = new ServiceRunner({ home, codeRoots: [root], configPath: `${root}/deno.json` });
 * const engine = await services.spawn({
 *   module: `${root}/workers/inference/jobs/engine.ts`,
 *   input: "registry/models/ab12….gguf",
 *   args: [],
 *   limits: { heapMb: 128, memMb: 4096, cpuSec: 86_400 },
 *   grants: { read: [], ffi: [], sys: [], keepEnv: false },
 *   libraries: [],
 *   maxLineBytes: 1 << 20,
 * });
 * ```
 */
export class ServiceRunner {
  readonly #options: ServiceRunnerOptions;
  #prepared: Promise<Prepared> | null = null;

  /** @param options where state, code and config live */
  constructor(options: ServiceRunnerOptions) {
    for (const [what, path] of [["home", options.home], ["configPath", options.configPath]]) {
      if (!path?.startsWith("/")) throw new RangeError(`Invalid ${what} "${path}": not absolute`);
    }
    if (options.codeRoots.length === 0) throw new RangeError("Invalid codeRoots: empty");
    this.#options = options;
  }

  /**
   * Starts a service and waits for its sandbox report.
   * @throws {SandboxError} `MODULE_REJECTED`, `INPUT_REJECTED`, `SANDBOX_UNAVAILABLE` (probe
   * failed, or the launcher or boot could not set the sandbox up: the message says why),
   * `SPAWN_FAILED`
   */
  async spawn(spec: ServiceSpec): Promise<ServiceProcess> {
    const prepared = await this.#prepare();
    const module = await resolveModulePath(spec.module, { codeRoots: prepared.codeRoots });
    const inputPath = await resolveInputPath(spec.input, { home: prepared.home });
    for (const path of [...spec.grants.read, ...spec.grants.ffi]) {
      if (!path.startsWith("/") || !isSafePath(path)) {
        throw new SandboxError("INVALID_JOB", `Cannot grant path "${path.slice(0, 200)}"`);
      }
    }
    const libraryFiles: string[] = [];
    for (const soname of spec.libraries) {
      const files = (this.#options.libraries ?? []).includes(soname) &&
          Object.hasOwn(prepared.probe.libraries, soname)
        ? prepared.probe.libraries[soname]
        : undefined;
      if (files === undefined) {
        throw new SandboxError(
          "SANDBOX_UNAVAILABLE",
          `Cannot give the service the library "${
            soname.slice(0, 100)
          }": it is not installed or not allowed`,
        );
      }
      libraryFiles.push(...files);
    }
    const id = crypto.randomUUID();
    const dir = `${prepared.jobsDir}/${id}`;
    const outDir = `${dir}/out`;
    await Deno.mkdir(outDir, { recursive: true, mode: 0o700 });
    const launch = planLaunch({
      module,
      inputPath,
      outDir,
      args: spec.args,
      limits: { timeoutMs: 0, ...spec.limits },
      service: { ...spec.grants, libraryFiles: [...new Set(libraryFiles)] },
    }, prepared.setup);
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(prepared.setup.deno, {
        args: [...launcherFlags(), prepared.launcherPath, JSON.stringify(launch)],
        clearEnv: true,
        env: prepared.launcherEnv,
        cwd: outDir,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        // A new session and process group (pgid = pid): one kill reaches all of it.
        detached: true,
      }).spawn();
    } catch (error) {
      await removeTree(dir);
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw new SandboxError("SPAWN_FAILED", "Cannot spawn the service process", { cause: error });
    }
    return await startService(child, {
      id,
      dir,
      startTimeoutMs: spec.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      maxLineBytes: spec.maxLineBytes,
    });
  }

  #prepare(): Promise<Prepared> {
    if (this.#prepared === null) {
      this.#prepared = prepare({
        home: this.#options.home,
        codeRoots: this.#options.codeRoots,
        configPath: this.#options.configPath,
        ...(this.#options.denoPath === undefined ? {} : { denoPath: this.#options.denoPath }),
        libraries: this.#options.libraries ?? [],
      });
      this.#prepared.catch(() => (this.#prepared = null));
    }
    return this.#prepared;
  }
}

/** Wires a spawned launcher: stderr report, stdout lines, stdin, exit, kill. */
async function startService(
  child: Deno.ChildProcess,
  options: { id: string; dir: string; startTimeoutMs: number; maxLineBytes: number },
): Promise<ServiceProcess> {
  const started = performance.now();
  const pid = child.pid;
  let isExited = false;
  let killedBecause: string | null = null;
  const decoder = new TextDecoder();

  // stderr: the head is searched for the sandbox's report; the tail kept for diagnosis.
  let head = "";
  let tail = new Uint8Array(0);
  let reported: (start: SandboxStart) => void = () => {};
  const report = new Promise<SandboxStart>((resolve) => (reported = resolve));
  const stderrDone = (async () => {
    for await (const chunk of child.stderr) {
      if (head.length < STDERR_HEAD_BYTES) {
        head += decoder.decode(chunk.subarray(0, STDERR_HEAD_BYTES - head.length), {
          stream: true,
        });
        const start = parseSandboxStart(head.slice(0, head.lastIndexOf("\n") + 1));
        if (start.kind !== "none") reported(start);
      }
      const joined = new Uint8Array(Math.min(tail.length + chunk.length, STDERR_TAIL_BYTES));
      const all = new Uint8Array(tail.length + chunk.length);
      all.set(tail);
      all.set(chunk, tail.length);
      joined.set(all.subarray(all.length - joined.length));
      tail = joined;
    }
  })();

  const kill = async (reason: string): Promise<void> => {
    if (isExited) return;
    killedBecause ??= reason;
    try {
      await killGroup(pid);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      // Already gone between the check and the kill: nothing to do.
    }
  };

  const status = child.status.then((s) => {
    isExited = true;
    return s;
  });
  const exited: Promise<ServiceExit> = (async () => {
    const s = await status;
    await stderrDone.catch(() => undefined);
    reported({ kind: "none" });
    await removeTree(options.dir);
    return {
      code: s.code,
      signal: s.signal,
      stderrTail: stripMarkers(decoder.decode(tail)).slice(-STDERR_TAIL_BYTES),
      killedBecause,
    };
  })();

  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), options.startTimeoutMs);
  });
  const start = await Promise.race([report, timeout]);
  clearTimeout(timer);
  if (start === "timeout" || start.kind !== "layers") {
    await kill("the sandbox did not start");
    const end = await exited;
    const why = start === "timeout"
      ? `no sandbox report within ${options.startTimeoutMs} ms`
      : start.kind === "setup_failed"
      ? `${start.code}: ${start.message}`
      : `it exited (${end.signal ?? `status ${end.code}`}) before the sandbox was in force: ${
        lastLine(end.stderrTail)
      }`;
    throw new SandboxError("SANDBOX_UNAVAILABLE", `Cannot start the service: ${why}`);
  }
  const layers = layersOf(start, { denoPermissions: true, processGroup: true });
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();

  return {
    id: options.id,
    pid,
    layers,
    startMs: performance.now() - started,
    lines: readLines(child.stdout, {
      maxLineBytes: options.maxLineBytes,
      onOverflow: () => void kill("a stdout line was too long"),
    }),
    exited,
    async send(line: string): Promise<void> {
      if (isExited) throw new SandboxError("PROCESS_CONTROL_FAILED", "The service has ended");
      await writer.write(encoder.encode(`${line}\n`));
    },
    async kill(reason: string): Promise<ServiceExit> {
      await writer.close().catch(() => undefined);
      await kill(reason);
      return await exited;
    },
  };
}

/** The last non-empty line of a text, bounded, for error messages. */
function lastLine(text: string): string {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
  return (lines[lines.length - 1] ?? "no output").slice(0, 300);
}

/**
 * Splits a byte stream into lines. A line longer than `maxLineBytes` calls `onOverflow`
 * and ends the iteration (the rest is drained so the writer is never blocked).
 */
async function* readLines(
  stream: ReadableStream<Uint8Array>,
  options: { maxLineBytes: number; onOverflow: () => void },
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let parts: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      let start = 0;
      for (let i = 0; i < value.length; i++) {
        if (value[i] !== 0x0a) continue;
        const piece = value.subarray(start, i);
        if (size + piece.length > options.maxLineBytes) break;
        parts.push(piece);
        yield decoder.decode(concat(parts, size + piece.length));
        parts = [];
        size = 0;
        start = i + 1;
      }
      const rest = value.subarray(start);
      size += rest.length;
      parts.push(rest.slice());
      if (size > options.maxLineBytes) {
        options.onOverflow();
        for (;;) {
          const { done: isDone } = await reader.read();
          if (isDone) return;
        }
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1 && parts[0] !== undefined) return parts[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
