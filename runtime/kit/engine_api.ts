/**
 * The inference engine: a long-lived sandboxed subprocess (llama.cpp through node-llama-cpp)
 * that only the supervisor spawns. Two contracts live here, both validated with zod at both
 * ends:
 * - the `engine` port ({@link engineApi}), which the supervisor serves to controls whose
 *   manifest entry has an `engine` grant (the inference control, the quarantine's smoke
 *   test): load one model file from the roots the manifest names, generate with streamed
 *   text (started, then long-polled), cancel, unload;
 * - the pipe between the supervisor and the engine process (JSON lines on stdin/stdout):
 *   {@link EngineRequestSchema} in, {@link EngineMessageSchema} out. The engine process
 *   runs untrusted model files through native code, so everything it writes is parsed with
 *   these schemas and bounded before anyone uses it.
 * @module
 */
import { z } from "zod";
import { defineApi } from "./rpc.ts";
import { SandboxLayersSchema } from "./sandbox_api.ts";

const Hex64 = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex");
const Code = z.string().regex(/^[A-Z][A-Z0-9_]{1,63}$/);

/** Largest text of one prompt (characters). */
export const MAX_PROMPT_CHARS = 1 << 20;
/** Most messages in one chat prompt. */
export const MAX_MESSAGES = 256;
/** Largest text of one streamed piece (characters). */
export const MAX_PIECE_CHARS = 16_384;
/** Longest pipe line either side accepts (bytes of UTF-8 JSON). */
export const MAX_PIPE_LINE_BYTES = 4 << 20;

/** An engine id handed out by the supervisor. */
export const EngineIdSchema = z.string().regex(/^e[0-9a-f]{16}$/);
/** A stream (one generation) id handed out by the supervisor. */
export const StreamIdSchema = z.string().regex(/^s[0-9a-f]{16}$/);

/** One chat message. */
export const ChatMessageSchema = z.strictObject({
  role: z.enum(["system", "user", "assistant"]),
  content: z.string().max(MAX_PROMPT_CHARS),
});
/** A chat message. */
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

/**
 * What to generate from: raw text (completions), or a conversation rendered with the
 * model's own chat template inside the sandboxed engine.
 */
export const PromptSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("text"), text: z.string().max(MAX_PROMPT_CHARS) }),
  z.strictObject({
    kind: z.literal("chat"),
    messages: z.array(ChatMessageSchema).min(1).max(MAX_MESSAGES),
  }),
]);
/** A prompt. */
export type Prompt = z.infer<typeof PromptSchema>;

/** Sampling and stopping. */
export const GenerateOptionsSchema = z.strictObject({
  /** Most tokens generated; the context may end it sooner (`length`). */
  maxTokens: z.number().int().min(1).max(131_072),
  /** 0 is greedy. */
  temperature: z.number().min(0).max(2).default(0.7),
  topP: z.number().gt(0).max(1).default(1),
  topK: z.number().int().min(0).max(1000).default(40),
  /** Same seed, same output (at temperature > 0). */
  seed: z.number().int().min(0).max(2 ** 32 - 1).optional(),
  /** Generation ends before any of these strings; it is not part of the output. */
  stop: z.array(z.string().min(1).max(64)).max(4).default([]),
});
/** Generation options (input form). */
export type GenerateOptionsInput = z.input<typeof GenerateOptionsSchema>;
/** Generation options. */
export type GenerateOptions = z.infer<typeof GenerateOptionsSchema>;

/** Context and threads of a loaded model. */
export const LoadOptionsSchema = z.strictObject({
  /** Tokens of context (prompt + answer). */
  contextSize: z.number().int().min(128).max(131_072),
  /** CPU threads for decoding. */
  threads: z.number().int().min(1).max(512),
  /** Prompt tokens evaluated per batch. */
  batchSize: z.number().int().min(1).max(8192),
  /**
   * The caller's memory budget: the engine refuses (MODEL_TOO_LARGE) a model whose weights
   * and context are estimated to need more, before it loads anything.
   */
  memoryBudgetMb: z.number().int().min(16).max(1 << 21),
});
/** Load options. */
export type LoadOptions = z.infer<typeof LoadOptionsSchema>;

