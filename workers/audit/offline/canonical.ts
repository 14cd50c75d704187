/**
 * Canonical JSON: the one byte form of an entry or a head that is hashed and signed.
 * Object keys sorted by UTF-16 code units (as RFC 8785 JCS), no whitespace, numbers in
 * ECMAScript shortest form, strings escaped as JSON.stringify does plus every character
 * from U+007F up as `\uXXXX` (lowercase hex, surrogate pairs as two escapes) — so the bytes are
 * pure ASCII and equal to Python's `json.dumps(v, sort_keys=True, separators=(",", ":"),
 * ensure_ascii=True)` for the values we accept (spec 11 §2 asks for one canonicaliser with
 * cross-language test vectors; `canonical_test.ts` pins them).
 * @module
 */
import { AuditError } from "./errors.ts";

/** Options of {@linkcode canonicalJson}. */
export interface CanonicalOptions {
  /** Deepest nesting of objects and arrays (default 16). */
  maxDepth?: number;
  /** Longest result in characters (default 64 KiB). */
  maxLength?: number;
}

/** Longest canonical entry accepted by default, in bytes (all ASCII, so also characters). */
export const MAX_CANONICAL_LENGTH = 64 * 1024;
const DEFAULT_MAX_DEPTH = 16;
// Everything JSON.stringify leaves unescaped outside printable ASCII: DEL and above (Python's
// ensure_ascii escapes exactly what is not in " ".."~").
const NON_ASCII = /[\u007f-\uffff]/;
const NON_ASCII_ALL = /[\u007f-\uffff]/g;

function escapeNonAscii(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/** Keys V8 orders numerically before all others, which JSON.stringify would follow. */
const INDEX_KEY = /^(0|[1-9][0-9]{0,9})$/;

interface Walk {
  maxDepth: number;
  maxLength: number;
  /** Characters of strings and keys seen, to refuse a huge value before building it. */
  seen: number;
  hasIndexKey: boolean;
}

function fail(path: string, what: string): never {
  throw new AuditError("AUDIT_ENTRY_INVALID", `Cannot encode "${path}": ${what}`);
}

function tooLong(maxLength: number): never {
  throw new AuditError(
    "AUDIT_ENTRY_INVALID",
    `Cannot encode the entry: it is longer than ${maxLength} bytes`,
  );
}

/** Validates a value and copies it with every object's keys inserted in sorted order. */
function normalize(v: unknown, path: string, depth: number, w: Walk): unknown {
  switch (typeof v) {
    case "string":
      w.seen += v.length;
      if (w.seen > w.maxLength) tooLong(w.maxLength);
      return v;
    case "number":
      if (!Number.isFinite(v)) fail(path, `${v} is not a JSON number`);
      return v;
    case "boolean":
      return v;
    case "object":
      break;
    default:
      fail(path, `a ${typeof v} is not JSON data`);
  }
  if (v === null) return null;
  if (depth >= w.maxDepth) fail(path, `nested deeper than ${w.maxDepth} levels`);
  if (Array.isArray(v)) {
    const out = new Array(v.length);
    for (let i = 0; i < v.length; i++) {
      if (v[i] === undefined) fail(`${path}.${i}`, "undefined is not JSON data");
      out[i] = normalize(v[i], `${path}.${i}`, depth + 1, w);
    }
    return out;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) {
    fail(path, `a ${proto?.constructor?.name ?? "non-plain"} object is not JSON data`);
  }
  const record = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(record).sort()) {
    const value = record[key];
    if (value === undefined) continue;
    if (INDEX_KEY.test(key)) w.hasIndexKey = true;
    w.seen += key.length;
    out[key] = normalize(value, `${path}.${key}`, depth + 1, w);
  }
  return out;
}

/** Builds the text by hand (only needed when an object has index-like keys). */
function build(v: unknown): string {
  if (typeof v !== "object" || v === null) return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(build).join(",")}]`;
  const record = v as Record<string, unknown>;
  return `{${
    Object.keys(record).sort().map((k) => `${JSON.stringify(k)}:${build(record[k])}`).join(",")
  }}`;
}

/**
 * Encodes a JSON value canonically.
 * @param value plain JSON data: null, booleans, finite numbers, strings, arrays, plain
 *   objects; object properties whose value is `undefined` are left out (as JSON.stringify)
 * @param options depth and length limits
 * @returns the canonical text (ASCII only)
 * @throws {AuditError} AUDIT_ENTRY_INVALID naming the path of an unsupported value
 *   (`undefined` in an array, NaN, Infinity, bigint, Date, Map, a class instance, a cycle),
 *   or when a limit is exceeded
 * @example
 * ```ts
 * canonicalJson({ b: 1, a: "é" }); // '{"a":"\\u00e9","b":1}'
 * ```
 */
export function canonicalJson(value: unknown, options: CanonicalOptions = {}): string {
  const w: Walk = {
    maxDepth: options.maxDepth ?? DEFAULT_MAX_DEPTH,
    maxLength: options.maxLength ?? MAX_CANONICAL_LENGTH,
    seen: 0,
    hasIndexKey: false,
  };
  const copy = normalize(value, "(root)", 0, w);
  // JSON.stringify keeps insertion order, which normalize() made sorted, except for
  // index-like keys (V8 puts them first, in numeric order).
  let text = w.hasIndexKey ? build(copy) : JSON.stringify(copy);
  if (NON_ASCII.test(text)) text = text.replace(NON_ASCII_ALL, escapeNonAscii);
  if (text.length > w.maxLength) tooLong(w.maxLength);
  return text;
}
