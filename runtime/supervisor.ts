/**
 * The supervisor: the one fully trusted part. It spawns each control as a worker with the
 * permissions the manifest grants, hands out one port per declared edge (and nothing else),
 * watches heartbeats, restarts crashed workers with exponential back-off, marks crash loops
 * failed (their callers then fail closed), serves the `system` and `sandbox` contracts, and
 * shuts everything down in reverse dependency order.
 * @module
 */
import { type Config } from "./config.ts";
import {
  buildManifest,
  type ControlSpec,
  type ControlSpecInput,
  DEFAULT_CONTROLS,
  type Manifest,
} from "./manifest.ts";
import { grantFor, type PermissionRoots, toWorkerPermissions } from "./permissions.ts";
import { EventRing } from "./events.ts";
import { renderPrometheus } from "./prometheus.ts";
import { log } from "./log.ts";
import { type ApiContract, RpcClient, type RpcServer, serveRpc } from "./kit/rpc.ts";
import { RpcError } from "./kit/errors.ts";
import { type FromWorker, FromWorkerSchema, type ToWorker } from "./kit/protocol.ts";
import type { HistogramSnapshot, MetricSeries } from "./kit/metrics.ts";
import {
  type ControlState,
  type ControlStatus,
  type EvidenceView,
  type GrantedPermissions,
  systemApi,
} from "./kit/system_api.ts";
import { type JobInput, type JobLimits, type JobResult, sandboxApi } from "./kit/sandbox_api.ts";
import { engineApi } from "./kit/engine_api.ts";
import { resolvePathRef } from "./permissions.ts";
import { auditAppendApi } from "../workers/audit/api.ts";
import { describeZodError } from "./kit/validate.ts";
import { writeFileAtomic } from "./kit/fs.ts";

/** What the supervisor needs from a job runner (runtime/sandbox). */
export interface JobRunnerLike {
  run(
    spec: { module: string; input: JobInput; args: string[]; limits: JobLimits; ffi?: string[] },
    options?: { signal?: AbortSignal },
  ): Promise<JobResult>;
}

/** What the supervisor needs from the engine host (runtime/engine). */
export interface EngineHostLike {
  /** Serves the `engine` port to one control; closing it kills that control's engines. */
  serve(
    caller: {
      name: string;
      grant: { module: string; models: string[]; maxEngines: number } | null;
    },
    port: MessagePort,
  ): RpcServer;
  /** Kills every engine. */
  stop(): Promise<void>;
}

/** Options of {@link Supervisor}. */
export interface SupervisorOptions {
  /** Absolute, prepared state dir. */
  home: string;
  /** Absolute project root (code and assets). */
  projectRoot: string;
  config: Config;
  version: string;
  /** Controls to run; defaults to the shipped manifest. Tests pass their own. */
  controls?: ControlSpecInput[];
  /** Runs sandboxed jobs for controls that declare `jobs`. */
  jobRunner?: JobRunnerLike;
  /**
   * Creates the host of sandboxed inference engines (for controls with an `engine` grant),
   * given the supervisor's event sink.
   */
  engineHost?: (
    context: { emit(type: string, data: Record<string, unknown>): void },
  ) => EngineHostLike;
  /** Loads the evidence matrix shown on the dashboard (read on each request: it is small). */
  evidence?: () => Promise<EvidenceView>;
}

/** Identity used for the supervisor's own edges. */
const SUPERVISOR = "supervisor";
/** Missed heartbeats before a worker is declared hung. */
const MISSED_HEARTBEATS = 3;
/** Lifecycle events kept for the audit log while it is unreachable. */
const MAX_PENDING_AUDIT = 1000;

