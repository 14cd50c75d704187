/**
 * The path gate's lexical half (spec 12 §3.2 step 7, issue #5): a workspace path is a
 * relative, canonical, plain path or it is refused, before the filesystem is touched.
 * Encodings are decoded repeatedly so `%252e%252e`, `%c0%ae` (overlong UTF-8) and `%u002e`
 * cannot smuggle a dot or a separator past a later decoder, and Unicode that NFKC folds into a
 * dot or a separator (`．`, `／`, `․`) or that only looks like one (`∕`, `⁄`) is refused.
 * The filesystem half is {@linkcode WorkspaceResolver} in `resolve.ts`.
 * @module
 */

/** Limits of a workspace path. */
export const PATH_LIMITS = {
  /** Longest path, in UTF-8 bytes (Linux PATH_MAX is 4 096). */
  maxBytes: 4096,
  /** Longest segment, in UTF-8 bytes (Linux NAME_MAX). */
  maxSegmentBytes: 255,
  /** Most segments. */
  maxSegments: 128,
  /** Decoding rounds after which a still-changing path is refused as too deeply encoded. */
  maxDecodeRounds: 4,
} as const;

/** A failed lexical rule. */
export interface PathFailure {
  rule: string;
  reason: string;
}

/** Outcome of {@linkcode checkPathLexical}. */
export type PathLexical = { ok: true; segments: string[] } | { ok: false; failure: PathFailure };

function fail(rule: string, reason: string): PathLexical {
  return { ok: false, failure: { rule: `path.${rule}`, reason } };
}

/** Characters that look like a separator or a dot but NFKC leaves alone (spec 12 §3.2). */
const LOOKALIKES: ReadonlySet<number> = new Set([
  0x2044, // FRACTION SLASH
  0x2215, // DIVISION SLASH
  0x2216, // SET MINUS
  0x29f8, // BIG SOLIDUS
  0x29f9, // BIG REVERSE SOLIDUS
  0x2cf9, // COPTIC OLD NUBIAN FULL STOP
  0x3002, // IDEOGRAPHIC FULL STOP
  0xff61, // HALFWIDTH IDEOGRAPHIC FULL STOP
  0xfffd, // REPLACEMENT CHARACTER: what a lossy decoder leaves behind
  0x0337, // COMBINING SHORT SOLIDUS OVERLAY
  0x0338, // COMBINING LONG SOLIDUS OVERLAY
]);

