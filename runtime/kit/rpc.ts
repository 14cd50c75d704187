/**
 * Typed request/response over a MessagePort. Both ends validate every message with the
 * zod contract from `workers/<control>/api.ts`: a caller cannot send a request its contract
 * does not describe, and a server cannot return data its contract does not allow.
 * Requests carry an id and an absolute deadline; callers may cancel; errors travel as
 * `{code, message}` and are rethrown as {@link RpcError} on the caller's side.
 * @module
 */
import { z } from "zod";
import { ERROR_CODE_PATTERN, RpcError, toWireError } from "./errors.ts";
import { describeZodError } from "./validate.ts";

/** One method of a contract: schemas for its input and its output. */
export interface MethodSpec {
  input: z.ZodTypeAny;
  output: z.ZodTypeAny;
}

/** A named set of methods: the capability a port grants. */
export interface ApiContract<M extends Record<string, MethodSpec> = Record<string, MethodSpec>> {
  name: string;
  methods: M;
}

/**
 * Declares a contract.
 * @example
 * ```ts
 * const echoApi = defineApi("echo", { say: { input: z.string(), output: z.string() } });
 * ```
 */
export function defineApi<M extends Record<string, MethodSpec>>(
  name: string,
  methods: M,
): ApiContract<M> {
  return { name, methods };
}

/** Method names of a contract. */
export type MethodName<C extends ApiContract> = keyof C["methods"] & string;
/** What a caller passes to a method. */
export type CallInput<C extends ApiContract, K extends MethodName<C>> = z.input<
  C["methods"][K]["input"]
>;
/** What a caller gets back from a method. */
export type CallOutput<C extends ApiContract, K extends MethodName<C>> = z.output<
  C["methods"][K]["output"]
>;

/** Default time a call may take when the caller names none. */
export const DEFAULT_DEADLINE_MS = 5_000;
/** Most calls one server port runs at once; more are refused with OVERLOADED. */
export const MAX_IN_FLIGHT = 256;

/** A request on the wire. */
interface WireRequest {
  t: "req";
  id: number;
  method: string;
  params: unknown;
  deadline: number;
}
/** A response on the wire. */
type WireResponse =
  | { t: "res"; id: number; ok: true; result: unknown }
  | { t: "res"; id: number; ok: false; error: { code: string; message: string } };

// Envelopes are read by hand, not by zod: they sit on the hot path of every call (zod would
// double the round trip). The readers are as strict as a strictObject: exact key sets,
// exact types, bounded strings.
function hasExactKeys(value: object, keys: readonly string[]): boolean {
  const own = Object.keys(value);
  return own.length === keys.length && keys.every((k) => Object.hasOwn(value, k));
}
function isId(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}
const REQUEST_KEYS = ["t", "id", "method", "params", "deadline"] as const;
const CANCEL_KEYS = ["t", "id"] as const;
const OK_KEYS = ["t", "id", "ok", "result"] as const;
const ERR_KEYS = ["t", "id", "ok", "error"] as const;
const ERROR_KEYS = ["code", "message"] as const;

/** Reads a request envelope; returns a reason string when it is malformed. */
function readRequest(data: unknown): WireRequest | string {
  if (typeof data !== "object" || data === null) return "not an object";
  const m = data as Record<string, unknown>;
  if (m.t !== "req" || !hasExactKeys(m, REQUEST_KEYS)) return "unexpected fields";
  if (!isId(m.id)) return "bad id";
  if (typeof m.method !== "string" || m.method.length < 1 || m.method.length > 64) {
    return "bad method";
  }
  if (typeof m.deadline !== "number" || !Number.isFinite(m.deadline)) return "bad deadline";
  return m as unknown as WireRequest;
}

/** Reads a cancel envelope. */
function readCancel(data: unknown): number | null {
  if (typeof data !== "object" || data === null) return null;
  const m = data as Record<string, unknown>;
  return m.t === "cancel" && hasExactKeys(m, CANCEL_KEYS) && isId(m.id) ? m.id : null;
}

