/**
 * The engine host, supervisor side: serves the `engine` port (runtime/kit/engine_api.ts) to
 * controls whose manifest entry has an `engine` grant, and runs each engine as a sandboxed
 * service process (runtime/sandbox/service.ts) that can read only the one model file it was
 * started for.
 *
 * Checks before a process starts (threats in brackets): the model path must resolve, without
 * symlinks, to a regular file inside one of the caller's model roots [loading anything else
 * on the caller's word], with the size the caller was told [a file swapped since it was
 * verified]; a caller may run at most its grant's number of engines [memory exhaustion].
 *
 * Everything an engine writes is untrusted: each line is parsed with zod, text is bounded
 * per stream, a line outside the protocol's shape ends the engine, and an engine whose
 * caller goes away (crash, restart) is killed. Streams are polled: text waits in a bounded
 * buffer until the caller collects it, and a stream nobody polls for a while is cancelled.
 * @module
 */
import { RpcError } from "../kit/errors.ts";
import {
  engineApi,
  type EngineMessage,
  EngineMessageSchema,
  type EngineRequest,
  type GenerateOptions,
  type LoadOptions,
  MAX_PIPE_LINE_BYTES,
  type ModelInfo,
  type Prompt,
  type StreamEvent,
} from "../kit/engine_api.ts";
import { type RpcServer, serveRpc } from "../kit/rpc.ts";
import type { SandboxLayers } from "../kit/sandbox_api.ts";
import type { ServiceExit, ServiceProcess, ServiceSpec } from "../sandbox/service.ts";
import { detectGpuDevices, type EngineProfile, resolveEngineProfile } from "./profile.ts";

/** Text a stream may hold before its caller polls it (characters). */
const MAX_BUFFERED_CHARS = 8 << 20;
/** Events one poll returns at most. */
const MAX_EVENTS_PER_POLL = 1024;
/** A stream nobody polled for this long is cancelled and dropped. */
const STREAM_IDLE_MS = 120_000;
/** A finished stream is kept this long for its last poll. */
const FINISHED_KEEP_MS = 30_000;
/** Time an engine has to exit after `unload` before it is killed. */
const UNLOAD_GRACE_MS = 5_000;
/** Address space beyond the memory budget: libraries, V8, thread stacks. */
const MEM_SLACK_MB = 1024;
/** CPU seconds an engine may use over its whole life (RLIMIT_CPU). */
const DEFAULT_CPU_SECONDS = 7 * 24 * 3600;
/** Diagnostic lines (native prints) kept per engine for error messages. */
const DIAGNOSTIC_LINES = 8;

/** What a control's manifest grants it, paths resolved. */
export interface EngineGrant {
  /** Absolute path of the engine module. */
  module: string;
  /** Absolute dirs model files must lie in. */
  models: string[];
  /** Engines it may run at once. */
  maxEngines: number;
}

/** Starts sandboxed service processes (runtime/sandbox/service.ts). */
export interface ServiceSpawner {
  spawn(spec: ServiceSpec): Promise<ServiceProcess>;
}

/** Options of {@link EngineHost}. */
export interface EngineHostOptions {
  /** Absolute realpath of the state dir. */
  home: string;
  /** Absolute project root (node_modules). */
  projectRoot: string;
  services: ServiceSpawner;
  /** Records a supervisor event (shown in the UI's event stream). */
  emit(type: string, data: Record<string, unknown>): void;
  /** RLIMIT_CPU of an engine; default 7 days. */
  cpuSeconds?: number;
}

/** An engine whose model loaded, as the `load` call answers it. */
interface LoadedEngine {
  engineId: string;
  info: ModelInfo;
  layers: SandboxLayers;
  timings: { startMs: number; loadMs: number };
  gpuDevices: string[];
}

interface Stream {
  id: string;
  caller: string;
  engine: Engine;
  pipeId: number;
  events: StreamEvent[];
  nextSeq: number;
  bufferedChars: number;
  isDone: boolean;
  waiters: Set<() => void>;
  lastPolled: number;
  dropTimer: ReturnType<typeof setTimeout> | undefined;
}

interface Engine {
  id: string;
  caller: string;
  process: ServiceProcess;
  sha256: string;
  info: ModelInfo | null;
  startedAt: string;
  /** Pipe id of the generation the engine is running, or null. */
  busyWith: number | null;
  stream: Stream | null;
  diagnostics: string[];
  onLoaded: ((message: EngineMessage) => void) | null;
  isClosing: boolean;
}

