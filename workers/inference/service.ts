/**
 * The inference control's logic: who may ask (client tokens), which model answers (registry
 * ids or names, or the external backend), admission and turns (bounded queue, 429 beyond
 * it), loading (the path only from `registry-resolve`, which re-hashes first; the memory
 * budget; one engine), relaying the engine's stream to the gateway, cancellation when the
 * client goes away, idle unload, metrics and the audit record.
 *
 * Integrity (spec 14 §4 weakness 3, done better): the model is re-hashed by the registry at
 * load, not at every request; every request checks that the loaded model is still an active
 * registry entry (a revoked or tampered model is unloaded at once), and the registry's own
 * periodic re-verification revokes a file that changes.
 * @module
 */
import type { TokenOwner, TokenVerifier } from "../../runtime/kit/api_tokens.ts";
import type {
  engineApi,
  GenerateOptions,
  ModelInfo,
  Prompt,
  StreamEvent,
} from "../../runtime/kit/engine_api.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import type { MetricsRegistry } from "../../runtime/kit/metrics.ts";
import type { RpcClient } from "../../runtime/kit/rpc.ts";
import type { auditAppendApi } from "../audit/api.ts";
import type { policyApi } from "../policy/api.ts";
import type { registryResolveApi } from "../registry/api.ts";
import type { ApiModel, InferenceConfig, InferenceStatus } from "./api.ts";
import { InferenceError } from "./errors.ts";
import { externalEndpoint, streamExternal } from "./external.ts";
import { Mutex, TurnQueue } from "./queue.ts";

const MODEL_ID = /^m[0-9a-f]{24}$/;
/** Long-poll wait on the engine per call. */
const ENGINE_POLL_WAIT_MS = 10_000;
const ENGINE_POLL_MARGIN_MS = 5_000;
/** Time a model load may take (spec 14 §1: ready within 120 s). */
const LOAD_DEADLINE_MS = 120_000;
/** Time the registry may take to re-hash, on top of this per byte rate. */
const RESOLVE_BASE_MS = 30_000;
const RESOLVE_BYTES_PER_MS = 100_000;
const AUDIT_DEADLINE_MS = 5_000;
const POLICY_DEADLINE_MS = 5_000;
/** Text a request may hold before its client polls it (characters). */
const MAX_BUFFERED_CHARS = 8 << 20;
/** A finished request is kept this long for its last poll. */
const FINISHED_KEEP_MS = 30_000;
const SWEEP_MS = 1_000;
const MIB = 1024 * 1024;

/** What the service needs from its control. */
export interface InferenceOptions {
  config: InferenceConfig;
  engine: () => RpcClient<typeof engineApi>;
  registry: () => RpcClient<typeof registryResolveApi>;
  policy: () => RpcClient<typeof policyApi>;
  audit: () => RpcClient<typeof auditAppendApi>;
  tokens: TokenVerifier;
  metrics: MetricsRegistry;
  emit(type: string, data: Record<string, unknown>): void;
  /** Memory available now, MiB (null when unknown). */
  availableMemoryMb(): number | null;
  /** The external backend's API key, when configured. */
  externalApiKey: string | null;
}

/** The model a request names, resolved. */
type Target =
  | { kind: "local"; id: string; name: string }
  | { kind: "external"; name: string };

interface Loaded {
  modelId: string;
  sha256: string;
  engineId: string;
  info: ModelInfo;
  loadedAt: string;
  lastUsedAt: number;
}

interface Request {
  id: string;
  owner: TokenOwner;
  target: Target;
  prompt: Prompt;
  options: GenerateOptions;
  client: { address: string; userAgent: string };
  events: StreamEvent[];
  nextSeq: number;
  bufferedChars: number;
  isDone: boolean;
  waiters: Set<() => void>;
  /** Aborted to stop the request: client gone, timed out, or the control stops. */
  controller: AbortController;
  abortReason: "cancelled" | "abandoned" | "timeout" | "stopping" | null;
  admittedAt: number;
  lastPolledAt: number;
  firstTextAt: number;
  dropTimer: ReturnType<typeof setTimeout> | undefined;
}

