/**
 * How a stage runs one of the control's sandboxed jobs on the artifact: the limits of the
 * scanning jobs, and the one place a job's answer is checked. A job that does not end "ok"
 * or answers outside its contract throws, and the pipeline fails the stage (fail closed): a
 * file a job could not judge is never passed.
 * @module
 */
import type { z } from "zod";
import type { JobLimits } from "../../../runtime/kit/sandbox_api.ts";
import type { QuarantineConfig } from "../api.ts";
import type { StageContext } from "./stage.ts";

/**
 * Limits of a job that reads the whole artifact (static scan, directory checks): the
 * configured stage timeout as wall clock and CPU time, the configured scan memory.
 * @param config the quarantine config
 * @returns the job limits
 */
export function scanJobLimits(config: QuarantineConfig): JobLimits {
  return {
    timeoutMs: config.stageTimeoutMs,
    heapMb: config.scanHeapMb,
    memMb: config.scanMemMb,
    cpuSec: Math.ceil(config.stageTimeoutMs / 1000),
  };
}

/** Options of {@link runStageJob}. */
export interface StageJobOptions<T> {
  /** The job as named in error messages, in sentence case (`"Static scan"`). */
  label: string;
  /** The contract of the job's answer. */
  schema: z.ZodType<T, z.ZodTypeDef, unknown>;
  /** Arguments of the job. */
  args?: string[];
  limits: JobLimits;
}

/**
 * Runs a sandboxed job on the artifact and validates its answer.
 * @param ctx the stage context
 * @param job the job module's name, as the control's manifest allows it
 * @param options label, answer contract, arguments and limits
 * @returns the validated answer
 * @throws {Error} when the job ends other than "ok" or answers outside its contract
 */
export async function runStageJob<T>(
  ctx: StageContext,
  job: string,
  options: StageJobOptions<T>,
): Promise<T> {
  const result = await ctx.sandbox(job, {
    ...(options.args === undefined ? {} : { args: options.args }),
    limits: options.limits,
  });
  if (result.status !== "ok") {
    throw new Error(
      `${options.label} job ended "${result.status}"${
        result.error ? `: ${result.error.code} ${result.error.message}` : ""
      }`,
    );
  }
  const parsed = options.schema.safeParse(result.result);
  if (!parsed.success) throw new Error(`${options.label} job answered outside its contract`);
  return parsed.data;
}
