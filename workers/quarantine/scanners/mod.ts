/**
 * The static scanners (issue #6): one entry point, {@link scanFile}, that detects a model
 * file's format, runs its strict reader (GGUF, safetensors, PyTorch zip, npz/npy, legacy
 * torch, plain pickles, gzip/bz2/xz/lzma wrappers), the pickle VM on every pickle, the
 * chat-template and metadata checks, weight statistics, entropy samples, polyglot checks and —
 * when given compiled rules — a streaming YARA pass over every byte. Pure apart from reading
 * the file it is handed (and, for a compression wrapper, writing the inflated copy into
 * `tempDir`; a wrapper inside a wrapper is not opened).
 *
 * Verdict: `threat` when any finding of severity medium or above is not a parse failure;
 * otherwise `invalid` when any reader could not fully parse the file (rule `*.invalid`);
 * otherwise `clean`.
 * @example
 * ```ts
 * import { scanFile } from "./mod.ts";
 * const report = await scanFile("/models/tiny.gguf", {});
 * if (report.verdict !== "clean") console.error(report.findings);
 * ```
 * @module
 */
import { FileInput } from "./_compressed.ts";
import { readAt } from "./_source.ts";
import { bunzip2 } from "./bzip2.ts";
import { checkEntropy, ENTROPY_SAMPLE, sampleOffsets } from "./entropy.ts";
import { FormatError, ScanDeadlineError } from "./errors.ts";
import { type ChatTemplate, scanGguf } from "./gguf.ts";
import { parseAloneHeader, unlzma } from "./lzma.ts";
import { isNpy, scanNpy } from "./npy.ts";
import { FileSource } from "./_source.ts";
import { looksLikePickle, opcodeName, runPickle } from "./pickle.ts";
import { looksLikeSafetensors, scanSafetensors } from "./safetensors.ts";
import { analyzeTemplate } from "./template.ts";
import { isTar, scanNpz, scanPickleFile, scanTorchTar, scanTorchZip, zipKind } from "./torch.ts";
import type { Finding, ScanReport, Severity, Verdict } from "./types.ts";
import { SEVERITIES } from "./types.ts";
import {
  checkStats,
  isStatDtype,
  MAX_TENSORS,
  MAX_TOTAL_SAMPLE,
  MIN_ELEMENTS,
  SAMPLE_BYTES,
  sampleStats,
} from "./weights.ts";
import { unxz } from "./xz.ts";
import { hasZipTrailer, readZip } from "./zip.ts";

export type { Finding, ScanReport, Severity, Verdict } from "./types.ts";
export { ScanDeadlineError } from "./errors.ts";

/** Compiled YARA rules, as the `static_scan` job opens them (ffi/yara.ts via jobs/_yara.ts). */
export interface YaraRuleSet {
  /** Scans a buffer; returns the names of the rules that matched. */
  scan(bytes: Uint8Array<ArrayBuffer>): string[];
  /** Severity and description of each rule (from its `meta:`). */
  meta: ReadonlyMap<string, { severity: Severity; description: string }>;
}

/** Options of {@link scanFile}. */
export interface ScanFileOptions {
  /** Aborting stops the scan between chunks; the scan then throws the signal's reason. */
  signal?: AbortSignal;
  /** Called with the running count of bytes read (at most every 4 MiB). */
  onProgress?: (bytes: number) => void;
  /** Compiled rules; absent ⇒ YARA does not run and the report says so (`yara.not_run`). */
  yara?: YaraRuleSet;
  /** Directory for the inflated copy of a wrapped file; absent ⇒ a wrapper is `invalid`. */
  tempDir?: string;
  /** Largest inflated size of a wrapped file (default {@link MAX_INFLATED}); beyond ⇒ `invalid`. */
  maxInflatedBytes?: number;
  /**
   * A `performance.now()` time: past it the scan throws {@link ScanDeadlineError} at its next
   * read or decoded chunk (the batch job's per-file deadline).
   */
  deadline?: number;
}

