/**
 * Sandboxed job of stage 5 (static scan, spec 13 §3): runs every static scanner of
 * `../scanners/` on the input file and returns `{ report: ScanReport }`. The YARA rules are
 * compiled at module top level, while the job still holds ffi (its manifest entry grants
 * libyara, see `jobLibraries`); `runJob` then revokes ffi before the input is opened. When
 * libyara or the rules cannot be loaded the report is `invalid` (fail closed), never clean.
 * A gzip wrapper is inflated into the job's own out dir. A directory input (a diffusion
 * directory artifact, spec 13 §4 stage 5) has every safetensors file in it scanned.
 * @module
 */
import { runJob } from "../../../runtime/kit/job.ts";
import { scanDiffusionModels } from "../scanners/diffusion_scan.ts";
import { mergeFindings, scanFile } from "../scanners/mod.ts";
import { loadYara } from "./_yara.ts";

const yara = loadYara();

await runJob(async ({ inputPath, outDir }) => {
  if (inputPath === null) {
    throw Object.assign(new TypeError("Cannot scan: the static scan needs a file input"), {
      code: "INVALID_INPUT",
    });
  }
  const options = { tempDir: outDir, ...(yara.ok ? { yara: yara.rules } : {}) };
  const report = (await Deno.lstat(inputPath)).isDirectory
    ? await scanDiffusionModels(inputPath, options)
    : await scanFile(inputPath, options);
  if (yara.ok) return { report };
  return {
    report: mergeFindings(
      { ...report, findings: report.findings.filter((f) => f.rule !== "yara.not_run") },
      [{ stage: "yara", rule: "yara.invalid", severity: "high", message: yara.message }],
    ),
  };
});
