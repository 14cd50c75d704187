/**
 * `GET /api/v1/audit/proof/:seq`: the entry, its RFC 9162 inclusion proof and the signed head
 * it proves into; checkable offline with only the public key.
 * @module
 */
import { z } from "zod";
import { GatewayError } from "../../../../../workers/gateway/errors.ts";
import type { Handlers } from "../../../../../workers/gateway/routing.ts";
import { answerAudit } from "../../(_audit)/respond.ts";

const SeqParam = z.string().regex(/^\d{1,15}$/).transform(Number);

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
    return answerAudit(
      ctx,
      () => ctx.state.auditLog.proof({ seq: seq.data }, { signal: ctx.signal }),
    );
  },
};