/** Bytes per YARA chunk, and the overlap that keeps a match on a chunk border visible. */
const YARA_CHUNK = 8 << 20;
const YARA_OVERLAP = 64 << 10;
/** Largest inflated size of a wrapped file (gzip, bz2, xz, lzma). */
export const MAX_INFLATED = 64 * 2 ** 30;
/** Compression wrappers that are inflated and their content scanned. */
type Wrapper = "gzip" | "bz2" | "xz" | "lzma";
const PICKLE_PREFIXES = ["cos\n", "cposix\n", "csys\n", "cbuiltins\n"];

/** Whether a finding reports a parse failure rather than a threat. */
export function isInvalidFinding(finding: Finding): boolean {
  return finding.rule.endsWith(".invalid");
}

/** The verdict a set of findings leads to (see the module doc). */
export function verdictOf(findings: readonly Finding[]): Verdict {
  const medium = SEVERITIES.indexOf("medium");
  if (findings.some((f) => !isInvalidFinding(f) && SEVERITIES.indexOf(f.severity) >= medium)) {
    return "threat";
  }
  if (findings.some(isInvalidFinding)) return "invalid";
  return "clean";
}

/**
 * Adds findings (e.g. from the sandboxed template renderer) to a report and recomputes its
 * verdict.
 */
export function mergeFindings(report: ScanReport, findings: readonly Finding[]): ScanReport {
  const all = [...report.findings, ...findings];
  return { ...report, findings: all, verdict: verdictOf(all) };
}

/** A {@link FormatError} as an `invalid` finding. */
export function invalidFinding(stage: string, error: FormatError, member?: string): Finding {
  return {
    stage,
    rule: `${stage}.invalid`,
    severity: "high",
    message: error.message,
    ...(error.offset === undefined ? {} : { offset: error.offset }),
    ...(member === undefined ? {} : { member }),
  };
}