/** Reads a response envelope; null when malformed. */
function readResponse(data: unknown): WireResponse | null {
  if (typeof data !== "object" || data === null) return null;
  const m = data as Record<string, unknown>;
  if (m.t !== "res" || !isId(m.id)) return null;
  if (m.ok === true) return hasExactKeys(m, OK_KEYS) ? (m as unknown as WireResponse) : null;
  if (m.ok !== false || !hasExactKeys(m, ERR_KEYS)) return null;
  const e = m.error;
  if (typeof e !== "object" || e === null || !hasExactKeys(e, ERROR_KEYS)) return null;
  const { code, message } = e as Record<string, unknown>;
  if (typeof code !== "string" || !ERROR_CODE_PATTERN.test(code)) return null;
  if (typeof message !== "string" || message.length > 4000) return null;
  return m as unknown as WireResponse;
}

/** Options of a single call. */
export interface CallOptions {
  /** Milliseconds the call may take, from now. */
  deadlineMs?: number;
  /** Aborting it cancels the call on both sides. */
  signal?: AbortSignal;
}

/** Options of an {@link RpcClient}. */
export interface RpcClientOptions {
  /** Deadline for calls that name none. */
  defaultDeadlineMs?: number;
  /** Who is being called, for error messages (e.g. `"policy"`). */
  peer?: string;
  /** Observes each finished call (seconds, success) for metrics. */
  onLatency?: (method: string, seconds: number, isOk: boolean) => void;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: RpcError) => void;
  method: string;
  started: number;
  /** performance.now() at which the call times out. */
  deadline: number;
  deadlineMs: number;
  cleanup: (() => void) | null;
}

/**
 * The calling side of a port. The port can be swapped when the peer restarts
 * ({@link RpcClient.setPort}); while there is none every call fails closed at once with
 * UNAVAILABLE.
 */
export class RpcClient<C extends ApiContract> {
  readonly #contract: C;
  readonly #options: RpcClientOptions;
  #port: MessagePort | null = null;
  #downReason = "not connected";
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  /** One timer for all deadlines (a timer per call would double the cost of a round trip). */
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  /**
   * @param contract the contract the port serves
   * @param port the client end of the channel, or null when the peer is not available yet
   * @param options deadline default, peer name, latency observer
   */
  constructor(contract: C, port: MessagePort | null, options: RpcClientOptions = {}) {
    this.#contract = contract;
    this.#options = options;
    this.setPort(port);
  }

  /** Whether a port to the peer is currently held. */
  get isConnected(): boolean {
    return this.#port !== null;
  }

  /**
   * Replaces the port (peer restarted) or drops it (`null`: peer down). Calls still waiting
   * on the old port fail with UNAVAILABLE: the process that would have answered is gone.
   */
  setPort(port: MessagePort | null, reason = "peer is not available"): void {
    if (this.#port) {
      this.#port.onmessage = null;
      this.#port.close();
    }
    this.#failAll("UNAVAILABLE", `${this.#label()} ${reason}`);
    this.#port = port;
    this.#downReason = reason;
    if (port) port.onmessage = (event) => this.#onMessage(event.data);
  }

  /** Closes the port and fails every pending call. */
  close(): void {
    this.setPort(null, "client closed");
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  /**
   * Calls a method. Rejects with {@link RpcError}: the server's code, or DEADLINE_EXCEEDED,
   * CANCELLED, UNAVAILABLE, INVALID_REQUEST (input does not match the contract) or
   * INVALID_RESPONSE (the peer answered outside its contract).
   */
  call<K extends MethodName<C>>(
    method: K,
    input: CallInput<C, K>,
    options: CallOptions = {},
  ): Promise<CallOutput<C, K>> {
    const spec = this.#contract.methods[method];
    if (!spec) {
      return Promise.reject(
        new RpcError("UNKNOWN_METHOD", `${this.#label()} has no method "${method}"`),
      );
    }
    const parsed = spec.input.safeParse(input);
    if (!parsed.success) {
      return Promise.reject(
        new RpcError(
          "INVALID_REQUEST",
          `Invalid input to ${this.#label()}.${method}: ${describeZodError(parsed.error)}`,
        ),
      );
    }
    const port = this.#port;
    if (!port) {
      return Promise.reject(
        new RpcError("UNAVAILABLE", `${this.#label()} ${this.#downReason}`),
      );
    }
    if (options.signal?.aborted) {
      return Promise.reject(new RpcError("CANCELLED", `Call to ${this.#label()} was cancelled`));
    }
    const deadlineMs = options.deadlineMs ?? this.#options.defaultDeadlineMs ??
      DEFAULT_DEADLINE_MS;
    const id = this.#nextId++;
    return new Promise<CallOutput<C, K>>((resolve, reject) => {
      const started = performance.now();
      const signal = options.signal;
      let cleanup: (() => void) | null = null;
      if (signal) {
        const onAbort = () => {
          this.#settle(id, "CANCELLED", `Call to ${this.#label()}.${method} was cancelled`);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        cleanup = () => signal.removeEventListener("abort", onAbort);
      }
      this.#pending.set(id, {
        resolve: (value) => {
          const out = spec.output.safeParse(value);
          if (out.success) resolve(out.data);
          else {
            reject(
              new RpcError(
                "INVALID_RESPONSE",
                `${this.#label()}.${method} answered outside its contract: ${
                  describeZodError(out.error)
                }`,
              ),
            );
          }
        },
        reject,
        method,
        started,
        deadline: started + deadlineMs,
        deadlineMs,
        cleanup,
      });
      this.#armTimer(started + deadlineMs);
      port.postMessage({
        t: "req",
        id,
        method,
        params: parsed.data,
        deadline: Date.now() + deadlineMs,
      });
    });
  }

