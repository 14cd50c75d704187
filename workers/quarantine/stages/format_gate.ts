/**
 * Stage 2 — format gate (spec 13 §2 pre-gate and §3). By name first: pickle-based
 * extensions are refused (`DENIED_FORMAT`), anything but `.gguf`/`.safetensors` is
 * `UNKNOWN_FORMAT`, and the format must be in `quarantine.allowedFormats` and in the formats
 * of the matching source rule. Then by content, in the sandboxed `format_gate` job (the
 * artifact's bytes are never parsed in this worker): magic, version, header bounds and the
 * pickle-polyglot prefix.
 *
 * A directory artifact (spec 13 §4) is judged by content only, in the sandboxed
 * `diffusion_checks` job (`gate`): limits, no links or special files, allowed suffixes,
 * `model_index.json`, every safetensors header, JSON, tokenizer text and sentencepiece model.
 * @module
 */
import { z } from "zod";
import {
  type DirectoryReport,
  DirectoryReportSchema,
  type ModelFormat,
  ModelFormatSchema,
  type StageName,
} from "../api.ts";
import type { FailureClass } from "../errors.ts";
import { runStageJob, scanJobLimits } from "./job.ts";
import { fail, pass, type Stage, type StageContext, type StageOutcome } from "./stage.ts";

/** Extensions of pickle-based formats: never admitted (spec 13 §2). */
export const DENIED_EXTENSIONS: readonly string[] = [
  ".pkl",
  ".pickle",
  ".pt",
  ".pth",
  ".bin",
  ".ckpt",
  ".npy",
  ".npz",
  ".joblib",
];

/** Time the header check may take. */
const GATE_TIMEOUT_MS = 30_000;

const GateResultSchema = z.strictObject({
  verdict: z.enum(["pass", "fail"]),
  format: ModelFormatSchema.nullable(),
  code: z.enum([
    "PICKLE_POLYGLOT",
    "DENIED_FORMAT",
    "INVALID_HEADER",
    "FORMAT_MISMATCH",
    "UNKNOWN_FORMAT",
  ]).optional(),
  message: z.string().max(2000).optional(),
  facts: z.record(z.string().max(32), z.number()),
});

const DirectoryJobResultSchema = z.strictObject({ report: DirectoryReportSchema });

/** Whether a finding stops an artifact: a parse failure, or medium severity and above. */
export function isBlocking(finding: { rule: string; severity: string }): boolean {
  return finding.rule.endsWith(".invalid") ||
    ["medium", "high", "critical"].includes(finding.severity);
}

/** The worst finding, described for a failure message (rule, path, message). */
export function describeFinding(
  finding: { rule: string; member?: string | undefined; message: string },
): string {
  return `${finding.rule}${finding.member ? ` at "${finding.member}"` : ""}: ${finding.message}`
    .slice(0, 1500);
}

/**
 * Runs the sandboxed directory checks (`gate` for stage 2, `deep` for stage 7).
 * @throws when the job does not end with a report in its contract (the stage fails closed)
 */
export async function runDirectoryChecks(
  ctx: StageContext,
  mode: "gate" | "deep",
): Promise<DirectoryReport> {
  const answer = await runStageJob(ctx, "diffusion_checks", {
    label: "Directory checks",
    schema: DirectoryJobResultSchema,
    args: [mode],
    limits: scanJobLimits(ctx.config),
  });
  return answer.report;
}

/**
 * The failure of a directory pass whose report holds a blocking finding.
 * @param report the pass's report
 * @param options the failing stage, its failure class and how the message begins
 * @returns the failing outcome with every finding, or null when nothing blocks
 */
export function refuseBlocking(
  report: DirectoryReport,
  options: { stage: StageName; code: FailureClass; refused: string },
): StageOutcome | null {
  const blocking = report.findings.filter(isBlocking);
  const first = blocking[0];
  if (first === undefined) return null;
  return fail(options.stage, {
    code: options.code,
    message: `${options.refused} (${blocking.length} finding${
      blocking.length === 1 ? "" : "s"
    }); first: ${describeFinding(first)}`,
  }, { findings: report.findings });
}

async function gateDirectory(ctx: StageContext): Promise<StageOutcome> {
  const report = await runDirectoryChecks(ctx, "gate");
  const refused = refuseBlocking(report, {
    stage: "format_gate",
    code: "INVALID_DIRECTORY",
    refused: "The directory was refused",
  });
  if (refused !== null) return refused;
  return pass(
    { format: "diffusion-directory" },
    `Diffusion directory "${report.className}" of ${report.files} files (${report.safetensors} safetensors, ${report.totalBytes} bytes); components: ${
      report.components.join(", ")
    }`.slice(0, 1000),
    report.findings,
  );
}

/**
 * The format an artifact's name claims.
 * @param filename the submitted name
 * @returns the format, or the failure class and reason
 */
export function formatOfName(
  filename: string,
): { format: ModelFormat } | { code: FailureClass; message: string } {
  const lower = filename.toLowerCase();
  const dot = lower.lastIndexOf(".");
  const ext = dot <= 0 ? "" : lower.slice(dot);
  if (ext === ".gguf") return { format: "gguf" };
  if (ext === ".safetensors") return { format: "safetensors" };
  if (DENIED_EXTENSIONS.includes(ext)) {
    return {
      code: "DENIED_FORMAT",
      message: `Pickle-based format "${ext}" is never admitted; convert it to safetensors`,
    };
  }
  return {
    code: "UNKNOWN_FORMAT",
    message: `Unknown format "${
      ext || "(no extension)"
    }": only .gguf and .safetensors are admitted`,
  };
}

/** Stage 2. */
export const formatGateStage: Stage = {
  name: "format_gate",
  describeInput: (ctx) => ({ filename: ctx.filename, kind: ctx.artifact.kind }),
  async run(ctx): Promise<StageOutcome> {
    if (ctx.artifact.kind === "directory") return await gateDirectory(ctx);
    const byName = formatOfName(ctx.filename);
    if ("code" in byName) return fail("format_gate", byName);
    const format = byName.format;
    if (!ctx.config.allowedFormats.includes(format)) {
      return fail("format_gate", {
        code: "DENIED_FORMAT",
        message: `Format "${format}" is not in quarantine.allowedFormats`,
      });
    }
    if (ctx.facts.sourceFormats !== undefined && !ctx.facts.sourceFormats.includes(format)) {
      return fail("format_gate", {
        code: "DENIED_FORMAT",
        message: `The source rule for this origin does not admit format "${format}"`,
      });
    }
    const gate = await runStageJob(ctx, "format_gate", {
      label: "Format gate",
      schema: GateResultSchema,
      args: [format],
      limits: { timeoutMs: GATE_TIMEOUT_MS, heapMb: 64, memMb: 256, cpuSec: 30 },
    });
    if (gate.verdict === "fail") {
      return fail("format_gate", {
        code: gate.code ?? "INVALID_HEADER",
        message: gate.message ?? "The file's header was refused",
      });
    }
    if (gate.format !== format) throw new Error("Format gate job passed another format");
    return pass(
      { format },
      format === "gguf"
        ? `GGUF version ${gate.facts.version ?? "?"}`
        : `safetensors header of ${gate.facts.headerBytes ?? "?"} bytes`,
    );
  },
};
