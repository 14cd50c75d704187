/**
 * The egress gate's URL check (spec 12 §2.2 `egress`, spec 22 §1.2 step 4). A URL passes only
 * if every rule holds on the raw string *and* on the WHATWG-parsed URL, and the two agree:
 * parsers that disagree about a URL are how allowlists are bypassed (`https://a.com\@b.com`,
 * `https://a.com%2f@b.com`, `https://0x7f.1/`, `https://a.com/x/%2e%2e/admin`).
 *
 * The connection-time address check for resolved addresses is {@linkcode checkResolvedAddress}
 * in `ip.ts` (used by the airlock when it dials).
 * @module
 */
import { parseIPv4 } from "./ip.ts";

/** Limits of the URL check. */
export interface UrlLimits {
  /** Longest URL, in characters (spec 22: 8 192). */
  maxUrlLength: number;
  /** Longest query string including `?` (spec 22: 4 096). */
  maxQueryLength: number;
}

/** A URL that passed: its parts as both parsers agree on them. */
export interface CheckedUrl {
  /** Lower-case host name. */
  host: string;
  /** Path, always starting with `/`. */
  path: string;
  /** Query including `?`, or "". */
  query: string;
}

/** A failed rule. */
export interface UrlFailure {
  rule: string;
  reason: string;
}

/** Outcome of {@linkcode checkUrl}. */
export type UrlCheck = { ok: true; url: CheckedUrl } | { ok: false; failure: UrlFailure };

const RAW_SHAPE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/s;
const HOST_CHARS = /^[A-Za-z0-9.-]+$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** RFC 3986 `pchar` and `/`, ASCII only; `%` only as a complete escape (checked below). */
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const QUERY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/;
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;
/** WHATWG's "ends in a number": a last label of digits or 0x-hex makes the host IPv4. */
const NUMERIC_LABEL = /^(?:[0-9]+|0[xX][0-9A-Fa-f]*)$/;

function fail(rule: string, reason: string): UrlCheck {
  return { ok: false, failure: { rule: `egress.url.${rule}`, reason } };
}

/**
 * Checks a URL against every lexical egress rule: `https` only; no userinfo; the raw host is
 * plain ASCII letters, digits, dots and hyphens with no percent-escapes and no trailing dot;
 * port absent or 443; no control characters, spaces, backslashes or non-ASCII anywhere in the
 * raw string; bounded length; no fragment; never an IP literal in any encoding; and the raw
 * parts equal the WHATWG-parsed parts.
 * @param raw the URL exactly as the caller gave it
 * @param limits length limits
 * @returns the agreed parts, or the first failed rule with a reason
 * @example
 * ```ts
 * checkUrl("https://0x7f.1/", { maxUrlLength: 8192, maxQueryLength: 4096 }).ok; // false
 * ```
 */
