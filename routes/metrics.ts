/**
 * `GET /metrics`: Prometheus text exposition of the whole system, rendered by the supervisor
 * from its view of every worker.
 * @module
 */
import type { Handlers } from "../workers/gateway/routing.ts";

/** Prometheus text format 0.0.4. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Serves the metrics text. */
export const handler: Handlers = {
  async GET(_req, ctx) {
    const text = await ctx.state.metrics({ signal: ctx.signal });
    return new Response(text, { headers: { "content-type": METRICS_CONTENT_TYPE } });
  },
};
