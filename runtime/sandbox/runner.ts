/**
 * The job runner, supervisor side: runs one job module per short-lived, sandboxed
 * `deno run` subprocess and turns whatever happens into a `JobResult`.
 *
 * Chain per job: runner → `launcher.ts` (new session; rlimits, capabilities dropped,
 * no_new_privs, Landlock, execve) → the job's deno with minimal `--allow-*` and `boot.ts`
 * preloaded (not dumpable, RLIMIT_AS, seccomp with TSYNC, ffi/env revoked) → job module.
 * The runner itself needs no FFI: it learns what the kernel supports from a probe subprocess.
 *
 * Permissions the runner's process needs: run (the deno binary, and `/usr/bin/kill` unless
 * run is unscoped), read (state dir, code roots, config files, runtime/sandbox, ffi, the deno
 * binary, /etc/ld.so.cache), write (`<home>/jobs`). No ffi, env, net or sys.
 * @module
 */
import { z } from "zod";
import type { LandlockRule } from "../../ffi/landlock.ts";
import {
  type JobInput,
  JobInputSchema,
  type JobLimits,
  JobLimitsSchema,
  type JobResult,
  JobResultSchema,
  type SandboxLayers,
} from "../kit/sandbox_api.ts";
import { describeZodError } from "../kit/validate.ts";
import type { ProbeReport } from "./_protocol.ts";
import { Semaphore } from "./_queue.ts";
import { readCapped, readHeadAndTail } from "./_streams.ts";
import { SandboxError } from "./errors.ts";
import { resolveLimits } from "./limits.ts";
import {
  decideOutcome,
  layersOf,
  parseSandboxStart,
  type SandboxStart,
  stripMarkers,
} from "./outcome.ts";
import {
  isInside,
  isSafePath,
  JOBS_DIR,
  resolveConfiguredPath,
  resolveInputPath,
  resolveModulePath,
} from "./paths.ts";
import { launcherEnv, planLaunch, type SandboxSetup } from "./plan.ts";

/** Most bytes of stdout kept; past it the job is killed and its output is invalid. */
export const MAX_STDOUT_BYTES = 16 << 20;
/** Bytes of stderr kept from the end for `stderrTail`. */
export const STDERR_TAIL_BYTES = 8192;
const STDERR_HEAD_BYTES = 16 << 10;
const PROBE_TIMEOUT_MS = 10_000;
const KILL_PATH = "/usr/bin/kill";
/** The launcher's Deno cache, in the jobs directory (hidden name: never a job id). */
const LAUNCHER_CACHE = ".launcher-cache";

/**
 * Test-only hooks. Never set them outside tests: they widen the sandbox to prove that
 * each remaining layer holds on its own.
 * @internal
 */
export interface JobRunnerTestHooks {
  /** Replaces the job's Deno permission flags, e.g. `["--allow-read", "--allow-net"]`. */
  denoPermissions?: string[];
  /** More Landlock rules (e.g. a program the job may execute). */
  extraRules?: LandlockRule[];
  /** `false` loads no seccomp filter. */
  seccomp?: boolean;
  /** Called once the job process exists, with its pid (= its process group) and out dir. */
  onSpawn?: (info: { pid: number; outDir: string }) => void;
}

/** Options of {@link JobRunner}. */
export interface JobRunnerOptions {
  /** Absolute state dir: inputs must resolve inside it; job dirs go under `<home>/jobs/`. */
  home: string;
  /** Absolute dirs holding job modules and what they import; read-only to the job. */
  codeRoots: string[];
  /** Absolute path of the project's deno.json (import map, lockfile, node_modules). */
  configPath: string;
  /** Deno binary for launcher and job; default `Deno.execPath()`. */
  denoPath?: string;
  /** Jobs run at once; further jobs queue. Default 2. */
  maxConcurrent?: number;
  /** Maxima the caller's limits are clamped to. */
  maxLimits?: JobLimits;
  /**
   * Sonames of native libraries jobs may be granted (`JobSpec.ffi`), e.g. `libyara.so.9`;
   * probed once. Default none.
   */
  libraries?: string[];
  /** @internal Test-only, see {@link JobRunnerTestHooks}. */
  testOnly?: JobRunnerTestHooks;
}

