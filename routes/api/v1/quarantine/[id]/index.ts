/**
 * `GET /api/v1/quarantine/:id`: one job with the record of every stage (input, findings,
 * verdict, timing).
 * @module
 */
import { JobIdSchema } from "../../../../../workers/quarantine/api.ts";
import { GatewayError } from "../../../../../workers/gateway/errors.ts";
import type { Handlers, RouteContext } from "../../../../../workers/gateway/routing.ts";
import { answer } from "../../(_models)/respond.ts";

/** The job id of the path, validated. */
export function jobIdOf(ctx: Pick<RouteContext, "params">): string {
  const parsed = JobIdSchema.safeParse(ctx.params.id);
  if (!parsed.success) {
    throw new GatewayError(
      "NOT_FOUND",
      `No quarantine job "${String(ctx.params.id).slice(0, 40)}"`,
    );
  }
  return parsed.data;
}

/** Reads a job. */
export const handler: Handlers = {
  GET: (_req, ctx) =>
    answer(ctx, () => ctx.state.quarantine.get({ id: jobIdOf(ctx) }, { signal: ctx.signal })),
};
