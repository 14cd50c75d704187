/**
 * `GET /api/v1/quarantine/:id/findings`: every finding of a job across its stages (where:
 * offset/member; why: rule, callable, opcode), with the failure that decided it.
 * @module
 */
import type { Handlers } from "../../../../../workers/gateway/routing.ts";
import { answer } from "../../(_models)/respond.ts";
import { jobIdOf } from "./index.ts";

/** Reads a job's findings. */
export const handler: Handlers = {
  GET: (_req, ctx) =>
    answer(ctx, async () => {
      const job = await ctx.state.quarantine.get({ id: jobIdOf(ctx) }, { signal: ctx.signal });
      return {
        id: job.id,
        state: job.state,
        stage: job.stage,
        error: job.error,
        findings: job.stages.flatMap((s) =>
          s.findings.map((finding) => ({ pipelineStage: s.stage, ...finding }))
        ),
      };
    }),
};
