/**
 * `GET /api/v1/policy`: the policy in force — its version, where each file came from, the
 * validated content, the tool registry and the last refused reload (if any).
 * @module
 */
import type { Handlers } from "../../../../workers/gateway/routing.ts";

/** Asks the policy control's read-only view. */
export const handler: Handlers = {
  async GET(_req, ctx) {
    return Response.json(await ctx.state.policyCurrent({ signal: ctx.signal }));
  },
};
