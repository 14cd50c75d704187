/**
 * `POST /api/v1/policy/decide` with `{domain, input}`: the policy control's decision.
 * Fails closed (ARCHITECTURE.md principle 2): when no decision can be had (policy down, slow,
 * or answering outside its contract) the answer is 503 with `decision: "deny"` and the code.
 * @module
 */
import { DecideInputSchema } from "../../../../workers/policy/api.ts";
import { errorAnswer } from "../../../../workers/gateway/errors.ts";
import type { Handlers } from "../../../../workers/gateway/routing.ts";

/** Asks the policy control. */
export const handler: Handlers = {
  async POST(_req, ctx) {
    const request = ctx.json(DecideInputSchema);
    try {
      return Response.json(await ctx.state.decide(request, { signal: ctx.signal }));
    } catch (err) {
      // No decision is a deny, whatever the failure; the code says which failure it was.
      ctx.reportError(err);
      const answer = errorAnswer(err, ctx.requestId);
      return Response.json(
        {
          decision: "deny",
          error: { code: answer.code, message: answer.message, requestId: ctx.requestId },
        },
        { status: 503, headers: { "retry-after": "1" } },
      );
    }
  },
};
