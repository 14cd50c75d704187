/**
 * `GET /api/v1/audit/export?from=A&to=B`: entries A..B (inclusive, at most 10 000) as a
 * self-verifying bundle: each entry with its inclusion proof, and the signed head
 * (`secai audit check-bundle FILE --pubkey KEY` checks it).
 * @module
 */
import { z } from "zod";
import type { Handlers } from "../../../../workers/gateway/routing.ts";
import { answerAudit } from "../(_audit)/respond.ts";

const Seq = z.string().regex(/^\d{1,15}$/, "expected a sequence number").transform(Number);

/** Query parameters; unknown ones are refused. */
export const ExportParamsSchema = z.strictObject({ from: Seq, to: Seq });

/** Bundles of many entries take a while to prove. */
const EXPORT_DEADLINE_MS = 60_000;

/** Asks the audit control for a bundle. */
export const handler: Handlers = {
  GET(_req, ctx) {
    const range = ctx.query(ExportParamsSchema);
    return answerAudit(ctx, async () => {
      const bundle = await ctx.state.auditLog.export(range, {
        signal: ctx.signal,
        deadlineMs: EXPORT_DEADLINE_MS,
      });
      return bundle;
    });
  },
};
