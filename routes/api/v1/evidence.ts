/**
 * `GET /api/v1/evidence`: the evidence matrix (policy/controls.yaml): each control of the spec,
 * its status and the tests that prove it.
 * @module
 */
import type { Handlers } from "../../../workers/gateway/routing.ts";

/** Returns the matrix with its summary. */
export const handler: Handlers = {
  async GET(_req, ctx) {
    return Response.json(await ctx.state.evidence({ signal: ctx.signal }));
  },
};
