/**
 * `GET /api/v1/ready`: 200 when the supervisor reports the system ready, else 503; both
 * list each control's state.
 * @module
 */
import type { Handlers } from "../../../workers/gateway/routing.ts";

/** Reports readiness. */
export const handler: Handlers = {
  async GET(_req, ctx) {
    const status = await ctx.state.status({ signal: ctx.signal });
    const body = {
      ready: status.ready,
      state: status.state,
      controls: status.controls.map((c) => ({
        name: c.name,
        state: c.state,
        required: c.required,
      })),
    };
    return status.ready
      ? Response.json(body)
      : Response.json(body, { status: 503, headers: { "retry-after": "1" } });
  },
};