/** One job to run. */
export interface JobSpec {
  /** Absolute path of the job module (inside a code root). */
  module: string;
  input: JobInput;
  args: string[];
  limits: JobLimits;
  /** Sonames of native libraries the job loads itself; each must be in the runner's `libraries`. */
  ffi?: string[];
}

/** Options of {@link JobRunner.run}. */
export interface RunOptions {
  /** Aborting kills the job's whole process group; the result is `killed`/`CANCELLED`. */
  signal?: AbortSignal;
}

const JobSpecSchema = z.strictObject({
  module: z.string().min(1).max(4096),
  input: JobInputSchema,
  args: z.array(z.string().max(4096).refine((arg) => !arg.includes("\0"), "contains NUL"))
    .max(32),
  limits: JobLimitsSchema,
  ffi: z.array(z.string().max(128)).max(8).optional(),
});

/** A library path that can go into `--allow-ffi=` (a comma would split the grant). */
const LibraryPathSchema = z.string().max(4096).refine(
  (path) => path.startsWith("/") && isSafePath(path),
  "not an absolute path without commas or control characters",
);

const ProbeReportSchema = z.strictObject({
  landlockAbi: z.number().int().min(0).max(1000),
  seccomp: z.boolean(),
  libcPath: LibraryPathSchema,
  libseccompPath: LibraryPathSchema.nullable(),
  libraries: z.record(z.string().max(128), z.array(LibraryPathSchema).max(64)),
});

/** Lock may be off, a path, or an object with a path (deno.json). */
const DenoConfigSchema = z.object({
  importMap: z.string().max(4096).optional(),
  lock: z.union([
    z.boolean(),
    z.string().max(4096),
    z.object({ path: z.string().max(4096) })
      .partial().passthrough(),
  ]).optional(),
}).passthrough();

/** What {@link prepare} found out once per runner (also used by service.ts). */
export interface Prepared {
  setup: SandboxSetup;
  /** Environment of the launcher (with its private cache). */
  launcherEnv: Record<string, string>;
  home: string;
  jobsDir: string;
  codeRoots: string[];
  probe: ProbeReport;
  launcherPath: string;
}

/**
 * Runs job modules in sandboxed subprocesses.
 * @example
 * ```ts
 * const runner = new JobRunner({
 *   home: "/var/lib/secai",
 *   codeRoots: [`${root}/runtime/kit`, `${root}/workers`, `${root}/node_modules`],
 *   configPath: `${root}/deno.json`,
 * });
 * const result = await runner.run({
 *   module: `${root}/workers/quarantine/jobs/scan.ts`,
 *   input: { kind: "file", path: "incoming/model.bin" },
 *   args: [],
 *   limits: { timeoutMs: 60_000 },
 * });
 * ```
 */
export class JobRunner {
  readonly #options: JobRunnerOptions;
  readonly #slots: Semaphore;
  #prepared: Promise<Prepared> | null = null;

  /**
   * @param options where state, code and config live; limits and concurrency
   * @throws {RangeError} for relative paths or a concurrency below 1
   * @throws {TypeError} for malformed maximum limits
   */
  constructor(options: JobRunnerOptions) {
    for (const [what, path] of [["home", options.home], ["configPath", options.configPath]]) {
      if (!path?.startsWith("/")) throw new RangeError(`Invalid ${what} "${path}": not absolute`);
    }
    if (options.codeRoots.length === 0) throw new RangeError("Invalid codeRoots: empty");
    const limits = JobLimitsSchema.safeParse(options.maxLimits ?? {});
    if (!limits.success) {
      throw new TypeError(`Invalid maxLimits: ${describeZodError(limits.error)}`);
    }
    this.#options = options;
    this.#slots = new Semaphore(options.maxConcurrent ?? 2);
  }

