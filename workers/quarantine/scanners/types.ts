/**
 * Shared types of the static scanners (issue #6): what every scanner reports and what the
 * quarantine pipeline, `secai scan` and the `static_scan` job exchange.
 * @module
 */

/** How bad a finding is. `medium` and above make a file a threat. */
export type Severity = "info" | "low" | "medium" | "high" | "critical";

/** Severities in increasing order. */
export const SEVERITIES: readonly Severity[] = ["info", "low", "medium", "high", "critical"];

/** One thing a scanner saw: where (offset, member) and why (rule, callable, opcode). */
export interface Finding {
  /** Scanner that reported it: `pickle`, `zip`, `gguf`, `safetensors`, `npy`, `template`, … */
  stage: string;
  /** Stable rule id, e.g. `pickle.callable_not_allowed`, `gguf.tensor_overlap`. */
  rule: string;
  severity: Severity;
  /** Sentence naming what and why, with quoted values. */
  message: string;
  /**
   * Byte offset in the scanned file; for a finding inside a compressed member or wrapper
   * (`member` set, e.g. a deflated npz member or `xz:`), in that member's inflated data.
   */
  offset?: number;
  /** Archive member (zip/tar path; `gzip:`, `bz2:`, `xz:`, `lzma:` for a wrapper) of the offset. */
  member?: string;
  /** Resolved callable `module.name` (pickle). */
  callable?: string;
  /** Pickle opcode name, e.g. `STACK_GLOBAL`, `REDUCE`. */
  opcode?: string;
}

/** Outcome of a scan: `invalid` when a scanner could not fully parse the file. */
export type Verdict = "clean" | "threat" | "invalid";

/** Report of one file. */
export interface ScanReport {
  /** Detected format: `gguf`, `safetensors`, `pytorch-zip`, `npz`, `npy`, `pickle`, … */
  format: string;
  verdict: Verdict;
  findings: Finding[];
  /** Bytes read from the file (each byte counted once per pass). */
  bytesScanned: number;
  ms: number;
}
