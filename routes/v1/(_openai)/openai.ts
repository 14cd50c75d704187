/**
 * The OpenAI-compatible API (`/v1`): request bodies as OpenAI clients send them (validated
 * strictly: an option we cannot honour is refused, never silently ignored), the client's
 * bearer token passed on to the inference control, answers as OpenAI shapes them, streaming
 * as server-sent events with `data: [DONE]`, and the client going away cancelling the
 * generation.
 * @module
 */
import { z } from "zod";
import { RpcError } from "../../../runtime/kit/errors.ts";
import type { Prompt, StreamEvent, Usage } from "../../../runtime/kit/engine_api.ts";
import type { RouteContext } from "../../../workers/gateway/routing.ts";
import type { ClientAuth } from "../../../workers/inference/api.ts";
import { formatSseComment, SSE_CONTENT_TYPE } from "../../../workers/gateway/sse.ts";

/** Wait of one long-poll to the inference control. */
const POLL_WAIT_MS = 10_000;
const POLL_MARGIN_MS = 5_000;

const Stop = z.union([z.string().min(1).max(64), z.array(z.string().min(1).max(64)).max(4)])
  .nullable().optional();
const TextPart = z.strictObject({ type: z.literal("text"), text: z.string().max(1 << 20) });
const Content = z.union([z.string().max(1 << 20), z.array(TextPart).min(1).max(64)]);
/** Accepted only at the value that changes nothing: we do not implement them. */
const Neutral = z.literal(0).optional();

/** Fields both endpoints share. */
const Common = {
  model: z.string().min(1).max(512).optional(),
  max_tokens: z.number().int().min(1).max(131_072).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  top_k: z.number().int().min(0).max(1000).optional(),
  seed: z.number().int().min(0).max(2 ** 32 - 1).nullable().optional(),
  stop: Stop,
  stream: z.boolean().optional(),
  stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  n: z.literal(1).optional(),
  user: z.string().max(256).optional(),
  presence_penalty: Neutral,
  frequency_penalty: Neutral,
  logprobs: z.literal(false).nullable().optional(),
};

/** `POST /v1/chat/completions` body. */
export const ChatBodySchema = z.strictObject({
  ...Common,
  messages: z.array(z.strictObject({
    // "developer" is the newer name of "system".
    role: z.enum(["system", "developer", "user", "assistant"]),
    content: Content,
    name: z.string().max(64).optional(),
  })).min(1).max(256),
  max_completion_tokens: z.number().int().min(1).max(131_072).nullable().optional(),
});
/** A chat request. */
export type ChatBody = z.infer<typeof ChatBodySchema>;

/** `POST /v1/completions` body. */
export const CompletionBodySchema = z.strictObject({
  ...Common,
  prompt: z.union([z.string().max(1 << 20), z.array(z.string().max(1 << 20)).length(1)]),
  echo: z.literal(false).optional(),
  suffix: z.null().optional(),
});
/** A completion request. */
export type CompletionBody = z.infer<typeof CompletionBodySchema>;

/** The bearer token of a request (the gateway made sure the header exists). */
export function bearerToken(request: Request): string {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S{1,256})$/i.exec(header.trim());
  return match?.[1] ?? "";
}

/** A chat body as the inference control's prompt. */
export function chatPrompt(body: ChatBody): Prompt {
  return {
    kind: "chat",
    messages: body.messages.map((m) => ({
      role: m.role === "developer" ? "system" : m.role,
      content: typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join(""),
    })),
  };
}

/** Generation options from either body (unset values take the control's defaults). */
export function generateOptions(body: ChatBody | CompletionBody): {
  maxTokens?: number;
  temperature: number;
  topP: number;
  topK: number;
  seed?: number;
  stop: string[];
} {
  const stop = body.stop === undefined || body.stop === null
    ? []
    : typeof body.stop === "string"
    ? [body.stop]
    : body.stop;
  const maxTokens = ("max_completion_tokens" in body ? body.max_completion_tokens : null) ??
    body.max_tokens ?? undefined;
  return {
    ...(maxTokens === undefined ? {} : { maxTokens }),
    temperature: body.temperature ?? 0.7,
    topP: body.top_p ?? 1,
    topK: body.top_k ?? 40,
    ...(body.seed === undefined || body.seed === null ? {} : { seed: body.seed }),
    stop,
  };
}