/** The inference service of one control instance. */
export class InferenceService {
  readonly #o: InferenceOptions;
  readonly #turns: TurnQueue;
  /** The one local engine: loads and generations take it in turn. */
  readonly #engineLock = new Mutex();
  readonly #requests = new Map<string, Request>();
  #loaded: Loaded | null = null;
  #engineProblem: string | null = null;
  /** GPU device nodes the engine host saw at the last load (none is used: CPU only). */
  #gpuDevices: string[] = [];
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #sweeper: ReturnType<typeof setInterval>;
  #isStopping = false;
  readonly #m: ReturnType<typeof createMetrics>;

  /** @param options config, clients, token verifier, metrics and event sink */
  constructor(options: InferenceOptions) {
    this.#o = options;
    this.#turns = new TurnQueue(options.config.maxConcurrent, options.config.maxQueue);
    this.#m = createMetrics(options.metrics);
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
  }

  /**
   * Checks a client's bearer token.
   * @throws {InferenceError} UNAUTHENTICATED
   */
  async authenticate(token: string): Promise<TokenOwner> {
    const owner = await this.#o.tokens.verify(token);
    if (owner === null) {
      this.#m.refused.inc();
      throw new InferenceError(
        "UNAUTHENTICATED",
        'Invalid API token: create one with `secai tokens create NAME` and send it as "Authorization: Bearer <token>"',
      );
    }
    return owner;
  }