/** What the engine reports about a loaded model. */
export const ModelInfoSchema = z.strictObject({
  architecture: z.string().max(64),
  /** `general.name`, when the file has one. */
  name: z.string().max(256).nullable(),
  trainContextSize: z.number().int().nonnegative(),
  contextSize: z.number().int().positive(),
  vocabularySize: z.number().int().nonnegative(),
  /** Where the chat template came from: the model file, or the engine's plain fallback. */
  chatTemplate: z.enum(["model", "fallback"]),
  threads: z.number().int().positive(),
  /** Always "cpu" for now: the sandbox grants no GPU device. */
  backend: z.literal("cpu"),
  /** Estimated memory, MiB: weights, context (KV cache and buffers), total. */
  memoryMb: z.strictObject({
    model: z.number().nonnegative(),
    context: z.number().nonnegative(),
    total: z.number().nonnegative(),
  }),
  loadMs: z.number().nonnegative(),
});
/** Loaded model info. */
export type ModelInfo = z.infer<typeof ModelInfoSchema>;

/** Why a generation ended. */
export const FinishReasonSchema = z.enum(["stop", "length", "cancelled"]);
/** A finish reason. */
export type FinishReason = z.infer<typeof FinishReasonSchema>;

/** Token counts of one generation. */
export const UsageSchema = z.strictObject({
  promptTokens: z.number().int().nonnegative(),
  completionTokens: z.number().int().nonnegative(),
  /** Prompt tokens reused from the previous request's context (not evaluated again). */
  cachedTokens: z.number().int().nonnegative(),
});
/** Usage. */
export type Usage = z.infer<typeof UsageSchema>;

/** Timings of one generation, measured inside the engine. */
export const TimingsSchema = z.strictObject({
  /** Request received → first token sampled. */
  ttftMs: z.number().nonnegative(),
  /** Prompt evaluation. */
  promptMs: z.number().nonnegative(),
  /** First token → last token. */
  decodeMs: z.number().nonnegative(),
  totalMs: z.number().nonnegative(),
  /** Completion tokens after the first, per second of decoding (0 with fewer than 2). */
  tokensPerSecond: z.number().nonnegative(),
});
/** Timings. */
export type Timings = z.infer<typeof TimingsSchema>;

// ---------------------------------------------------------------------------------------
// The pipe: supervisor → engine (stdin) and engine → supervisor (stdout), one JSON per line.

/** A generation id on the pipe. */
const PipeId = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** Supervisor → engine. */
export const EngineRequestSchema = z.discriminatedUnion("t", [
  /** Loads the one model file the process was started for (its path is not on the pipe). */
  z.strictObject({ t: z.literal("load"), options: LoadOptionsSchema }),
  z.strictObject({
    t: z.literal("generate"),
    id: PipeId,
    prompt: PromptSchema,
    options: GenerateOptionsSchema,
  }),
  z.strictObject({ t: z.literal("cancel"), id: PipeId }),
  /** Frees the model and exits 0. */
  z.strictObject({ t: z.literal("unload") }),
]);
/** A request to the engine. */
export type EngineRequest = z.infer<typeof EngineRequestSchema>;

/** Engine → supervisor. */
export const EngineMessageSchema = z.discriminatedUnion("t", [
  z.strictObject({ t: z.literal("loaded"), info: ModelInfoSchema }),
  z.strictObject({
    t: z.literal("text"),
    id: PipeId,
    text: z.string().max(MAX_PIECE_CHARS),
    tokens: z.number().int().min(1).max(4096),
  }),
  z.strictObject({
    t: z.literal("done"),
    id: PipeId,
    reason: FinishReasonSchema,
    usage: UsageSchema,
    timings: TimingsSchema,
  }),
  /** `id` null: the load failed, or the engine cannot go on. */
  z.strictObject({
    t: z.literal("error"),
    id: PipeId.nullable(),
    code: Code,
    message: z.string().max(2000),
  }),
]);
/** A message from the engine. */
export type EngineMessage = z.infer<typeof EngineMessageSchema>;

// ---------------------------------------------------------------------------------------
// The `engine` port.