export function checkUrl(raw: string, limits: UrlLimits): UrlCheck {
  if (raw.length === 0) return fail("empty", "The URL is empty");
  if (raw.length > limits.maxUrlLength) {
    return fail("length", `The URL is longer than ${limits.maxUrlLength} characters`);
  }
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) {
      return fail("chars", "The URL contains a control character or a space");
    }
    if (c === 0x5c) return fail("chars", "The URL contains a backslash");
    if (c > 0x7e) return fail("chars", "The URL contains a non-ASCII character");
  }
  const shape = RAW_SHAPE.exec(raw);
  if (!shape) return fail("syntax", 'The URL is not of the form "https://host/path"');
  const [, scheme = "", authority = "", rawPath = "", rawQuery = "", fragment] = shape;
  if (scheme.toLowerCase() !== "https") {
    return fail("scheme", `Only https is allowed, not "${scheme.slice(0, 20)}"`);
  }
  if (fragment !== undefined) return fail("fragment", "The URL has a fragment");
  if (authority.includes("@")) return fail("userinfo", "The URL carries user information");
  if (authority.startsWith("[")) {
    return fail("ip_literal", "IP literal hosts are never allowed (IPv6)");
  }
  const colon = authority.lastIndexOf(":");
  const host = colon === -1 ? authority : authority.slice(0, colon);
  const port = colon === -1 ? null : authority.slice(colon + 1);
  if (port !== null && port !== "443") {
    return fail("port", `Only port 443 is allowed, not "${port.slice(0, 10)}"`);
  }
  if (host.length === 0) return fail("host", "The URL has no host");
  if (host.includes("%")) return fail("host_percent", "The host contains a percent-escape");
  if (!HOST_CHARS.test(host)) {
    return fail("host_chars", "The host may contain only ASCII letters, digits, dots and hyphens");
  }
  if (host.endsWith(".")) return fail("trailing_dot", "The host ends with a dot");
  const lower = host.toLowerCase();
  if (lower.length > 253) return fail("host", "The host is longer than 253 characters");
  const labels = lower.split(".");
  if (NUMERIC_LABEL.test(labels[labels.length - 1] ?? "") || parseIPv4(lower) !== null) {
    return fail("ip_literal", "IP literal hosts are never allowed, in any encoding");
  }
  for (const label of labels) {
    if (!LABEL.test(label)) {
      return fail("host", `The host label "${label.slice(0, 63)}" is not a valid DNS label`);
    }
  }
  if (lower === "localhost" || lower.endsWith(".localhost")) {
    return fail("localhost", "localhost names are never allowed");
  }
  if (!PATH_CHARS.test(rawPath) || BAD_ESCAPE.test(rawPath)) {
    return fail("path", "The path contains a character that must be percent-encoded");
  }
  if (rawQuery.length > limits.maxQueryLength) {
    return fail("query_length", `The query is longer than ${limits.maxQueryLength} characters`);
  }
  if (!QUERY_CHARS.test(rawQuery.slice(1)) || BAD_ESCAPE.test(rawQuery)) {
    return fail("query", "The query contains a character that must be percent-encoded");
  }
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    return fail("parse", "The URL does not parse as a WHATWG URL");
  }
  // The two readings must agree part by part: any normalisation WHATWG applies (dot
  // segments, %2e, case, IPv4 number forms, default port, empty query) is a disagreement.
  const path = rawPath === "" ? "/" : rawPath;
  const query = rawQuery === "?" ? "" : rawQuery;
  if (
    parsed.protocol !== "https:" || parsed.username !== "" || parsed.password !== "" ||
    parsed.hostname !== lower || parsed.port !== "" || parsed.pathname !== path ||
    parsed.search !== query || parsed.hash !== "" || rawQuery === "?"
  ) {
    return fail("mismatch", "The raw URL and its WHATWG parse disagree");
  }
  if (parseIPv4(parsed.hostname) !== null || parsed.hostname.includes(":")) {
    return fail("ip_literal", "IP literal hosts are never allowed, in any encoding");
  }
  const hidden = rawPath.includes("%") ? findHiddenInPath(rawPath) : null;
  if (hidden) return fail("path_escape", hidden);
  return { ok: true, url: { host: lower, path, query } };
}

/** Most rounds of percent-decoding applied to one path segment. */
const MAX_PATH_DECODE_ROUNDS = 4;
const ESCAPE_RUN = /(?:%[0-9A-Fa-f]{2})+/g;

/**
 * What a server that decodes the path (once or again) would see that the allowlist did not:
 * a segment that decodes to `.` or `..`, a `/` or `\` or control character inside an escape,
 * or an escape that is not valid UTF-8 (overlong forms like `%c0%ae` are dots to some
 * decoders). `/models/..%2Fadmin` matches the prefix `/models` and is `/admin` once decoded.
 * @returns the reason, or null when the escapes hide nothing
 */
function findHiddenInPath(rawPath: string): string | null {
  for (let segment of rawPath.split("/")) {
    for (let round = 0; segment.includes("%"); round++) {
      if (round === MAX_PATH_DECODE_ROUNDS) {
        return `A path segment is still encoded after ${MAX_PATH_DECODE_ROUNDS} rounds of decoding`;
      }
      let decoded: string;
      try {
        decoded = segment.replace(ESCAPE_RUN, (run) => decodeURIComponent(run));
      } catch (err) {
        if (!(err instanceof URIError)) throw err;
        return "The path contains an escape that is not valid UTF-8 (an overlong form)";
      }
      if (decoded === segment) break; // a literal "%" that escapes nothing
      // deno-lint-ignore no-control-regex -- control characters are what this looks for
      if (/[\/\\\x00-\x1f\x7f]/.test(decoded)) {
        return "The path hides a separator or a control character in an escape";
      }
      segment = decoded;
    }
    if (segment === "." || segment === "..") {
      return "The path hides a dot segment in an escape";
    }
  }
  return null;
}

/** One allowlist entry as the evaluator uses it. */
export interface DestinationRule {
  /** Lower-case host. */
  host: string;
  /** Whether sub-domains of `host` match too (off unless a rule says so). */
  includeSubdomains: boolean;
  /** Path prefix on a `/` boundary, without a trailing `/`; `/` matches every path. */
  pathPrefix: string;
}

/**
 * Whether a checked URL matches an allowlist entry: exact host (or a sub-domain where the
 * entry says so) and a path equal to the prefix or below it on a `/` boundary.
 */
export function matchesDestination(url: CheckedUrl, rule: DestinationRule): boolean {
  const isHost = url.host === rule.host ||
    (rule.includeSubdomains && url.host.endsWith(`.${rule.host}`));
  if (!isHost) return false;
  if (rule.pathPrefix === "/") return true;
  return url.path === rule.pathPrefix || url.path.startsWith(`${rule.pathPrefix}/`);
}
