/**
 * The optional external OpenAI-compatible backend (spec 14 §1, issue #7 item 4): a request
 * for one of its models is forwarded with `stream: true` and its server-sent events are read
 * back into the same events a local generation produces. The caller (service.ts) has already
 * authenticated the client and asked the policy (`egress`) for the URL; everything the
 * backend sends is parsed strictly and bounded.
 * @module
 */
import { z } from "zod";
import type { FinishReason, GenerateOptions, Prompt } from "../../runtime/kit/engine_api.ts";
import { InferenceError } from "./errors.ts";

/** Largest SSE line accepted from the backend. */
const MAX_LINE_BYTES = 1 << 20;
/** Largest whole answer accepted from the backend. */
const MAX_TOTAL_BYTES = 16 << 20;

/** What a backend stream yields. */
export type ExternalEvent =
  | { kind: "text"; text: string; tokens: number }
  | {
    kind: "done";
    reason: FinishReason;
    usage: { promptTokens: number; completionTokens: number; cachedTokens: number };
    timings: {
      ttftMs: number;
      promptMs: number;
      decodeMs: number;
      totalMs: number;
      tokensPerSecond: number;
    };
  };

const ChunkSchema = z.object({
  choices: z.array(z.object({
    delta: z.object({ content: z.string().max(1 << 20).nullable().optional() }).optional(),
    text: z.string().max(1 << 20).optional(),
    finish_reason: z.string().max(64).nullable().optional(),
  })).max(8).default([]),
  usage: z.object({
    prompt_tokens: z.number().int().nonnegative().max(1e9),
    completion_tokens: z.number().int().nonnegative().max(1e9),
  }).nullable().optional(),
});

/** Options of {@link streamExternal}. */
export interface ExternalRequest {
  /** The endpoint URL (already allowed by the policy). */
  url: string;
  apiKey: string | null;
  model: string;
  prompt: Prompt;
  options: GenerateOptions;
  signal: AbortSignal;
  timeoutMs: number;
  /** The fetch to use (the worker's own). */
  fetch?: typeof fetch;
}

/** The endpoint of a prompt kind. */
export function externalEndpoint(baseUrl: string, prompt: Prompt): string {
  return `${baseUrl}/${prompt.kind === "chat" ? "chat/completions" : "completions"}`;
}

/**
 * Sends one request to the backend and yields its answer.
 * @throws {InferenceError} EXTERNAL_FAILED with the status or the parse failure
 */
export async function* streamExternal(request: ExternalRequest): AsyncGenerator<ExternalEvent> {
  const started = performance.now();
  const signal = AbortSignal.any([request.signal, AbortSignal.timeout(request.timeoutMs)]);
  const body = {
    model: request.model,
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: request.options.maxTokens,
    temperature: request.options.temperature,
    top_p: request.options.topP,
    ...(request.options.stop.length > 0 ? { stop: request.options.stop } : {}),
    ...(request.options.seed === undefined ? {} : { seed: request.options.seed }),
    ...(request.prompt.kind === "chat"
      ? { messages: request.prompt.messages }
      : { prompt: request.prompt.text }),
  };
  let response: Response;
  try {
    response = await (request.fetch ?? fetch)(request.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "text/event-stream",
        ...(request.apiKey === null ? {} : { authorization: `Bearer ${request.apiKey}` }),
      },
      body: JSON.stringify(body),
      redirect: "error",
      signal,
    });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new InferenceError(
      "EXTERNAL_FAILED",
      `The external backend cannot be reached: ${
        error instanceof Error ? error.message.slice(0, 200) : String(error).slice(0, 200)
      }`,
      { cause: error },
    );
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw new InferenceError(
      "EXTERNAL_FAILED",
      `The external backend answered HTTP ${response.status}`,
    );
  }
  let firstAt = 0;
  let lastAt = 0;
  let generated = 0;
  let reason: FinishReason = "stop";
  let usage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };
  let total = 0;
  for await (const data of sseData(response.body, (n) => (total += n) > MAX_TOTAL_BYTES)) {
    if (data === "[DONE]") break;
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch (error) {
      throw new InferenceError(
        "EXTERNAL_FAILED",
        "The external backend sent an event that is not JSON",
        {
          cause: error,
        },
      );
    }
    const chunk = ChunkSchema.safeParse(json);
    if (!chunk.success) {
      throw new InferenceError("EXTERNAL_FAILED", "The external backend sent an unexpected event");
    }
    if (chunk.data.usage) {
      usage = {
        promptTokens: chunk.data.usage.prompt_tokens,
        completionTokens: chunk.data.usage.completion_tokens,
        cachedTokens: 0,
      };
    }
    const choice = chunk.data.choices[0];
    if (choice === undefined) continue;
    const text = choice.delta?.content ?? choice.text ?? "";
    if (text.length > 0) {
      const now = performance.now();
      if (generated === 0) firstAt = now;
      lastAt = now;
      generated++;
      for (let i = 0; i < text.length; i += 16_384) {
        yield { kind: "text", text: text.slice(i, i + 16_384), tokens: 1 };
      }
    }
    if (choice.finish_reason === "length") reason = "length";
  }
  const ended = performance.now();
  const decodeMs = generated > 1 ? lastAt - firstAt : 0;
  const completion = usage.completionTokens || generated;
  yield {
    kind: "done",
    reason,
    usage: { ...usage, completionTokens: completion },
    timings: {
      ttftMs: round((firstAt || ended) - started),
      promptMs: round((firstAt || ended) - started),
      decodeMs: round(decodeMs),
      totalMs: round(ended - started),
      tokensPerSecond: decodeMs > 0 ? round((completion - 1) / (decodeMs / 1000)) : 0,
    },
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** The `data:` payloads of an event stream (WHATWG HTML §9.2), bounded. */
async function* sseData(
  stream: ReadableStream<Uint8Array>,
  isOverLimit: (bytes: number) => boolean,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  let data: string[] = [];
  for await (const chunk of stream) {
    if (isOverLimit(chunk.length)) {
      throw new InferenceError("EXTERNAL_FAILED", "The external backend's answer is too large");
    }
    buffer += decoder.decode(chunk, { stream: true });
    for (;;) {
      const at = buffer.search(/\r\n|\r|\n/);
      if (at === -1) break;
      const line = buffer.slice(0, at);
      buffer = buffer.slice(buffer.startsWith("\r\n", at) ? at + 2 : at + 1);
      if (line === "") {
        if (data.length > 0) yield data.join("\n");
        data = [];
      } else if (line.startsWith("data:")) {
        data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      }
    }
    if (buffer.length > MAX_LINE_BYTES) {
      throw new InferenceError(
        "EXTERNAL_FAILED",
        "The external backend sent a line that is too long",
      );
    }
  }
  if (data.length > 0) yield data.join("\n");
}