/** HTTP status and OpenAI error type of each refusal code. */
const ERRORS: Readonly<Record<string, { status: number; type: string }>> = {
  UNAUTHENTICATED: { status: 401, type: "invalid_request_error" },
  INVALID_REQUEST: { status: 400, type: "invalid_request_error" },
  MAX_TOKENS_EXCEEDED: { status: 400, type: "invalid_request_error" },
  CONTEXT_LENGTH_EXCEEDED: { status: 400, type: "invalid_request_error" },
  EMPTY_PROMPT: { status: 400, type: "invalid_request_error" },
  TEMPLATE_FAILED: { status: 400, type: "invalid_request_error" },
  MODEL_FORMAT_UNSUPPORTED: { status: 400, type: "invalid_request_error" },
  MODEL_NOT_FOUND: { status: 404, type: "invalid_request_error" },
  STREAM_NOT_FOUND: { status: 404, type: "invalid_request_error" },
  INTEGRITY_FAILED: { status: 403, type: "permission_error" },
  EGRESS_DENIED: { status: 403, type: "permission_error" },
  QUEUE_FULL: { status: 429, type: "rate_limit_error" },
  QUEUE_TIMEOUT: { status: 503, type: "server_error" },
  INFERENCE_DISABLED: { status: 503, type: "server_error" },
  ENGINE_UNAVAILABLE: { status: 503, type: "server_error" },
  MODEL_TOO_LARGE: { status: 503, type: "server_error" },
  TOO_MANY_ENGINES: { status: 503, type: "server_error" },
  UNAVAILABLE: { status: 503, type: "server_error" },
  REQUEST_TIMEOUT: { status: 504, type: "server_error" },
  DEADLINE_EXCEEDED: { status: 504, type: "server_error" },
  EXTERNAL_FAILED: { status: 502, type: "server_error" },
  MODEL_LOAD_FAILED: { status: 500, type: "server_error" },
  ENGINE_CRASHED: { status: 500, type: "server_error" },
  GENERATION_FAILED: { status: 500, type: "server_error" },
};

/** An OpenAI-shaped error answer (`{error: {message, type, code}}`). */
export function errorResponse(
  ctx: Pick<RouteContext, "requestId" | "reportError">,
  error: { code: string; message: string } | unknown,
): Response {
  const known = error instanceof RpcError ||
      (typeof error === "object" && error !== null && "code" in error && "message" in error)
    ? error as { code: string; message: string }
    : null;
  const mapping = known !== null && Object.hasOwn(ERRORS, known.code)
    ? ERRORS[known.code]
    : undefined;
  if (known === null || mapping === undefined) {
    // A stream event carries its own code; anything else unexpected is reported.
    if (known === null || error instanceof RpcError) ctx.reportError(error);
    return Response.json({
      error: {
        message: `Internal error (request ${ctx.requestId})`,
        type: "server_error",
        code: known?.code.toLowerCase() ?? "internal",
      },
    }, { status: 500 });
  }
  const headers: Record<string, string> = mapping.status === 429 || mapping.status === 503
    ? { "retry-after": mapping.status === 429 ? "5" : "2" }
    : {};
  return Response.json({
    error: { message: known.message, type: mapping.type, code: known.code.toLowerCase() },
  }, { status: mapping.status, headers });
}

/** What the handlers share. */
export interface Generation {
  streamId: string;
  model: string;
  created: number;
  /** The credential the inference control checks on every poll and cancel. */
  auth: ClientAuth;
}

/**
 * Polls a generation until at least one event (or the end) is there.
 * @returns the first events
 */
