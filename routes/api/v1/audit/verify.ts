/**
 * `POST /api/v1/audit/verify` with `{}`: runs a full verification of the audit log in the
 * audit control now and returns the report (`isIntact`, `firstBadSeq`, `kind`, `detail`).
 * The run is itself recorded as an `audit.verified` entry.
 * @module
 */
import { z } from "zod";
import type { Handlers } from "../../../../workers/gateway/routing.ts";
import { answerAudit } from "../(_audit)/respond.ts";

/** The body: an empty object (room for options later). */
export const VerifyBodySchema = z.strictObject({});

/** Verifying a large log reads every segment: allow minutes, not the default seconds. */
const VERIFY_DEADLINE_MS = 10 * 60_000;

/** Asks the audit control to verify. */
export const handler: Handlers = {
  POST(_req, ctx) {
    ctx.json(VerifyBodySchema);
    return answerAudit(
      ctx,
      () => ctx.state.auditLog.verify({}, { signal: ctx.signal, deadlineMs: VERIFY_DEADLINE_MS }),
    );
  },
};
