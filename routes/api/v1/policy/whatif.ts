/**
 * `POST /api/v1/policy/whatif` with `{policy?, agent?, limit?}` (the candidate files' text;
 * an absent file is the one in force): replays the newest `limit` logged decisions of the
 * policy control under the candidate and reports every decision that would change, before
 * the candidate is applied. A candidate that does not load is answered 422 naming the file,
 * field and reason.
 * @module
 */
import { z } from "zod";
import {
  fromAuditEntry,
  type LoggedDecision,
  MAX_POLICY_BYTES,
  MAX_WHATIF_ENTRIES,
} from "../../../../workers/policy/api.ts";
import { RpcError } from "../../../../runtime/kit/errors.ts";
import type { Handlers } from "../../../../workers/gateway/routing.ts";

/** The request body. */
export const WhatIfBodySchema = z.strictObject({
  policy: z.string().max(MAX_POLICY_BYTES).optional(),
  agent: z.string().max(MAX_POLICY_BYTES).optional(),
  /** How many of the newest logged decisions to replay. */
  limit: z.number().int().min(1).max(MAX_WHATIF_ENTRIES).default(1000),
}).refine((b) => b.policy !== undefined || b.agent !== undefined, {
  message: "expected a candidate policy or agent file",
});

/** Audit entries read per page. */
const PAGE = 500;

/** Collects logged decisions (newest first from the log), then replays them. */
export const handler: Handlers = {
  async POST(_req, ctx) {
    const body = ctx.json(WhatIfBodySchema);
    const entries: LoggedDecision[] = [];
    let skipped = 0;
    let before: number | undefined;
    while (entries.length < body.limit) {
      const page = await ctx.state.queryAudit({
        type: "policy.decision",
        control: "policy",
        limit: Math.min(PAGE, body.limit - entries.length),
        ...(before === undefined ? {} : { before }),
      }, { signal: ctx.signal });
      for (const entry of page.entries) {
        const logged = fromAuditEntry(entry);
        if (logged) entries.push(logged);
        else skipped++;
      }
      if (page.next === null || page.entries.length === 0) break;
      before = page.next;
    }
    entries.reverse(); // replay in log order
    try {
      const report = await ctx.state.policyWhatIf({
        candidate: {
          ...(body.policy === undefined ? {} : { policy: body.policy }),
          ...(body.agent === undefined ? {} : { agent: body.agent }),
        },
        entries,
      }, { signal: ctx.signal, deadlineMs: 30_000 });
      return Response.json({ ...report, skipped });
    } catch (err) {
      if (err instanceof RpcError && err.code === "POLICY_INVALID") {
        return Response.json(
          { error: { code: err.code, message: err.message, requestId: ctx.requestId } },
          { status: 422 },
        );
      }
      throw err;
    }
  },
};
