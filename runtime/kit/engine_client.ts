/**
 * Calling side helpers of the `engine` port (runtime/kit/engine_api.ts): a generation as an
 * async iterable of events (started, then long-polled), and a generation collected into one
 * answer. Cancelling the signal cancels the generation in the engine.
 * @module
 */
import type {
  engineApi,
  FinishReason,
  GenerateOptionsInput,
  Prompt,
  StreamEvent,
  Timings,
  Usage,
} from "./engine_api.ts";
import { RpcError } from "./errors.ts";
import type { RpcClient } from "./rpc.ts";

/** Long-poll wait per call. */
const POLL_WAIT_MS = 10_000;
/** Time a poll call may take beyond its wait. */
const POLL_MARGIN_MS = 5_000;

/** Options of {@link streamGeneration} and {@link generateText}. */
export interface GenerationOptions {
  /** Cancels the generation in the engine. */
  signal?: AbortSignal;
}

/**
 * Starts a generation and yields its events until `done` or `error` (inclusive).
 * @param engine the `engine` port
 * @param engineId a loaded engine
 * @param prompt what to generate from
 * @param options generation options
 * @param control cancellation
 */
export async function* streamGeneration(
  engine: RpcClient<typeof engineApi>,
  request: { engineId: string; prompt: Prompt; options: GenerateOptionsInput },
  control: GenerationOptions = {},
): AsyncGenerator<StreamEvent> {
  const { streamId } = await engine.call("generate", request, {
    ...(control.signal ? { signal: control.signal } : {}),
  });
  let after = -1;
  let isFinished = false;
  try {
    for (;;) {
      const page = await engine.call("poll", { streamId, after, waitMs: POLL_WAIT_MS }, {
        deadlineMs: POLL_WAIT_MS + POLL_MARGIN_MS,
        ...(control.signal ? { signal: control.signal } : {}),
      });
      for (const event of page.events) {
        after = event.seq;
        if (event.kind !== "text") isFinished = true;
        yield event;
      }
      if (page.isDone) {
        isFinished = true;
        return;
      }
    }
  } finally {
    if (!isFinished) {
      // The caller stopped early (break, throw, abort): stop the engine too.
      await engine.call("cancel", { streamId }).catch(() => undefined);
    }
  }
}

/** A generation collected into one answer. */
export interface GeneratedText {
  text: string;
  reason: FinishReason;
  usage: Usage;
  timings: Timings;
}

/**
 * Runs a generation to its end and returns the whole text.
 * @throws {RpcError} with the engine's code when the generation fails
 */
export async function generateText(
  engine: RpcClient<typeof engineApi>,
  request: { engineId: string; prompt: Prompt; options: GenerateOptionsInput },
  control: GenerationOptions = {},
): Promise<GeneratedText> {
  let text = "";
  for await (const event of streamGeneration(engine, request, control)) {
    if (event.kind === "text") text += event.text;
    else if (event.kind === "error") throw new RpcError(event.code, event.message);
    else return { text, reason: event.reason, usage: event.usage, timings: event.timings };
  }
  throw new RpcError("PROTOCOL_ERROR", "The generation ended without a result");
}
