/**
 * `GET /api/v1/audit/consistency?from=N`: an RFC 9162 consistency proof that the tree of N
 * entries (a head obtained earlier) is a prefix of the latest signed head's tree.
 * @module
 */
import { z } from "zod";
import type { Handlers } from "../../../../workers/gateway/routing.ts";
import { answerAudit } from "../(_audit)/respond.ts";

/** Query parameters; unknown ones are refused. */
export const ConsistencyParamsSchema = z.strictObject({
  from: z.string().regex(/^\d{1,15}$/, "expected a tree size").transform(Number),
});

/** Asks the audit control for a consistency proof. */
export const handler: Handlers = {
  GET(_req, ctx) {
    const { from } = ctx.query(ConsistencyParamsSchema);
    return answerAudit(ctx, () => ctx.state.auditLog.consistency({ from }, { signal: ctx.signal }));
  },
};
