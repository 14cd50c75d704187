/**
 * Stage 5 on a directory artifact (spec 13 §4): every static scanner ({@link scanFile}) on
 * every regular `.safetensors` file of the directory, as one report of format
 * `diffusion-directory`. Kept apart from `diffusion.ts` so that the stage 2 and stage 7 jobs
 * do not load every scanner.
 * @module
 */
import { walkTree } from "../../../runtime/kit/tree.ts";
import { DIFFUSION_LIMITS, suffixOf } from "./diffusion.ts";
import { scanFile, type ScanFileOptions, verdictOf } from "./mod.ts";
import { type Finding, type ScanReport, SEVERITIES } from "./types.ts";

/** Most findings in the report (every one counts in its verdict). */
const MAX_FINDINGS = 10_000;

/**
 * Scans every safetensors file of a directory. Findings carry the file's relative path in
 * `member` (`path:member` for a finding that already named a member) and in the message.
 * Links, special files and a walk past the limits are findings too: what was not scanned is
 * never reported clean.
 * @param root absolute path of the directory (read-only)
 * @param options the scanner options (YARA rules, temp dir, cancellation, progress)
 * @returns one report for the directory
 * @example
 * ```ts
 * const report = await scanDiffusionModels("/input/tiny-sd", { yara });
 * ```
 */
export async function scanDiffusionModels(
  root: string,
  options: ScanFileOptions = {},
): Promise<ScanReport> {
  const started = performance.now();
  const listing = await walkTree(root, {
    maxEntries: DIFFUSION_LIMITS.maxEntries,
    maxDepth: DIFFUSION_LIMITS.maxDepth,
    maxPathBytes: DIFFUSION_LIMITS.maxPathBytes,
  });
  const findings: Finding[] = listing.problems.map((problem) => ({
    stage: "diffusion",
    rule: "diffusion.walk.invalid",
    severity: "high",
    message: problem.message,
    member: problem.path,
  }));
  let bytes = 0;
  let scanned = 0;
  let yaraNotRun: Finding | null = null;
  for (const entry of listing.entries) {
    if (entry.kind === "symlink" || entry.kind === "other") {
      findings.push({
        stage: "diffusion",
        rule: entry.kind === "symlink" ? "diffusion.link" : "diffusion.special_file",
        severity: "critical",
        message: `"${entry.path}" is not a regular file or directory`,
        member: entry.path,
      });
      continue;
    }
    if (entry.kind !== "file" || suffixOf(entry.path) !== ".safetensors") continue;
    const { onProgress, ...rest } = options;
    const base = bytes;
    const report = await scanFile(`${root}/${entry.path}`, {
      ...rest,
      ...(onProgress ? { onProgress: (n: number) => onProgress(base + n) } : {}),
    });
    bytes += report.bytesScanned;
    scanned++;
    for (const finding of report.findings) {
      if (finding.rule === "yara.not_run") {
        yaraNotRun ??= finding;
        continue;
      }
      findings.push({
        ...finding,
        member: finding.member ? `${entry.path}:${finding.member}` : entry.path,
        message: `"${entry.path}": ${finding.message}`.slice(0, 2000),
      });
    }
  }
  if (scanned === 0) {
    findings.push({
      stage: "diffusion",
      rule: "diffusion.no_safetensors",
      severity: "high",
      message: "The directory holds no .safetensors file",
      member: "",
    });
  }
  if (yaraNotRun !== null) findings.push(yaraNotRun);
  // The verdict counts every finding; the report keeps the worst, within the job's output.
  const verdict = verdictOf(findings);
  let kept = findings;
  if (findings.length > MAX_FINDINGS) {
    kept = [...findings]
      .sort((a, b) => SEVERITIES.indexOf(b.severity) - SEVERITIES.indexOf(a.severity))
      .slice(0, MAX_FINDINGS);
    kept.push({
      stage: "diffusion",
      rule: "diffusion.findings_truncated",
      severity: "info",
      message: `${findings.length - MAX_FINDINGS} more findings were left out`,
    });
  }
  return {
    format: "diffusion-directory",
    verdict,
    findings: kept,
    bytesScanned: bytes,
    ms: performance.now() - started,
  };
}