/** Serves the `engine` port. */
export class EngineHost {
  readonly #o: EngineHostOptions;
  readonly #engines = new Map<string, Engine>();
  readonly #streams = new Map<string, Stream>();
  #profile: Promise<EngineProfile> | null = null;
  #nextPipeId = 1;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #isStopped = false;

  /** @param options state dir, project root, process spawner, event sink */
  constructor(options: EngineHostOptions) {
    this.#o = options;
  }

  /**
   * Serves the engine contract to one control on a port. Closing the server (the control
   * ended) kills that control's engines.
   */
  serve(caller: { name: string; grant: EngineGrant | null }, port: MessagePort): RpcServer {
    const name = caller.name;
    const grant = caller.grant;
    const server = serveRpc(port, engineApi, {
      load: async (input, ctx) => {
        if (grant === null) {
          throw new RpcError("ENGINE_NOT_ALLOWED", `Control "${name}" has no engine grant`);
        }
        return await this.#load(name, grant, input, ctx.signal);
      },
      generate: (input) => this.#generate(name, input.engineId, input.prompt, input.options),
      poll: (input, ctx) => {
        const waitMs = Math.min(input.waitMs, Math.max(0, ctx.deadline - Date.now() - 100));
        return this.#poll(name, input.streamId, input.after, waitMs, ctx.signal);
      },
      cancel: async (input) => ({ isCancelled: await this.#cancel(name, input.streamId) }),
      unload: async (input) => {
        const engine = this.#engineOf(name, input.engineId);
        await this.#unload(engine, "unloaded by its caller");
        return { isUnloaded: true };
      },
      list: () => ({
        engines: [...this.#engines.values()]
          .filter((e) => e.caller === name && e.info !== null)
          .map((e) => ({
            engineId: e.id,
            sha256: e.sha256,
            startedAt: e.startedAt,
            isBusy: e.busyWith !== null,
            info: e.info as ModelInfo,
          })),
      }),
    }, { caller: name, self: "supervisor" });
    return {
      close: () => {
        server.close();
        for (const engine of [...this.#engines.values()]) {
          if (engine.caller === name) void this.#kill(engine, `its caller "${name}" went away`);
        }
      },
    };
  }

  /** Kills every engine and waits for them to end. */
  async stop(): Promise<void> {
    this.#isStopped = true;
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    await Promise.all([...this.#engines.values()].map((e) => this.#kill(e, "the system stops")));
    for (const stream of this.#streams.values()) clearTimeout(stream.dropTimer);
    this.#streams.clear();
  }

  /** Running engines and their process ids (diagnostics and tests; not on the port). */
  processes(): { engineId: string; caller: string; pid: number }[] {
    return [...this.#engines.values()].map((e) => ({
      engineId: e.id,
      caller: e.caller,
      pid: e.process.pid,
    }));
  }

  async #load(
    caller: string,
    grant: EngineGrant,
    input: {
      model: { path: string; sha256: string; size: number };
      options: LoadOptions;
      heapMb: number;
    },
    signal: AbortSignal,
  ): Promise<LoadedEngine> {
    if (this.#isStopped) throw new RpcError("UNAVAILABLE", "The system is stopping");
    const running = [...this.#engines.values()].filter((e) => e.caller === caller).length;
    if (running >= grant.maxEngines) {
      throw new RpcError(
        "TOO_MANY_ENGINES",
        `Control "${caller}" runs ${running} engine(s) already, its limit; unload one first`,
      );
    }
    const rel = await this.#checkModelFile(input.model, grant);
    const profile = await this.#resolveProfile();
    const started = performance.now();
    let process: ServiceProcess;
    try {
      process = await this.#o.services.spawn({
        module: grant.module,
        input: rel,
        args: [],
        limits: {
          heapMb: input.heapMb,
          memMb: input.options.memoryBudgetMb + MEM_SLACK_MB,
          cpuSec: this.#o.cpuSeconds ?? DEFAULT_CPU_SECONDS,
        },
        grants: { read: profile.read, ffi: profile.ffi, sys: profile.sys, keepEnv: true },
        libraries: profile.libraries,
        maxLineBytes: MAX_PIPE_LINE_BYTES,
      });
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      const code = error instanceof RpcError ? error.code : "INTERNAL";
      throw new RpcError(
        "ENGINE_UNAVAILABLE",
        `Cannot start the sandboxed engine (${code}): ${
          error instanceof Error ? error.message.slice(0, 800) : String(error)
        }`,
        { cause: error },
      );
    }
    const engine: Engine = {
      id: `e${randomHex(8)}`,
      caller,
      process,
      sha256: input.model.sha256,
      info: null,
      startedAt: new Date().toISOString(),
      busyWith: null,
      stream: null,
      diagnostics: [],
      onLoaded: null,
      isClosing: false,
    };
    this.#engines.set(engine.id, engine);
    this.#watch(engine);
    try {
      return await this.#finishLoad(engine, input.options, { signal, started });
    } catch (error) {
      // Whatever went wrong, the process must not outlive a failed load.
      if (engine.info === null) await this.#kill(engine, "its load did not succeed");
      throw error;
    }
  }

  async #finishLoad(
    engine: Engine,
    options: LoadOptions,
    timing: { signal: AbortSignal; started: number },
  ): Promise<LoadedEngine> {
    const { signal, started } = timing;
    const process = engine.process;
    const caller = engine.caller;
    const startMs = performance.now() - started;
    const loaded = new Promise<EngineMessage | "exited" | "cancelled">((resolve) => {
      engine.onLoaded = resolve;
      void process.exited.then(() => resolve("exited"));
      signal.addEventListener("abort", () => resolve("cancelled"), { once: true });
    });
    await this.#send(engine, { t: "load", options });
    const answer = await loaded;
    engine.onLoaded = null;
    if (answer !== "exited" && answer !== "cancelled" && answer.t === "loaded") {
      const gpuDevices = await detectGpuDevices();
      engine.info = answer.info;
      this.#ensureSweeper();
      this.#o.emit("engine.loaded", {
        control: caller,
        engineId: engine.id,
        sha256: engine.sha256,
        memoryMb: Math.round(answer.info.memoryMb.total),
        chatTemplate: answer.info.chatTemplate,
      });
      return {
        engineId: engine.id,
        info: answer.info,
        layers: process.layers,
        timings: { startMs, loadMs: performance.now() - started - startMs },
        gpuDevices,
      };
    }
    const end = await this.#kill(engine, "its load did not succeed");
    if (answer === "cancelled") throw new RpcError("CANCELLED", "Loading the model was cancelled");
    if (answer !== "exited" && answer.t === "error") {
      throw new RpcError(answer.code, answer.message);
    }
    throw new RpcError(
      "MODEL_LOAD_FAILED",
      `The engine process ended while loading the model (${end.signal ?? `status ${end.code}`}): ${
        lastLine(end.stderrTail, engine.diagnostics)
      }`,
    );
  }

  /** Checks the model file against the grant; returns its path relative to the state dir. */
  async #checkModelFile(
    model: { path: string; size: number },
    grant: EngineGrant,
  ): Promise<string> {
    const reject = (why: string) =>
      new RpcError(
        "MODEL_FILE_REJECTED",
        `Cannot load model file "${model.path.slice(0, 300)}": ${why}`,
      );
    let real: string;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(model.path);
      real = await Deno.realPath(model.path);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw reject("it does not exist");
    }
    if (info.isSymlink || real !== model.path) throw reject("it is reached through a symlink");
    if (!info.isFile) throw reject("not a regular file");
    if (!grant.models.some((root) => real.startsWith(`${root}/`))) {
      throw new RpcError(
        "ENGINE_NOT_ALLOWED",
        `Cannot load model file "${
          model.path.slice(0, 300)
        }": it is outside the model folders this control may load from`,
      );
    }
    if (info.size !== model.size) {
      throw reject(`its size is ${info.size} bytes, not the ${model.size} it was verified with`);
    }
    if (!real.startsWith(`${this.#o.home}/`)) throw reject("it is outside the state dir");
    return real.slice(this.#o.home.length + 1);
  }

