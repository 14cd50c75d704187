/**
 * Sandboxed job of the safe conversion (`secai convert`): scans a PyTorch checkpoint with
 * every static scanner and, only when it is clean, plans its conversion to safetensors by
 * interpreting the allowlisted rebuild calls symbolically (no pickle code runs). Result:
 * `{ report: ScanReport, plan: ConvertPlan | null, error: string | null }`. The bytes are
 * copied outside the sandbox by the trusted writer, which checks every range of the plan.
 * @module
 */
import { runJob } from "../../../runtime/kit/job.ts";
import { planConversion } from "../scanners/convert.ts";
import { FormatError } from "../scanners/errors.ts";
import { mergeFindings, scanFile } from "../scanners/mod.ts";
import { loadYara } from "./_yara.ts";

const yara = loadYara();

await runJob(async ({ inputPath, outDir }) => {
  if (inputPath === null) {
    throw Object.assign(new TypeError("Cannot convert: the job needs a file input"), {
      code: "INVALID_INPUT",
    });
  }
  let report = await scanFile(inputPath, {
    tempDir: outDir,
    ...(yara.ok ? { yara: yara.rules } : {}),
  });
  if (!yara.ok) {
    report = mergeFindings(report, [{
      stage: "yara",
      rule: "yara.invalid",
      severity: "high",
      message: yara.message,
    }]);
  }
  if (report.verdict !== "clean") {
    return { report, plan: null, error: `The checkpoint is ${report.verdict}` };
  }
  try {
    return { report, plan: planConversion(inputPath), error: null };
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    return { report, plan: null, error: error.message };
  }
});
