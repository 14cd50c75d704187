/**
 * Test harness for the scanners: writes corpus bytes to a temp file and scans it with the
 * real scanners and the real shipped YARA rules (libyara through FFI, as the job does).
 * @module
 */
import { loadYara } from "../../workers/quarantine/jobs/_yara.ts";
import { scanFile } from "../../workers/quarantine/scanners/mod.ts";
import type { Finding, ScanReport } from "../../workers/quarantine/scanners/types.ts";

let yara: ReturnType<typeof loadYara> | null = null;

/** The shipped rules, compiled once per test process. */
export function shippedYara(): ReturnType<typeof loadYara> {
  yara ??= loadYara();
  return yara;
}

/** Scans bytes written to a temp file. */
export async function scanBytes(
  bytes: Uint8Array,
  options: { yara?: boolean; name?: string; maxInflatedBytes?: number } = {},
): Promise<ScanReport> {
  const dir = await Deno.makeTempDir({ prefix: "secai-scanner-test-" });
  try {
    const path = `${dir}/${options.name ?? "model.bin"}`;
    await Deno.writeFile(path, bytes);
    const rules = options.yara === false ? null : shippedYara();
    if (rules !== null && !rules.ok) throw new Error(rules.message);
    return await scanFile(path, {
      tempDir: dir,
      ...(rules?.ok ? { yara: rules.rules } : {}),
      ...(options.maxInflatedBytes === undefined
        ? {}
        : { maxInflatedBytes: options.maxInflatedBytes }),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Offset of `needle` in `haystack` (first occurrence), or -1. */
export function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** One-line description of findings for assertion messages. */
export function describeFindings(findings: readonly Finding[]): string {
  return findings.map((f) =>
    `${f.rule}[${f.severity}] ${f.callable ?? ""} ${f.opcode ?? ""} @${f.offset ?? "-"} ${
      f.member ?? ""
    }: ${f.message}`
  ).join("\n");
}