  /** Makes sure the shared timer fires no later than `at`. */
  #armTimer(at: number): void {
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - performance.now()));
  }

  /** Fails every call past its deadline, then re-arms for the next one. */
  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [id, p] of [...this.#pending]) {
      if (p.deadline <= now + 1) {
        this.#settle(
          id,
          "DEADLINE_EXCEEDED",
          `${this.#label()}.${p.method} timed out after ${p.deadlineMs} ms`,
        );
      } else next = Math.min(next, p.deadline);
    }
    if (next !== Infinity) this.#armTimer(next);
  }

  #label(): string {
    return this.#options.peer ?? this.#contract.name;
  }

  /** Rejects one pending call locally and tells the server to stop working on it. */
  #settle(id: number, code: string, message: string): void {
    const pending = this.#take(id, false);
    if (!pending) return;
    this.#port?.postMessage({ t: "cancel", id });
    pending.reject(new RpcError(code, message));
  }

  #take(id: number, isOk: boolean): Pending | undefined {
    const pending = this.#pending.get(id);
    if (!pending) return undefined;
    this.#pending.delete(id);
    pending.cleanup?.();
    this.#options.onLatency?.(pending.method, (performance.now() - pending.started) / 1000, isOk);
    return pending;
  }

  #failAll(code: string, message: string): void {
    for (const id of [...this.#pending.keys()]) {
      this.#take(id, false)?.reject(new RpcError(code, message));
    }
  }

  #onMessage(data: unknown): void {
    const msg = readResponse(data);
    // A peer that breaks the protocol is not trusted with anything still pending.
    if (!msg) {
      this.#failAll("PROTOCOL_ERROR", `${this.#label()} sent a malformed message`);
      return;
    }
    const pending = this.#take(msg.id, msg.ok);
    if (!pending) return; // late answer to a call that already timed out or was cancelled
    if (msg.ok) pending.resolve(msg.result);
    else pending.reject(new RpcError(msg.error.code, msg.error.message));
  }
}

/** What a handler learns about the call it serves. */
export interface CallContext {
  /** Aborted when the caller cancels or the deadline passes. */
  signal: AbortSignal;
  /** Absolute deadline, epoch milliseconds. */
  deadline: number;
  /** Name of the control on the other end of the port. */
  caller: string;
}

/** Implementation of every method of a contract. */
export type Handlers<C extends ApiContract> = {
  [K in MethodName<C>]: (
    input: z.output<C["methods"][K]["input"]>,
    ctx: CallContext,
  ) => Promise<z.input<C["methods"][K]["output"]>> | z.input<C["methods"][K]["output"]>;
};

/** Options of {@link serveRpc}. */
export interface ServeRpcOptions {
  /** Name of the control that holds the other end (passed to handlers). */
  caller: string;
  /** Name of this control, for error messages. */
  self: string;
  /** Observes each served call (seconds, success) for metrics. */
  onServed?: (method: string, seconds: number, isOk: boolean) => void;
}

/** A running server on one port. */
export interface RpcServer {
  /** Stops serving: in-flight calls are aborted, the port is closed. */
  close(): void;
}

