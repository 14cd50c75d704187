/**
 * `GET /api/v1/models/:id`: one registry entry (hashes, provenance, scan summary, policy
 * decision, promotion and revocation).
 * @module
 */
import { ModelIdSchema } from "../../../../../workers/registry/api.ts";
import { GatewayError } from "../../../../../workers/gateway/errors.ts";
import type { Handlers, RouteContext } from "../../../../../workers/gateway/routing.ts";
import { answer } from "../../(_models)/respond.ts";

/** The model id of the path, validated. */
export function modelIdOf(ctx: Pick<RouteContext, "params">): string {
  const parsed = ModelIdSchema.safeParse(ctx.params.id);
  if (!parsed.success) {
    throw new GatewayError("NOT_FOUND", `No model "${String(ctx.params.id).slice(0, 40)}"`);
  }
  return parsed.data;
}

/** Reads a model. */
export const handler: Handlers = {
  GET: (_req, ctx) =>
    answer(ctx, () => ctx.state.registry.get({ id: modelIdOf(ctx) }, { signal: ctx.signal })),
};
