/**
 * Builds the launcher's instructions for one job: the job's deno command line with its
 * minimal permissions, its environment, its Landlock rules and its limits. Pure: the runner
 * resolves every path first.
 * @module
 */
import type { LandlockRule } from "../../ffi/landlock.ts";
import { FILES_INPUT_ARG, INLINE_INPUT_ARG, JOB_ARGV_TAG } from "../kit/job.ts";
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
  /** Realpath of the input file, or null for inline input (stdin) or a batch of files. */
  inputPath: string | null;
  /** Realpaths of a batch of input files (then `inputPath` is null). */
  inputPaths?: readonly string[];
  outDir: string;
  args: readonly string[];
  limits: ResolvedLimits;
  /**
   * Files of the native libraries the job itself loads (a library and its dependencies, as
   * the probe found them), e.g. libyara for the static scan. They become read-only Landlock
   * rules, and the job gets unscoped `--allow-ffi` (FFI callbacks need it) which its
   * `runJob` revokes before reading the input; seccomp and Landlock still bound the code.
   */
  ffiLibraries?: readonly string[];
  /**
   * A long-lived sandboxed service (runtime/sandbox/service.ts), e.g. the inference engine,
   * instead of a job: what it gets beyond a job's grants.
   */
  service?: ServiceGrants;
  /** Test-only: replaces the job's Deno permission flags. */
  denoPermissions?: readonly string[];
  /** Test-only: more Landlock rules. */
  extraRules?: readonly LandlockRule[];
}

/**
 * What a sandboxed service gets beyond a job's grants. Each path must be absolute and free of
 * commas (they are joined into `--allow-*` lists).
 */
export interface ServiceGrants {
  /** More read-only paths: Deno `--allow-read` and Landlock read-only rules. */
  read: readonly string[];
  /**
   * Files or directories the service may `dlopen` itself after boot (a Node-API addon and its
   * libraries): its `--allow-ffi` stays scoped to these (plus libc and libseccomp for boot),
   * and boot keeps it; the service revokes it once they are loaded. Read-only under Landlock.
   */
  ffi: readonly string[];
  /**
   * Files of system libraries its native code links (e.g. libstdc++, as the runner's probe
   * found them): read-only under Landlock only, no Deno grant.
   */
  libraryFiles: readonly string[];
  /** Deno `--allow-sys` kinds (e.g. `homedir`). */
  sys: readonly string[];
  /**
   * Keep env access (boot revokes it otherwise): npm packages that list `process.env` at
   * import need it unscoped. The environment is the runner's clean {@link SANDBOX_ENV}, with
   * HOME and TMPDIR set to the service's scratch dir.
   */
  keepEnv: boolean;
}

/**
 * The job's Deno permissions: read its input file(s), read and write its own output dir (a
 * scan job reads back what it inflated there); no net, run, env, sys or ffi for the job
 * module (boot's ffi and env grants are revoked before it runs).
 */
export function jobPermissionFlags(
  job: Pick<PlannedJob, "inputPath" | "inputPaths" | "outDir">,
  extraRead: readonly string[] = [],
): string[] {
  const read = [...inputFiles(job), job.outDir, ...extraRead];
  return [
    `--allow-read=${read.join(",")}`,
    `--allow-write=${job.outDir}`,
  ];
}

/** The input files a job may read. */
function inputFiles(job: Pick<PlannedJob, "inputPath" | "inputPaths">): readonly string[] {
  return job.inputPath === null ? job.inputPaths ?? [] : [job.inputPath];
}

/** The job's argv after its module: input, out dir, args (see runtime/kit/job.ts). */
function jobArgv(job: PlannedJob): string[] {
  if (job.inputPath === null && job.inputPaths !== undefined) {
    return [
      JOB_ARGV_TAG,
      FILES_INPUT_ARG,
      job.outDir,
      String(job.inputPaths.length),
      ...job.inputPaths,
      ...job.args,
    ];
  }
  return [JOB_ARGV_TAG, job.inputPath ?? INLINE_INPUT_ARG, job.outDir, ...job.args];
}

/**
 * Plans the launch of one job.
 * @param job the job, paths resolved
 * @param setup the runner's fixed setup
 * @returns the launcher's argument (serialize with JSON.stringify)
 */
export function planLaunch(job: PlannedJob, setup: SandboxSetup): LaunchSpec {
  const libraries = [setup.libcPath, ...(setup.libseccompPath ? [setup.libseccompPath] : [])];
  const jobLibraries = job.ffiLibraries ?? [];
  const service = job.service;
  const keepFfi = jobLibraries.length > 0 || (service !== undefined && service.ffi.length > 0);
  const keepEnv = service?.keepEnv === true;
  const argv = [
    setup.deno,
    "run",
    "--no-prompt",
    `--config=${setup.configPath}`,
    "--cached-only",
    "--no-remote",
    ...(job.denoPermissions ?? jobPermissionFlags(job, service?.read ?? [])),
    jobLibraries.length > 0
      ? "--allow-ffi"
      : `--allow-ffi=${[...libraries, ...(service?.ffi ?? [])].join(",")}`,
    ...(service !== undefined && service.sys.length > 0
      ? [`--allow-sys=${service.sys.join(",")}`]
      : []),
    keepEnv ? "--allow-env" : `--allow-env=${BOOT_ENV}`,
    `--preload=${setup.bootPath}`,
    `--v8-flags=--max-old-space-size=${job.limits.heapMb}`,
    job.module,
    ...jobArgv(job),
  ];
  const rules: LandlockRule[] = [
    // execve needs EXECUTE on the binary; its ELF interpreter and libraries are added by the
    // launcher from its own memory map.
    { path: setup.deno, access: "rx" },
    ...setup.baseRules,
    ...(setup.libseccompPath ? [{ path: setup.libseccompPath, access: "ro" as const }] : []),
    ...inputFiles(job).map((path) => ({ path, access: "ro" as const })),
    ...jobLibraries.map((path) => ({ path, access: "ro" as const })),
    ...[...(service?.read ?? []), ...(service?.ffi ?? []), ...(service?.libraryFiles ?? [])].map((
      path,
    ) => ({
      path,
      access: "ro" as const,
    })),
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
    // A service's HOME and TMPDIR are its scratch dir: libraries that look up a home or temp
    // dir find a writable place of its own (Landlock keeps /etc/passwd and /tmp closed).
    env: service === undefined
      ? { ...SANDBOX_ENV }
      : { ...SANDBOX_ENV, HOME: job.outDir, TMPDIR: job.outDir },
    rules,
    rlimits: { cpuSec: job.limits.cpuSec, nofile: JOB_NOFILE },
    boot: {
      libcPath: setup.libcPath,
      libseccompPath: setup.libseccompPath,
      memMb: job.limits.memMb,
      cpuSec: job.limits.cpuSec,
      nofile: JOB_NOFILE,
      ...(keepFfi ? { keepFfi } : {}),
      ...(keepEnv ? { keepEnv } : {}),
    },
  };
}