  /**
   * Which layers this kernel supports (probed once, then cached).
   * @throws {SandboxError} `SANDBOX_UNAVAILABLE` when the probe fails
   */
  async layers(): Promise<SandboxLayers> {
    const { probe } = await this.#prepare();
    return {
      denoPermissions: true,
      rlimits: true,
      noNewPrivs: true,
      nonDumpable: true,
      capabilitiesDropped: true,
      landlockAbi: probe.landlockAbi,
      seccomp: probe.seccomp,
      processGroup: true,
    };
  }

  /**
   * Runs one job and reports how it ended. Once the job has been accepted every outcome,
   * failure included, is a result, never a rejection.
   * @param spec module, input, args and limits (limits are clamped to the runner's maxima)
   * @param options cancellation
   * @returns the job's result, with the layers that were in force for it
   * @throws {SandboxError} `INVALID_JOB`, `MODULE_REJECTED`, `INPUT_REJECTED`,
   * `SANDBOX_UNAVAILABLE`, `SPAWN_FAILED`, `PROCESS_CONTROL_FAILED` or `CLEANUP_FAILED`
   */
  async run(spec: JobSpec, options: RunOptions = {}): Promise<JobResult> {
    const parsed = JobSpecSchema.safeParse(spec);
    if (!parsed.success) {
      throw new SandboxError("INVALID_JOB", `Cannot run job: ${describeZodError(parsed.error)}`);
    }
    const job = parsed.data;
    const prepared = await this.#prepare();
    const ffiLibraries = this.#libraryFiles(job.ffi ?? [], prepared.probe);
    const limits = resolveLimits(job.limits, this.#options.maxLimits);
    const jobId = crypto.randomUUID();
    if (!await this.#slots.acquire(options.signal)) return this.#cancelledBeforeStart(jobId);
    try {
      // Resolved once the job holds a slot, right before launch, to keep the window between
      // this check and the launcher opening the paths for Landlock small.
      const module = await resolveModulePath(job.module, { codeRoots: prepared.codeRoots });
      const inputPath = job.input.kind === "file" || job.input.kind === "directory"
        ? await resolveInputPath(job.input.path, { home: prepared.home, kind: job.input.kind })
        : null;
      const inputPaths = job.input.kind === "files"
        ? await resolveInputPaths(job.input.paths, prepared.home)
        : undefined;
      const jobDir = `${prepared.jobsDir}/${jobId}`;
      const outDir = `${jobDir}/out`;
      await Deno.mkdir(outDir, { recursive: true, mode: 0o700 });
      try {
        const hooks = this.#options.testOnly ?? {};
        const launch = planLaunch({
          module,
          inputPath,
          ...(inputPaths === undefined ? {} : { inputPaths }),
          outDir,
          args: job.args,
          limits,
          ...(ffiLibraries.length > 0 ? { ffiLibraries } : {}),
          ...(hooks.denoPermissions ? { denoPermissions: hooks.denoPermissions } : {}),
          ...(hooks.extraRules ? { extraRules: hooks.extraRules } : {}),
        }, {
          ...prepared.setup,
          libseccompPath: hooks.seccomp === false ? null : prepared.setup.libseccompPath,
        });
        return await this.#execute({
          jobId,
          outDir,
          deno: prepared.setup.deno,
          launcherArgs: [...launcherFlags(), prepared.launcherPath, JSON.stringify(launch)],
          launcherEnv: prepared.launcherEnv,
          inline: job.input.kind === "inline" ? job.input.data : null,
          timeoutMs: limits.timeoutMs,
          canFork: launch.boot.libseccompPath === null,
          signal: options.signal,
        });
      } finally {
        await removeTree(jobDir);
      }
    } finally {
      this.#slots.release();
    }
  }

