/**
 * `GET /api/v1/quarantine/:id/events`: one job's progress as server-sent events. First a
 * `job` event with the job as it stands; then, from the supervisor's event stream, the
 * quarantine's events for this job: `progress` (`{stage, bytes, total}`), `stage` (a stage
 * started or finished, with its verdict) and `state`; when the job reaches a state where it
 * stops on its own (promoted, rejected, cancelled, awaiting approval, promotion failed) a
 * final `job` event, and the stream ends. A `gap` in the event ring re-sends `job`.
 * @module
 */
import type { JobSummary } from "../../../../../workers/quarantine/api.ts";
import { errorAnswer } from "../../../../../workers/gateway/errors.ts";
import type { Handlers, RouteContext } from "../../../../../workers/gateway/routing.ts";
import {
  formatSseMessage,
  longPollStream,
  SSE_CONTENT_TYPE,
} from "../../../../../workers/gateway/sse.ts";
import { refusal } from "../../(_models)/respond.ts";
import { jobIdOf } from "./index.ts";

const RETRY_MS = 3_000;
const BATCH = 100;
const SETTLED: ReadonlySet<string> = new Set([
  "promoted",
  "rejected",
  "cancelled",
  "awaiting_approval",
  "promotion_failed",
]);
const EVENT_NAMES: Readonly<Record<string, string>> = {
  "quarantine.progress": "progress",
  "quarantine.stage": "stage",
  "quarantine.job": "state",
  "quarantine.resumed": "state",
};

/** Streams a job's progress. */
export const handler: Handlers = {
  async GET(_req, ctx) {
    const id = jobIdOf(ctx);
    // Mark "now" before reading the job, so no event between the two is lost.
    const now = await ctx.state.events(
      { after: Number.MAX_SAFE_INTEGER, waitMs: 0, limit: 1 },
      { signal: ctx.signal },
    );
    let job: JobSummary;
    try {
      job = await ctx.state.quarantine.get({ id }, { signal: ctx.signal });
    } catch (error) {
      const mapped = refusal(ctx, error);
      if (mapped !== null) return mapped;
      throw error;
    }
    const release = ctx.openStream();
    return new Response(jobStream(ctx, id, job, now.last, release), {
      headers: { "content-type": SSE_CONTENT_TYPE, "x-accel-buffering": "no" },
    });
  },
};

function summaryOf(job: JobSummary): JobSummary {
  const { id, filename, source, state, stage, format, size, bytesDone, sha256, fsverity, error } =
    job;
  return {
    id,
    filename,
    source,
    state,
    stage,
    format,
    size,
    bytesDone,
    sha256,
    fsverity,
    error,
    decision: job.decision,
    modelId: job.modelId,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
  };
}

function jobStream(
  ctx: RouteContext,
  id: string,
  first: JobSummary,
  startAfter: number,
  release: () => void,
): ReadableStream<Uint8Array> {
  let after = startAfter;
  const jobEvent = (job: JobSummary) =>
    formatSseMessage({ event: "job", data: JSON.stringify(summaryOf(job)) });
  return longPollStream(ctx, {
    first: jobEvent(first),
    isDoneAtStart: SETTLED.has(first.state),
    async next(signal) {
      const page = await ctx.state.events(
        { after, waitMs: ctx.heartbeatMs, limit: BATCH },
        { signal },
      );
      let text = "";
      let isSettled = page.gap;
      for (const event of page.events) {
        if (event.source !== "quarantine" || event.data.jobId !== id) continue;
        const name = EVENT_NAMES[event.type];
        if (name === undefined) continue;
        text += formatSseMessage({
          id: String(event.seq),
          event: name,
          data: JSON.stringify(event.data),
        });
        if (event.type === "quarantine.job" && SETTLED.has(String(event.data.state))) {
          isSettled = true;
        }
      }
      after = page.events.at(-1)?.seq ?? page.last;
      if (!isSettled) return { text };
      const job = await ctx.state.quarantine.get({ id }, { signal });
      return { text: text + jobEvent(job), isDone: SETTLED.has(job.state) };
    },
  }, { retryMs: RETRY_MS, release, answer: (err) => errorAnswer(err, ctx.requestId) });
}
