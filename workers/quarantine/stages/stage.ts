/**
 * The one contract every quarantine stage implements: it is given the artifact and the
 * facts established by the stages before it, and returns its verdict, findings and the facts
 * it established. The pipeline times it, persists it and stops at the first failure. A stage
 * that cannot complete throws; the pipeline turns that into a failure (fail closed).
 * @module
 */
import { z } from "zod";
import type { JobLimits, JobResult } from "../../../runtime/kit/sandbox_api.ts";
import type { engineApi } from "../../../runtime/kit/engine_api.ts";
import type { RpcClient } from "../../../runtime/kit/rpc.ts";
import {
  ArtifactFormatSchema,
  type ArtifactSignature,
  type Finding,
  ModelFormatSchema,
  type QuarantineConfig,
  type StageName,
} from "../api.ts";
import type { FailureClass } from "../errors.ts";

/** Facts stages establish, validated whenever they are read back from the store. */
export const FactsSchema = z.strictObject({
  sourceKind: z.enum(["local", "remote"]).optional(),
  /** Formats the matching source rule admits (remote sources only). */
  sourceFormats: z.array(ModelFormatSchema).max(2).optional(),
  sourceRequiresSignature: z.boolean().optional(),
  format: ArtifactFormatSchema.optional(),
  size: z.number().int().nonnegative().optional(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  fsverity: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  merkleRoot: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /**
   * Inode identity after hashing (a directory's: `tree:` and a digest of its listing): a
   * resumed job refuses an artifact that changed.
   */
  fileId: z.string().max(100).optional(),
  pinned: z.boolean().optional(),
  pinName: z.string().max(512).optional(),
  provenance: z.enum(["none", "recorded", "verified"]).optional(),
  signer: z.string().max(64).nullable().optional(),
  scan: z.strictObject({
    verdict: z.enum(["clean", "threat", "invalid"]),
    format: z.string().max(64),
    bytesScanned: z.number().int().nonnegative(),
    ms: z.number().nonnegative(),
    findingsTotal: z.number().int().nonnegative(),
    bySeverity: z.strictObject({
      info: z.number().int().nonnegative(),
      low: z.number().int().nonnegative(),
      medium: z.number().int().nonnegative(),
      high: z.number().int().nonnegative(),
      critical: z.number().int().nonnegative(),
    }),
  }).optional(),
  smokeTest: z.strictObject({
    status: z.enum(["passed", "failed", "skipped"]),
    score: z.number().min(0).max(1).nullable(),
    critical: z.number().int().nonnegative().nullable(),
    reason: z.string().max(1000),
  }).optional(),
});
/** Facts established so far. */
export type Facts = z.infer<typeof FactsSchema>;

/** Options of a sandboxed job run on the artifact. */
export interface SandboxRunOptions {
  args?: string[];
  limits?: JobLimits;
}

/** What a stage is given. */
export interface StageContext {
  jobId: string;
  /** The name it was submitted under (display and extension only). */
  filename: string;
  /** Origin URL, or null for a local import. */
  source: string | null;
  /**
   * The artifact: path relative to the state dir (for sandbox jobs) and absolute; a single
   * file, or a directory (a diffusion model, spec 13 §4).
   */
  artifact: { rel: string; abs: string; kind: "file" | "directory" };
  signature: ArtifactSignature | null;
  facts: Facts;
  config: QuarantineConfig;
  /** Aborted when the job is cancelled or the control stops. */
  signal: AbortSignal;
  /** Runs one of the control's sandbox jobs with the artifact as its read-only input. */
  sandbox(job: string, options?: SandboxRunOptions): Promise<JobResult>;
  /** Reports bytes processed by this stage (throttled into progress events). */
  progress(bytes: number): void;
  /** The control's `engine` port: sandboxed inference on the candidate (stage 6). */
  engine(): RpcClient<typeof engineApi>;
}

/** What a stage returns. */
export interface StageOutcome {
  verdict: "pass" | "fail" | "skipped";
  findings: Finding[];
  facts: Facts;
  note: string | null;
  /** Failure class and message when the verdict is fail. */
  failure?: { code: FailureClass; message: string };
}

/** A stage module. */
export interface Stage {
  name: StageName;
  /** The stage's input as recorded (no secrets, bounded). */
  describeInput(ctx: StageContext): Record<string, unknown>;
  run(ctx: StageContext): Promise<StageOutcome>;
}

/** A passing outcome. */
export function pass(
  facts: Facts,
  note: string | null = null,
  findings: Finding[] = [],
): StageOutcome {
  return { verdict: "pass", findings, facts, note };
}

/** A skipped outcome with the reason. */
export function skipped(facts: Facts, note: string): StageOutcome {
  return { verdict: "skipped", findings: [], facts, note };
}

/**
 * A failing outcome: the failure class, the reason and a finding that carries both.
 * @param stage the failing stage (named in the finding)
 * @param failure class and message
 * @param options more findings and facts established before the failure
 */
export function fail(
  stage: StageName,
  failure: { code: FailureClass; message: string },
  options: { findings?: Finding[]; facts?: Facts } = {},
): StageOutcome {
  const findings = options.findings ?? [];
  return {
    verdict: "fail",
    findings: findings.length > 0 ? findings : [{
      stage,
      rule: `${stage}.${failure.code.toLowerCase()}`,
      severity: "high",
      message: failure.message,
    }],
    facts: options.facts ?? {},
    note: null,
    failure,
  };
}