  async #execute(job: {
    jobId: string;
    outDir: string;
    deno: string;
    launcherArgs: string[];
    launcherEnv: Record<string, string>;
    inline: string | null;
    timeoutMs: number;
    /** No seccomp filter: the job may have started processes that outlive it. */
    canFork: boolean;
    signal: AbortSignal | undefined;
  }): Promise<JobResult> {
    const hooks = this.#options.testOnly ?? {};
    if (job.signal?.aborted) return this.#cancelledBeforeStart(job.jobId);
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(job.deno, {
        args: job.launcherArgs,
        clearEnv: true,
        env: job.launcherEnv,
        cwd: job.outDir,
        stdin: job.inline === null ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
        // setsid(): a new session and process group whose id is the child's pid, so one
        // kill(-pgid) reaches everything the job could have started.
        detached: true,
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw new SandboxError("SPAWN_FAILED", "Cannot spawn job process", { cause: error });
    }
    const started = performance.now();
    const pid = child.pid;
    let exited = false;
    const verdict = { timedOut: false, cancelled: false, overflow: false };
    // Each settles to the error it failed with (or null), so none can reject unobserved.
    const kills: Promise<unknown>[] = [];
    const kill = (): void => {
      // Only while the leader is unreaped: afterwards its pid could belong to someone else.
      if (!exited) kills.push(settle(killGroup(pid)));
    };
    const timer = setTimeout(() => {
      verdict.timedOut = true;
      kill();
    }, job.timeoutMs);
    const onAbort = (): void => {
      verdict.cancelled = true;
      kill();
    };
    job.signal?.addEventListener("abort", onAbort, { once: true });
    hooks.onSpawn?.({ pid, outDir: job.outDir });

    const feeding = settle(job.inline === null ? Promise.resolve() : feed(child.stdin, job.inline));
    const [stdout, stderr, status] = await Promise.all([
      readCapped(child.stdout, {
        maxBytes: MAX_STDOUT_BYTES,
        onOverflow: () => {
          verdict.overflow = true;
          kill();
        },
      }),
      readHeadAndTail(child.stderr, {
        headBytes: STDERR_HEAD_BYTES,
        tailBytes: STDERR_TAIL_BYTES,
      }),
      child.status.then((status) => {
        exited = true;
        // Without seccomp a child of the job may live on in its group and hold the pipes
        // open. Kill the group now: while any member lives its id cannot be reused, and an
        // empty group's id would have to be reissued to a new group leader within this tick.
        if (job.canFork) kills.push(settle(killGroup(pid)));
        return status;
      }),
    ]);
    const durationMs = performance.now() - started;
    clearTimeout(timer);
    job.signal?.removeEventListener("abort", onAbort);
    for (const error of [await feeding, ...await Promise.all(kills)]) {
      if (error !== null) {
        throw new SandboxError("PROCESS_CONTROL_FAILED", "Cannot feed or kill the job process", {
          cause: error,
        });
      }
    }

    const decoder = new TextDecoder();
    const start: SandboxStart = parseSandboxStart(decoder.decode(stderr.head));
    const layers = layersOf(start, {
      denoPermissions: hooks.denoPermissions === undefined,
      processGroup: true,
    });
    const stderrTail = stripMarkers(decoder.decode(stderr.tail)).slice(-STDERR_TAIL_BYTES);
    const outcome = decideOutcome({
      exitCode: status.code,
      signal: status.signal,
      timedOut: verdict.timedOut,
      cancelled: verdict.cancelled,
      stdoutOverflow: stdout.overflow,
      stdout: stdout.bytes,
      start,
      stderrTail,
      timeoutMs: job.timeoutMs,
    });
    return JobResultSchema.parse({
      jobId: job.jobId,
      ...outcome,
      durationMs,
      layers,
      stderrTail,
    });
  }

  /**
   * The files a job's libraries map, as probed.
   * @throws {SandboxError} `INVALID_JOB` for a library the runner may not grant,
   * `SANDBOX_UNAVAILABLE` for one that is not installed
   */
  #libraryFiles(sonames: readonly string[], probe: ProbeReport): string[] {
    const files: string[] = [];
    for (const soname of sonames) {
      if (!(this.#options.libraries ?? []).includes(soname)) {
        throw new SandboxError("INVALID_JOB", `Cannot grant library "${soname}" to a job`);
      }
      const mapped = Object.hasOwn(probe.libraries, soname) ? probe.libraries[soname] : undefined;
      if (mapped === undefined) {
        throw new SandboxError("SANDBOX_UNAVAILABLE", `Cannot find library "${soname}"`);
      }
      files.push(...mapped);
    }
    return [...new Set(files)];
  }

  #cancelledBeforeStart(jobId: string): JobResult {
    return {
      jobId,
      status: "killed",
      exitCode: null,
      signal: null,
      durationMs: 0,
      result: null,
      error: { code: "CANCELLED", message: "Job cancelled before it started" },
      layers: layersOf({ kind: "none" }, {
        denoPermissions: this.#options.testOnly?.denoPermissions === undefined,
        processGroup: true,
      }),
      stderrTail: "",
    };
  }

  #prepare(): Promise<Prepared> {
    if (this.#prepared === null) {
      this.#prepared = prepare(this.#options);
      // A failed probe is not cached: the next call tries again.
      this.#prepared.catch(() => (this.#prepared = null));
    }
    return this.#prepared;
  }
}