  /** The models a client may use. */
  async models(): Promise<ApiModel[]> {
    const { models } = await this.#o.registry().call("list", {});
    const local: ApiModel[] = models.filter((m) => m.format === "gguf").map((m) => ({
      id: m.id,
      name: m.name,
      ownedBy: "local",
      created: Math.floor((Date.parse(m.promotedAt) || 0) / 1000),
      isLoaded: this.#loaded?.modelId === m.id,
    }));
    const external: ApiModel[] = (this.#o.config.external?.models ?? []).map((name) => ({
      id: name,
      name,
      ownedBy: "external",
      created: 0,
      isLoaded: false,
    }));
    return [...local, ...external];
  }

  /**
   * Admits a generation; the turn, the load and the generation follow in its stream.
   * @throws {InferenceError} INFERENCE_DISABLED, INVALID_REQUEST, MAX_TOKENS_EXCEEDED,
   * MODEL_NOT_FOUND, QUEUE_FULL
   */
  async start(input: {
    owner: TokenOwner;
    model: string | null;
    prompt: Prompt;
    options: Omit<GenerateOptions, "maxTokens"> & { maxTokens?: number | undefined };
    client: { address: string; userAgent: string };
  }): Promise<{ streamId: string; model: string; created: number }> {
    const config = this.#o.config;
    if (!config.enabled || this.#isStopping) {
      throw new InferenceError("INFERENCE_DISABLED", "Inference is turned off (inference.enabled)");
    }
    const maxTokens = input.options.maxTokens ?? config.defaultMaxTokens;
    if (maxTokens > config.maxTokensLimit) {
      throw new InferenceError(
        "MAX_TOKENS_EXCEEDED",
        `max_tokens ${maxTokens} is above the limit of ${config.maxTokensLimit} (inference.maxTokensLimit)`,
      );
    }
    if (input.prompt.kind === "chat" && input.prompt.messages.every((m) => m.role !== "user")) {
      throw new InferenceError("INVALID_REQUEST", "The conversation has no user message");
    }
    const target = await this.#target(input.model);
    if (!this.#turns.canAdmit) {
      this.#m.refused.inc();
      throw new InferenceError(
        "QUEUE_FULL",
        `Too many requests: ${this.#turns.running} running and ${this.#turns.queued} waiting (inference.maxQueue); retry later`,
      );
    }
    const now = Date.now();
    const request: Request = {
      id: `r${randomHex(8)}`,
      owner: input.owner,
      target,
      prompt: input.prompt,
      options: { ...input.options, maxTokens },
      client: input.client,
      events: [],
      nextSeq: 0,
      bufferedChars: 0,
      isDone: false,
      waiters: new Set(),
      controller: new AbortController(),
      abortReason: null,
      admittedAt: performance.now(),
      lastPolledAt: now,
      firstTextAt: 0,
      dropTimer: undefined,
    };
    this.#requests.set(request.id, request);
    void this.#run(request);
    return {
      streamId: request.id,
      model: target.kind === "local" ? target.id : target.name,
      created: Math.floor(now / 1000),
    };
  }

  /**
   * Events of a request after `after`, waiting up to `waitMs` for the first.
   * @throws {InferenceError} STREAM_NOT_FOUND (also for another client's stream)
   */
  async poll(
    owner: TokenOwner,
    input: { streamId: string; after: number; waitMs: number },
    signal: AbortSignal,
  ): Promise<{ events: StreamEvent[]; isDone: boolean }> {
    const request = this.#own(owner, input.streamId);
    request.lastPolledAt = Date.now();
    while ((request.events[0]?.seq ?? Infinity) <= input.after) {
      const dropped = request.events.shift();
      if (dropped?.kind === "text") request.bufferedChars -= dropped.text.length;
    }
    if (request.events.length === 0 && !request.isDone && input.waitMs > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          request.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, input.waitMs);
        signal.addEventListener("abort", done, { once: true });
        request.waiters.add(done);
      });
      request.lastPolledAt = Date.now();
    }
    const pending = request.events.filter((e) => e.seq > input.after);
    const events = pending.slice(0, 1024);
    return { events, isDone: request.isDone && events.length === pending.length };
  }

  /** Cancels a request (the client went away). */
  cancel(owner: TokenOwner, streamId: string): boolean {
    const request = this.#own(owner, streamId);
    if (request.isDone) return false;
    this.#abort(request, "cancelled");
    return true;
  }

  /** State for the dashboard. */
  async status(): Promise<InferenceStatus> {
    const activeTokens = await this.#o.tokens.activeCount();
    const loaded = this.#loaded;
    return {
      enabled: this.#o.config.enabled,
      loaded: loaded === null ? null : {
        modelId: loaded.modelId,
        sha256: loaded.sha256,
        loadedAt: loaded.loadedAt,
        lastUsedAt: new Date(loaded.lastUsedAt).toISOString(),
        info: loaded.info,
      },
      running: this.#turns.running,
      queued: this.#turns.queued,
      engineProblem: this.#engineProblem,
      gpu: { devices: this.#gpuDevices.slice(0, 8), used: false },
      external: this.#o.config.external === null
        ? null
        : { baseUrl: this.#o.config.external.baseUrl, models: this.#o.config.external.models },
      tokens: { active: activeTokens, fileError: this.#o.tokens.error },
    };
  }

  /** Unloads the local model (waits for a running generation to end). */
  unload(reason = "unloaded on request"): Promise<boolean> {
    return this.#engineLock.run(() => this.#unloadNow(reason));
  }

  /** Stops every request and unloads the model. */
  async stop(): Promise<void> {
    this.#isStopping = true;
    clearInterval(this.#sweeper);
    clearTimeout(this.#idleTimer);
    for (const request of this.#requests.values()) this.#abort(request, "stopping");
    await this.#engineLock.run(() => this.#unloadNow("the control stops"));
    for (const request of this.#requests.values()) clearTimeout(request.dropTimer);
    this.#requests.clear();
  }

  // -------------------------------------------------------------------------------------

  async #target(model: string | null): Promise<Target> {
    const name = model ?? this.#o.config.defaultModel;
    if (name === null) {
      throw new InferenceError(
        "INVALID_REQUEST",
        "The request names no model and inference.defaultModel is not set",
      );
    }
    if (this.#o.config.external?.models.includes(name)) return { kind: "external", name };
    const { models } = await this.#o.registry().call("list", {});
    const hit = MODEL_ID.test(name)
      ? models.find((m) => m.id === name)
      : models.find((m) => m.name === name);
    if (hit === undefined) {
      throw new InferenceError(
        "MODEL_NOT_FOUND",
        `No promoted model "${name.slice(0, 200)}" (GET /v1/models lists them)`,
      );
    }
    if (hit.format !== "gguf") {
      throw new InferenceError(
        "MODEL_FORMAT_UNSUPPORTED",
        `Model "${hit.name}" is ${hit.format}; local inference runs GGUF models only`,
      );
    }
    return { kind: "local", id: hit.id, name: hit.name };
  }

  #own(owner: TokenOwner, streamId: string): Request {
    const request = this.#requests.get(streamId);
    if (request === undefined || request.owner.id !== owner.id) {
      throw new InferenceError("STREAM_NOT_FOUND", `No stream "${streamId}"`);
    }
    return request;
  }

  /** Takes a turn, runs the generation, and always ends the stream. */
  async #run(request: Request): Promise<void> {
    const config = this.#o.config;
    this.#m.queue.set(this.#turns.queued + 1);
    const refusal = await this.#turns.acquire({
      timeoutMs: config.queueTimeoutMs,
      signal: request.controller.signal,
    });
    this.#m.queue.set(this.#turns.queued);
    if (refusal !== null) {
      this.#finishWithError(
        request,
        refusal === "QUEUE_TIMEOUT"
          ? new InferenceError(
            "QUEUE_TIMEOUT",
            `No turn within ${config.queueTimeoutMs} ms (inference.queueTimeoutMs); retry later`,
          )
          : refusal === "QUEUE_FULL"
          ? new InferenceError("QUEUE_FULL", "Too many requests; retry later")
          : new InferenceError("REQUEST_TIMEOUT", "The request was cancelled before its turn"),
      );
      return;
    }
    this.#m.running.set(this.#turns.running);
    const timeout = setTimeout(() => this.#abort(request, "timeout"), config.requestTimeoutMs);
    try {
      if (request.target.kind === "local") {
        const target = request.target;
        await this.#engineLock.run(() => this.#runLocal(request, target.id));
      } else {
        await this.#runExternal(request, request.target.name);
      }
    } catch (error) {
      this.#finishWithError(request, error);
    } finally {
      clearTimeout(timeout);
      this.#turns.release();
      this.#m.running.set(this.#turns.running);
      this.#m.queue.set(this.#turns.queued);
      this.#scheduleIdleUnload();
    }
  }

  async #runLocal(request: Request, modelId: string): Promise<void> {
    if (request.controller.signal.aborted) throw this.#abortError(request);
    const loaded = await this.#ensureLoaded(modelId, request);
    const engine = this.#o.engine();
    const { streamId } = await engine.call("generate", {
      engineId: loaded.engineId,
      prompt: request.prompt,
      options: request.options,
    });
    // The engine is drained to its end even when the request is aborted: cancel, then read
    // on until `done`, so the next generation never finds it busy.
    const onAbort = () => void engine.call("cancel", { streamId }).catch(() => undefined);
    request.controller.signal.addEventListener("abort", onAbort, { once: true });
    try {
      let after = -1;
      for (;;) {
        const page = await engine.call("poll", {
          streamId,
          after,
          waitMs: ENGINE_POLL_WAIT_MS,
        }, { deadlineMs: ENGINE_POLL_WAIT_MS + ENGINE_POLL_MARGIN_MS });
        for (const event of page.events) {
          after = event.seq;
          this.#relay(request, event);
        }
        if (page.isDone) break;
      }
    } catch (error) {
      if (
        error instanceof RpcError && ["ENGINE_NOT_FOUND", "ENGINE_CRASHED"].includes(error.code)
      ) {
        this.#forget(`the engine ended: ${error.message}`);
      }
      throw error;
    } finally {
      request.controller.signal.removeEventListener("abort", onAbort);
      loaded.lastUsedAt = Date.now();
    }
  }

  async #runExternal(request: Request, name: string): Promise<void> {
    const external = this.#o.config.external;
    if (external === null) throw new InferenceError("MODEL_NOT_FOUND", `No model "${name}"`);
    const url = externalEndpoint(external.baseUrl, request.prompt);
    const decision = await this.#o.policy().call("decide", {
      domain: "egress",
      input: { url, method: "POST" },
    }, { deadlineMs: POLICY_DEADLINE_MS }).catch((error: unknown) => {
      throw new InferenceError(
        "EGRESS_DENIED",
        `The policy control cannot decide, so the external backend is not used (${
          error instanceof RpcError ? error.code : "error"
        })`,
      );
    });
    if (decision.decision !== "allow") {
      throw new InferenceError(
        "EGRESS_DENIED",
        `The policy denies the external backend (${decision.rule}): ${
          decision.reasons.join("; ").slice(0, 300)
        }`,
      );
    }
    for await (
      const event of streamExternal({
        url,
        apiKey: this.#o.externalApiKey,
        model: name,
        prompt: request.prompt,
        options: request.options,
        signal: request.controller.signal,
        timeoutMs: external.timeoutMs,
      })
    ) {
      this.#relay(request, { ...event, seq: 0 } as StreamEvent);
    }
  }

  /** Loads `modelId` unless it is the model loaded (called under the engine lock). */
  async #ensureLoaded(modelId: string, request: Request): Promise<Loaded> {
    const current = this.#loaded;
    const { models } = await this.#o.registry().call("list", {});
    if (current !== null) {
      // Still an active registry entry? A revoked (e.g. tampered) model goes at once.
      if (!models.some((m) => m.id === current.modelId)) {
        await this.#unloadNow("the model is no longer an active registry entry");
        if (current.modelId === modelId) {
          await this.#blocked(request, modelId, "the model was revoked in the registry");
        }
      } else if (current.modelId === modelId) {
        return current;
      } else {
        await this.#unloadNow(`model ${modelId} was asked for`);
      }
    }
    const config = this.#o.config;
    let resolved;
    try {
      const size = models.find((m) => m.id === modelId)?.size ?? 0;
      resolved = await this.#o.registry().call("resolve", { id: modelId }, {
        deadlineMs: RESOLVE_BASE_MS + Math.ceil(size / RESOLVE_BYTES_PER_MS),
      });
    } catch (error) {
      if (
        error instanceof RpcError && ["INTEGRITY_MISMATCH", "MODEL_REVOKED"].includes(error.code)
      ) {
        await this.#blocked(request, modelId, error.message);
      }
      if (error instanceof RpcError && error.code === "MODEL_NOT_FOUND") {
        throw new InferenceError("MODEL_NOT_FOUND", `No promoted model "${modelId}"`);
      }
      throw error;
    }
    if (resolved.format !== "gguf") {
      throw new InferenceError("MODEL_FORMAT_UNSUPPORTED", "Local inference runs GGUF models only");
    }
    const available = this.#o.availableMemoryMb();
    const budget = config.memoryBudgetMb ?? Math.max(64, (available ?? 2048) - 1024);
    const threads = config.threads ?? Math.max(1, (navigator.hardwareConcurrency || 2) - 1);
    const started = performance.now();
    let answer;
    try {
      answer = await this.#o.engine().call("load", {
        model: { path: resolved.path, sha256: resolved.sha256, size: resolved.size },
        options: {
          contextSize: config.contextSize,
          threads,
          batchSize: config.batchSize,
          memoryBudgetMb: budget,
        },
        heapMb: config.engineHeapMb,
      }, { deadlineMs: LOAD_DEADLINE_MS, signal: request.controller.signal });
    } catch (error) {
      if (error instanceof RpcError && error.code === "ENGINE_UNAVAILABLE") {
        this.#engineProblem = error.message.slice(0, 1000);
      }
      this.#o.emit("inference.load_failed", {
        modelId,
        code: error instanceof RpcError ? error.code : "INTERNAL",
      });
      throw error;
    }
    this.#engineProblem = null;
    this.#gpuDevices = answer.gpuDevices;
    this.#m.loadSeconds.observe((performance.now() - started) / 1000);
    const loaded: Loaded = {
      modelId,
      sha256: resolved.sha256,
      engineId: answer.engineId,
      info: answer.info,
      loadedAt: new Date().toISOString(),
      lastUsedAt: Date.now(),
    };
    this.#loaded = loaded;
    this.#m.loaded.set(1);
    this.#o.emit("inference.model_loaded", {
      modelId,
      memoryMb: Math.round(answer.info.memoryMb.total),
      loadMs: Math.round(performance.now() - started),
      chatTemplate: answer.info.chatTemplate,
      landlockAbi: answer.layers.landlockAbi,
      seccomp: answer.layers.seccomp,
      // Said plainly: a GPU may be present, but the sandboxed engine runs on the CPU.
      backend: answer.gpuDevices.length > 0
        ? `cpu (GPU devices present but not granted to the sandbox: ${
          answer.gpuDevices.join(", ")
        })`
        : "cpu (no GPU detected)",
    });
    await this.#audit({
      type: "inference.model_loaded",
      actor: "inference",
      subject: modelId,
      decision: "allow",
      evidence: {
        sha256: resolved.sha256,
        verifiedAt: resolved.verifiedAt,
        layers: answer.layers,
        memoryMb: answer.info.memoryMb,
      },
      data: { contextSize: answer.info.contextSize, threads: answer.info.threads },
    });
    return loaded;
  }

  /** Refuses a request for a model that failed its integrity check (and records it). */
  async #blocked(request: Request, modelId: string, why: string): Promise<never> {
    await this.#audit({
      type: "inference.blocked",
      actor: `client:${request.owner.id}`,
      subject: modelId,
      decision: "deny",
      evidence: { reason: why.slice(0, 500) },
      data: { client: request.owner.name },
    });
    throw new InferenceError(
      "INTEGRITY_FAILED",
      `Inference blocked: model integrity check failed (${why.slice(0, 300)})`,
    );
  }

  async #unloadNow(reason: string): Promise<boolean> {
    const loaded = this.#loaded;
    if (loaded === null) return false;
    this.#loaded = null;
    this.#m.loaded.set(0);
    await this.#o.engine().call("unload", { engineId: loaded.engineId }, { deadlineMs: 10_000 })
      .catch((error: unknown) => {
        // Already gone (crashed, killed): nothing left to unload.
        if (!(error instanceof RpcError)) throw error;
      });
    this.#o.emit("inference.model_unloaded", { modelId: loaded.modelId, reason });
    return true;
  }

  /** The engine went away on its own: forget the model (the next request loads it again). */
  #forget(reason: string): void {
    const loaded = this.#loaded;
    if (loaded === null) return;
    this.#loaded = null;
    this.#m.loaded.set(0);
    this.#o.emit("inference.model_unloaded", {
      modelId: loaded.modelId,
      reason: reason.slice(0, 300),
    });
  }

  #scheduleIdleUnload(): void {
    clearTimeout(this.#idleTimer);
    const minutes = this.#o.config.idleUnloadMinutes;
    if (minutes === 0 || this.#isStopping || this.#loaded === null) return;
    this.#idleTimer = setTimeout(() => {
      if (this.#turns.running > 0 || this.#turns.queued > 0) return;
      void this.unload(`idle for ${minutes} min`);
    }, minutes * 60_000);
  }

  #relay(request: Request, event: StreamEvent): void {
    if (request.isDone) return;
    if (event.kind === "text") {
      if (request.firstTextAt === 0) {
        request.firstTextAt = performance.now();
        this.#m.ttft.observe((request.firstTextAt - request.admittedAt) / 1000);
      }
      request.bufferedChars += event.text.length;
      if (request.bufferedChars > MAX_BUFFERED_CHARS) {
        this.#abort(request, "abandoned");
        return;
      }
      this.#push(request, { kind: "text", text: event.text, tokens: event.tokens });
      return;
    }
    if (event.kind === "error") {
      this.#finishWithError(request, new RpcError(event.code, event.message));
      return;
    }
    const reason = request.abortReason === null ? event.reason : "cancelled";
    if (request.abortReason === "timeout") {
      this.#finishWithError(
        request,
        new InferenceError(
          "REQUEST_TIMEOUT",
          `The generation ran past ${this.#o.config.requestTimeoutMs} ms (inference.requestTimeoutMs)`,
        ),
      );
      return;
    }
    this.#m.engineTtft.observe(event.timings.ttftMs / 1000);
    if (event.timings.tokensPerSecond > 0) {
      this.#m.tokensPerSecond.observe(event.timings.tokensPerSecond);
      this.#m.lastTokensPerSecond.set(event.timings.tokensPerSecond);
    }
    this.#m.promptTokens.inc(event.usage.promptTokens);
    this.#m.completionTokens.inc(event.usage.completionTokens);
    (reason === "cancelled" ? this.#m.cancelled : this.#m.ok).inc();
    this.#finish(request, { kind: "done", reason, usage: event.usage, timings: event.timings });
    void this.#audit({
      type: "inference.completion",
      actor: `client:${request.owner.id}`,
      subject: request.target.kind === "local"
        ? request.target.id
        : `external:${request.target.name}`,
      decision: "allow",
      evidence: {
        promptTokens: event.usage.promptTokens,
        completionTokens: event.usage.completionTokens,
        finish: reason,
      },
      data: {
        client: request.owner.name,
        address: request.client.address,
        ttftMs: Math.round(event.timings.ttftMs),
        totalMs: Math.round(event.timings.totalMs),
      },
    });
  }

  #finishWithError(request: Request, error: unknown): void {
    if (request.isDone) return;
    const aborted = request.abortReason !== null;
    const err = aborted && !(error instanceof InferenceError) ? this.#abortError(request) : error;
    const code = err instanceof RpcError || err instanceof InferenceError ? err.code : "INTERNAL";
    const message = err instanceof RpcError || err instanceof InferenceError
      ? err.message.slice(0, 2000)
      : "Internal error in the inference control";
    (request.abortReason === "cancelled" ? this.#m.cancelled : this.#m.failed).inc();
    this.#finish(request, { kind: "error", code, message });
    void this.#audit({
      type: "inference.failed",
      actor: `client:${request.owner.id}`,
      subject: request.target.kind === "local"
        ? request.target.id
        : `external:${request.target.name}`,
      decision: code === "EGRESS_DENIED" || code === "INTEGRITY_FAILED" ? "deny" : "allow",
      evidence: { code },
      data: { client: request.owner.name },
    });
  }

  #abortError(request: Request): InferenceError {
    return request.abortReason === "timeout"
      ? new InferenceError(
        "REQUEST_TIMEOUT",
        `The generation ran past ${this.#o.config.requestTimeoutMs} ms (inference.requestTimeoutMs)`,
      )
      : new InferenceError("REQUEST_TIMEOUT", `The request was stopped (${request.abortReason})`);
  }

  #abort(request: Request, reason: NonNullable<Request["abortReason"]>): void {
    if (request.isDone || request.abortReason !== null) return;
    request.abortReason = reason;
    request.controller.abort();
  }

  #push(request: Request, event: DistributiveOmit<StreamEvent, "seq">): void {
    request.events.push({ ...event, seq: request.nextSeq++ } as StreamEvent);
    for (const wake of [...request.waiters]) wake();
  }

  #finish(request: Request, event: DistributiveOmit<StreamEvent, "seq">): void {
    if (request.isDone) return;
    this.#push(request, event);
    request.isDone = true;
    request.dropTimer = setTimeout(() => this.#requests.delete(request.id), FINISHED_KEEP_MS);
  }

  /** Cancels requests whose client stopped reading (it went away without saying so). */
  #sweep(): void {
    const now = Date.now();
    for (const request of this.#requests.values()) {
      if (!request.isDone && now - request.lastPolledAt > this.#o.config.abandonAfterMs) {
        this.#abort(request, "abandoned");
      }
    }
  }

  async #audit(entry: {
    type: string;
    actor: string;
    subject: string;
    decision: "allow" | "deny";
    evidence: Record<string, unknown>;
    data: Record<string, unknown>;
  }): Promise<void> {
    try {
      await this.#o.audit().call("append", entry, { deadlineMs: AUDIT_DEADLINE_MS });
    } catch (error) {
      this.#o.emit("inference.audit_failed", {
        type: entry.type,
        code: error instanceof RpcError ? error.code : "UNKNOWN",
      });
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The control's metrics (rendered as `secai_inference_*` with `control="inference"`). */
function createMetrics(registry: MetricsRegistry) {
  const seconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
  const requests = (outcome: string) =>
    registry.counter("inference_requests_total", "Inference requests by outcome.", { outcome });
  return {
    ok: requests("ok"),
    failed: requests("error"),
    cancelled: requests("cancelled"),
    refused: requests("refused"),
    ttft: registry.histogram(
      "inference_ttft_seconds",
      "Time to first token as the API sees it: admission to first text (queue and load included).",
      seconds,
    ),
    engineTtft: registry.histogram(
      "inference_engine_ttft_seconds",
      "Time to first token inside the engine: request received to first token sampled.",
      seconds,
    ),
    tokensPerSecond: registry.histogram(
      "inference_tokens_per_second",
      "Decoding speed of each generation (tokens after the first, per second).",
      [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
    ),
    lastTokensPerSecond: registry.gauge(
      "inference_last_tokens_per_second",
      "Decoding speed of the last generation.",
    ),
    promptTokens: registry.counter("inference_prompt_tokens_total", "Prompt tokens processed."),
    completionTokens: registry.counter(
      "inference_completion_tokens_total",
      "Tokens generated.",
    ),
    loadSeconds: registry.histogram(
      "inference_model_load_seconds",
      "Time to resolve (re-hash) and load a model in the sandboxed engine.",
      [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    ),
    loaded: registry.gauge("inference_model_loaded", "1 while a local model is loaded."),
    queue: registry.gauge("inference_queue_depth", "Requests waiting for a turn."),
    running: registry.gauge("inference_running", "Generations running."),
  };
}

/** Memory available now, MiB, or null when unknown. */
export function availableMemoryMb(): number | null {
  try {
    return Math.floor(Deno.systemMemoryInfo().available / MIB);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) return null;
    throw error;
  }
}
