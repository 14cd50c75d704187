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