  #resolveProfile(): Promise<EngineProfile> {
    if (this.#profile === null) {
      this.#profile = resolveEngineProfile(this.#o.projectRoot);
      // Not cached when it fails: tools/setup may fix it while the system runs.
      this.#profile.catch(() => (this.#profile = null));
    }
    return this.#profile;
  }

  /** Reads an engine's messages until it ends, then cleans up after it. */
  #watch(engine: Engine): void {
    void (async () => {
      try {
        for await (const line of engine.process.lines) {
          if (line.length === 0) continue;
          if (!line.startsWith('{"t":')) {
            // Native code printing to stdout: kept for error messages, never interpreted.
            engine.diagnostics.push(line.slice(0, 300));
            if (engine.diagnostics.length > DIAGNOSTIC_LINES) engine.diagnostics.shift();
            continue;
          }
          const parsed = EngineMessageSchema.safeParse(parseJson(line));
          if (!parsed.success) {
            void this.#kill(engine, "it sent a message outside the protocol");
            return;
          }
          this.#dispatch(engine, parsed.data);
        }
      } catch (error) {
        void this.#kill(engine, `its output could not be read (${String(error).slice(0, 200)})`);
      }
    })();
    void engine.process.exited.then((end) => this.#onExit(engine, end));
  }

  #dispatch(engine: Engine, message: EngineMessage): void {
    if (message.t === "loaded" || (message.t === "error" && message.id === null)) {
      if (engine.onLoaded !== null) engine.onLoaded(message);
      else void this.#kill(engine, `it reported a fatal error: ${message.t}`);
      return;
    }
    if (message.id !== engine.busyWith) return; // late message of a dropped generation
    const stream = engine.stream;
    if (message.t === "text") {
      if (stream === null || stream.isDone) return;
      stream.bufferedChars += message.text.length;
      if (stream.bufferedChars > MAX_BUFFERED_CHARS) {
        void this.#send(engine, { t: "cancel", id: message.id });
        this.#finish(stream, {
          kind: "error",
          code: "STREAM_OVERFLOW",
          message: "The answer was not collected fast enough and was cut off",
        });
        return;
      }
      this.#push(stream, { kind: "text", text: message.text, tokens: message.tokens });
      return;
    }
    engine.busyWith = null;
    engine.stream = null;
    if (stream === null || stream.isDone) return;
    if (message.t === "done") {
      this.#finish(stream, {
        kind: "done",
        reason: message.reason,
        usage: message.usage,
        timings: message.timings,
      });
    } else {
      this.#finish(stream, { kind: "error", code: message.code, message: message.message });
    }
  }

  #onExit(engine: Engine, end: ServiceExit): void {
    this.#engines.delete(engine.id);
    const stream = engine.stream;
    engine.stream = null;
    engine.busyWith = null;
    if (stream !== null && !stream.isDone) {
      this.#finish(stream, {
        kind: "error",
        code: "ENGINE_CRASHED",
        message: `The inference engine ended during generation (${
          end.killedBecause ?? end.signal ?? `status ${end.code}`
        }): ${lastLine(end.stderrTail, engine.diagnostics)}`,
      });
    }
    if (engine.info !== null) {
      this.#o.emit("engine.exited", {
        control: engine.caller,
        engineId: engine.id,
        code: end.code,
        signal: end.signal,
        reason: end.killedBecause ?? (end.code === 0 ? "unloaded" : "exited on its own"),
      });
    }
  }

  #generate(
    caller: string,
    engineId: string,
    prompt: Prompt,
    options: GenerateOptions,
  ): Promise<{ streamId: string }> {
    const engine = this.#engineOf(caller, engineId);
    if (engine.info === null) throw new RpcError("NOT_LOADED", "The engine is still loading");
    if (engine.busyWith !== null) {
      throw new RpcError("ENGINE_BUSY", "Another generation is running on this engine");
    }
    const pipeId = this.#nextPipeId++;
    const stream: Stream = {
      id: `s${randomHex(8)}`,
      caller,
      engine,
      pipeId,
      events: [],
      nextSeq: 0,
      bufferedChars: 0,
      isDone: false,
      waiters: new Set(),
      lastPolled: Date.now(),
      dropTimer: undefined,
    };
    engine.busyWith = pipeId;
    engine.stream = stream;
    this.#streams.set(stream.id, stream);
    return this.#send(engine, { t: "generate", id: pipeId, prompt, options }).then(() => ({
      streamId: stream.id,
    }));
  }

  async #poll(
    caller: string,
    streamId: string,
    after: number,
    waitMs: number,
    signal: AbortSignal,
  ): Promise<{ events: StreamEvent[]; isDone: boolean }> {
    const stream = this.#streams.get(streamId);
    if (stream === undefined || stream.caller !== caller) {
      throw new RpcError("STREAM_NOT_FOUND", `No stream "${streamId}"`);
    }
    stream.lastPolled = Date.now();
    // Events up to `after` were received: their memory is released.
    while ((stream.events[0]?.seq ?? Infinity) <= after) {
      const dropped = stream.events.shift();
      if (dropped?.kind === "text") stream.bufferedChars -= dropped.text.length;
    }
    if (stream.events.length === 0 && !stream.isDone && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          stream.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, waitMs);
        signal.addEventListener("abort", done, { once: true });
        stream.waiters.add(done);
      });
      stream.lastPolled = Date.now();
    }
    const pending = stream.events.filter((e) => e.seq > after);
    const events = pending.slice(0, MAX_EVENTS_PER_POLL);
    return { events, isDone: stream.isDone && events.length === pending.length };
  }

  async #cancel(caller: string, streamId: string): Promise<boolean> {
    const stream = this.#streams.get(streamId);
    if (stream === undefined || stream.caller !== caller) {
      throw new RpcError("STREAM_NOT_FOUND", `No stream "${streamId}"`);
    }
    if (stream.isDone || stream.engine.busyWith !== stream.pipeId) return false;
    await this.#send(stream.engine, { t: "cancel", id: stream.pipeId });
    return true;
  }

  #engineOf(caller: string, engineId: string): Engine {
    const engine = this.#engines.get(engineId);
    if (engine === undefined || engine.caller !== caller) {
      throw new RpcError("ENGINE_NOT_FOUND", `No engine "${engineId}" (it may have ended)`);
    }
    return engine;
  }

  async #send(engine: Engine, request: EngineRequest): Promise<void> {
    try {
      await engine.process.send(JSON.stringify(request));
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw new RpcError("ENGINE_CRASHED", "The inference engine is not running any more", {
        cause: error,
      });
    }
  }

  async #unload(engine: Engine, reason: string): Promise<void> {
    if (engine.isClosing) {
      await engine.process.exited;
      return;
    }
    engine.isClosing = true;
    await this.#send(engine, { t: "unload" }).catch(() => undefined);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), UNLOAD_GRACE_MS);
    });
    const first = await Promise.race([engine.process.exited, grace]);
    clearTimeout(timer);
    if (first === "late") await engine.process.kill(`${reason}, and it did not exit in time`);
  }

  async #kill(engine: Engine, reason: string): Promise<ServiceExit> {
    engine.isClosing = true;
    return await engine.process.kill(reason);
  }

  #push(stream: Stream, event: DistributiveOmit<StreamEvent, "seq">): void {
    stream.events.push({ ...event, seq: stream.nextSeq++ } as StreamEvent);
    for (const wake of [...stream.waiters]) wake();
  }

  #finish(stream: Stream, event: DistributiveOmit<StreamEvent, "seq">): void {
    if (stream.isDone) return;
    this.#push(stream, event);
    stream.isDone = true;
    stream.dropTimer = setTimeout(() => this.#streams.delete(stream.id), FINISHED_KEEP_MS);
  }

  /** Cancels streams whose caller stopped polling (it crashed or forgot them). */
  #ensureSweeper(): void {
    if (this.#sweeper !== undefined) return;
    this.#sweeper = setInterval(() => {
      const now = Date.now();
      for (const stream of this.#streams.values()) {
        if (stream.isDone || now - stream.lastPolled < STREAM_IDLE_MS) continue;
        if (stream.engine.busyWith === stream.pipeId) {
          void this.#send(stream.engine, { t: "cancel", id: stream.pipeId }).catch(() => undefined);
        }
        this.#finish(stream, {
          kind: "error",
          code: "STREAM_ABANDONED",
          message: "Nobody collected this answer; it was cancelled",
        });
      }
      if (this.#engines.size === 0 && this.#streams.size === 0) {
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
      }
    }, STREAM_IDLE_MS / 4);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function parseJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch (error) {
    if (error instanceof SyntaxError) return null;
    throw error;
  }
}

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The last meaningful line the engine printed, for an error message. */
function lastLine(stderrTail: string, diagnostics: readonly string[]): string {
  const lines = [...stderrTail.split("\n"), ...diagnostics]
    // deno-lint-ignore no-control-regex -- engine output is untrusted: no control characters
    .map((l) => l.replace(/[\u0000-\u001f\u007f]/g, " ").trim())
    .filter((l) => l.length > 0);
  return (lines[lines.length - 1] ?? "no output").slice(0, 300);
}
