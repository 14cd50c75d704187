/**
 * Server-sent events framing (WHATWG HTML §9.2, "Server-sent events"): one message is
 * `event:`, `id:` and `data:` lines ended by a blank line; lines starting with `:` are
 * comments (used as heartbeats).
 * @module
 */

/** One message of an event stream. */
export interface SseMessage {
  /** Becomes the client's Last-Event-ID. */
  id?: string;
  /** Event type; the client listens with `addEventListener(type)`. */
  event?: string;
  /** Payload; may span lines. */
  data: string;
}

/** Content type of an event stream. */
export const SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8";

// A line break inside `id` or `event` would let the value inject fields of its own; NUL
// makes clients ignore an id.
const FIELD_PATTERN = /^[^\r\n\0]{0,256}$/;

/**
 * Frames one message.
 * @param message id, event type and data
 * @returns the message's text, ending with a blank line
 * @throws {TypeError} when `id` or `event` holds a line break or NUL, or is over 256 chars
 */
export function formatSseMessage(message: SseMessage): string {
  let out = "";
  for (const field of ["id", "event"] as const) {
    const value = message[field];
    if (value === undefined) continue;
    if (!FIELD_PATTERN.test(value)) {
      throw new TypeError(`Invalid SSE ${field} "${value.slice(0, 40)}"`);
    }
    out += `${field}: ${value}\n`;
  }
  for (const line of message.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return `${out}\n`;
}

/**
 * Frames a comment, which clients ignore; it keeps proxies and the client's own timeout from
 * closing an idle stream.
 * @param text one line of text
 * @returns the comment, ending with a blank line
 */
export function formatSseComment(text: string): string {
  return `: ${text.replaceAll(/[\r\n]/g, " ")}\n\n`;
}

/** What {@link longPollStream} needs from the request. */
export interface LongPollContext {
  /** Aborted when the client leaves. */
  signal: AbortSignal;
  /** Aborted when the gateway stops. */
  stopSignal: AbortSignal;
  requestId: string;
  reportError(error: unknown): void;
}

/** One stream's content: its first message and each long-poll step after it. */
export interface LongPollSource {
  /** Sent first, after the `retry:` line. */
  first: string;
  /** End right after the first message (nothing more will come). */
  isDoneAtStart?: boolean;
  /**
   * One step: waits for what there is to send (up to the heartbeat period). Empty text sends
   * a heartbeat comment; `isDone` ends the stream after the text.
   */
  next(signal: AbortSignal): Promise<{ text: string; isDone?: boolean }>;
}

/**
 * An event stream driven by long-polling, shared by every SSE route: the client leaving or
 * the gateway stopping ends it (and releases its slot once), and a failing step sends one
 * `unavailable` event with the error's code, then ends.
 * @param ctx the request's signals and error reporting
 * @param source the first message and the poll step
 * @param options `retryMs` for the client's reconnect delay; `release` frees the stream slot
 */
export function longPollStream(
  ctx: LongPollContext,
  source: LongPollSource,
  options: {
    retryMs: number;
    release: () => void;
    answer: (error: unknown) => { code: string; message: string };
  },
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const local = new AbortController();
  let isClosed = false;
  let stream: ReadableStreamDefaultController<Uint8Array> | null = null;

  function end(): void {
    if (isClosed) return;
    isClosed = true;
    local.abort();
    options.release();
    stream?.close();
  }
  // Either the client leaving or the gateway stopping ends the stream; the listeners go
  // away with `local`, so a long-lived stop signal does not collect them.
  for (const signal of [ctx.signal, ctx.stopSignal]) {
    if (signal.aborted) local.abort();
    signal.addEventListener("abort", end, { once: true, signal: local.signal });
  }

  return new ReadableStream<Uint8Array>({
    start(controller) {
      stream = controller;
      controller.enqueue(encoder.encode(`retry: ${options.retryMs}\n\n${source.first}`));
      if (source.isDoneAtStart || local.signal.aborted) end();
    },
    async pull(controller) {
      if (isClosed) return;
      try {
        const { text, isDone } = await source.next(local.signal);
        if (!isClosed) controller.enqueue(encoder.encode(text || formatSseComment("heartbeat")));
        if (isDone) end();
      } catch (err) {
        if (isClosed) return; // the client left or the gateway stops: nothing to tell
        ctx.reportError(err);
        const { code, message } = options.answer(err);
        controller.enqueue(
          encoder.encode(
            formatSseMessage({ event: "unavailable", data: JSON.stringify({ code, message }) }),
          ),
        );
        end();
      }
    },
    cancel() {
      isClosed = true;
      local.abort();
      options.release();
    },
  });
}
