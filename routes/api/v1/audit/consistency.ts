/**
 * `GET /api/v1/audit/consistency?from=N[&to=M]`: an RFC 9162 consistency proof that the tree
 * of N entries (a head obtained earlier) is a prefix of the latest signed head's tree, or of
 * the signed head of size M.
 * @module
 */
import { z } from "zod";
import type { Handlers } from "../../../../workers/gateway/routing.ts";
import { answerAudit } from "../(_audit)/respond.ts";

/** Query parameters; unknown ones are refused. */
export const ConsistencyParamsSchema = z.strictObject({
  from: z.string().regex(/^\d{1,15}$/, "expected a tree size").transform(Number),
  to: z.string().regex(/^\d{1,15}$/, "expected a tree size").transform(Number).optional(),
});

/** Asks the audit control for a consistency proof. */
export const handler: Handlers = {
  GET(_req, ctx) {
    const { from, to } = ctx.query(ConsistencyParamsSchema);
    return answerAudit(
      ctx,
      () =>
        ctx.state.auditLog.consistency(
          { from, ...(to === undefined ? {} : { to }) },
          { signal: ctx.signal },
        ),
    );
  },
};
