/**
 * `GET /api/v1/events`: the supervisor's event stream as server-sent events. Each system
 * event is `id: <seq>`, `event: system`, `data: <event JSON>`; a `gap` event says events were
 * dropped (reload the state); a comment is sent when nothing happened for a heartbeat
 * interval; `unavailable` (data `{code, message}`) precedes the end of the stream when the
 * events cannot be read, and the client reconnects after `retry`. A reconnecting client's
 * `Last-Event-ID` resumes after that event; a new client starts from now.
 *
 * One long-poll at a time per stream, and only while the client reads (the stream's `pull`),
 * so a client that stops reading costs no polling. The stream ends when the client leaves or
 * the gateway stops.
 * @module
 */
import { errorAnswer, GatewayError } from "../../../workers/gateway/errors.ts";
import type { Handlers, RouteContext } from "../../../workers/gateway/routing.ts";
import {
  formatSseComment,
  formatSseMessage,
  longPollStream,
  SSE_CONTENT_TYPE,
} from "../../../workers/gateway/sse.ts";

/** Reconnect delay the client is told to use. */
export const RETRY_MS = 3_000;
/** Most events sent per poll. */
const BATCH = 100;

/** Streams events. */
export const handler: Handlers = {
  GET(req, ctx) {
    const resumeAfter = parseLastEventId(req.headers.get("last-event-id"));
    const release = ctx.openStream();
    return new Response(eventStream(ctx, resumeAfter, release), {
      headers: {
        "content-type": SSE_CONTENT_TYPE,
        // Proxies must not buffer a stream.
        "x-accel-buffering": "no",
      },
    });
  },
};

function parseLastEventId(value: string | null): number | null {
  if (value === null || value === "") return null;
  if (!/^(?:-1|[0-9]{1,15})$/.test(value)) {
    throw new GatewayError(
      "INVALID_HEADER",
      `Invalid "Last-Event-ID" header "${value.slice(0, 40)}"`,
    );
  }
  return Number(value);
}

function eventStream(
  ctx: RouteContext,
  resumeAfter: number | null,
  release: () => void,
): ReadableStream<Uint8Array> {
  let after = resumeAfter;
  return longPollStream(ctx, {
    first: formatSseComment("connected"),
    async next(signal) {
      if (after === null) {
        // "Now": asking past the newest event returns none, and `last` = the newest seq.
        const now = await ctx.state.events(
          { after: Number.MAX_SAFE_INTEGER, waitMs: 0, limit: 1 },
          { signal },
        );
        after = now.last;
      }
      const page = await ctx.state.events(
        { after, waitMs: ctx.heartbeatMs, limit: BATCH },
        { signal },
      );
      let text = "";
      if (page.gap) {
        text += formatSseMessage({
          event: "gap",
          data: JSON.stringify({ after, last: page.last }),
        });
      }
      for (const event of page.events) {
        text += formatSseMessage({
          id: String(event.seq),
          event: "system",
          data: JSON.stringify(event),
        });
      }
      // Resume after what was sent; with nothing sent, `last` also follows a restarted
      // supervisor whose sequence began again.
      after = page.events.at(-1)?.seq ?? page.last;
      return { text };
    },
  }, { retryMs: RETRY_MS, release, answer: (err) => errorAnswer(err, ctx.requestId) });
}
