/**
 * `POST /api/v1/models/:id/revoke` with `{reason}`: the model is never served again, its
 * blob is deleted and its content can never be promoted again. Recorded in the audit log.
 * @module
 */
import { z } from "zod";
import type { Handlers } from "../../../../../workers/gateway/routing.ts";
import { answer } from "../../(_models)/respond.ts";
import { modelIdOf } from "./index.ts";

const BodySchema = z.strictObject({ reason: z.string().min(1).max(1000) });

/** Revokes a model. */
export const handler: Handlers = {
  POST(_req, ctx) {
    const { reason } = ctx.json(BodySchema);
    return answer(ctx, () => ctx.state.registry.revoke({ id: modelIdOf(ctx), reason }));
  },
};
