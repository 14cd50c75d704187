/**
 * Contract and config of the inference control (issue #7, spec 14 §1): local models from the
 * trusted registry, run in the sandboxed engine, behind an OpenAI-compatible API that the
 * gateway serves at `/v1/*`. The gateway passes each request's bearer token on; only this
 * control knows the token hashes (`<state dir>/inference/tokens.json`).
 *
 * Refusals are errors with codes the `/v1` routes map to HTTP statuses: UNAUTHENTICATED
 * (401), MODEL_NOT_FOUND (404), INVALID_REQUEST, CONTEXT_LENGTH_EXCEEDED, MAX_TOKENS_EXCEEDED
 * (400), INTEGRITY_FAILED, EGRESS_DENIED (403), QUEUE_FULL (429), QUEUE_TIMEOUT,
 * ENGINE_UNAVAILABLE, MODEL_TOO_LARGE, INFERENCE_DISABLED (503).
 * @module
 */
import { z } from "zod";
import { defineApi } from "../../runtime/kit/rpc.ts";
import {
  GenerateOptionsSchema,
  ModelInfoSchema,
  PromptSchema,
  StreamEventSchema,
} from "../../runtime/kit/engine_api.ts";
import { ModelIdSchema } from "../registry/api.ts";

/** Hours are long: a config value, not a wall-clock guarantee. */

/** An optional external OpenAI-compatible backend (still behind auth, policy and audit). */
export const ExternalBackendSchema = z.strictObject({
  /**
   * Base URL of the API, e.g. `https://llm.example.org/v1`: every request is decided by the
   * policy's `egress` domain (https only, port 443, allowlisted host, airlock enabled).
   */
  baseUrl: z.string().url().max(2048).regex(
    /^https:\/\/[^/?#@]+(\/[^?#]*)?$/,
    "expected https://host/path",
  )
    .refine((u) => !u.endsWith("/"), "without a trailing slash"),
  /** Model names served there, as clients name them (`model` in requests). */
  models: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/)).min(1).max(32),
  /** A file in the state dir's `inference/` folder holding the backend's API key, or null. */
  apiKeyFile: z.string().regex(/^inference\/[A-Za-z0-9._-]{1,64}$/).nullable().default(null),
  /** Time one request may take there. */
  timeoutMs: z.number().int().min(1_000).max(600_000).default(300_000),
});
/** External backend config. */
export type ExternalBackend = z.infer<typeof ExternalBackendSchema>;

/** Config section `inference`. */
export const InferenceConfigSchema = z.strictObject({
  /** Off: every request answers INFERENCE_DISABLED (503). */
  enabled: z.boolean().default(true),
  /** Model used when a request names none (`m…` id or name), or null. */
  defaultModel: z.string().min(1).max(512).nullable().default(null),
  /** Tokens of context per loaded model (spec 14 §1: 256–131 072, default 8192). */
  contextSize: z.number().int().min(256).max(131_072).default(8192),
  /** Decoding threads; null: CPU cores − 1 (at least 1). More than the cores is very slow. */
  threads: z.number().int().min(1).max(512).nullable().default(null),
  /** Prompt tokens per batch. */
  batchSize: z.number().int().min(16).max(8192).default(512),
  /**
   * Memory the loaded model may take (weights + context), MiB; a model estimated to need
   * more is refused with MODEL_TOO_LARGE. null: the memory available at load time, less 1 GiB.
   */
  memoryBudgetMb: z.number().int().min(64).max(1 << 21).nullable().default(null),
  /** Unload the model after this many idle minutes (0: never; fractions allowed). */
  idleUnloadMinutes: z.number().min(0).max(24 * 60).default(15),
  /** `max_tokens` when a request names none. */
  defaultMaxTokens: z.number().int().min(1).max(131_072).default(512),
  /** Largest `max_tokens` accepted (MAX_TOKENS_EXCEEDED above). */
  maxTokensLimit: z.number().int().min(1).max(131_072).default(4096),
  /** Generations at once (the engine runs one; more wait in the queue). */
  maxConcurrent: z.number().int().min(1).max(8).default(1),
  /** Requests waiting for a turn; more are refused with 429 QUEUE_FULL. */
  maxQueue: z.number().int().min(0).max(1024).default(8),
  /** Longest wait in the queue (503 QUEUE_TIMEOUT after). */
  queueTimeoutMs: z.number().int().min(100).max(600_000).default(60_000),
  /** Longest generation (spec 14 §1: 300 s); then it is cancelled. */
  requestTimeoutMs: z.number().int().min(1_000).max(3_600_000).default(300_000),
  /** A client that stops reading for this long has its generation cancelled. */
  abandonAfterMs: z.number().int().min(1_000).max(600_000).default(30_000),
  /** V8 heap of the engine process (the weights are native memory). */
  engineHeapMb: z.number().int().min(32).max(4096).default(128),
  external: ExternalBackendSchema.nullable().default(null),
}).default({});
/** Inference config. */
export type InferenceConfig = z.infer<typeof InferenceConfigSchema>;

