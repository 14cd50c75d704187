/**
 * Directory artifacts — diffusion model folders in the diffusers layout (spec 13 §4). Three
 * passes over a directory, each run inside a sandboxed job (they read and parse every file):
 *
 * - {@link checkDiffusionDirectory} — stage 2, the directory format gate: a bounded walk
 *   (≤ 20 000 files, ≤ 25 000 entries, depth ≤ 32, ≤ 64 GiB in all, ≤ 50 GiB per file,
 *   paths ≤ 4096 bytes), no links or special files, only the suffixes `.json .safetensors
 *   .txt .model .vocab .merges`, a valid `model_index.json` (≤ 1 MiB, `_class_name`,
 *   components `["diffusers"|"transformers", ClassName]`, none of `custom_pipeline`,
 *   `custom_revision`, `trust_remote_code`), every safetensors header valid, every JSON
 *   (≤ 64 MiB) decoded strictly and free of URLs and code markers, tokenizer text UTF-8 without
 *   control characters, every sentencepiece `.model` a valid protobuf, at least one safetensors.
 * - `scanDiffusionModels` (`diffusion_scan.ts`) — stage 5: every static scanner on every
 *   safetensors file.
 * - {@link deepCheckDiffusionDirectory} — stage 7: every component of `model_index.json` is a
 *   directory, no other top-level directory but `tokenizer`, `feature_extractor` and
 *   `image_processor`, and every JSON checked again for URLs and code.
 *
 * Every finding names the file by its relative path (`member`) and in its message.
 * @module
 */
import { type TreeEntry, type TreeWalk, walkTree } from "../../../runtime/kit/tree.ts";
import { FormatError } from "./errors.ts";
import { checkSentencepieceModel, SENTENCEPIECE_LIMITS } from "./protobuf.ts";
import { scanSafetensors } from "./safetensors.ts";
import { type Json, parseStrictJson } from "./strict_json.ts";
import type { Finding, Severity } from "./types.ts";

/** Limits of a directory artifact (spec 13 §4 stage 2). */
export const DIFFUSION_LIMITS = Object.freeze({
  maxFiles: 20_000,
  maxEntries: 25_000,
  maxDepth: 32,
  maxTotalBytes: 64 * 2 ** 30,
  maxFileBytes: 50 * 2 ** 30,
  maxPathBytes: 4096,
  /** `model_index.json`. */
  maxIndexBytes: 1 << 20,
  /** Any other JSON file. */
  maxJsonBytes: 64 << 20,
  /** Tokenizer text (`.txt .vocab .merges`). */
  maxTextBytes: 64 << 20,
  maxJsonDepth: 64,
  maxJsonTokens: 20_000_000,
});
/** Limits of a directory artifact. */
export type DiffusionLimits = { -readonly [K in keyof typeof DIFFUSION_LIMITS]: number };