async function firstEvents(
  ctx: RouteContext,
  gen: Generation,
): Promise<{ events: StreamEvent[]; isDone: boolean }> {
  for (;;) {
    const page = await ctx.state.inference.poll(
      { auth: gen.auth, streamId: gen.streamId, after: -1, waitMs: POLL_WAIT_MS },
      { deadlineMs: POLL_WAIT_MS + POLL_MARGIN_MS },
    );
    if (page.events.length > 0 || page.isDone) return page;
    if (ctx.signal.aborted) return page;
  }
}

/** Asks the inference control to stop (the client went away); best effort. */
function cancel(ctx: RouteContext, gen: Generation): void {
  void ctx.state.inference.cancel({ auth: gen.auth, streamId: gen.streamId })
    .catch(() => undefined);
}

/** The shape of one endpoint's answers. */
export interface Shape {
  /** A streamed chunk carrying text (and, first, the role for chat). */
  chunk(gen: Generation, text: string, isFirst: boolean): unknown;
  /** The last chunk, with the finish reason. */
  finalChunk(gen: Generation, finish: string): unknown;
  /** The usage-only chunk (`stream_options.include_usage`). */
  usageChunk(gen: Generation, usage: Usage): unknown;
  /** The whole answer (non-streaming). */
  whole(gen: Generation, text: string, finish: string, usage: Usage): unknown;
}

/** OpenAI's usage object. */
export function usageOf(usage: Usage): Record<string, unknown> {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedTokens },
  };
}

/**
 * Answers a started generation: waits for its first event (so a refusal still gets its
 * HTTP status), then streams SSE or collects the whole answer.
 */
export async function respond(
  ctx: RouteContext,
  gen: Generation,
  options: { stream: boolean; includeUsage: boolean; shape: Shape },
): Promise<Response> {
  const onAbort = () => cancel(ctx, gen);
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  let first: { events: StreamEvent[]; isDone: boolean };
  try {
    first = await firstEvents(ctx, gen);
  } catch (error) {
    ctx.signal.removeEventListener("abort", onAbort);
    cancel(ctx, gen);
    return errorResponse(ctx, error);
  }
  const failure = first.events.find((e) => e.kind === "error");
  if (
    failure !== undefined && failure.kind === "error" &&
    !first.events.some((e) => e.kind === "text")
  ) {
    ctx.signal.removeEventListener("abort", onAbort);
    return errorResponse(ctx, failure);
  }
  if (!options.stream) {
    try {
      return await collect(ctx, gen, first, options.shape);
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
    }
  }
  return new Response(sseStream(ctx, gen, first, options, onAbort), {
    headers: {
      "content-type": SSE_CONTENT_TYPE,
      "x-accel-buffering": "no",
    },
  });
}

/** What {@link generate} needs beyond the route context. */
export interface GenerateRequest {
  /** The HTTP request (its bearer token is the client's credential). */
  request: Request;
  /** The validated body. */
  body: ChatBody | CompletionBody;
  /** The body as the inference control's prompt. */
  prompt: Prompt;
  /** The endpoint's answer shape. */
  shape: Shape;
}

/**
 * Starts a generation with the client's own token and answers it with {@link respond}; a
 * refused start gets its OpenAI-shaped error.
 */
export async function generate(ctx: RouteContext, options: GenerateRequest): Promise<Response> {
  const { body, shape } = options;
  const token = bearerToken(options.request);
  let started;
  try {
    started = await ctx.state.inference.start({
      auth: { token },
      model: body.model ?? null,
      prompt: options.prompt,
      options: generateOptions(body),
      client: ctx.auth.client,
    }, { signal: ctx.signal });
  } catch (error) {
    return errorResponse(ctx, error);
  }
  return await respond(ctx, { ...started, auth: { token } }, {
    stream: body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
    shape,
  });
}

