/**
 * Default and maximum job limits, and how a caller's request is clamped to the maxima.
 * @module
 */
import type { JobLimits } from "../kit/sandbox_api.ts";

/** Every limit set. */
export type ResolvedLimits = { [K in keyof JobLimits]-?: number };

/** Limits of a job whose caller names none. */
export const DEFAULT_LIMITS: Readonly<ResolvedLimits> = Object.freeze({
  timeoutMs: 30_000,
  heapMb: 256,
  memMb: 1024,
  cpuSec: 30,
});

/** Maxima of a runner whose options name none. */
export const DEFAULT_MAX_LIMITS: Readonly<ResolvedLimits> = Object.freeze({
  timeoutMs: 10 * 60_000,
  heapMb: 4096,
  memMb: 16384,
  cpuSec: 600,
});

/** Open files of a job (RLIMIT_NOFILE): enough for Deno, a worker and a few files. */
export const JOB_NOFILE = 64;

/**
 * Fills in defaults and clamps each limit to the runner's maximum: a caller may ask for less
 * than the maximum, never for more.
 * @param requested the caller's limits (already validated against `JobLimitsSchema`)
 * @param max the runner's maxima; missing ones default to {@link DEFAULT_MAX_LIMITS}
 * @returns every limit, each ≤ its maximum
 */
export function resolveLimits(requested: JobLimits, max: JobLimits = {}): ResolvedLimits {
  const pick = (key: keyof JobLimits): number =>
    Math.min(
      requested[key] ?? DEFAULT_LIMITS[key],
      max[key] ?? DEFAULT_MAX_LIMITS[key],
    );
  return {
    timeoutMs: pick("timeoutMs"),
    heapMb: pick("heapMb"),
    memMb: pick("memMb"),
    cpuSec: pick("cpuSec"),
  };
}
