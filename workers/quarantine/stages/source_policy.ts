/**
 * Stage 1 — source policy (spec 13 §3). A local import passes as `local-import` (no remote
 * provenance). A remote origin must be a plain https URL on an allow-listed (host, port) with
 * a path-segment prefix match; anything ambiguous is refused rather than normalised.
 * @module
 */
import type { QuarantineConfig } from "../api.ts";
import { StageFailure } from "../errors.ts";
import { fail, pass, type Stage, type StageOutcome } from "./stage.ts";

/** Longest origin URL (spec: ≤ 4096 bytes). */
export const MAX_SOURCE_BYTES = 4096;

/** A checked origin. */
export interface CheckedSource {
  url: URL;
  host: string;
  rule: QuarantineConfig["sources"][number];
}

// deno-lint-ignore no-control-regex -- refusing control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const IPV4_LIKE = /^[0-9.]+$|^0x/i;

/**
 * Checks an origin URL against the rules and the allowlist.
 * @param raw the URL as given
 * @param rules `quarantine.sources`
 * @returns the parsed URL and the matching rule
 * @throws {StageFailure} INVALID_SOURCE or SOURCE_NOT_ALLOWED, naming the broken rule
 */
export function checkSource(
  raw: string,
  rules: QuarantineConfig["sources"],
): CheckedSource {
  const invalid = (why: string, cause?: unknown) =>
    new StageFailure("INVALID_SOURCE", `Invalid source URL: ${why}`, { cause });
  if (new TextEncoder().encode(raw).length > MAX_SOURCE_BYTES) {
    throw invalid(`longer than ${MAX_SOURCE_BYTES} bytes`);
  }
  if (CONTROL.test(raw)) throw invalid("contains a control character");
  if (raw.includes("\\")) throw invalid("contains a backslash");
  if (/\s/.test(raw)) throw invalid("contains white space");
  // Percent-escaped dots, slashes or backslashes would make the path mean something else
  // after decoding than what the prefix check saw.
  if (/%(2e|2f|5c|00)/i.test(raw)) throw invalid("escapes a dot, slash, backslash or NUL");
  let url: URL;
  try {
    url = new URL(raw);
  } catch (error) {
    throw invalid("not a URL", error);
  }
  if (url.protocol !== "https:") throw invalid(`scheme "${url.protocol}" is not https`);
  if (url.username !== "" || url.password !== "" || /^https:\/\/[^/]*@/i.test(raw)) {
    throw invalid("contains user information");
  }
  if (url.search !== "" || raw.includes("?")) throw invalid("has a query");
  if (url.hash !== "" || raw.includes("#")) throw invalid("has a fragment");
  if (url.port !== "" && url.port !== "443") throw invalid(`port ${url.port} is not 443`);
  const host = url.hostname.replace(/\.$/, "").toLowerCase();
  if (host === "") throw invalid("has no host");
  if (host.startsWith("[") || IPV4_LIKE.test(host)) throw invalid("host is an IP address");
  const segments = url.pathname.split("/");
  if (segments.includes("..") || segments.includes(".")) throw invalid('has a "." or ".." segment');
  if (/\/\.\.?(\/|$)/.test(raw.slice(raw.indexOf("//") + 2))) {
    throw invalid('has a "." or ".." segment');
  }
  if (rules.length === 0) {
    throw new StageFailure(
      "SOURCE_NOT_ALLOWED",
      "No remote source is allowed: the source allowlist is empty",
    );
  }
  for (const rule of rules) {
    const prefix = new URL(rule.urlPrefix);
    if (prefix.hostname.replace(/\.$/, "").toLowerCase() !== host) continue;
    if ((prefix.port || "443") !== (url.port || "443")) continue;
    if (isPathPrefix(prefix.pathname, url.pathname)) return { url, host, rule };
  }
  throw new StageFailure(
    "SOURCE_NOT_ALLOWED",
    `Source host "${host}" with path "${
      url.pathname.slice(0, 200)
    }" is not on the source allowlist`,
  );
}

/** Whether `prefix` is a whole-segment prefix of `path` (`/a/b` matches `/a/b/c`, not `/a/bc`). */
function isPathPrefix(prefix: string, path: string): boolean {
  const p = prefix.replace(/\/+$/, "");
  return p === "" || path === p || path.startsWith(`${p}/`);
}

/** Stage 1. */
export const sourcePolicyStage: Stage = {
  name: "source_policy",
  describeInput: (ctx) => ({ source: ctx.source ?? "local-import" }),
  run(ctx): Promise<StageOutcome> {
    if (ctx.source === null) {
      return Promise.resolve(
        pass({ sourceKind: "local" }, "Local import: no remote origin, so no remote provenance"),
      );
    }
    let checked: CheckedSource;
    try {
      checked = checkSource(ctx.source, ctx.config.sources);
    } catch (error) {
      if (!(error instanceof StageFailure)) throw error;
      return Promise.resolve(fail("source_policy", { code: error.code, message: error.message }));
    }
    return Promise.resolve(pass({
      sourceKind: "remote",
      sourceFormats: checked.rule.formats,
      sourceRequiresSignature: checked.rule.requireSignature,
    }, `Origin "${checked.host}" matches allowlist prefix "${checked.rule.urlPrefix}"`));
  },
};