/** The only file suffixes a directory artifact may hold. */
export const ALLOWED_SUFFIXES: readonly string[] = [
  ".json",
  ".safetensors",
  ".txt",
  ".model",
  ".vocab",
  ".merges",
];
/** Top-level directories allowed besides the components of `model_index.json`. */
export const EXTRA_TOP_LEVEL_DIRS: readonly string[] = [
  "tokenizer",
  "feature_extractor",
  "image_processor",
];
/** Keys that make diffusers/transformers load code from elsewhere. */
export const FORBIDDEN_KEYS: readonly string[] = [
  "custom_pipeline",
  "custom_revision",
  "trust_remote_code",
];
/** Libraries a component may come from. */
const COMPONENT_LIBRARIES: readonly string[] = ["diffusers", "transformers"];
const CLASS_NAME = /^[A-Za-z][A-Za-z0-9_]{0,127}$/;
/** A component key names a top-level directory: a plain identifier, nothing path-like. */
const COMPONENT_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const URL = /https?:\/\//i;
/** Code markers in decoded JSON strings (spec 13 §4), with what each one looks like. */
const CODE_MARKERS: readonly [string, RegExp][] = [
  ["__import__(", /__import__\s*\(/],
  ["exec(", /\bexec\s*\(/],
  ["eval(", /\beval\s*\(/],
  ["os.system(", /\bos\.system\s*\(/],
  ["subprocess", /\bsubprocess\b/],
  ["<script", /<script/i],
  ["curl ", /\bcurl /],
  ["wget ", /\bwget /],
  ["\\x..", /\\x[0-9a-fA-F]{2}/],
];
// deno-lint-ignore no-control-regex -- refusing control characters is the point
const TEXT_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
// deno-lint-ignore no-control-regex -- refusing control characters in names is the point
const NAME_CONTROL = /[\u0000-\u001f\u007f-\u009f\\]/;
/**
 * Most findings one pass reports; the rest are counted in one finding (the job's answer
 * stays far below the runner's 16 MiB stdout limit).
 */
const MAX_FINDINGS = 1000;

/** Options of the directory passes. */
export interface DiffusionCheckOptions {
  /** Lower limits (tests); never higher than {@link DIFFUSION_LIMITS}. */
  limits?: Partial<DiffusionLimits>;
  /** Aborting stops between files; the pass then throws the signal's reason. */
  signal?: AbortSignal;
}

/** What a directory pass found. */
export interface DirectoryReport {
  findings: Finding[];
  /** Regular files, directories and their total size, as listed. */
  files: number;
  directories: number;
  totalBytes: number;
  /** Regular `.safetensors` files. */
  safetensors: number;
  /** Components of `model_index.json` (keys with a library and class), sorted. */
  components: string[];
  /** `_class_name` of `model_index.json`, or null when it has none. */
  className: string | null;
}

function limitsOf(options: DiffusionCheckOptions): DiffusionLimits {
  const out: DiffusionLimits = { ...DIFFUSION_LIMITS };
  for (const [key, value] of Object.entries(options.limits ?? {})) {
    const k = key as keyof DiffusionLimits;
    if (Object.hasOwn(DIFFUSION_LIMITS, k) && typeof value === "number") {
      out[k] = Math.min(out[k], value);
    }
  }
  return out;
}

const PROBLEM_RULES: Readonly<Record<string, string>> = {
  TOO_MANY_ENTRIES: "too_many_entries",
  TOO_DEEP: "too_deep",
  PATH_TOO_LONG: "path_too_long",
  UNREADABLE: "unreadable",
};

/** Collects findings, at most {@link MAX_FINDINGS}. */
class Findings {
  readonly list: Finding[] = [];
  #dropped = 0;

  add(rule: string, severity: Severity, path: string, message: string, offset?: number): void {
    if (this.list.length >= MAX_FINDINGS) {
      this.#dropped++;
      return;
    }
    this.list.push({
      stage: "diffusion",
      rule: `diffusion.${rule}`,
      severity,
      message: message.slice(0, 1900),
      member: path.slice(0, 4096),
      ...(offset === undefined ? {} : { offset }),
    });
  }

  /** A file refused for its size: larger than `max` bytes. */
  tooLarge(rule: string, path: string, max: number): void {
    this.add(rule, "high", path, `"${path}" is larger than ${max} bytes`);
  }

  /** A file a strict reader refused, with the reader's reason and offset. */
  malformed(rule: string, path: string, error: FormatError): void {
    this.add(rule, "high", path, `"${path}": ${error.message}`, error.offset);
  }

  /** What the walk could not list (past its limits, unreadable). */
  walkProblems(listing: TreeWalk): void {
    for (const problem of listing.problems) {
      this.add(PROBLEM_RULES[problem.code] ?? "unreadable", "high", problem.path, problem.message);
    }
  }

  done(): Finding[] {
    if (this.#dropped > 0) {
      this.list.push({
        stage: "diffusion",
        rule: "diffusion.findings_truncated",
        severity: "info",
        message: `${this.#dropped} more findings were left out`,
      });
    }
    return this.list;
  }
}

/** The suffix of a path's last segment (`""` for none or a dot-file). */
export function suffixOf(path: string): string {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return dot <= 0 ? "" : name.slice(dot);
}

/** What a pass starts from: its limits, the bounded listing and what it could not list. */
interface Pass {
  limits: DiffusionLimits;
  out: Findings;
  listing: TreeWalk;
  byPath: Map<string, TreeEntry>;
}

/** Walks the directory within the limits; what the walk could not list is a finding. */
async function startPass(root: string, options: DiffusionCheckOptions): Promise<Pass> {
  const limits = limitsOf(options);
  const out = new Findings();
  const listing = await walkTree(root, {
    maxEntries: limits.maxEntries,
    maxDepth: limits.maxDepth,
    maxPathBytes: limits.maxPathBytes,
  });
  out.walkProblems(listing);
  return { limits, out, listing, byPath: new Map(listing.entries.map((e) => [e.path, e])) };
}

/** The structural rules: limits, links, special files, names, suffixes, sizes. */
function checkStructure(listing: TreeWalk, limits: DiffusionLimits, out: Findings): void {
  let files = 0;
  let total = 0;
  for (const entry of listing.entries) {
    const name = entry.path.slice(entry.path.lastIndexOf("/") + 1);
    if (entry.kind === "symlink") {
      out.add(
        "link",
        "critical",
        entry.path,
        `"${entry.path}" is a symbolic link (links are refused)`,
      );
      continue;
    }
    if (entry.kind === "other") {
      out.add(
        "special_file",
        "critical",
        entry.path,
        `"${entry.path}" is a special file (FIFO, socket or device); only regular files are admitted`,
      );
      continue;
    }
    if (NAME_CONTROL.test(name) || name.startsWith(".")) {
      out.add(
        "bad_name",
        "high",
        entry.path,
        `"${
          JSON.stringify(entry.path).slice(1, -1)
        }" is hidden or has a control character or backslash in its name`,
      );
    }
    if (entry.kind !== "file") continue;
    files++;
    if (files === limits.maxFiles + 1) {
      out.add(
        "too_many_files",
        "high",
        entry.path,
        `More than ${limits.maxFiles} files: "${entry.path}" is one too many`,
      );
    }
    if (!ALLOWED_SUFFIXES.includes(suffixOf(entry.path))) {
      out.add(
        "suffix_not_allowed",
        "high",
        entry.path,
        `"${entry.path}" has suffix "${suffixOf(entry.path) || "(none)"}"; only ${
          ALLOWED_SUFFIXES.join(" ")
        } are admitted`,
      );
    }
    if (entry.size > limits.maxFileBytes) {
      out.add(
        "file_too_large",
        "high",
        entry.path,
        `"${entry.path}" has ${entry.size} bytes (at most ${limits.maxFileBytes})`,
      );
    }
    const before = total;
    total += entry.size;
    if (before <= limits.maxTotalBytes && total > limits.maxTotalBytes) {
      out.add(
        "too_large",
        "high",
        entry.path,
        `The files add up to more than ${limits.maxTotalBytes} bytes at "${entry.path}"`,
      );
    }
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Reads a whole file of at most `max` bytes (a larger one is refused before reading). */
async function readBounded(path: string, max: number): Promise<Uint8Array | null> {
  const file = await Deno.open(path, { read: true });
  try {
    const size = (await file.stat()).size;
    if (size > max) return null;
    const out = new Uint8Array(size);
    let filled = 0;
    while (filled < size) {
      const n = await file.read(out.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    // A file that changed size under the read is read as it was listed, never past `max`.
    return out.subarray(0, filled);
  } finally {
    file.close();
  }
}

/** Reads and strictly parses a JSON file; a failure is a finding, and null is returned. */
async function readJson(
  root: string,
  path: string,
  max: number,
  limits: DiffusionLimits,
  out: Findings,
  rule: string,
): Promise<Json | undefined> {
  const bytes = await readBounded(`${root}/${path}`, max);
  if (bytes === null) {
    out.tooLarge(rule, path, max);
    return undefined;
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    out.add(rule, "high", path, `"${path}" is not UTF-8`);
    return undefined;
  }
  try {
    return parseStrictJson(text, {
      maxDepth: limits.maxJsonDepth,
      maxTokens: limits.maxJsonTokens,
      fail: (f) =>
        new FormatError(
          f.kind === "syntax" ? "MALFORMED" : "LIMIT_EXCEEDED",
          f.kind === "syntax"
            ? `at character ${f.at}: ${f.why}`
            : f.kind === "tokens"
            ? `more than ${f.limit} JSON tokens`
            : `nests deeper than ${f.limit}`,
        ),
    });
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    out.add(rule, "high", path, `"${path}" is not strict JSON: ${error.message}`);
    return undefined;
  }
}

/**
 * Scans every key and string of a JSON value: forbidden keys, URLs and code markers. One
 * finding per rule and file (the first hit quoted, the rest counted), so a large vocabulary
 * cannot flood the record.
 */
function scanJsonValue(value: Json, path: string, out: Findings): void {
  const hits = new Map<string, { first: string; where: string; count: number }>();
  const hit = (rule: string, first: string, where: string) => {
    const seen = hits.get(rule);
    if (seen) seen.count++;
    else hits.set(rule, { first, where, count: 1 });
  };
  const checkString = (text: string, where: string) => {
    const url = URL.exec(text);
    if (url) hit("url", text.slice(url.index, url.index + 120), where);
    for (const [label, pattern] of CODE_MARKERS) {
      const m = pattern.exec(text);
      if (m) {
        hit(`code_marker:${label}`, text.slice(Math.max(0, m.index - 20), m.index + 80), where);
      }
    }
  };
  const stack: { value: Json; where: string }[] = [{ value, where: "$" }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const v = next.value;
    if (typeof v === "string") {
      checkString(v, next.where);
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) {
        stack.push({ value: v[i] as Json, where: `${next.where}[${i}]` });
      }
    } else if (v !== null && typeof v === "object") {
      for (const key of Object.keys(v)) {
        const where = `${next.where}.${key.slice(0, 100)}`;
        if (FORBIDDEN_KEYS.includes(key)) hit(`forbidden_key:${key}`, key, where);
        checkString(key, where);
        stack.push({ value: v[key] as Json, where });
      }
    }
  }
  for (const [rule, { first, where, count }] of hits) {
    const more = count > 1 ? ` (and ${count - 1} more)` : "";
    if (rule === "url") {
      out.add(
        "url",
        "high",
        path,
        `"${path}" names a URL at ${where}: ${JSON.stringify(first)}${more}`,
      );
    } else if (rule.startsWith("forbidden_key:")) {
      out.add(
        "forbidden_key",
        "critical",
        path,
        `"${path}" sets "${first}" at ${where}: loading it would run code from elsewhere${more}`,
      );
    } else {
      out.add(
        "code_marker",
        "high",
        path,
        `"${path}" holds the code marker "${rule.slice("code_marker:".length)}" at ${where}: ${
          JSON.stringify(first)
        }${more}`,
      );
    }
  }
}

/** Checks `model_index.json`; returns its components and class name. */
function checkModelIndex(
  index: Json,
  out: Findings,
): { components: string[]; className: string | null } {
  const path = "model_index.json";
  if (index === null || typeof index !== "object" || Array.isArray(index)) {
    out.add("model_index.invalid", "high", path, `"${path}" is not a JSON object`);
    return { components: [], className: null };
  }
  const className = index["_class_name"];
  let name: string | null = null;
  if (typeof className !== "string" || !CLASS_NAME.test(className)) {
    out.add(
      "model_index.invalid",
      "high",
      path,
      `"${path}" has no _class_name matching [A-Za-z][A-Za-z0-9_]{0,127} (${
        JSON.stringify(className ?? null).slice(0, 80)
      })`,
    );
  } else {
    name = className;
  }
  const components: string[] = [];
  for (const [key, value] of Object.entries(index)) {
    if (key.startsWith("_")) {
      if (value !== null && typeof value === "object") {
        out.add(
          "model_index.invalid",
          "high",
          path,
          `"${path}" metadata key "${key.slice(0, 80)}" is not a scalar`,
        );
      }
      continue;
    }
    if (FORBIDDEN_KEYS.includes(key)) continue; // reported by the JSON scan
    // Pipeline flags (requires_safety_checker, force_zeros_for_empty_prompt) are not components.
    if (typeof value === "boolean" || typeof value === "number") continue;
    const isAbsent = Array.isArray(value) && value.length === 2 && value[0] === null &&
      value[1] === null;
    const isComponent = Array.isArray(value) && value.length === 2 &&
      typeof value[0] === "string" && COMPONENT_LIBRARIES.includes(value[0]) &&
      typeof value[1] === "string" && CLASS_NAME.test(value[1]);
    if (!COMPONENT_KEY.test(key) || !(isAbsent || isComponent)) {
      out.add(
        "bad_component",
        "high",
        path,
        `Component "${key.slice(0, 80)}" of "${path}" is ${
          JSON.stringify(value).slice(0, 120)
        }; expected ["diffusers" or "transformers", ClassName] under a plain identifier`,
      );
      continue;
    }
    if (isComponent) components.push(key);
  }
  return { components: components.sort(), className: name };
}

/** Streams a tokenizer text file: UTF-8, no NUL or other control characters. */
async function checkText(
  root: string,
  path: string,
  limits: DiffusionLimits,
  out: Findings,
): Promise<void> {
  const file = await Deno.open(`${root}/${path}`, { read: true });
  try {
    const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    const buffer = new Uint8Array(1 << 20);
    let read = 0;
    let line = 1;
    for (;;) {
      const n = await file.read(buffer);
      if (n === null) break;
      read += n;
      if (read > limits.maxTextBytes) {
        out.tooLarge("text.invalid", path, limits.maxTextBytes);
        return;
      }
      let text: string;
      try {
        text = decoder.decode(buffer.subarray(0, n), { stream: true });
      } catch {
        out.add("text.invalid", "high", path, `"${path}" is not UTF-8 (near byte ${read - n})`);
        return;
      }
      const bad = TEXT_CONTROL.exec(text);
      if (bad) {
        line += (text.slice(0, bad.index).match(/\n/g) ?? []).length;
        const code = `U+${
          (bad[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")
        }`;
        out.add(
          "text.control_char",
          "high",
          path,
          `"${path}" holds the control character ${code} on line ${line}`,
        );
        return;
      }
      line += (text.match(/\n/g) ?? []).length;
    }
    try {
      decoder.decode();
    } catch {
      out.add("text.invalid", "high", path, `"${path}" ends inside a UTF-8 sequence`);
    }
  } finally {
    file.close();
  }
}

async function checkSafetensorsHeader(
  root: string,
  entry: TreeEntry,
  out: Findings,
): Promise<void> {
  const file = await Deno.open(`${root}/${entry.path}`, { read: true });
  try {
    const size = (await file.stat()).size;
    // Metadata findings are the static scan's (stage 5); here only the header's validity.
    scanSafetensors(file, size, { findings: [] });
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    out.malformed("safetensors.invalid", entry.path, error);
  } finally {
    file.close();
  }
}

async function checkSentencepiece(root: string, path: string, out: Findings): Promise<void> {
  const bytes = await readBounded(`${root}/${path}`, SENTENCEPIECE_LIMITS.maxBytes);
  if (bytes === null) {
    out.tooLarge("sentencepiece.invalid", path, SENTENCEPIECE_LIMITS.maxBytes);
    return;
  }
  try {
    checkSentencepieceModel(bytes);
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    out.malformed("sentencepiece.invalid", path, error);
  }
}

function summary(
  listing: TreeWalk,
  findings: Finding[],
): Omit<DirectoryReport, "components" | "className"> {
  const files = listing.entries.filter((e) => e.kind === "file");
  return {
    findings,
    files: files.length,
    directories: listing.entries.filter((e) => e.kind === "directory").length,
    totalBytes: files.reduce((n, e) => n + e.size, 0),
    safetensors: files.filter((e) => suffixOf(e.path) === ".safetensors").length,
  };
}

/**
 * Stage 2 on a directory artifact (see the module doc for the rules).
 * @param root absolute path of the directory (read-only)
 * @param options lower limits, cancellation
 * @returns the findings (empty when it passes) and what the directory holds
 * @throws {TypeError} when `root` is not a directory; the signal's reason when aborted
 */
export async function checkDiffusionDirectory(
  root: string,
  options: DiffusionCheckOptions = {},
): Promise<DirectoryReport> {
  const { limits, out, listing, byPath } = await startPass(root, options);
  checkStructure(listing, limits, out);
  let components: string[] = [];
  let className: string | null = null;
  const indexEntry = byPath.get("model_index.json");
  if (indexEntry?.kind !== "file") {
    out.add(
      "model_index_missing",
      "high",
      "model_index.json",
      'The directory has no regular file "model_index.json" at its top level',
    );
  }
  for (const entry of listing.entries) {
    options.signal?.throwIfAborted();
    if (entry.kind !== "file") continue;
    const suffix = suffixOf(entry.path);
    if (suffix === ".json") {
      const isIndex = entry.path === "model_index.json";
      const value = await readJson(
        root,
        entry.path,
        isIndex ? limits.maxIndexBytes : limits.maxJsonBytes,
        limits,
        out,
        isIndex ? "model_index.invalid" : "json.invalid",
      );
      if (value === undefined) continue;
      scanJsonValue(value, entry.path, out);
      if (isIndex) ({ components, className } = checkModelIndex(value, out));
    } else if (suffix === ".safetensors") {
      await checkSafetensorsHeader(root, entry, out);
    } else if (suffix === ".txt" || suffix === ".vocab" || suffix === ".merges") {
      await checkText(root, entry.path, limits, out);
    } else if (suffix === ".model") {
      await checkSentencepiece(root, entry.path, out);
    }
  }
  const report = { ...summary(listing, []), components, className };
  if (report.safetensors === 0) {
    out.add("no_safetensors", "high", "", "The directory holds no .safetensors file");
  }
  return { ...report, findings: out.done() };
}

/**
 * Stage 7 on a directory artifact: components present as directories, no unexpected
 * top-level directory, every JSON checked again for URLs and code.
 * @param root absolute path of the directory (read-only)
 * @param options lower limits, cancellation
 * @returns the findings (empty when it passes)
 */
export async function deepCheckDiffusionDirectory(
  root: string,
  options: DiffusionCheckOptions = {},
): Promise<DirectoryReport> {
  const { limits, out, listing, byPath } = await startPass(root, options);
  let components: string[] = [];
  let className: string | null = null;
  if (byPath.get("model_index.json")?.kind === "file") {
    const index = await readJson(
      root,
      "model_index.json",
      limits.maxIndexBytes,
      limits,
      out,
      "model_index.invalid",
    );
    if (index !== undefined) ({ components, className } = checkModelIndex(index, out));
  } else {
    out.add(
      "model_index_missing",
      "high",
      "model_index.json",
      'No regular file "model_index.json"',
    );
  }
  for (const component of components) {
    if (byPath.get(component)?.kind !== "directory") {
      out.add(
        "component_missing",
        "high",
        component,
        `Component "${component}" of model_index.json has no directory "${component}/"`,
      );
    }
  }
  for (const entry of listing.entries) {
    options.signal?.throwIfAborted();
    if (entry.kind === "directory" && entry.depth === 1) {
      if (!components.includes(entry.path) && !EXTRA_TOP_LEVEL_DIRS.includes(entry.path)) {
        out.add(
          "unexpected_directory",
          "high",
          entry.path,
          `Top-level directory "${entry.path}/" is neither a component of model_index.json nor one of ${
            EXTRA_TOP_LEVEL_DIRS.join(", ")
          }`,
        );
      }
    } else if (entry.kind === "symlink" || entry.kind === "other") {
      out.add(
        entry.kind === "symlink" ? "link" : "special_file",
        "critical",
        entry.path,
        `"${entry.path}" is not a regular file or directory`,
      );
    } else if (entry.kind === "file" && suffixOf(entry.path) === ".json") {
      const value = await readJson(
        root,
        entry.path,
        limits.maxJsonBytes,
        limits,
        out,
        "json.invalid",
      );
      if (value !== undefined) scanJsonValue(value, entry.path, out);
    }
  }
  return { ...summary(listing, []), components, className, findings: out.done() };
}
