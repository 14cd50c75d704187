/**
 * `POST /api/v1/tools/check` with `{tool, args, session}`: the tool firewall's decision on
 * one proposed call. 200 with `{allowed, decision, rule, reasons, policy_version}` for every
 * decision (deny included); 429 with `Retry-After` when a rate limit refused it. Fails
 * closed: when no decision can be had the answer is 503 with `decision: "deny"`.
 * @module
 */
import { ToolCallSchema } from "../../../../workers/tool-firewall/api.ts";
import { errorAnswer } from "../../../../workers/gateway/errors.ts";
import type { Handlers } from "../../../../workers/gateway/routing.ts";

/** Asks the tool firewall. */
export const handler: Handlers = {
  async POST(_req, ctx) {
    const call = ctx.json(ToolCallSchema);
    try {
      const result = await ctx.state.checkTool(call, { signal: ctx.signal });
      if (result.retry_after_ms !== undefined) {
        return Response.json(result, {
          status: 429,
          headers: { "retry-after": String(Math.max(1, Math.ceil(result.retry_after_ms / 1000))) },
        });
      }
      return Response.json(result);
    } catch (err) {
      // No decision is a deny, whatever the failure; the code says which failure it was.
      ctx.reportError(err);
      const answer = errorAnswer(err, ctx.requestId);
      return Response.json(
        {
          allowed: false,
          decision: "deny",
          error: { code: answer.code, message: answer.message, requestId: ctx.requestId },
        },
        { status: 503, headers: { "retry-after": "1" } },
      );
    }
  },
};
