/**
 * `secai convert IN.pt OUT.safetensors [--json]`: safe conversion of a PyTorch checkpoint.
 * The `convert_plan` job scans the checkpoint (every static scanner; it must be clean) and
 * plans the conversion inside the sandbox by interpreting the allowlisted rebuild calls — no
 * pickle code is ever executed; then the trusted writer (runtime/kit/safetensors.ts) copies
 * the planned byte ranges into a new safetensors file, which is scanned again.
 * Exit 0 converted and clean, 1 refused or failed, 2 usage error.
 * @module
 */
import { z } from "zod";
import { ScanReportSchema } from "../workers/quarantine/api.ts";
import { parseArgs, UsageError } from "./cli_args.ts";
import { openScanSession, SCAN_LIBRARIES, scanStaged } from "./cli_scan.ts";
import { ConvertError, writeSafetensors } from "./kit/safetensors.ts";
import { print } from "./log.ts";

const PROJECT_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const CONVERT_PLAN = `${PROJECT_ROOT}/workers/quarantine/jobs/convert_plan.ts`;

const PlanResultSchema = z.strictObject({
  report: ScanReportSchema,
  plan: z.unknown(),
  error: z.string().max(4000).nullable(),
});

/** Outcome of {@link convertCheckpoint}. */
export interface ConvertOutcome {
  ok: boolean;
  /** Why it was refused, when it was. */
  error: string | null;
  tensors: number;
  bytes: number;
  /** Verdict of the checkpoint's scan and of the written file's scan. */
  sourceVerdict: string;
  outputVerdict: string | null;
}

/**
 * Converts a checkpoint to safetensors without executing any pickle code, and scans the
 * result. For the quarantine pipeline: send `output` through the pipeline afterwards.
 * @param input the checkpoint
 * @param output the safetensors file to create
 */
export async function convertCheckpoint(input: string, output: string): Promise<ConvertOutcome> {
  const session = await openScanSession();
  try {
    const rel = await session.stage(input);
    const result = await session.runner.run({
      module: CONVERT_PLAN,
      input: { kind: "file", path: rel },
      args: [],
      limits: { timeoutMs: 600_000, heapMb: 2048, memMb: 4096, cpuSec: 600 },
      ffi: SCAN_LIBRARIES,
    });
    const refused = (error: string, sourceVerdict = "invalid"): ConvertOutcome => ({
      ok: false,
      error,
      tensors: 0,
      bytes: 0,
      sourceVerdict,
      outputVerdict: null,
    });
    if (result.status !== "ok") {
      return refused(
        `The conversion job ended "${result.status}"${
          result.error ? `: ${result.error.message}` : ""
        }`,
      );
    }
    const parsed = PlanResultSchema.safeParse(result.result);
    if (!parsed.success) return refused("The conversion job answered outside its contract");
    const { report, plan, error } = parsed.data;
    if (plan === null || error !== null) {
      const worst = report.findings.find((f) => f.severity === "critical" || f.severity === "high");
      return refused(
        `${error ?? "No plan"}${worst ? ` (${worst.rule}: ${worst.message})` : ""}`,
        report.verdict,
      );
    }
    let written: { tensors: number; bytes: number };
    try {
      written = await writeSafetensors(`${session.home}/${rel}`, output, plan);
    } catch (e) {
      if (e instanceof ConvertError) return refused(e.message, report.verdict);
      throw e;
    }
    const outRel = await session.stage(output);
    const rescan = await scanStaged(session, outRel);
    const order = ["info", "low", "medium", "high", "critical"];
    const outputVerdict = rescan.findings.some((f) =>
        !f.rule.endsWith(".invalid") && order.indexOf(f.severity) >= 2
      )
      ? "threat"
      : rescan.findings.some((f) => f.rule.endsWith(".invalid"))
      ? "invalid"
      : "clean";
    return {
      ok: outputVerdict === "clean",
      error: outputVerdict === "clean" ? null : `The converted file scanned ${outputVerdict}`,
      ...written,
      sourceVerdict: report.verdict,
      outputVerdict,
    };
  } finally {
    await session.close();
  }
}

/** `secai convert`. */
export async function convertCommand(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv, { json: "boolean" });
  if (positional.length !== 2) throw new UsageError("convert needs IN and OUT");
  const [input = "", output = ""] = positional;
  if (!output.endsWith(".safetensors")) {
    throw new UsageError(`OUT "${output}" must end with .safetensors`);
  }
  try {
    const info = await Deno.stat(input);
    if (!info.isFile) throw new UsageError(`IN "${input}" is not a regular file`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new UsageError(`IN "${input}" does not exist`);
    throw error;
  }
  const outcome = await convertCheckpoint(input, output);
  print(
    flags.json
      ? JSON.stringify({ input, output, ...outcome })
      : outcome.ok
      ? `${input} → ${output}: ${outcome.tensors} tensors, ${outcome.bytes} bytes, scanned clean`
      : `${input}: not converted: ${outcome.error}`,
  );
  return outcome.ok ? 0 : 1;
}