/**
 * Resolves a batch of input paths, each checked as a `file` input, in order.
 * @throws {SandboxError} `INPUT_REJECTED` naming the first path refused
 */
async function resolveInputPaths(paths: readonly string[], home: string): Promise<string[]> {
  const resolved: string[] = [];
  for (const path of paths) resolved.push(await resolveInputPath(path, { home }));
  return resolved;
}

/** Flags of the launcher's own deno: trusted code, no config, unscoped FFI for execve. */
export function launcherFlags(): string[] {
  return [
    "run",
    "--no-config",
    "--no-lock",
    "--no-prompt",
    "--no-remote",
    "--no-npm",
    "--cached-only",
    "--allow-ffi",
  ];
}

/**
 * Resolves paths, runs the probe and builds the fixed sandbox setup (also used by service.ts).
 * @throws {SandboxError} `SANDBOX_UNAVAILABLE`
 */
export async function prepare(options: JobRunnerOptions): Promise<Prepared> {
  const here = import.meta.dirname;
  if (here === undefined) {
    throw new SandboxError("SANDBOX_UNAVAILABLE", "Cannot locate runtime/sandbox on disk");
  }
  const deno = await resolveConfiguredPath(options.denoPath ?? Deno.execPath(), "denoPath");
  const home = await resolveConfiguredPath(options.home, "home");
  const configPath = await resolveConfiguredPath(options.configPath, "configPath");
  const sandboxDir = await resolveConfiguredPath(here, "sandbox dir");
  const ffiDir = await resolveConfiguredPath(`${here}/../../ffi`, "ffi dir");
  const codeRoots = await Promise.all(
    options.codeRoots.map((root) => resolveConfiguredPath(root, "code root")),
  );
  for (const root of codeRoots) {
    // Code roots are readable by every job: one that holds the state dir would expose every
    // input and every other job's output.
    if (root === home || isInside(home, root) || isInside(root, home)) {
      throw new SandboxError(
        "SANDBOX_UNAVAILABLE",
        `Cannot use code root "${root}": it overlaps the state dir "${home}"`,
      );
    }
  }
  const configFiles = await configFilesOf(configPath);
  const jobsDir = `${home}/${JOBS_DIR}`;
  // Inside jobs/, so that no input path can name it.
  const cacheDir = `${jobsDir}/${LAUNCHER_CACHE}`;
  await Deno.mkdir(cacheDir, { recursive: true, mode: 0o700 });
  const env = launcherEnv(cacheDir);
  const probe = await runProbe(deno, {
    path: `${sandboxDir}/probe.ts`,
    env,
    libraries: options.libraries ?? [],
  });
  const ldCache = await exists("/etc/ld.so.cache") ? ["/etc/ld.so.cache"] : [];
  const baseRules: LandlockRule[] = [
    ...ldCache.map((path) => ({ path, access: "ro" as const })),
    { path: "/dev/null", access: "dev" },
    { path: "/dev/urandom", access: "ro" },
    { path: sandboxDir, access: "ro" },
    { path: ffiDir, access: "ro" },
    ...codeRoots.map((path) => ({ path, access: "ro" as const })),
    ...configFiles.map((path) => ({ path, access: "ro" as const })),
  ];
  return {
    setup: {
      deno,
      bootPath: `${sandboxDir}/boot.ts`,
      configPath,
      libcPath: probe.libcPath,
      libseccompPath: probe.seccomp ? probe.libseccompPath : null,
      baseRules,
    },
    launcherEnv: env,
    home,
    jobsDir,
    codeRoots,
    probe,
    launcherPath: `${sandboxDir}/launcher.ts`,
  };
}

