/**
 * `GET /api/v1/models`: the trusted registry, in promotion order (`?revoked=true` includes
 * revoked models with their reason).
 * @module
 */
import { z } from "zod";
import type { Handlers } from "../../../../workers/gateway/routing.ts";
import { answer } from "../(_models)/respond.ts";

const QuerySchema = z.strictObject({ revoked: z.enum(["true", "false"]).default("false") });

/** Lists models. */
export const handler: Handlers = {
  GET(_req, ctx) {
    const query = ctx.query(QuerySchema);
    return answer(
      ctx,
      () =>
        ctx.state.registry.list({ includeRevoked: query.revoked === "true" }, {
          signal: ctx.signal,
        }),
    );
  },
};