/** Invisible characters that make two names look equal (zero-width, bidi controls, BOM). */
function isInvisible(cp: number): boolean {
  return (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
    (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x2069) || cp === 0xfeff ||
    cp === 0x00ad || cp === 0x180e;
}

function isControl(cp: number): boolean {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

const FOLDS_TO_SPECIAL = /[./\\]/;
const PLAIN_ASCII = /^[\x20-\x5b\x5d-\x7e]*$/;

/**
 * The rule a single code point breaks, or null. `isDecoded`: the code point came out of an
 * escape, where even a plain dot or slash is an attack (nothing legitimate encodes them).
 */
function charRule(cp: number, isDecoded: boolean): PathFailure | null {
  if (cp === 0) return { rule: "path.control", reason: "The path contains a NUL character" };
  if (isControl(cp)) {
    return {
      rule: isDecoded ? "path.encoded" : "path.control",
      reason: "The path contains a control character",
    };
  }
  if (cp === 0x5c) {
    return {
      rule: isDecoded ? "path.encoded" : "path.backslash",
      reason: "The path contains a backslash",
    };
  }
  if (isDecoded && (cp === 0x2e || cp === 0x2f)) {
    return { rule: "path.encoded", reason: "The path encodes a dot or a separator" };
  }
  if (cp < 0x80) return null;
  if (LOOKALIKES.has(cp) || isInvisible(cp)) {
    return {
      rule: "path.unicode",
      reason: `The path contains U+${
        cp.toString(16).toUpperCase().padStart(4, "0")
      }, which disguises a name or a separator`,
    };
  }
  if (FOLDS_TO_SPECIAL.test(String.fromCodePoint(cp).normalize("NFKC"))) {
    return {
      rule: "path.unicode",
      reason: `The path contains U+${
        cp.toString(16).toUpperCase().padStart(4, "0")
      }, which NFKC turns into a dot or a separator`,
    };
  }
  return null;
}

function checkChars(text: string, isDecoded: boolean): PathFailure | null {
  // Fast path: printable ASCII other than the backslash needs no per-character rules.
  if (!isDecoded && PLAIN_ASCII.test(text)) return null;
  for (const ch of text) {
    const failure = charRule(ch.codePointAt(0) ?? 0, isDecoded);
    if (failure) return failure;
  }
  return null;
}

interface Layer {
  text: string;
  isChanged: boolean;
  failure: PathFailure | null;
}

function hex(s: string, at: number, n: number): number {
  const part = s.slice(at, at + n);
  return part.length === n && /^[0-9A-Fa-f]+$/.test(part) ? parseInt(part, 16) : -1;
}

const OVERLONG: PathFailure = {
  rule: "path.encoded",
  reason: "The path contains an overlong or invalid UTF-8 escape",
};

/**
 * Decodes one layer of `%XX` runs (as UTF-8, rejecting overlong and invalid forms) and
 * `%uXXXX` escapes, checking every decoded code point.
 */
function decodeLayer(s: string): Layer {
  if (!s.includes("%")) return { text: s, isChanged: false, failure: null };
  let out = "";
  let isChanged = false;
  let i = 0;
  while (i < s.length) {
    if (s[i] !== "%") {
      out += s[i];
      i++;
      continue;
    }
    if (s[i + 1] === "u" || s[i + 1] === "U") {
      const unit = hex(s, i + 2, 4);
      if (unit >= 0) {
        const failure = charRule(unit, true) ??
          (unit >= 0xd800 && unit <= 0xdfff ? OVERLONG : null);
        if (failure) return { text: out, isChanged: true, failure };
        out += String.fromCharCode(unit);
        isChanged = true;
        i += 6;
        continue;
      }
    }
    // A run of %XX bytes, decoded as strict UTF-8.
    const bytes: number[] = [];
    let j = i;
    while (s[j] === "%") {
      const b = hex(s, j + 1, 2);
      if (b < 0) break;
      bytes.push(b);
      j += 3;
    }
    if (bytes.length === 0) {
      out += "%";
      i++;
      continue;
    }
    let k = 0;
    while (k < bytes.length) {
      const b0 = bytes[k] ?? 0;
      let need: number;
      let cp: number;
      let min: number;
      if (b0 < 0x80) [need, cp, min] = [0, b0, 0];
      else if (b0 >= 0xc0 && b0 < 0xe0) [need, cp, min] = [1, b0 & 0x1f, 0x80];
      else if (b0 >= 0xe0 && b0 < 0xf0) [need, cp, min] = [2, b0 & 0x0f, 0x800];
      else if (b0 >= 0xf0 && b0 < 0xf8) [need, cp, min] = [3, b0 & 0x07, 0x10000];
      else return { text: out, isChanged: true, failure: OVERLONG }; // continuation or 5/6-byte lead
      for (let n = 1; n <= need; n++) {
        const b = bytes[k + n];
        if (b === undefined || (b & 0xc0) !== 0x80) {
          return { text: out, isChanged: true, failure: OVERLONG };
        }
        cp = (cp << 6) | (b & 0x3f);
      }
      if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return { text: out, isChanged: true, failure: OVERLONG };
      }
      const failure = charRule(cp, true);
      if (failure) return { text: out, isChanged: true, failure };
      out += String.fromCodePoint(cp);
      k += need + 1;
    }
    isChanged = true;
    i = j;
  }
  return { text: out, isChanged, failure: null };
}

const encoder = new TextEncoder();

/** UTF-8 length; an ASCII string's is its length (no encoding needed). */
function byteLength(text: string): number {
  return PLAIN_ASCII.test(text) ? text.length : encoder.encode(text).length;
}

/**
 * Checks a workspace-relative path against every lexical rule: not empty or over-long (path
 * and segment); no NUL or control characters; no backslash; not absolute, a drive, `~` or a
 * URL form; no percent-encoded, overlong-UTF-8 or `%u` escape of a dot, separator or control
 * (decoded repeatedly); no Unicode that NFKC turns into a dot or separator, no look-alikes or
 * invisible characters; no empty, `.` or `..` segment (nothing can resolve above the root).
 * @param path the path exactly as the caller gave it
 * @returns the segments, or the first failed rule with a reason
 * @example
 * ```ts
 * checkPathLexical("user_docs/%252e%252e/x").ok; // false: decodes to ".." in two rounds
 * ```
 */
export function checkPathLexical(path: string): PathLexical {
  if (path.length === 0) return fail("empty", "The path is empty");
  if (path.length > PATH_LIMITS.maxBytes || byteLength(path) > PATH_LIMITS.maxBytes) {
    return fail("length", `The path is longer than ${PATH_LIMITS.maxBytes} bytes`);
  }
  const charFailure = checkChars(path, false);
  if (charFailure) return { ok: false, failure: charFailure };
  if (path.startsWith("/")) {
    return fail("absolute", "The path is absolute; give it relative to the workspace");
  }
  if (path.startsWith("~")) return fail("home", 'The path starts with "~"');
  if (/^[A-Za-z]:/.test(path)) return fail("drive", "The path names a drive");
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(path)) return fail("url", "The path is a URL");
  let layer = path;
  for (let round = 0;; round++) {
    const next = decodeLayer(layer);
    if (next.failure) return { ok: false, failure: next.failure };
    if (!next.isChanged) break;
    if (round + 1 >= PATH_LIMITS.maxDecodeRounds) {
      return fail(
        "encoding_depth",
        `The path is still encoded after ${PATH_LIMITS.maxDecodeRounds} rounds of decoding`,
      );
    }
    layer = next.text;
  }
  const segments = path.split("/");
  if (segments.length > PATH_LIMITS.maxSegments) {
    return fail("length", `The path has more than ${PATH_LIMITS.maxSegments} segments`);
  }
  for (const segment of segments) {
    if (segment === "") return fail("empty_segment", "The path has an empty segment");
    if (segment === "..") return fail("above_root", 'The path contains ".."');
    if (segment === ".") return fail("dot_segment", 'The path contains "."');
    if (byteLength(segment) > PATH_LIMITS.maxSegmentBytes) {
      return fail(
        "segment_length",
        `A segment is longer than ${PATH_LIMITS.maxSegmentBytes} bytes`,
      );
    }
    if (segment.charCodeAt(0) >= 0x300 && /^\p{M}/u.test(segment)) {
      return fail("unicode", "A segment starts with a combining mark");
    }
  }
  return { ok: true, segments };
}

