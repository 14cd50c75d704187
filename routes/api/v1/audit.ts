/**
 * `GET /api/v1/audit?before=&limit=&control=&type=&decision=&from=&to=&q=`: a page of the
 * audit log, newest first. `from`/`to` are ISO 8601 times (from inclusive, to exclusive),
 * `q` a case-insensitive text the subject contains; `next` in the answer is the `before` of
 * the next page.
 * @module
 */
import { z } from "zod";
import { INTEGER_PARAM_PATTERN } from "../../../workers/gateway/http.ts";
import type { Handlers } from "../../../workers/gateway/routing.ts";

const IntegerParam = z.string().regex(INTEGER_PARAM_PATTERN, "expected a decimal integer")
  .transform(
    Number,
  );

/** Query parameters; unknown ones are refused. */
export const AuditQueryParamsSchema = z.strictObject({
  before: IntegerParam.pipe(z.number().int().min(1)).optional(),
  limit: IntegerParam.pipe(z.number().int().min(1).max(500)).optional(),
  control: z.string().regex(/^[a-z][a-z0-9-]{0,39}$/).optional(),
  type: z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/).optional(),
  decision: z.enum(["allow", "deny", "ask"]).optional(),
  from: z.string().datetime({ offset: true }).optional(),
  to: z.string().datetime({ offset: true }).optional(),
  q: z.string().min(1).max(200).optional(),
});

/** Forwards the query to the audit control. */
export const handler: Handlers = {
  async GET(_req, ctx) {
    const { q, ...query } = ctx.query(AuditQueryParamsSchema);
    return Response.json(
      await ctx.state.queryAudit(q === undefined ? query : { ...query, text: q }, {
        signal: ctx.signal,
      }),
    );
  },
};
