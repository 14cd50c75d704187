/**
 * `POST /api/v1/quarantine/:id/promote`: approves a job the promotion policy answered `ask`
 * for, or retries a promotion whose request failed. The registry asks the policy again; a
 * `deny` stands whatever is sent here. 409 in any other state.
 * @module
 */
import type { Handlers } from "../../../../../workers/gateway/routing.ts";
import { answer } from "../../(_models)/respond.ts";
import { jobIdOf } from "./index.ts";

/** Approves or retries a promotion. */
export const handler: Handlers = {
  POST: (_req, ctx) =>
    answer(ctx, () => ctx.state.quarantine.promote({ id: jobIdOf(ctx) }), { status: 202 }),
};
