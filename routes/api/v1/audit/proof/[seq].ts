/**
 * `GET /api/v1/audit/proof/:seq[?size=N]`: the entry, its RFC 9162 inclusion proof and the
 * signed head it proves into (the latest, or the one of size N); checkable offline with only
 * the public key.
 * @module
 */
import { z } from "zod";
import { GatewayError } from "../../../../../workers/gateway/errors.ts";
import type { Handlers } from "../../../../../workers/gateway/routing.ts";
import { answerAudit } from "../../(_audit)/respond.ts";

const SeqParam = z.string().regex(/^\d{1,15}$/).transform(Number);
const Query = z.strictObject({ size: SeqParam.optional() });

/** Asks the audit control for an inclusion proof. */
export const handler: Handlers = {
  GET(_req, ctx) {
    const seq = SeqParam.safeParse(ctx.params.seq);
    if (!seq.success) {
      throw new GatewayError(
        "INVALID_QUERY",
        `Sequence number "${String(ctx.params.seq).slice(0, 40)}" is not a non-negative integer`,
      );
    }
    const { size } = ctx.query(Query);
    return answerAudit(
      ctx,
      () =>
        ctx.state.auditLog.proof(
          { seq: seq.data, ...(size === undefined ? {} : { size }) },
          { signal: ctx.signal },
        ),
    );
  },
};
