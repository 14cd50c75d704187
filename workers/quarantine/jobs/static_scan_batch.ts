/**
 * Sandboxed job: the static scan of `static_scan.ts` over a batch of files in one process
 * (`secai scan` of many small files: one job start instead of one per file). Input: a
 * `files` batch; argv: `[FILE_DEADLINE_MS]`. Result:
 * `{ results: ({ report: ScanReport } | { error: { code, message } })[] }`, one entry per
 * input file, in order.
 *
 * Each file gets the same scan as in its own job (same options, same YARA rules, same
 * fail-closed report when YARA cannot load) and its own deadline: a file that runs past it,
 * or whose scan throws, gets an `error` entry and the next file is scanned, so one file
 * cannot hide the others' results. The caller scans an `error` file again in a job of its
 * own, with the single-file limits. A denied permission ends the whole job (never swallowed);
 * the caller then scans every file of the batch on its own.
 * @module
 */
import { runJob } from "../../../runtime/kit/job.ts";
import { mergeFindings, ScanDeadlineError, scanFile } from "../scanners/mod.ts";
import { loadYara } from "./_yara.ts";

const yara = loadYara();
const MAX_MESSAGE = 2000;

await runJob(async ({ inputPaths, outDir, args }) => {
  const deadlineMs = Number(args[0]);
  if (inputPaths === null || !Number.isSafeInteger(deadlineMs) || deadlineMs < 1) {
    throw Object.assign(
      new TypeError("Cannot scan: the batch scan needs a files input and a per-file deadline"),
      { code: "INVALID_INPUT" },
    );
  }
  const results: unknown[] = [];
  for (const path of inputPaths) {
    try {
      const report = await scanFile(path, {
        tempDir: outDir,
        deadline: performance.now() + deadlineMs,
        ...(yara.ok ? { yara: yara.rules } : {}),
      });
      results.push({
        report: yara.ok ? report : mergeFindings(
          { ...report, findings: report.findings.filter((f) => f.rule !== "yara.not_run") },
          [{ stage: "yara", rule: "yara.invalid", severity: "high", message: yara.message }],
        ),
      });
    } catch (error) {
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        throw error;
      }
      results.push({
        error: {
          code: error instanceof ScanDeadlineError ? error.code : "SCAN_FAILED",
          message: (error instanceof Error ? error.message : String(error)).slice(0, MAX_MESSAGE),
        },
      });
    }
  }
  return { results };
});