/**
 * A compiled workspace glob: `dir/**` (the folder and everything below), `**` (everything)
 * or an exact relative path. Other wildcards are refused when the policy loads.
 */
export interface PathPattern {
  /** The pattern as written. */
  source: string;
  /** Prefix without `/**`; "" for `**`. */
  prefix: string;
  /** Whether everything below the prefix matches. */
  isTree: boolean;
}

/** Compiles a pattern; null when it is not one of the supported forms. */
export function compilePathPattern(source: string): PathPattern | null {
  if (source === "**") return { source, prefix: "", isTree: true };
  const isTree = source.endsWith("/**");
  const prefix = isTree ? source.slice(0, -3) : source;
  if (prefix.includes("*") || prefix.includes("?") || prefix.includes("[")) return null;
  const lexical = checkPathLexical(prefix);
  return lexical.ok ? { source, prefix, isTree } : null;
}

/** Whether a workspace-relative path matches a pattern. */
export function matchesPattern(path: string, pattern: PathPattern): boolean {
  if (pattern.prefix === "") return true;
  if (path === pattern.prefix) return true;
  return pattern.isTree && path.startsWith(`${pattern.prefix}/`);
}

/** The first pattern a path matches, or null. */
export function firstMatch(path: string, patterns: readonly PathPattern[]): PathPattern | null {
  for (const p of patterns) if (matchesPattern(path, p)) return p;
  return null;
}
