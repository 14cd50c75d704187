/**
 * `GET /api/v1/controls`: the live capability matrix as JSON (one row per control: state,
 * restarts, granted permissions, contracts provided and used, sandbox jobs).
 * @module
 */
import type { Handlers } from "../../../workers/gateway/routing.ts";

/** Returns system state and every control's row. */
export const handler: Handlers = {
  async GET(_req, ctx) {
    const status = await ctx.state.status({ signal: ctx.signal });
    return Response.json({
      ready: status.ready,
      state: status.state,
      version: status.version,
      startedAt: status.startedAt,
      controls: status.controls,
    });
  },
};
