/**
 * Sandboxed job runner: runs a job module in a short-lived `deno run` subprocess with
 * minimal Deno permissions, rlimits, no capabilities, no_new_privs, Landlock, seccomp, a
 * wall-clock kill of its whole process group, and cancellation.
 *
 * @example
 * ```ts
 * import { JobRunner } from "./runtime/sandbox/mod.ts";
 *
 * const runner = new JobRunner({
 *   home: "/var/lib/secai",
 *   codeRoots: ["/opt/secai/runtime/kit", "/opt/secai/workers", "/opt/secai/node_modules"],
 *   configPath: "/opt/secai/deno.json",
 * });
 * const result = await runner.run({
 *   module: "/opt/secai/workers/quarantine/jobs/scan.ts",
 *   input: { kind: "file", path: "incoming/model.safetensors" },
 *   args: [],
 *   limits: { timeoutMs: 60_000, heapMb: 256 },
 * });
 * if (result.status !== "ok") throw new Error(result.error?.message);
 * ```
 * @module
 */
export {
  JobRunner,
  type JobRunnerOptions,
  type JobRunnerTestHooks,
  type JobSpec,
  MAX_STDOUT_BYTES,
  type RunOptions,
  STDERR_TAIL_BYTES,
} from "./runner.ts";
export { SandboxError, type SandboxErrorCode } from "./errors.ts";
export {
  DEFAULT_LIMITS,
  DEFAULT_MAX_LIMITS,
  type ResolvedLimits,
  resolveLimits,
} from "./limits.ts";
