/**
 * `GET /api/v1/audit/head`: the latest signed tree head of the audit log and the public key
 * that signs heads (keep a copy of both to check the log later: `secai audit verify --head`).
 * @module
 */
import type { Handlers } from "../../../../workers/gateway/routing.ts";
import { answerAudit } from "../(_audit)/respond.ts";

/** Asks the audit control for its head. */
export const handler: Handlers = {
  GET: (_req, ctx) => answerAudit(ctx, () => ctx.state.auditLog.head({}, { signal: ctx.signal })),
};