interface Control {
  spec: ControlSpec;
  granted: GrantedPermissions;
  worker: Worker | null;
  generation: number;
  state: ControlState;
  restarts: number;
  restartTimes: number[];
  lastError: string | null;
  since: string;
  lastPong: number;
  served: Record<string, HistogramSnapshot>;
  /** The control's own metrics from its last heartbeat. */
  custom: MetricSeries[];
  /** Servers the supervisor runs for this control's system/sandbox ports. */
  supervisorServers: RpcServer[];
  timers: Set<ReturnType<typeof setTimeout>>;
  onStopped: (() => void) | null;
}

/** Runs the control tree. */
export class Supervisor {
  readonly #options: SupervisorOptions;
  readonly #manifest: Manifest;
  readonly #controls = new Map<string, Control>();
  readonly #events = new EventRing();
  readonly #roots: PermissionRoots;
  readonly #startedAt = new Date();
  #phase: "idle" | "starting" | "running" | "stopping" | "stopped" = "idle";
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #pingSeq = 0;
  #wasReady = false;
  #readyWaiters = new Set<() => void>();
  #gatewayWaiters = new Set<(addr: GatewayAddress) => void>();
  #gateway: GatewayAddress | null = null;
  readonly #audit: RpcClient<typeof auditAppendApi>;
  /** The supervisor's own clients (audit-append, plus any opened with {@link client}). */
  readonly #own = new Map<string, RpcClient<ApiContract>>();
  readonly #pendingAudit: Parameters<RpcClient<typeof auditAppendApi>["call"]>[1][] = [];
  #flushingAudit = false;
  readonly #engineHost: EngineHostLike | null;