/** One event of a stream, as polled. */
export const StreamEventSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    seq: z.number().int().nonnegative(),
    kind: z.literal("text"),
    text: z.string().max(MAX_PIECE_CHARS),
    tokens: z.number().int().min(1).max(4096),
  }),
  z.strictObject({
    seq: z.number().int().nonnegative(),
    kind: z.literal("done"),
    reason: FinishReasonSchema,
    usage: UsageSchema,
    timings: TimingsSchema,
  }),
  z.strictObject({
    seq: z.number().int().nonnegative(),
    kind: z.literal("error"),
    code: Code,
    message: z.string().max(2000),
  }),
]);
/** A stream event. */
export type StreamEvent = z.infer<typeof StreamEventSchema>;

/** The model file to load: an absolute path inside one of the caller's engine roots. */
export const ModelFileSchema = z.strictObject({
  path: z.string().min(2).max(4096).startsWith("/"),
  /** Checked by whoever handed the path out (the registry re-hashes before it answers). */
  sha256: Hex64,
  /** Must equal the file's size when the engine starts. */
  size: z.number().int().positive().max(2 ** 46),
});

/** A running engine as listed. */
export const EngineStatusSchema = z.strictObject({
  engineId: EngineIdSchema,
  sha256: Hex64,
  startedAt: z.string().max(40),
  /** A generation is running. */
  isBusy: z.boolean(),
  info: ModelInfoSchema,
});

/** The engine contract, served by the supervisor. */
export const engineApi = defineApi("engine", {
  /**
   * Starts a sandboxed engine process that can read only `model.path` and loads it.
   * Errors: ENGINE_NOT_ALLOWED (no grant, or the path lies outside the caller's roots),
   * MODEL_FILE_REJECTED, TOO_MANY_ENGINES, ENGINE_UNAVAILABLE (llama.cpp cannot run here;
   * the message says why), MODEL_TOO_LARGE, MODEL_LOAD_FAILED.
   */
  load: {
    input: z.strictObject({
      model: ModelFileSchema,
      options: LoadOptionsSchema,
      /** V8 heap of the engine process (the weights are native memory). */
      heapMb: z.number().int().min(32).max(4096).default(128),
    }),
    output: z.strictObject({
      engineId: EngineIdSchema,
      info: ModelInfoSchema,
      layers: SandboxLayersSchema,
      /** Process start to sandbox ready, and the load itself. */
      timings: z.strictObject({
        startMs: z.number().nonnegative(),
        loadMs: z.number().nonnegative(),
      }),
      /**
       * GPU drivers present on the machine (e.g. "nvidia (libcuda)"). The engine runs on the
       * CPU regardless: its sandbox grants no device.
       */
      gpuDevices: z.array(z.string().max(64)).max(8),
    }),
  },
  /** Starts one generation; ENGINE_BUSY while another runs on the same engine. */
  generate: {
    input: z.strictObject({
      engineId: EngineIdSchema,
      prompt: PromptSchema,
      options: GenerateOptionsSchema,
    }),
    output: z.strictObject({ streamId: StreamIdSchema }),
  },
  /** Events after `after` (−1: from the start), waiting up to `waitMs` for the first one. */
  poll: {
    input: z.strictObject({
      streamId: StreamIdSchema,
      after: z.number().int().min(-1),
      waitMs: z.number().int().min(0).max(30_000).default(0),
    }),
    output: z.strictObject({
      events: z.array(StreamEventSchema).max(1024),
      /** The stream ended (its last event is `done` or `error`). */
      isDone: z.boolean(),
    }),
  },
  /** Stops a generation at the next token; its stream then ends with `cancelled`. */
  cancel: {
    input: z.strictObject({ streamId: StreamIdSchema }),
    output: z.strictObject({ isCancelled: z.boolean() }),
  },
  /** Frees the model and ends the process. */
  unload: {
    input: z.strictObject({ engineId: EngineIdSchema }),
    output: z.strictObject({ isUnloaded: z.boolean() }),
  },
  /** The caller's engines. */
  list: {
    input: z.strictObject({}),
    output: z.strictObject({ engines: z.array(EngineStatusSchema).max(16) }),
  },
});
