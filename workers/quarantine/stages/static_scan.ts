/**
 * Stage 5 — static scan (spec 13 §3). Runs the `static_scan` job (the strict format readers,
 * pickle VM, template checks, entropy and YARA of `workers/quarantine/scanners/`) in the
 * sandbox with the configured memory and time limits, and validates its report at this
 * boundary. `clean` passes; `threat` and `invalid` fail with every finding kept (where:
 * offset/member; why: rule, callable, opcode). A job that crashes, times out or answers
 * outside the contract fails the stage: a file a scanner cannot read is never clean.
 * @module
 */
import { z } from "zod";
import { type Finding, MAX_STAGE_FINDINGS, ScanReportSchema, SeveritySchema } from "../api.ts";
import { runStageJob, scanJobLimits } from "./job.ts";
import { type Facts, fail, pass, type Stage, type StageOutcome } from "./stage.ts";

const ScanJobResultSchema = z.strictObject({ report: ScanReportSchema });

/** Formats the scanners name for what the format gate calls gguf/safetensors. */
const SCANNER_FORMATS: Readonly<Record<string, string>> = {
  gguf: "gguf",
  safetensors: "safetensors",
  // A directory artifact: every safetensors file in it (spec 13 §4 stage 5).
  "diffusion-directory": "diffusion-directory",
};

/**
 * Keeps at most {@link MAX_STAGE_FINDINGS} findings, worst first, and says how many were left out.
 * @param findings all findings
 * @param stage stage name for the summary finding
 */
export function boundFindings(findings: readonly Finding[], stage: string): Finding[] {
  if (findings.length <= MAX_STAGE_FINDINGS) return [...findings];
  const order = SeveritySchema.options;
  const sorted = [...findings].sort((a, b) =>
    order.indexOf(b.severity) - order.indexOf(a.severity)
  );
  return [
    ...sorted.slice(0, MAX_STAGE_FINDINGS),
    {
      stage,
      rule: `${stage}.findings_truncated`,
      severity: "info",
      message: `${findings.length - MAX_STAGE_FINDINGS} more findings were left out of this record`,
    },
  ];
}

/** Counts findings by severity. */
export function countBySeverity(
  findings: readonly Finding[],
): NonNullable<Facts["scan"]>["bySeverity"] {
  const counts = { info: 0, low: 0, medium: 0, high: 0, critical: 0 };
  for (const finding of findings) counts[finding.severity]++;
  return counts;
}

/** Stage 5. */
export const staticScanStage: Stage = {
  name: "static_scan",
  describeInput: (ctx) => ({
    artifact: ctx.artifact.rel,
    format: ctx.facts.format ?? null,
    limits: {
      timeoutMs: ctx.config.stageTimeoutMs,
      heapMb: ctx.config.scanHeapMb,
      memMb: ctx.config.scanMemMb,
    },
  }),
  async run(ctx): Promise<StageOutcome> {
    const { report } = await runStageJob(ctx, "static_scan", {
      label: "Static scan",
      schema: ScanJobResultSchema,
      limits: scanJobLimits(ctx.config),
    });
    const findings = boundFindings(report.findings, "static_scan");
    const facts: Facts = {
      scan: {
        verdict: report.verdict,
        format: report.format,
        bytesScanned: report.bytesScanned,
        ms: report.ms,
        findingsTotal: report.findings.length,
        bySeverity: countBySeverity(report.findings),
      },
    };
    if (report.verdict === "threat") {
      return fail("static_scan", {
        code: "SCAN_THREAT",
        message: `Static scan found a threat: ${describeWorst(report.findings)}`,
      }, { findings, facts });
    }
    if (report.verdict === "invalid") {
      return fail("static_scan", {
        code: "SCAN_INVALID",
        message: `The scanners could not fully parse the file: ${describeWorst(report.findings)}`,
      }, { findings, facts });
    }
    const expected = ctx.facts.format === undefined ? undefined : SCANNER_FORMATS[ctx.facts.format];
    if (expected !== report.format) {
      return fail("static_scan", {
        code: "FORMAT_MISMATCH",
        message:
          `The scanners read the file as "${report.format}", the format gate as "${ctx.facts.format}"`,
      }, { findings, facts });
    }
    if (report.bytesScanned <= 0 && (ctx.facts.size ?? 0) > 0) {
      throw new Error("Static scan reported clean without reading the file");
    }
    return pass(
      facts,
      `Clean: ${report.bytesScanned} bytes scanned as ${report.format} in ${
        Math.round(report.ms)
      } ms`,
      findings,
    );
  },
};

function describeWorst(findings: readonly Finding[]): string {
  const order = SeveritySchema.options;
  const worst =
    [...findings].sort((a, b) => order.indexOf(b.severity) - order.indexOf(a.severity))[0];
  if (worst === undefined) return "no finding was reported";
  const where = [
    worst.callable ? `callable "${worst.callable}"` : null,
    worst.opcode ? `opcode ${worst.opcode}` : null,
    worst.member ? `member "${worst.member}"` : null,
    worst.offset !== undefined ? `offset ${worst.offset}` : null,
  ].filter(Boolean).join(", ");
  return `${worst.rule} (${worst.severity})${where ? ` at ${where}` : ""}: ${worst.message}`
    .slice(0, 1500);
}