  /** @throws {ManifestError} when the manifest is inconsistent */
  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#manifest = buildManifest(options.controls ?? DEFAULT_CONTROLS);
    this.#roots = { home: options.home, projectRoot: options.projectRoot };
    this.#engineHost = options.engineHost?.({
      emit: (type, data) => this.#emit("engine", type, data),
    }) ?? null;
    this.#audit = new RpcClient(auditAppendApi, null, { peer: "audit", defaultDeadlineMs: 5_000 });
    if (this.#manifest.providers.has(auditAppendApi.name)) {
      this.#own.set(auditAppendApi.name, this.#audit as unknown as RpcClient<ApiContract>);
    }
    for (const spec of this.#manifest.controls) {
      this.#controls.set(spec.name, {
        spec,
        granted: grantFor(spec, options.config, this.#roots),
        worker: null,
        generation: 0,
        state: "stopped",
        restarts: 0,
        restartTimes: [],
        lastError: null,
        since: new Date().toISOString(),
        lastPong: 0,
        served: {},
        custom: [],
        supervisorServers: [],
        timers: new Set(),
        onStopped: null,
      });
    }
  }

  /** Controls in start order. */
  get startOrder(): readonly string[] {
    return this.#manifest.startOrder;
  }

  /**
   * Spawns every control (providers first) and waits until the system is ready or
   * `timeoutMs` passes.
   * @returns whether every required control became ready in time
   */
  async start(options: { timeoutMs?: number } = {}): Promise<boolean> {
    if (this.#phase !== "idle") throw new TypeError("Supervisor already started");
    this.#phase = "starting";
    this.#emit(SUPERVISOR, "system.starting", { version: this.#options.version });
    for (const name of this.#manifest.startOrder) this.#spawn(this.#get(name));
    this.#heartbeat = setInterval(() => this.#tick(), this.#options.config.supervisor.heartbeatMs);
    const isReady = await this.waitReady(options.timeoutMs ?? 15_000);
    if (this.#phase === "starting") this.#phase = "running";
    return isReady;
  }

  /** Resolves true once every required control is ready, false after the timeout. */
  waitReady(timeoutMs: number): Promise<boolean> {
    if (this.isReady) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (value: boolean) => {
        clearTimeout(timer);
        this.#readyWaiters.delete(wake);
        resolve(value);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#readyWaiters.add(wake);
    });
  }

  /** Whether every required control is ready. */
  get isReady(): boolean {
    if (this.#phase === "stopping" || this.#phase === "stopped") return false;
    return [...this.#controls.values()].every((c) => !c.spec.required || c.state === "ready");
  }

  /** The gateway's address once it listens. */
  gatewayAddress(timeoutMs = 15_000): Promise<GatewayAddress> {
    if (this.#gateway) return Promise.resolve(this.#gateway);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#gatewayWaiters.delete(got);
        reject(new RpcError("UNAVAILABLE", "Gateway did not start listening in time"));
      }, timeoutMs);
      const got = (addr: GatewayAddress) => {
        clearTimeout(timer);
        resolve(addr);
      };
      this.#gatewayWaiters.add(got);
    });
  }

  /**
   * A client of the supervisor's own for a contract a control provides (CLI and tests in the
   * supervisor's process). It follows restarts like any other edge.
   */
  client<C extends ApiContract>(contract: C): RpcClient<C> {
    const existing = this.#own.get(contract.name);
    if (existing) return existing as unknown as RpcClient<C>;
    const provider = this.#manifest.providers.get(contract.name);
    if (!provider || provider === SUPERVISOR) {
      throw new TypeError(`No control provides "${contract.name}"`);
    }
    const client = new RpcClient(contract, null, { peer: contract.name });
    this.#own.set(contract.name, client as unknown as RpcClient<ApiContract>);
    const p = this.#get(provider);
    if (p.worker) {
      const channel = new MessageChannel();
      this.#post(p, {
        t: "serve",
        served: { api: contract.name, caller: SUPERVISOR, port: channel.port2 },
      }, [channel.port2]);
      client.setPort(channel.port1);
    }
    return client;
  }

  /** The live capability matrix. */
  status(): ControlStatus[] {
    return this.#manifest.startOrder.map((name) => {
      const c = this.#get(name);
      return {
        name,
        description: c.spec.description,
        state: c.state,
        required: c.spec.required,
        restarts: c.restarts,
        lastError: c.lastError,
        since: c.since,
        permissions: c.granted,
        provides: [...c.spec.provides],
        uses: c.spec.uses.map((api) => ({ api, control: this.#manifest.providers.get(api) ?? "" })),
        jobs: Object.keys(c.spec.jobs),
      };
    });
  }

  /** Prometheus text for `/metrics`. */
  metrics(): string {
    return renderPrometheus(
      [...this.#controls.values()].map((c) => ({
        name: c.spec.name,
        isUp: c.state === "ready",
        restarts: c.restarts,
        served: c.served,
        custom: c.custom,
      })),
      {
        isReady: this.isReady,
        uptimeSeconds: (Date.now() - this.#startedAt.getTime()) / 1000,
        rssBytes: Deno.memoryUsage().rss,
      },
    );
  }

  /** The event ring (SSE source). */
  get events(): EventRing {
    return this.#events;
  }

  /**
   * Terminates a control's worker as if it had crashed (operator action and tests). The
   * normal crash path then applies: restart with back-off, or failed after a crash loop.
   */
  kill(name: string): void {
    const c = this.#get(name);
    if (c.worker) this.#crash(c, "killed by the supervisor");
  }

  /**
   * Ordered graceful shutdown: callers before providers, each asked to stop and terminated
   * when it does not within its share of the budget.
   */
  async stop(): Promise<void> {
    if (this.#phase === "stopping" || this.#phase === "stopped") return;
    this.#phase = "stopping";
    clearInterval(this.#heartbeat);
    const budget = this.#options.config.supervisor.shutdownTimeoutMs;
    const deadline = Date.now() + budget;
    this.#emit(SUPERVISOR, "system.stopping", {});
    await this.#flushAudit();
    const order = [...this.#manifest.startOrder].reverse();
    for (const [i, name] of order.entries()) {
      const c = this.#get(name);
      const share = Math.max(50, (deadline - Date.now()) / (order.length - i));
      await this.#stopOne(c, share);
    }
    for (const client of this.#own.values()) client.close();
    await this.#engineHost?.stop();
    this.#events.close();
    for (const wake of this.#readyWaiters) wake();
    this.#phase = "stopped";
  }

  async #stopOne(c: Control, timeoutMs: number): Promise<void> {
    for (const t of c.timers) clearTimeout(t);
    c.timers.clear();
    const worker = c.worker;
    if (!worker) {
      this.#setState(c, "stopped", null);
      return;
    }
    this.#setState(c, "stopping", null);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        log("warn", "Control did not stop in time; terminating", {
          control: c.spec.name,
          timeoutMs,
        });
        resolve();
      }, timeoutMs);
      c.onStopped = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#post(c, { t: "stop" });
    });
    c.onStopped = null;
    this.#teardown(c);
    this.#setState(c, "stopped", null);
  }

  #get(name: string): Control {
    const c = this.#controls.get(name);
    if (!c) throw new RpcError("NOT_FOUND", `No control named "${name}"`);
    return c;
  }

  #spawn(c: Control): void {
    if (this.#phase === "stopping" || this.#phase === "stopped") return;
    const generation = ++c.generation;
    this.#setState(c, "starting", c.lastError);
    const url = new URL(c.spec.entry, `file://${this.#options.projectRoot}/`).href;
    let worker: Worker;
    try {
      worker = new Worker(url, {
        type: "module",
        name: c.spec.name,
        deno: { permissions: toWorkerPermissions(c.granted) },
      });
    } catch (err) {
      c.worker = null;
      this.#crash(c, `cannot spawn worker: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    c.worker = worker;
    c.lastPong = Date.now();
    worker.onmessage = (event) => {
      if (c.generation === generation) this.#onWorkerMessage(c, event.data);
    };
    worker.onerror = (event) => {
      event.preventDefault(); // a control's crash must never take down the supervisor
      if (c.generation === generation) this.#crash(c, `uncaught error: ${event.message}`);
    };
    worker.onmessageerror = () => {
      if (c.generation === generation) this.#crash(c, "sent a message that cannot be deserialized");
    };

    // Ports: one per declared edge, nothing else.
    const clients: Record<string, MessagePort | null> = {};
    const transfer: MessagePort[] = [];
    for (const api of c.spec.uses) {
      const port = this.#connect(c, api);
      clients[api] = port;
      if (port) transfer.push(port);
    }
    if (Object.keys(c.spec.jobs).length > 0) {
      const port = this.#connect(c, "sandbox");
      clients.sandbox = port;
      if (port) transfer.push(port);
    }
    if (c.spec.engine) {
      const port = this.#connect(c, "engine");
      clients.engine = port;
      if (port) transfer.push(port);
    }
    const servers: { api: string; caller: string; port: MessagePort }[] = [];
    for (const api of c.spec.provides) {
      for (const caller of this.#callersOf(api)) {
        const channel = new MessageChannel();
        servers.push({ api, caller, port: channel.port2 });
        transfer.push(channel.port2);
        this.#handToCaller(caller, api, channel.port1, `${c.spec.name} started`);
      }
    }
    this.#post(c, {
      t: "init",
      control: c.spec.name,
      home: this.#options.home,
      config: (this.#options.config as Record<string, unknown>)[c.spec.name] ?? {},
      clients,
      servers,
    }, transfer);
    const readyTimer = setTimeout(() => {
      c.timers.delete(readyTimer);
      if (c.generation === generation && c.state === "starting") {
        this.#crash(c, `did not become ready within ${c.spec.readyTimeoutMs} ms`);
      }
    }, c.spec.readyTimeoutMs);
    c.timers.add(readyTimer);
  }

  /** Live callers of a contract: controls with a running worker, plus the supervisor. */
  #callersOf(api: string): string[] {
    const callers = [...this.#controls.values()]
      .filter((c) => c.worker && c.spec.uses.includes(api))
      .map((c) => c.spec.name);
    if (this.#own.has(api)) callers.push(SUPERVISOR);
    return callers;
  }

  #handToCaller(caller: string, api: string, port: MessagePort | null, reason: string): void {
    if (caller === SUPERVISOR) {
      const own = this.#own.get(api);
      if (own) own.setPort(port, reason);
      else port?.close();
      if (port && api === auditAppendApi.name) void this.#flushAudit();
      return;
    }
    const c = this.#controls.get(caller);
    if (!c?.worker) {
      port?.close();
      return;
    }
    this.#post(c, { t: "rewire", api, port, reason }, port ? [port] : []);
  }

  /** Creates the channel for one edge; returns the caller's end, or null if the provider is down. */
  #connect(caller: Control, api: string): MessagePort | null {
    const provider = this.#manifest.providers.get(api);
    if (provider === SUPERVISOR) {
      const channel = new MessageChannel();
      caller.supervisorServers.push(this.#serveSupervisorApi(caller, api, channel.port2));
      return channel.port1;
    }
    const p = provider ? this.#controls.get(provider) : undefined;
    if (!p?.worker) return null;
    const channel = new MessageChannel();
    this.#post(p, {
      t: "serve",
      served: { api, caller: caller.spec.name, port: channel.port2 },
    }, [channel.port2]);
    return channel.port1;
  }

  #serveSupervisorApi(caller: Control, api: string, port: MessagePort): RpcServer {
    const opts = { caller: caller.spec.name, self: SUPERVISOR };
    if (api === "engine") {
      const grant = caller.spec.engine;
      const host = this.#engineHost;
      if (!host) {
        const down = () => {
          throw new RpcError("ENGINE_UNAVAILABLE", "The inference engine host is not running");
        };
        return serveRpc(port, engineApi, {
          load: down,
          generate: down,
          poll: down,
          cancel: down,
          unload: down,
          list: () => ({ engines: [] }),
        }, opts);
      }
      return host.serve({
        name: caller.spec.name,
        grant: grant
          ? {
            module: `${this.#options.projectRoot}/${grant.module}`,
            models: grant.models.map((ref) => resolvePathRef(ref, this.#roots)),
            maxEngines: grant.maxEngines,
          }
          : null,
      }, port);
    }
    if (api === "system") {
      return serveRpc(port, systemApi, {
        status: () => ({
          ready: this.isReady,
          state: this.#systemState(),
          version: this.#options.version,
          startedAt: this.#startedAt.toISOString(),
          controls: this.status(),
        }),
        metrics: () => ({ text: this.metrics() }),
        evidence: async () => {
          const load = this.#options.evidence;
          if (!load) throw new RpcError("UNAVAILABLE", "The evidence matrix is not configured");
          try {
            return await load();
          } catch (err) {
            log("error", "Cannot load the evidence matrix", { error: String(err) });
            throw new RpcError("EVIDENCE_UNAVAILABLE", "The evidence matrix cannot be loaded", {
              cause: err,
            });
          }
        },
        events: (input, ctx) =>
          this.#events.since(input.after, {
            waitMs: Math.min(input.waitMs, Math.max(0, ctx.deadline - Date.now() - 50)),
            limit: input.limit,
            signal: ctx.signal,
          }),
      }, opts);
    }
    return serveRpc(port, sandboxApi, {
      run: async (input, ctx) => {
        const rel = caller.spec.jobs[input.job];
        if (!rel || !Object.hasOwn(caller.spec.jobs, input.job)) {
          throw new RpcError(
            "JOB_NOT_ALLOWED",
            `Control "${caller.spec.name}" may not run job "${input.job}"`,
          );
        }
        const runner = this.#options.jobRunner;
        if (!runner) throw new RpcError("UNAVAILABLE", "The sandboxed job runner is not available");
        this.#emit(caller.spec.name, "job.started", { job: input.job });
        const result = await runner.run({
          module: `${this.#options.projectRoot}/${rel}`,
          input: input.input,
          args: input.args,
          limits: input.limits,
          ffi: caller.spec.jobLibraries[input.job] ?? [],
        }, { signal: ctx.signal });
        this.#emit(caller.spec.name, "job.finished", {
          job: input.job,
          status: result.status,
          durationMs: Math.round(result.durationMs),
        });
        return result;
      },
    }, opts);
  }

  #systemState(): "starting" | "ready" | "degraded" | "stopping" {
    if (this.#phase === "stopping" || this.#phase === "stopped") return "stopping";
    if (this.isReady) return "ready";
    return this.#wasReady ? "degraded" : "starting";
  }

  #post(c: Control, msg: ToWorker, transfer: Transferable[] = []): void {
    c.worker?.postMessage(msg, transfer);
  }

  #onWorkerMessage(c: Control, data: unknown): void {
    const parsed = FromWorkerSchema.safeParse(data);
    if (!parsed.success) {
      this.#crash(c, `protocol violation: ${describeZodError(parsed.error)}`);
      return;
    }
    const msg: FromWorker = parsed.data;
    switch (msg.t) {
      case "ready":
        if (c.state === "starting") {
          c.lastPong = Date.now(); // heartbeats count from readiness, not from spawn
          this.#setState(c, "ready", null);
          this.#checkReady();
        }
        break;
      case "pong":
        c.lastPong = Date.now();
        c.served = msg.served;
        c.custom = msg.metrics ?? [];
        break;
      case "event":
        this.#onControlEvent(c, msg.type, msg.data);
        break;
      case "fatal":
        this.#crash(c, msg.message);
        break;
      case "stopped":
        c.onStopped?.();
        break;
    }
  }

  #onControlEvent(c: Control, type: string, data: Record<string, unknown>): void {
    if (JSON.stringify(data).length > 16_384) {
      log("warn", "Dropped an oversized event", { control: c.spec.name, type });
      return;
    }
    this.#emit(c.spec.name, type, data);
    if (c.spec.name === "gateway" && type === "gateway.listening") {
      const addr: GatewayAddress = typeof data.path === "string"
        ? { transport: "unix", path: data.path }
        : { transport: "tcp", host: String(data.host), port: Number(data.port) };
      this.#gateway = addr;
      for (const wake of this.#gatewayWaiters) wake(addr);
      this.#gatewayWaiters.clear();
      void writeFileAtomic(
        `${this.#options.home}/run/gateway.json`,
        JSON.stringify({ ...addr, pid: Deno.pid, startedAt: this.#startedAt.toISOString() }),
      ).catch((err) => log("error", "Cannot write run/gateway.json", { error: String(err) }));
    }
  }

  /** Heartbeat: ping ready workers, restart those that stopped answering. */
  #tick(): void {
    const limit = this.#options.config.supervisor.heartbeatMs * MISSED_HEARTBEATS;
    const seq = ++this.#pingSeq;
    for (const c of this.#controls.values()) {
      if (!c.worker || c.state !== "ready") continue;
      if (Date.now() - c.lastPong > limit) {
        this.#crash(c, `missed ${MISSED_HEARTBEATS} heartbeats`);
        continue;
      }
      this.#post(c, { t: "ping", seq });
    }
  }

  /** Ends a worker and releases every port handed along its edges. */
  #teardown(c: Control): void {
    c.generation++;
    c.worker?.terminate();
    c.worker = null;
    for (const s of c.supervisorServers) s.close();
    c.supervisorServers = [];
    for (const t of c.timers) clearTimeout(t);
    c.timers.clear();
  }

  #crash(c: Control, reason: string): void {
    if (this.#phase === "stopping" || this.#phase === "stopped") return;
    const wasUp = c.state === "ready";
    this.#teardown(c);
    log("error", "Control crashed", { control: c.spec.name, reason });
    this.#emit(SUPERVISOR, "control.crashed", { control: c.spec.name, reason });
    const now = Date.now();
    const policy = c.spec.restart;
    c.restartTimes = c.restartTimes.filter((t) => now - t < policy.windowMs);
    const isLoop = c.restartTimes.length >= policy.maxRestarts;
    const downReason = isLoop
      ? `"${c.spec.name}" has failed (crash loop: ${reason})`
      : `"${c.spec.name}" is restarting after a crash (${reason})`;
    // Fail closed at once: callers' pending and new calls get UNAVAILABLE, not a hang.
    for (const api of c.spec.provides) {
      for (const caller of this.#callersOf(api)) this.#handToCaller(caller, api, null, downReason);
    }
    if (isLoop) {
      this.#setState(c, "failed", reason);
      log("error", "Control failed: crash loop", { control: c.spec.name, restarts: c.restarts });
      this.#emit(SUPERVISOR, "control.failed", {
        control: c.spec.name,
        reason,
        restartsInWindow: c.restartTimes.length,
      });
      return;
    }
    c.restartTimes.push(now);
    c.restarts++;
    const delay = Math.min(
      policy.backoffMs * 2 ** (c.restartTimes.length - 1),
      policy.maxBackoffMs,
    );
    this.#setState(c, "restarting", reason);
    this.#emit(SUPERVISOR, "control.restarting", { control: c.spec.name, delayMs: delay, wasUp });
    const timer = setTimeout(() => {
      c.timers.delete(timer);
      this.#spawn(c);
    }, delay);
    c.timers.add(timer);
  }

  #setState(c: Control, state: ControlState, lastError: string | null): void {
    const previous = c.state;
    c.state = state;
    c.lastError = lastError;
    c.since = new Date().toISOString();
    if (previous !== state) {
      this.#emit(SUPERVISOR, "control.state", { control: c.spec.name, state, previous });
    }
    if (state !== "ready") this.#checkReady();
  }

  #checkReady(): void {
    const isReady = this.isReady;
    if (isReady && !this.#wasReady) {
      this.#wasReady = true;
      this.#emit(SUPERVISOR, "system.ready", {
        readyMs: Math.round(Date.now() - this.#startedAt.getTime()),
      });
      for (const wake of this.#readyWaiters) wake();
      this.#readyWaiters.clear();
    }
  }

  /** Records an event in the ring; lifecycle events also go to the audit log. */
  #emit(source: string, type: string, data: Record<string, unknown>): void {
    this.#events.push(source, type, data);
    if (source !== SUPERVISOR || !this.#own.has(auditAppendApi.name)) return;
    if (this.#pendingAudit.length >= MAX_PENDING_AUDIT) this.#pendingAudit.shift();
    this.#pendingAudit.push({
      type: type,
      actor: SUPERVISOR,
      subject: typeof data.control === "string" ? data.control : "system",
      data,
    });
    void this.#flushAudit();
  }

  /** Sends queued lifecycle entries to the audit control, in order, while it is reachable. */
  async #flushAudit(): Promise<void> {
    if (this.#flushingAudit) return;
    this.#flushingAudit = true;
    try {
      while (this.#pendingAudit.length > 0 && this.#audit.isConnected) {
        const entry = this.#pendingAudit[0];
        if (!entry) break;
        try {
          await this.#audit.call("append", entry);
          this.#pendingAudit.shift();
        } catch (err) {
          if (err instanceof RpcError && err.code === "INVALID_REQUEST") {
            this.#pendingAudit.shift(); // cannot ever succeed; do not block the queue
            log("error", "Dropped an invalid audit entry", { error: err.message });
          } else break; // audit down: keep the entry for when it is back
        }
      }
    } finally {
      this.#flushingAudit = false;
    }
  }
}

/** Where the gateway listens. */
export type GatewayAddress =
  | { transport: "tcp"; host: string; port: number }
  | { transport: "unix"; path: string };
