/**
 * The worker side of the control model. A control's `mod.ts` calls {@link runControl} with a
 * setup function; the kit waits for the supervisor's `init`, builds an RPC client for every
 * contract the manifest granted, serves every contract the control provides, answers
 * heartbeats with its latency histograms, follows peer restarts and stops on request.
 * @module
 */
import "./harden.ts";
import { type ApiContract, type Handlers, RpcClient, type RpcServer, serveRpc } from "./rpc.ts";
import { Histogram, MetricsRegistry } from "./metrics.ts";
import { type FromWorker, type ToWorker, ToWorkerSchema } from "./protocol.ts";
import { RpcError } from "./errors.ts";
import { describeZodError } from "./validate.ts";

/** What a control gets from the kit at setup. */
export interface ControlContext {
  /** The control's name from the manifest. */
  name: string;
  /** Absolute state dir. */
  home: string;
  /** This control's section of the config (validated by the control). */
  config: unknown;
  /** Aborted when the supervisor asks the control to stop. */
  signal: AbortSignal;
  /**
   * Client for a granted contract. Throws {@link RpcError} NO_CAPABILITY when the manifest
   * gave this control no edge to it (the code crosses RPC boundaries intact).
   */
  client<C extends ApiContract>(contract: C): RpcClient<C>;
  /** Whether the manifest granted an edge to the contract. */
  has(contract: ApiContract): boolean;
  /** Sends an event to the supervisor (shown in the UI's event stream). */
  emit(type: string, data: Record<string, unknown>): void;
  /** The control's own metrics, reported with each heartbeat and shown on `/metrics`. */
  metrics: MetricsRegistry;
}

/** One contract a control serves, with its implementation. */
export interface Served<C extends ApiContract = ApiContract> {
  contract: C;
  handlers: Handlers<C>;
}

/** Binds handlers to a contract with full typing. */
export function serve<C extends ApiContract>(contract: C, handlers: Handlers<C>): Served {
  return { contract, handlers } as unknown as Served;
}

/** What setup returns. */
export interface ControlDefinition {
  /** Contracts served, by contract name. */
  serves: Served[];
  /** Called on graceful stop, before ports close. */
  stop?: () => Promise<void> | void;
}

/** Setup function of a control. */
export type ControlSetup = (ctx: ControlContext) => Promise<ControlDefinition> | ControlDefinition;

interface WorkerScope {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
}

/**
 * Runs a control inside its worker.
 * @example
 * ```ts
 * runControl(() => ({ serves: [serve(echoApi, { say: (s) => s })] }));
 * ```
 */
export function runControl(setup: ControlSetup): void {
  const scope = globalThis as unknown as WorkerScope;
  const send = (message: FromWorker) => scope.postMessage(message);
  const histograms = new Map<string, Histogram>();
  const metrics = new MetricsRegistry();
  const servers: RpcServer[] = [];
  const clients = new Map<string, RpcClient<ApiContract>>();
  const stopController = new AbortController();
  let definition: ControlDefinition | null = null;
  let control = "";
  const pendingServes: Extract<ToWorker, { t: "serve" }>["served"][] = [];
  /** Granted client ports not yet wrapped in a client (created on first use). */
  const ports = new Map<string, MessagePort | null>();

  function observe(key: string, seconds: number): void {
    let h = histograms.get(key);
    if (!h) histograms.set(key, h = new Histogram());
    h.observe(seconds);
  }

  function startServing(served: { api: string; caller: string; port: MessagePort }): void {
    // A contract the manifest says this control provides but its setup does not serve: an
    // empty contract answers every call UNKNOWN_METHOD at once instead of leaving callers to
    // wait out their deadline.
    const entry = definition?.serves.find((s) => s.contract.name === served.api) ??
      { contract: { name: served.api, methods: {} }, handlers: {} };
    servers.push(
      serveRpc(served.port, entry.contract, entry.handlers, {
        caller: served.caller,
        self: control,
        onServed: (method, seconds) => observe(`${served.api}.${method}`, seconds),
      }),
    );
  }

  async function init(msg: Extract<ToWorker, { t: "init" }>): Promise<void> {
    control = msg.control;
    for (const [api, port] of Object.entries(msg.clients)) ports.set(api, port);
    const ctx: ControlContext = {
      name: msg.control,
      home: msg.home,
      config: msg.config,
      signal: stopController.signal,
      client<C extends ApiContract>(contract: C): RpcClient<C> {
        const existing = clients.get(contract.name);
        if (existing) return existing as unknown as RpcClient<C>;
        if (!ports.has(contract.name)) {
          throw new RpcError(
            "NO_CAPABILITY",
            `Control "${msg.control}" has no capability for "${contract.name}" in the manifest`,
          );
        }
        const client = new RpcClient(contract, ports.get(contract.name) ?? null, {
          peer: contract.name,
        });
        clients.set(contract.name, client as unknown as RpcClient<ApiContract>);
        return client;
      },
      has: (contract) => ports.has(contract.name),
      emit: (type, data) => send({ t: "event", type, data }),
      metrics,
    };
    try {
      definition = await setup(ctx);
    } catch (err) {
      const code = err instanceof RpcError ? err.code : "SETUP_FAILED";
      const message = err instanceof Error ? err.message : String(err);
      send({ t: "fatal", code, message: `Control "${msg.control}" failed to start: ${message}` });
      return;
    }
    for (const served of [...msg.servers, ...pendingServes.splice(0)]) startServing(served);
    send({ t: "ready" });
  }

  async function stop(): Promise<void> {
    stopController.abort();
    try {
      await definition?.stop?.();
    } finally {
      for (const server of servers) server.close();
      for (const client of clients.values()) client.close();
      send({ t: "stopped" });
      scope.close();
    }
  }

  scope.onmessage = (event: MessageEvent) => {
    const parsed = ToWorkerSchema.safeParse(event.data);
    if (!parsed.success) {
      send({
        t: "fatal",
        code: "PROTOCOL_ERROR",
        message: `Malformed supervisor message: ${describeZodError(parsed.error)}`,
      });
      return;
    }
    const msg = parsed.data;
    switch (msg.t) {
      case "init":
        void init(msg);
        break;
      case "ping":
        {
          const custom = metrics.snapshot();
          send({
            t: "pong",
            seq: msg.seq,
            served: Object.fromEntries([...histograms].map(([k, h]) => [k, h.snapshot()])),
            ...(custom.length > 0 ? { metrics: custom } : {}),
          });
        }
        break;
      case "rewire": {
        // Only contracts granted at init can be rewired: the supervisor cannot widen a
        // worker's capabilities after start, and nothing else can send these messages.
        const client = clients.get(msg.api);
        if (client) client.setPort(msg.port, msg.reason);
        else if (ports.has(msg.api)) ports.set(msg.api, msg.port);
        else msg.port?.close();
        break;
      }
      case "serve":
        if (definition) startServing(msg.served);
        else pendingServes.push(msg.served);
        break;
      case "stop":
        void stop();
        break;
    }
  };
}
