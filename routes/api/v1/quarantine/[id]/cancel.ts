/**
 * `POST /api/v1/quarantine/:id/cancel`: stops a job that has not finished; its artifact is
 * deleted. 409 when it already finished (or its promotion request is in flight).
 * @module
 */
import type { Handlers } from "../../../../../workers/gateway/routing.ts";
import { answer } from "../../(_models)/respond.ts";
import { jobIdOf } from "./index.ts";

/** Cancels a job. */
export const handler: Handlers = {
  POST: (_req, ctx) => answer(ctx, () => ctx.state.quarantine.cancel({ id: jobIdOf(ctx) })),
};
