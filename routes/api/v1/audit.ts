/**
 * `GET /api/v1/audit?before=&limit=&control=&type=`: a page of the audit log, newest first.
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
});

/** Forwards the query to the audit control. */
export const handler: Handlers = {
  async GET(_req, ctx) {
    const query = ctx.query(AuditQueryParamsSchema);
    return Response.json(await ctx.state.queryAudit(query, { signal: ctx.signal }));
  },
};