async function collect(
  ctx: RouteContext,
  gen: Generation,
  first: { events: StreamEvent[]; isDone: boolean },
  shape: Shape,
): Promise<Response> {
  let text = "";
  let page = first;
  let after = -1;
  for (;;) {
    for (const event of page.events) {
      after = event.seq;
      if (event.kind === "text") text += event.text;
      else if (event.kind === "error") return errorResponse(ctx, event);
      else return Response.json(shape.whole(gen, text, finishOf(event.reason), event.usage));
    }
    if (page.isDone) {
      return errorResponse(ctx, {
        code: "GENERATION_FAILED",
        message: "The generation ended without a result",
      });
    }
    page = await ctx.state.inference.poll(
      { auth: gen.auth, streamId: gen.streamId, after, waitMs: POLL_WAIT_MS },
      { deadlineMs: POLL_WAIT_MS + POLL_MARGIN_MS },
    );
  }
}

function finishOf(reason: "stop" | "length" | "cancelled"): string {
  return reason === "length" ? "length" : "stop";
}

function sseStream(
  ctx: RouteContext,
  gen: Generation,
  first: { events: StreamEvent[]; isDone: boolean },
  options: { includeUsage: boolean; shape: Shape },
  onAbort: () => void,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const data = (value: unknown) => encoder.encode(`data: ${JSON.stringify(value)}\n\n`);
  let pending: { events: StreamEvent[]; isDone: boolean } | null = first;
  let after = -1;
  let isFirst = true;
  let isClosed = false;
  const end = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    isClosed = true;
    ctx.signal.removeEventListener("abort", onAbort);
    controller.enqueue(encoder.encode("data: [DONE]\n\n"));
    controller.close();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (isClosed) return;
      let page = pending;
      pending = null;
      if (page === null) {
        try {
          page = await ctx.state.inference.poll(
            { auth: gen.auth, streamId: gen.streamId, after, waitMs: POLL_WAIT_MS },
            { deadlineMs: POLL_WAIT_MS + POLL_MARGIN_MS },
          );
        } catch (error) {
          ctx.reportError(error);
          controller.enqueue(data(errorBody(error)));
          end(controller);
          return;
        }
      }
      if (page.events.length === 0 && !page.isDone) {
        // Nothing within the wait: a comment keeps proxies and clients from timing out.
        controller.enqueue(encoder.encode(formatSseComment("waiting")));
        return;
      }
      const parts: Uint8Array[] = [];
      for (const event of page.events) {
        after = event.seq;
        if (event.kind === "text") {
          parts.push(data(options.shape.chunk(gen, event.text, isFirst)));
          isFirst = false;
        } else if (event.kind === "error") {
          parts.push(data(errorBody(event)));
          for (const part of parts) controller.enqueue(part);
          end(controller);
          return;
        } else {
          if (isFirst) parts.push(data(options.shape.chunk(gen, "", true)));
          parts.push(data(options.shape.finalChunk(gen, finishOf(event.reason))));
          if (options.includeUsage) parts.push(data(options.shape.usageChunk(gen, event.usage)));
          for (const part of parts) controller.enqueue(part);
          end(controller);
          return;
        }
      }
      for (const part of parts) controller.enqueue(part);
      if (page.isDone) end(controller);
    },
    cancel() {
      // The client went away mid-stream.
      isClosed = true;
      ctx.signal.removeEventListener("abort", onAbort);
      cancel(ctx, gen);
    },
  });
}

/** An error inside a stream, as OpenAI sends it (the status line is already 200). */
function errorBody(error: unknown): Record<string, unknown> {
  const known = typeof error === "object" && error !== null && "code" in error &&
      "message" in error
    ? error as { code: string; message: string }
    : { code: "INTERNAL", message: "Internal error" };
  const mapping = Object.hasOwn(ERRORS, known.code) ? ERRORS[known.code] : undefined;
  return {
    error: {
      message: mapping === undefined ? "Internal error" : known.message,
      type: mapping?.type ?? "server_error",
      code: known.code.toLowerCase(),
    },
  };
}