class Progress {
  bytes = 0;
  #reported = 0;
  readonly #on: ((bytes: number) => void) | undefined;
  readonly #started = performance.now();
  readonly #deadline: number | undefined;
  constructor(on: ((bytes: number) => void) | undefined, deadline: number | undefined) {
    this.#on = on;
    this.#deadline = deadline;
  }
  /** Throws {@link ScanDeadlineError} once the deadline has passed. */
  check = (): void => {
    if (this.#deadline !== undefined && performance.now() > this.#deadline) {
      throw new ScanDeadlineError(this.#deadline - this.#started);
    }
  };
  add = (n: number): void => {
    this.check();
    this.bytes += n;
    if (this.#on !== undefined && this.bytes - this.#reported >= 4 << 20) {
      this.#reported = this.bytes;
      this.#on(this.bytes);
    }
  };
}

/**
 * Scans one file.
 * @param path the file (opened read-only; must be a regular file)
 * @param options cancellation, deadline, progress, YARA rules and a temp dir for wrappers
 * @returns the report; parse failures are `invalid` findings, never exceptions
 * @throws the signal's reason when aborted; {@link ScanDeadlineError} past the deadline;
 * `Deno.errors.NotFound`/`PermissionDenied` when the file cannot be opened
 */
export async function scanFile(path: string, options: ScanFileOptions = {}): Promise<ScanReport> {
  const started = performance.now();
  const progress = new Progress(options.onProgress, options.deadline);
  const file = await Deno.open(path, { read: true });
  try {
    const info = await file.stat();
    if (!info.isFile) {
      return report(
        "unknown",
        [{
          stage: "format",
          rule: "format.invalid",
          severity: "high",
          message: `"${path}" is not a regular file`,
        }],
        0,
        started,
      );
    }
    const { format, findings } = await scanOpen(file, info.size, progress, options, 0);
    options.signal?.throwIfAborted();
    options.onProgress?.(progress.bytes);
    return report(format, findings, progress.bytes, started);
  } finally {
    file.close();
  }
}

function report(format: string, findings: Finding[], bytes: number, started: number): ScanReport {
  return {
    format,
    verdict: verdictOf(findings),
    findings,
    bytesScanned: bytes,
    ms: performance.now() - started,
  };
}

/** Detects the format from the first bytes. */
export function detectFormat(head: Uint8Array, size: number): string {
  const ascii = new TextDecoder("latin1").decode(head.subarray(0, 8));
  if (size === 0) return "empty";
  if (ascii.startsWith("GGUF")) return "gguf";
  if (ascii.startsWith("PK\x03\x04") || ascii.startsWith("PK\x05\x06")) return "zip";
  if (isNpy(head)) return "npy";
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (/^BZh[1-9]/.test(ascii)) return "bz2";
  if (ascii.startsWith("\xfd7zXZ\x00")) return "xz";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  if (isTar(head)) return "torch-tar";
  if (looksLikeSafetensors(head, size)) return "safetensors";
  if (looksLikeLzma(head)) return "lzma";
  // Protocol 0/1 pickles may start with almost any opcode; the VM decides.
  if (looksLikePickle(head) || opcodeName(head[0] ?? 0) !== null) return "pickle";
  return "unknown";
}

async function scanOpen(
  file: Deno.FsFile,
  size: number,
  progress: Progress,
  options: ScanFileOptions,
  depth: number,
): Promise<{ format: string; findings: Finding[] }> {
  const head = readAt(file, 0, Math.min(size, 512));
  let format = detectFormat(head, size);
  const findings: Finding[] = [];
  const add = (f: Finding) => findings.push(f);
  const onRead = progress.add;
  const readOptions = { onRead, findings, ...(options.signal ? { signal: options.signal } : {}) };
  let sampleEntropy = true;
  try {
    switch (format) {
      case "empty":
        throw new FormatError("MALFORMED", "The file is empty");
      case "gguf": {
        const templates: ChatTemplate[] = [];
        let scan: ReturnType<typeof scanGguf>;
        try {
          scan = scanGguf(file, size, { onRead, findings, templates });
        } finally {
          // Templates read before a later part failed are still analysed.
          for (const template of templates) {
            analyzeTemplate(template.text, { key: template.key, offset: template.offset }).forEach(
              add,
            );
          }
        }
        sampleWeights(
          file,
          scan.tensors.map((t) => ({ ...t, dtype: t.type, shape: t.dims })),
          "gguf",
          add,
          progress,
        );
        break;
      }
      case "safetensors": {
        const scan = scanSafetensors(file, size, { findings });
        progress.add(8 + scan.headerLength);
        for (const [key, value] of Object.entries(scan.metadata)) {
          if (/chat_template/i.test(key)) {
            analyzeTemplate(value, { key: `__metadata__.${key}`, offset: 8 }).forEach(add);
          }
        }
        sampleWeights(file, scan.tensors, "safetensors", add, progress);
        break;
      }
      case "zip": {
        const archive = readZip(file, size, readOptions);
        const kind = zipKind(archive);
        if (kind === null) {
          throw new FormatError(
            "UNSUPPORTED",
            "The zip archive is neither a PyTorch checkpoint (no <root>/data.pkl) nor an npz (members other than .npy)",
          );
        }
        format = kind;
        if (kind === "npz") {
          if (archive.entries.some((e) => e.method !== 0)) sampleEntropy = false;
          scanNpz(file, archive, readOptions);
        } else {
          scanTorchZip(file, archive, readOptions);
        }
        break;
      }
      case "npy":
        scanNpy(new FileSource(file, { start: 0, length: size, onRead }), { findings });
        break;
      case "torch-tar":
        scanTorchTar(file, size, readOptions);
        break;
      case "pickle": {
        format = scanPickleFile(file, size, readOptions).format;
        break;
      }
      case "gzip":
      case "bz2":
      case "xz":
      case "lzma": {
        sampleEntropy = false;
        const inner = await scanWrapper(format, file, size, progress, options, depth);
        format = `${format}+${inner.format}`;
        inner.findings.forEach(add);
        break;
      }
      case "zstd":
        sampleEntropy = false;
        throw new FormatError(
          "UNSUPPORTED",
          "The file is zstd-compressed; decompress it and scan the result (gzip, bz2, xz and lzma wrappers are opened)",
        );
      default:
        throw new FormatError("UNSUPPORTED", `Unrecognized format (first bytes ${hexHead(head)})`);
    }
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    add(invalidFinding(stageOf(format), error));
  }
  options.signal?.throwIfAborted();
  polyglotChecks(file, size, format, head, add);
  if (sampleEntropy && size > 0) {
    const samples = sampleOffsets(size).map((offset) => ({
      offset,
      bytes: readAt(file, offset, Math.min(ENTROPY_SAMPLE, size - offset)),
    }));
    checkEntropy(samples).forEach(add);
  }
  if (options.yara !== undefined) {
    // At depth 1 this is the inflated content of a wrapper.
    yaraPass(file, size, options.yara, progress, options.signal).forEach(add);
  } else if (depth === 0) {
    add({
      stage: "yara",
      rule: "yara.not_run",
      severity: "info",
      message: "YARA rules were not given; the YARA pass did not run",
    });
  }
  return { format, findings };
}

function stageOf(format: string): string {
  if (format === "pytorch-zip" || format === "npz") return "zip";
  if (format === "torch-legacy" || format === "torch-tar") return "torch";
  for (const wrapper of ["gzip", "bz2", "xz", "lzma"]) {
    if (format === wrapper || format.startsWith(`${wrapper}+`)) return wrapper;
  }
  return format === "empty" || format === "unknown" || format === "zstd" ? "format" : format;
}

function hexHead(head: Uint8Array): string {
  return [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

function polyglotChecks(
  file: Deno.FsFile,
  size: number,
  format: string,
  head: Uint8Array,
  add: (f: Finding) => void,
): void {
  // A second format's trailer at the end: the file loads differently depending on the reader.
  if (format !== "pytorch-zip" && format !== "npz" && format !== "zip" && size >= 22) {
    const tail = readAt(file, Math.max(0, size - (0xffff + 22)), Math.min(size, 0xffff + 22));
    if (hasZipTrailer(tail)) {
      add({
        stage: "polyglot",
        rule: "polyglot.zip",
        severity: "high",
        message:
          `The ${format} file ends with a zip directory: it is also a zip archive (polyglot)`,
        offset: size - 22,
      });
    }
  }
  // Spec 13 §2: a GGUF/safetensors file must not begin like a pickle. The prefix alone can
  // be a coincidence (a safetensors header length of 0x0280 starts with 80 02), so the
  // prefix is confirmed by running the pickle VM from offset 0.
  if (format === "gguf" || format === "safetensors") {
    const text = new TextDecoder("latin1").decode(head.subarray(0, 32));
    const prefixed = (head[0] === 0x80 && (head[1] ?? 0) >= 2 && (head[1] ?? 0) <= 5) ||
      PICKLE_PREFIXES.some((p) => text.startsWith(p));
    if (prefixed) {
      try {
        runPickle(new FileSource(file, { start: 0, length: Math.min(size, 1 << 20) }), {
          limits: { maxValues: 100_000 },
        });
        add({
          stage: "polyglot",
          rule: "polyglot.pickle",
          severity: "critical",
          message: `The ${format} file is also a valid pickle from offset 0 (polyglot)`,
          offset: 0,
        });
      } catch (error) {
        if (!(error instanceof FormatError)) throw error;
        add({
          stage: "polyglot",
          rule: "polyglot.pickle_prefix",
          severity: "info",
          message: `The ${format} file begins like a pickle but is not one`,
          offset: 0,
        });
      }
    }
  }
}

function sampleWeights(
  file: Deno.FsFile,
  tensors: readonly {
    name: string;
    dtype: string;
    shape: number[];
    offset: number;
    size: number;
  }[],
  stage: string,
  add: (f: Finding) => void,
  progress: Progress,
): void {
  let sampled = 0;
  let total = 0;
  for (const t of tensors) {
    if (sampled >= MAX_TENSORS || total >= MAX_TOTAL_SAMPLE) return;
    if (!isStatDtype(t.dtype) || t.shape.length < 2 || t.shape.length > 8) continue;
    const elements = t.shape.reduce((a, b) => a * b, 1);
    if (elements < MIN_ELEMENTS) continue;
    const length = Math.min(t.size, SAMPLE_BYTES);
    const bytes = readAt(file, t.offset, length);
    progress.add(length);
    total += length;
    sampled++;
    const stats = sampleStats(t.name, t.dtype, bytes);
    if (stats !== null) checkStats(stats, { stage: "weights", offset: t.offset }).forEach(add);
  }
  void stage;
}

/**
 * Streams every byte through YARA in overlapping chunks; a match is narrowed to a small
 * window by re-scanning halves, so the finding says where.
 */
function yaraPass(
  file: Deno.FsFile,
  size: number,
  yara: YaraRuleSet,
  progress: Progress,
  signal?: AbortSignal,
): Finding[] {
  const findings: Finding[] = [];
  const seen = new Set<string>();
  const buffer = new Uint8Array(YARA_CHUNK + YARA_OVERLAP);
  let offset = 0;
  file.seekSync(0, Deno.SeekMode.Start);
  let carry = 0;
  while (offset < size) {
    signal?.throwIfAborted();
    // Keep the last YARA_OVERLAP bytes of the previous chunk in front of the new one.
    if (carry > 0) buffer.copyWithin(0, YARA_CHUNK, YARA_CHUNK + carry);
    let filled = carry;
    const want = Math.min(YARA_CHUNK, size - offset);
    while (filled < carry + want) {
      const n = file.readSync(buffer.subarray(filled, carry + want));
      if (n === null || n === 0) {
        throw new FormatError("TRUNCATED", "The file shrank while it was scanned", offset);
      }
      filled += n;
    }
    progress.add(want);
    const window = buffer.subarray(0, filled);
    const base = offset - carry;
    for (const rule of yara.scan(window)) {
      if (seen.has(rule)) continue;
      seen.add(rule);
      const at = base + locate(yara, rule, window);
      const meta = yara.meta.get(rule);
      findings.push({
        stage: "yara",
        rule: `yara.${rule}`,
        severity: meta?.severity ?? "high",
        message: `YARA rule "${rule}" matched near offset ${at}: ${
          meta?.description ?? "no description"
        }`,
        offset: at,
      });
    }
    offset += want;
    // Move the tail of this window to the overlap slot for the next round.
    carry = Math.min(YARA_OVERLAP, filled);
    buffer.copyWithin(YARA_CHUNK, filled - carry, filled);
  }
  return findings;
}

/** Narrows a match to a window of ≤ 4 KiB (or as far as the rule's strings allow). */
function locate(yara: YaraRuleSet, rule: string, window: Uint8Array<ArrayBuffer>): number {
  let lo = 0;
  let hi = window.length;
  while (hi - lo > 4096) {
    const mid = lo + Math.floor((hi - lo) / 2);
    // Strings shorter than 2 KiB that cross the middle stay inside the left half.
    const leftEnd = mid + 2048;
    if (yara.scan(window.subarray(lo, leftEnd)).includes(rule)) {
      hi = leftEnd;
    } else if (yara.scan(window.subarray(mid, hi)).includes(rule)) {
      lo = mid;
    } else {
      break;
    }
  }
  return lo;
}

/**
 * A legacy `.lzma` header (see `parseAloneHeader`) with a dictionary of at least 4 KiB and the
 * range coder's zero first byte. No valid pickle starts like this (its second byte would be
 * opcode 0x00), so protocol 0/1 pickles are not mistaken for it.
 */
function looksLikeLzma(head: Uint8Array): boolean {
  const header = parseAloneHeader(head);
  return header !== null && header.dictSize >= 4096 && head[13] === 0;
}

/**
 * Inflates a compression wrapper into `tempDir` and scans the content; the inflated size is
 * bounded by `maxInflatedBytes`, a wrapper inside a wrapper is not opened.
 */
async function scanWrapper(
  kind: Wrapper,
  file: Deno.FsFile,
  size: number,
  progress: Progress,
  options: ScanFileOptions,
  depth: number,
): Promise<{ format: string; findings: Finding[] }> {
  if (depth > 0) throw new FormatError("UNSUPPORTED", "Nested compression wrappers are not opened");
  if (options.tempDir === undefined) {
    throw new FormatError(
      "UNSUPPORTED",
      `The file is ${kind}-compressed and no temporary directory was given to inflate it`,
    );
  }
  const limit = options.maxInflatedBytes ?? MAX_INFLATED;
  const innerPath = `${options.tempDir}/inflate-${crypto.randomUUID()}`;
  const out = await Deno.open(innerPath, { write: true, createNew: true, read: true, mode: 0o600 });
  try {
    let written = 0;
    const write = (chunk: Uint8Array): void => {
      options.signal?.throwIfAborted();
      progress.check();
      written += chunk.length;
      if (written > limit) {
        throw new FormatError(
          "LIMIT_EXCEEDED",
          `The ${kind} wrapper inflates to more than ${limit} bytes (decompression bomb)`,
        );
      }
      let done = 0;
      while (done < chunk.length) done += out.writeSync(chunk.subarray(done));
    };
    const hook = (): void => {
      options.signal?.throwIfAborted();
      progress.check();
    };
    try {
      if (kind === "gzip") await gunzip(file, progress, write, options.signal);
      else {
        const input = new FileInput(file, size, { what: kind, onRead: progress.add });
        if (kind === "bz2") bunzip2(input, write, { onBlock: hook });
        else if (kind === "xz") unxz(input, write, { onChunk: hook });
        else unlzma(input, write, { onChunk: hook });
      }
    } catch (error) {
      if (
        error instanceof FormatError || error instanceof ScanDeadlineError ||
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied ||
        options.signal?.aborted
      ) throw error;
      throw new FormatError(
        "MALFORMED",
        `The ${kind} wrapper does not inflate: ${error instanceof Error ? error.message : error}`,
      );
    }
    const inner = await scanOpen(out, written, progress, options, depth + 1);
    // Offsets of the inner findings are in the inflated data.
    return {
      format: inner.format,
      findings: inner.findings.map((f) => ({
        ...f,
        member: f.member ? `${kind}:${f.member}` : `${kind}:`,
      })),
    };
  } finally {
    out.close();
    await Deno.remove(innerPath);
  }
}

/** Streams a gzip file through the platform's inflater into `write`. */
async function gunzip(
  file: Deno.FsFile,
  progress: Progress,
  write: (chunk: Uint8Array) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  file.seekSync(0, Deno.SeekMode.Start);
  const compressed = new ReadableStream<Uint8Array<ArrayBuffer>>({
    pull(controller) {
      const chunk = new Uint8Array(1 << 20);
      const n = file.readSync(chunk);
      if (n === null || n === 0) controller.close();
      else {
        progress.add(n);
        controller.enqueue(chunk.subarray(0, n));
      }
    },
  });
  const reader = compressed.pipeThrough<Uint8Array>(
    new DecompressionStream("gzip") as unknown as ReadableWritablePair<
      Uint8Array,
      Uint8Array<ArrayBuffer>
    >,
  ).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    try {
      signal?.throwIfAborted();
      write(value);
    } catch (error) {
      // Over the limit, aborted or past the deadline: stop inflating.
      await reader.cancel();
      throw error;
    }
  }
}
