/**
 * What the lines of `secai scan` share, for a file (`cli_scan.ts`) and for a directory
 * (`cli_scan_dir.ts`): the finding that stands for a failed job, and the verdict of a line.
 * @module
 */
import type { Finding } from "../workers/quarantine/api.ts";
import type { JobResult } from "./kit/sandbox_api.ts";

/**
 * The finding of a job that did not answer: a failed scan is an `invalid` line, never clean.
 * @param result the job's result
 * @param what the job as named in the message (`"static scan"`)
 * @returns a `scan.invalid` finding of high severity naming how the job ended
 */
export function jobFailure(result: JobResult, what: string): Finding {
  return {
    stage: "scan",
    rule: "scan.invalid",
    severity: "high",
    message: `The ${what} job ended "${result.status}"${
      result.error ? `: ${result.error.code} ${result.error.message}` : ""
    }`.slice(0, 2000),
  };
}

/**
 * The verdict of a line: `threat` for a finding of medium severity or worse that is not a
 * parse failure, else `invalid` for any parse failure (`*.invalid`), else `clean`.
 * @param findings the line's findings
 * @returns the verdict
 */
export function verdictOf(findings: readonly Finding[]): "clean" | "threat" | "invalid" {
  const order = ["info", "low", "medium", "high", "critical"];
  if (findings.some((f) => !f.rule.endsWith(".invalid") && order.indexOf(f.severity) >= 2)) {
    return "threat";
  }
  return findings.some((f) => f.rule.endsWith(".invalid")) ? "invalid" : "clean";
}