/**
 * One call being served. Its AbortSignal and deadline timer are created only when the handler
 * asks for the signal: most handlers never do, and a timer per call is measurable.
 */
class InFlight {
  #controller: AbortController | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #isAborted = false;
  readonly #expiresAt: number;

  constructor(remainingMs: number) {
    this.#expiresAt = performance.now() + remainingMs;
  }

  get isAborted(): boolean {
    return this.#isAborted || performance.now() >= this.#expiresAt;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      const controller = this.#controller = new AbortController();
      if (this.#isAborted) controller.abort();
      else {
        this.#timer = setTimeout(
          () => this.abort(),
          Math.max(0, this.#expiresAt - performance.now()),
        );
      }
    }
    return this.#controller.signal;
  }

  abort(): void {
    this.#isAborted = true;
    clearTimeout(this.#timer);
    this.#controller?.abort();
  }

  done(): void {
    clearTimeout(this.#timer);
  }
}

/**
 * Serves a contract on a port. Invalid envelopes, unknown methods and inputs outside the
 * contract are answered with an error and never reach a handler.
 */
export function serveRpc<C extends ApiContract>(
  port: MessagePort,
  contract: C,
  handlers: Handlers<C>,
  options: ServeRpcOptions,
): RpcServer {
  const inFlight = new Map<number, InFlight>();
  const where = `${options.self}.${contract.name}`;
  const reply = (
    id: number,
    body: { ok: true; result: unknown } | { ok: false; error: unknown },
  ) => {
    port.postMessage({ t: "res", id, ...body });
  };
  const fail = (id: number, code: string, message: string) => {
    reply(id, { ok: false, error: { code, message } });
  };

  async function handle(req: WireRequest): Promise<void> {
    const started = performance.now();
    let isOk = false;
    const spec = Object.hasOwn(contract.methods, req.method)
      ? contract.methods[req.method]
      : undefined;
    const handler = spec ? handlers[req.method as MethodName<C>] : undefined;
    if (!spec || !handler) {
      fail(req.id, "UNKNOWN_METHOD", `${where} has no method "${req.method}"`);
      return;
    }
    const input = spec.input.safeParse(req.params);
    if (!input.success) {
      fail(
        req.id,
        "INVALID_REQUEST",
        `Invalid input to ${where}.${req.method}: ${describeZodError(input.error)}`,
      );
      return;
    }
    const remaining = req.deadline - Date.now();
    if (remaining <= 0) {
      fail(req.id, "DEADLINE_EXCEEDED", `${where}.${req.method} arrived after its deadline`);
      return;
    }
    if (inFlight.size >= MAX_IN_FLIGHT) {
      fail(req.id, "OVERLOADED", `${where} has too many calls in flight`);
      return;
    }
    const call = new InFlight(remaining);
    inFlight.set(req.id, call);
    try {
      const result = await handler(input.data, {
        get signal() {
          return call.signal;
        },
        deadline: req.deadline,
        caller: options.caller,
      });
      if (call.isAborted) return; // the caller already gave up
      const out = spec.output.safeParse(result);
      if (!out.success) {
        fail(req.id, "INTERNAL", `${where}.${req.method} produced an invalid result`);
        return;
      }
      isOk = true;
      reply(req.id, { ok: true, result: out.data });
    } catch (err) {
      if (!call.isAborted) {
        const wire = toWireError(err, `${where}.${req.method}`);
        reply(req.id, { ok: false, error: wire });
      }
    } finally {
      call.done();
      inFlight.delete(req.id);
      options.onServed?.(req.method, (performance.now() - started) / 1000, isOk);
    }
  }

  port.onmessage = (event) => {
    const data = event.data;
    const cancel = readCancel(data);
    if (cancel !== null) {
      inFlight.get(cancel)?.abort();
      return;
    }
    const req = readRequest(data);
    if (typeof req === "string") {
      const id = (data as { id?: unknown } | null)?.id;
      if (isId(id)) fail(id, "PROTOCOL_ERROR", `Malformed request to ${where}: ${req}`);
      return;
    }
    void handle(req);
  };
  return {
    close() {
      for (const call of inFlight.values()) call.abort();
      inFlight.clear();
      port.onmessage = null;
      port.close();
    },
  };
}
