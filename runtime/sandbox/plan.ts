/**
 * Builds the launcher's instructions for one job: the job's deno command line with its
 * minimal permissions, its environment, its Landlock rules and its limits. Pure: the runner
 * resolves every path first.
 * @module
 */
import type { LandlockRule } from "../../ffi/landlock.ts";
import { INLINE_INPUT_ARG, JOB_ARGV_TAG } from "../kit/job.ts";
import { BOOT_ENV, type LaunchSpec } from "./_protocol.ts";
import { JOB_NOFILE, type ResolvedLimits } from "./limits.ts";

/**
 * Environment of the launcher and the job; nothing is inherited (`clearEnv`).
 * DENO_DIR can never be created (a path below a device), so nothing is cached or written
 * between jobs; with the emit cache disabled Deno does not retry failing cache writes
 * (+150 ms per start otherwise). Jobs resolve npm packages from the project's node_modules.
 */
export const SANDBOX_ENV: Readonly<Record<string, string>> = Object.freeze({
  NO_COLOR: "1",
  DENO_NO_UPDATE_CHECK: "1",
  DENO_DIR: "/dev/null/deno",
  DENO_EMIT_CACHE_MODE: "disable",
});

/**
 * Environment of the launcher and the probe. They run trusted code only, before any
 * restriction, so they may keep Deno's emit and V8 code caches in a directory private to the
 * runner (~4 ms less per start); no job can read or write it (no Landlock rule, no Deno
 * permission), and the job's own environment is {@link SANDBOX_ENV}.
 * @param cacheDir absolute path of the runner's private cache directory
 */
export function launcherEnv(cacheDir: string): Record<string, string> {
  return { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", DENO_DIR: cacheDir };
}

/** Everything about the machine and project that does not change between jobs. */
export interface SandboxSetup {
  /** Realpath of the deno binary. */
  deno: string;
  /** Realpath of boot.ts. */
  bootPath: string;
  /** Realpath of the project's deno.json. */
  configPath: string;
  /** libc and (when seccomp is to be loaded) libseccomp, as the dynamic linker finds them. */
  libcPath: string;
  libseccompPath: string | null;
  /** Read-only rules every job gets (code roots, config files, runtime files). */
  baseRules: readonly LandlockRule[];
}

/** One job, its paths already resolved and checked. */
export interface PlannedJob {
  module: string;
  /** Realpath of the input file, or null for inline input (stdin). */
  inputPath: string | null;
  outDir: string;
  args: readonly string[];
  limits: ResolvedLimits;
  /** Test-only: replaces the job's Deno permission flags. */
  denoPermissions?: readonly string[];
  /** Test-only: more Landlock rules. */
  extraRules?: readonly LandlockRule[];
}

/**
 * The job's Deno permissions: read its input file, write its output dir; no net, run, env,
 * sys or ffi for the job module (boot's ffi and env grants are revoked before it runs).
 */
export function jobPermissionFlags(job: Pick<PlannedJob, "inputPath" | "outDir">): string[] {
  return [
    ...(job.inputPath === null ? [] : [`--allow-read=${job.inputPath}`]),
    `--allow-write=${job.outDir}`,
  ];
}

/**
 * Plans the launch of one job.
 * @param job the job, paths resolved
 * @param setup the runner's fixed setup
 * @returns the launcher's argument (serialize with JSON.stringify)
 */
export function planLaunch(job: PlannedJob, setup: SandboxSetup): LaunchSpec {
  const libraries = [setup.libcPath, ...(setup.libseccompPath ? [setup.libseccompPath] : [])];
  const argv = [
    setup.deno,
    "run",
    "--no-prompt",
    `--config=${setup.configPath}`,
    "--cached-only",
    "--no-remote",
    ...(job.denoPermissions ?? jobPermissionFlags(job)),
    `--allow-ffi=${libraries.join(",")}`,
    `--allow-env=${BOOT_ENV}`,
    `--preload=${setup.bootPath}`,
    `--v8-flags=--max-old-space-size=${job.limits.heapMb}`,
    job.module,
    JOB_ARGV_TAG,
    job.inputPath ?? INLINE_INPUT_ARG,
    job.outDir,
    ...job.args,
  ];
  const rules: LandlockRule[] = [
    // execve needs EXECUTE on the binary; its ELF interpreter and libraries are added by the
    // launcher from its own memory map.
    { path: setup.deno, access: "rx" },
    ...setup.baseRules,
    ...(setup.libseccompPath ? [{ path: setup.libseccompPath, access: "ro" as const }] : []),
    ...(job.inputPath === null ? [] : [{ path: job.inputPath, access: "ro" as const }]),
    { path: job.outDir, access: "rw" },
    // Same pid after execve, so /proc/self here is the job's. maps: Deno's stack probe
    // (stacker) panics without it; statm: boot sizes RLIMIT_AS from it.
    { path: "/proc/self/maps", access: "ro" },
    { path: "/proc/self/statm", access: "ro" },
    ...(job.extraRules ?? []),
  ];
  return {
    deno: setup.deno,
    argv,
    env: { ...SANDBOX_ENV },
    rules,
    rlimits: { cpuSec: job.limits.cpuSec, nofile: JOB_NOFILE },
    boot: {
      libcPath: setup.libcPath,
      libseccompPath: setup.libseccompPath,
      memMb: job.limits.memMb,
      cpuSec: job.limits.cpuSec,
      nofile: JOB_NOFILE,
    },
  };
}