/**
 * Who asks, checked by this control: a client's bearer token as the gateway received it
 * (`/v1`), or a signed-in dashboard user's session cookie (the Chat page), which this
 * control checks with the auth control (the browser holds no client token).
 */
export const ClientAuthSchema = z.union([
  z.strictObject({ token: z.string().max(256) }),
  z.strictObject({ session: z.string().max(256) }),
]);
/** A client's credential. */
export type ClientAuth = z.infer<typeof ClientAuthSchema>;

/** Who is asking, for the audit entry only. */
export const ClientInfoSchema = z.strictObject({
  address: z.string().max(64),
  userAgent: z.string().max(200),
});

/** Options of a request: generation options with `maxTokens` defaulted by the control. */
export const RequestOptionsSchema = GenerateOptionsSchema.extend({
  maxTokens: z.number().int().min(1).max(131_072).optional(),
});

/** One model as the API lists it. */
export const ApiModelSchema = z.strictObject({
  /** What clients pass as `model`: the registry id, or the external backend's name. */
  id: z.string().max(512),
  /** The registry name (file stem), or the external name. */
  name: z.string().max(512),
  ownedBy: z.enum(["local", "external"]),
  /** Unix seconds of the promotion (0 for external models). */
  created: z.number().int().nonnegative(),
  isLoaded: z.boolean(),
});
/** A listed model. */
export type ApiModel = z.infer<typeof ApiModelSchema>;

/** What the control reports about itself (dashboard, `secai status`). */
export const InferenceStatusSchema = z.strictObject({
  enabled: z.boolean(),
  loaded: z.strictObject({
    modelId: ModelIdSchema,
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    loadedAt: z.string().max(40),
    lastUsedAt: z.string().max(40),
    info: ModelInfoSchema,
  }).nullable(),
  running: z.number().int().nonnegative(),
  queued: z.number().int().nonnegative(),
  /** Why local inference cannot run here, when it cannot (the engine's own message). */
  engineProblem: z.string().max(1000).nullable(),
  /**
   * GPU drivers the engine host saw at the last load; the engine runs on the CPU regardless
   * (its sandbox grants no device).
   */
  gpu: z.strictObject({ devices: z.array(z.string().max(64)).max(8), used: z.literal(false) }),
  external: z.strictObject({ baseUrl: z.string().max(2048), models: z.array(z.string()).max(32) })
    .nullable(),
  /** Active client tokens, and why the token file cannot be used (then none works). */
  tokens: z.strictObject({
    active: z.number().int().nonnegative(),
    fileError: z.string().max(1000).nullable(),
  }),
});
/** Inference status. */
export type InferenceStatus = z.infer<typeof InferenceStatusSchema>;

/** The contract the gateway calls. */
export const inferenceApi = defineApi("inference", {
  /** The models a client may use: promoted registry models, then external ones. */
  models: {
    input: z.strictObject({ auth: ClientAuthSchema }),
    output: z.strictObject({ models: z.array(ApiModelSchema).max(10_032) }),
  },
  /**
   * Admits one generation (429 QUEUE_FULL when the queue is full) and returns at once; the
   * wait for a turn, the model load and the generation follow in the stream.
   */
  start: {
    input: z.strictObject({
      auth: ClientAuthSchema,
      /** Registry id or name, an external model's name, or null for the default model. */
      model: z.string().min(1).max(512).nullable(),
      prompt: PromptSchema,
      options: RequestOptionsSchema,
      client: ClientInfoSchema,
    }),
    output: z.strictObject({
      streamId: z.string().regex(/^r[0-9a-f]{16}$/),
      /** The model that answers, as the API names it. */
      model: z.string().max(512),
      /** Unix seconds. */
      created: z.number().int().nonnegative(),
    }),
  },
  /** Events after `after`, waiting up to `waitMs` for the first; the stream's own token only. */
  poll: {
    input: z.strictObject({
      auth: ClientAuthSchema,
      streamId: z.string().regex(/^r[0-9a-f]{16}$/),
      after: z.number().int().min(-1),
      waitMs: z.number().int().min(0).max(30_000).default(0),
    }),
    output: z.strictObject({ events: z.array(StreamEventSchema).max(1024), isDone: z.boolean() }),
  },
  /** Cancels a generation (the client went away). */
  cancel: {
    input: z.strictObject({
      auth: ClientAuthSchema,
      streamId: z.string().regex(/^r[0-9a-f]{16}$/),
    }),
    output: z.strictObject({ isCancelled: z.boolean() }),
  },
  /** State of local inference (for signed-in dashboard users). */
  status: { input: z.strictObject({}), output: InferenceStatusSchema },
  /** Unloads the local model now (for signed-in dashboard users). */
  unload: { input: z.strictObject({}), output: z.strictObject({ isUnloaded: z.boolean() }) },
});
