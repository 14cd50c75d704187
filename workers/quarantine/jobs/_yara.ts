/**
 * Loads the shipped YARA rules inside a sandboxed job: reads every `policy/yara/*.yar` and
 * compiles them through ffi/yara.ts. Must run at the job module's top level, before
 * `runJob` revokes ffi. Each rule's `meta:` gives its severity and description.
 * @module
 */
import { openYara, readRuleFiles, type YaraSource } from "../../../ffi/yara.ts";
import type { YaraRuleSet } from "../scanners/mod.ts";
import type { Severity } from "../scanners/types.ts";
import { SEVERITIES } from "../scanners/types.ts";

/** The shipped rules directory (spec 13 §5 policy bundle: `yara/<rule>.yar`). */
export const RULES_DIR = new URL("../../../policy/yara", import.meta.url).pathname;

/**
 * Reads `severity = "…"` and `description = "…"` from each rule's meta block.
 * @returns rule name → meta (severity `high` when a rule names none)
 */
export function parseRuleMeta(
  sources: readonly YaraSource[],
): Map<string, { severity: Severity; description: string }> {
  const meta = new Map<string, { severity: Severity; description: string }>();
  for (const source of sources) {
    const text = source.text.replace(/\/\*[\s\S]*?\*\//g, "");
    for (const match of text.matchAll(/\brule\s+([A-Za-z_]\w*)[^{]*\{([\s\S]*?)\bcondition\s*:/g)) {
      const body = match[2] ?? "";
      const severity = /\bseverity\s*=\s*"(\w+)"/.exec(body)?.[1] ?? "high";
      const description = /\bdescription\s*=\s*"([^"]*)"/.exec(body)?.[1] ?? "";
      meta.set(match[1] ?? "", {
        severity: (SEVERITIES as readonly string[]).includes(severity)
          ? severity as Severity
          : "high",
        description,
      });
    }
  }
  return meta;
}

/** Outcome of loading: the rule set, or why it could not be loaded (the scan is then invalid). */
export type YaraLoad = { ok: true; rules: YaraRuleSet; files: string[] } | {
  ok: false;
  message: string;
};

/**
 * Reads and compiles every rule file of a directory.
 * @param dir rules directory; default {@link RULES_DIR}
 */
export function loadYara(dir: string = RULES_DIR): YaraLoad {
  try {
    const sources = readRuleFiles(dir);
    if (sources.length === 0) {
      return { ok: false, message: `No YARA rule files (*.yar) in "${dir}"` };
    }
    const yara = openYara({ sources });
    return {
      ok: true,
      rules: { scan: (bytes) => yara.scan(bytes), meta: parseRuleMeta(sources) },
      files: sources.map((s) => s.name),
    };
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    return {
      ok: false,
      message: `Cannot load YARA rules: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}
