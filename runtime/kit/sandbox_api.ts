/**
 * Contract of the `sandbox` port: how a control asks the supervisor to run one of the job
 * modules the manifest allows it, in a short-lived sandboxed subprocess.
 * @module
 */
import { z } from "zod";
import { defineApi } from "./rpc.ts";

/** Limits a caller may ask for; the supervisor clamps them to its own maxima. */
export const JobLimitsSchema = z.strictObject({
  /** Wall clock; then the whole process group is killed. */
  timeoutMs: z.number().int().min(100).max(30 * 60_000).optional(),
  /** V8 old-space cap (JS heap). */
  heapMb: z.number().int().min(16).max(8192).optional(),
  /** Address space the job may add after start (ArrayBuffers, native). */
  memMb: z.number().int().min(16).max(65536).optional(),
  /** RLIMIT_CPU seconds. */
  cpuSec: z.number().int().min(1).max(3600).optional(),
});
/** Job limits. */
export type JobLimits = z.infer<typeof JobLimitsSchema>;

/** Most files one job may be handed as a `files` input. */
export const MAX_JOB_FILES = 256;

/**
 * Input of a job: a file under the state dir (read-only to the job), inline bytes, or a
 * batch of files under the state dir.
 */
export const JobInputSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("file"),
    /** Path relative to the state dir; must resolve inside it. */
    path: z.string().min(1).max(4096),
  }),
  z.strictObject({
    /**
     * A directory artifact (spec 13 §4), read-only to the job with everything below it; the
     * job must not follow links inside it (Landlock stops any that lead outside).
     */
    kind: z.literal("directory"),
    /** Path relative to the state dir; must resolve inside it. */
    path: z.string().min(1).max(4096),
  }),
  z.strictObject({
    kind: z.literal("inline"),
    /** UTF-8 text handed to the job on stdin (≤ 1 MiB). */
    data: z.string().max(1 << 20),
  }),
  z.strictObject({
    kind: z.literal("files"),
    /**
     * A batch of files under the state dir, each checked like a `file` input and each
     * granted to the job read-only (e.g. `secai scan` of many small files in one job).
     */
    paths: z.array(z.string().min(1).max(4096)).min(1).max(MAX_JOB_FILES),
  }),
]);
/** Job input. */
export type JobInput = z.infer<typeof JobInputSchema>;

/** Which isolation layers were in force for a job. */
export const SandboxLayersSchema = z.strictObject({
  denoPermissions: z.boolean(),
  rlimits: z.boolean(),
  noNewPrivs: z.boolean(),
  nonDumpable: z.boolean(),
  capabilitiesDropped: z.boolean(),
  /** Landlock ABI version in force, or 0 when the kernel lacks Landlock. */
  landlockAbi: z.number().int().nonnegative(),
  seccomp: z.boolean(),
  processGroup: z.boolean(),
});
/** Active layers. */
export type SandboxLayers = z.infer<typeof SandboxLayersSchema>;

/** How a job ended. */
export const JobStatusSchema = z.enum(["ok", "failed", "timeout", "killed", "invalid_output"]);

/** Result of a job. */
export const JobResultSchema = z.strictObject({
  jobId: z.string().max(64),
  status: JobStatusSchema,
  exitCode: z.number().int().nullable(),
  signal: z.string().max(32).nullable(),
  durationMs: z.number().nonnegative(),
  /** The JSON value the job returned (only when status is ok). */
  result: z.unknown(),
  /** Error the job reported, or why it was killed. */
  error: z.strictObject({ code: z.string().max(64), message: z.string().max(4000) }).nullable(),
  layers: SandboxLayersSchema,
  /** Last part of stderr, for diagnosis. */
  stderrTail: z.string().max(8192),
});
/** Job result. */
export type JobResult = z.infer<typeof JobResultSchema>;

/** The sandbox contract. */
export const sandboxApi = defineApi("sandbox", {
  run: {
    input: z.strictObject({
      /** Job name as declared for this control in the manifest. */
      job: z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/),
      input: JobInputSchema,
      args: z.array(z.string().max(4096)).max(32).default([]),
      limits: JobLimitsSchema.default({}),
    }),
    output: JobResultSchema,
  },
});