/** deno.json, the import map and the lockfile it names: the job's deno reads all three. */
async function configFilesOf(configPath: string): Promise<string[]> {
  const dir = configPath.slice(0, configPath.lastIndexOf("/"));
  let config: z.infer<typeof DenoConfigSchema>;
  try {
    config = DenoConfigSchema.parse(JSON.parse(await Deno.readTextFile(configPath)));
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new SandboxError("SANDBOX_UNAVAILABLE", `Cannot read config "${configPath}"`, {
      cause: error,
    });
  }
  const files = [configPath];
  if (config.importMap !== undefined) files.push(`${dir}/${config.importMap}`);
  const lock = config.lock;
  if (lock !== false) {
    const path = typeof lock === "string"
      ? lock
      : typeof lock === "object" && lock.path !== undefined
      ? lock.path
      : "deno.lock";
    if (await exists(`${dir}/${path}`)) files.push(`${dir}/${path}`);
  }
  return await Promise.all(files.map((file) => resolveConfiguredPath(file, "config file")));
}

async function runProbe(
  deno: string,
  probe: { path: string; env: Record<string, string>; libraries: readonly string[] },
): Promise<ProbeReport> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(deno, {
      args: [...launcherFlags(), probe.path, ...probe.libraries],
      clearEnv: true,
      env: probe.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new SandboxError("SANDBOX_UNAVAILABLE", "Cannot run the sandbox probe", {
      cause: error,
    });
  }
  const text = new TextDecoder().decode(output.stdout).trim();
  const parsed = output.success ? ProbeReportSchema.safeParse(parseOrNull(text)) : null;
  if (parsed === null || !parsed.success) {
    const stderr = new TextDecoder().decode(output.stderr).slice(-500);
    throw new SandboxError("SANDBOX_UNAVAILABLE", `Sandbox probe failed: ${stderr}`);
  }
  return parsed.data;
}

function parseOrNull(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    if (error instanceof SyntaxError) return null;
    throw error;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * SIGKILL to a whole process group. `Deno.kill(-pgid)` needs unscoped `--allow-run`;
 * otherwise `/usr/bin/kill` does it (grant `--allow-run=<deno>,/usr/bin/kill`).
 */
export async function killGroup(pgid: number): Promise<void> {
  if (Deno.permissions.querySync({ name: "run" }).state === "granted") {
    try {
      Deno.kill(-pgid, "SIGKILL");
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return; // group already gone (ESRCH)
      throw error;
    }
    return;
  }
  await new Deno.Command(KILL_PATH, {
    args: ["-s", "KILL", "--", `-${pgid}`],
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
}

/** Resolves to null when `promise` fulfils, to its error when it rejects. */
function settle(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => null, (error: unknown) => error ?? new Error("Rejected"));
}

/** Writes inline input to the job's stdin; a job that exits without reading it is fine. */
async function feed(stdin: WritableStream<Uint8Array>, data: string): Promise<void> {
  const writer = stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode(data));
    await writer.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
}

/**
 * Removes a job directory. A job may have taken its own write permission away from a
 * subdirectory (chmod); then permissions are restored, without following symlinks, and the
 * removal retried.
 * @throws {SandboxError} `CLEANUP_FAILED`
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
    return;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    if (!(error instanceof Deno.errors.PermissionDenied)) {
      throw new SandboxError("CLEANUP_FAILED", `Cannot remove job dir "${path}"`, { cause: error });
    }
  }
  try {
    await makeWritable(path);
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    throw new SandboxError("CLEANUP_FAILED", `Cannot remove job dir "${path}"`, { cause: error });
  }
}

async function makeWritable(dir: string): Promise<void> {
  await Deno.chmod(dir, 0o700);
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory && !entry.isSymlink) await makeWritable(`${dir}/${entry.name}`);
  }
}
