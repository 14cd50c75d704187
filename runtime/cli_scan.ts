/**
 * `secai scan FILE... [--json]`: runs the static stages on local files through the real
 * sandboxed job runner (the `static_scan` job with libyara, then the sandboxed chat-template
 * renderer for GGUF/safetensors) and prints one result per file, in argument order. Exit 0
 * when every file is clean, 1 when any is a threat or invalid, 2 on a usage error.
 *
 * Each file is staged into a private temporary state dir (a hard link when possible, else a
 * copy), because the runner only hands a job inputs that lie inside its state dir. A
 * directory argument (a diffusion model, spec 13 §4) is one line of its own
 * (`cli_scan_dir.ts`).
 *
 * Many small files (issue #6: a job start costs ~70 ms) share jobs: up to
 * {@link BATCH_MAX_FILES} files of at most {@link BATCH_MAX_FILE_BYTES} each go to one
 * `static_scan_batch` job and one batched renderer job. Every file keeps meaningful limits:
 * the same memory limits as a job of its own, a deadline of its own inside the batch job, and
 * a batch wall clock that grows with the batch. Whatever goes wrong in a batch is never
 * hidden and never widens a verdict: a file whose scan fails or runs past its deadline, and
 * every file of a batch job that fails as a whole (crash, timeout, output outside the
 * contract), is scanned again in a job of its own, with the single-file limits, which gives
 * the same line as `secai scan` of that file alone (an `invalid` line when that job fails
 * too). Larger files get a job of their own from the start.
 * @module
 */
import { z } from "zod";
import { FindingSchema, ScanReportSchema } from "../workers/quarantine/api.ts";
import { jobFailure, verdictOf } from "./_scan_verdict.ts";
import { parseArgs, UsageError } from "./cli_args.ts";
import { MAX_JOB_FILES } from "./kit/sandbox_api.ts";
import { print, printError } from "./log.ts";
import { JobRunner } from "./sandbox/mod.ts";
import { scanDirectory } from "./cli_scan_dir.ts";

const PROJECT_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const STATIC_SCAN = `${PROJECT_ROOT}/workers/quarantine/jobs/static_scan.ts`;
const STATIC_SCAN_BATCH = `${PROJECT_ROOT}/workers/quarantine/jobs/static_scan_batch.ts`;
const RENDER_TEMPLATE = `${PROJECT_ROOT}/workers/quarantine/jobs/render_template.ts`;
/** The library the scan jobs load themselves (YARA). */
export const SCAN_LIBRARIES = ["libyara.so.9"];

/** A finding as printed. */
export type PrintedFinding = z.infer<typeof FindingSchema>;

/** A scan report of the `static_scan` job. */
export type ScanReport = z.infer<typeof ScanReportSchema>;

const RenderResultSchema = z.strictObject({
  findings: z.array(FindingSchema).max(10_000),
  templates: z.number().int().nonnegative(),
});

/** A batch job's per-file failure: the file is scanned again in a job of its own. */
const FileErrorSchema = z.strictObject({
  error: z.strictObject({ code: z.string().max(64), message: z.string().max(4000) }),
});

const StaticBatchSchema = z.strictObject({
  results: z.array(z.union([z.strictObject({ report: ScanReportSchema }), FileErrorSchema]))
    .max(MAX_JOB_FILES),
});

const RenderBatchSchema = z.strictObject({
  results: z.array(z.union([RenderResultSchema, FileErrorSchema])).max(MAX_JOB_FILES),
});

/** Time limits of the scan jobs (memory limits are fixed per job kind). */
export interface ScanLimits {
  /** Wall clock and CPU time of a file's own static scan job. */
  staticTimeoutMs: number;
  /** Time a file may take inside a batch job; past it, it is scanned again on its own. */
  fileDeadlineMs: number;
  /** Wall clock and CPU time of a file's own template-renderer job. */
  renderTimeoutMs: number;
}

/** The limits `secai scan` uses. */
export const SCAN_LIMITS: Readonly<ScanLimits> = Object.freeze({
  staticTimeoutMs: 600_000,
  fileDeadlineMs: 30_000,
  renderTimeoutMs: 30_000,
});

/** Most files scanned by one batch job. */
export const BATCH_MAX_FILES = 64;
/** Largest file that shares a job; a larger file's scan dwarfs the start of a job. */
export const BATCH_MAX_FILE_BYTES = 16 << 20;
/** Most bytes of files in one batch. */
const BATCH_MAX_BYTES = 256 << 20;
/** Wall clock a batched renderer job gets per file, on top of one file's limit. */
const RENDER_PER_FILE_MS = 2_000;
/** The runner's largest wall clock (JobLimitsSchema). */
const JOB_TIMEOUT_MAX_MS = 30 * 60_000;
const STATIC_MEMORY = { heapMb: 1024, memMb: 4096 };
const RENDER_MEMORY = { heapMb: 256, memMb: 1024 };

/** One printed line of `secai scan --json`. */
export interface ScanLine {
  file: string;
  format: string;
  verdict: "clean" | "threat" | "invalid";
  findings: PrintedFinding[];
  ms: number;
}

/** A runner on a private temporary state dir, and the files staged into it. */
export interface ScanSession {
  runner: JobRunner;
  home: string;
  /** Stages a file; returns its path relative to the state dir. */
  stage(path: string): Promise<string>;
  /** Removes the state dir. */
  close(): Promise<void>;
}

/**
 * Opens a scan session: a temporary state dir and a job runner that may grant libyara.
 * @param options the deno binary for the jobs (default: this one)
 */
export async function openScanSession(options: { denoPath?: string } = {}): Promise<ScanSession> {
  const home = await Deno.realPath(await Deno.makeTempDir({ prefix: "secai-scan-" }));
  await Deno.mkdir(`${home}/in`, { mode: 0o700 });
  const runner = new JobRunner({
    home,
    codeRoots: [PROJECT_ROOT],
    configPath: `${PROJECT_ROOT}/deno.json`,
    denoPath: options.denoPath ?? Deno.execPath(),
    libraries: SCAN_LIBRARIES,
    maxConcurrent: 1,
  });
  let count = 0;
  return {
    runner,
    home,
    async stage(path) {
      const rel = `in/${count++}`;
      const target = `${home}/${rel}`;
      try {
        await Deno.link(path, target);
      } catch (error) {
        if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.NotFound) {
          throw error;
        }
        // Another filesystem, or hard links refused: a copy has the same bytes.
        await Deno.copyFile(path, target);
      }
      return rel;
    },
    async close() {
      await Deno.remove(home, { recursive: true });
    },
  };
}

/** Whether the template renderer runs on a file of this format. */
function hasTemplates(format: string): boolean {
  return format === "gguf" || format === "safetensors";
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * Scans one staged file in jobs of its own: the static scan job, then (GGUF/safetensors) the
 * template renderer.
 * @param session the scan session
 * @param rel the staged path
 * @param options time limits (default {@link SCAN_LIMITS})
 * @returns the format and findings (job failures become `*.invalid` findings)
 */
export async function scanStaged(
  session: ScanSession,
  rel: string,
  options: { limits?: ScanLimits } = {},
): Promise<{ format: string; findings: PrintedFinding[] }> {
  const limits = options.limits ?? SCAN_LIMITS;
  const scanned = await staticScanAlone(session, rel, limits);
  if (!hasTemplates(scanned.format)) return scanned;
  return {
    format: scanned.format,
    findings: [...scanned.findings, ...await renderAlone(session, rel, limits)],
  };
}

async function staticScanAlone(
  session: ScanSession,
  rel: string,
  limits: ScanLimits,
): Promise<{ format: string; findings: PrintedFinding[] }> {
  const result = await session.runner.run({
    module: STATIC_SCAN,
    input: { kind: "file", path: rel },
    args: [],
    limits: {
      timeoutMs: limits.staticTimeoutMs,
      ...STATIC_MEMORY,
      cpuSec: seconds(limits.staticTimeoutMs),
    },
    ffi: SCAN_LIBRARIES,
  });
  if (result.status !== "ok") {
    return { format: "unknown", findings: [jobFailure(result, "static scan")] };
  }
  const parsed = z.strictObject({ report: ScanReportSchema }).safeParse(result.result);
  if (!parsed.success) {
    return {
      format: "unknown",
      findings: [{
        stage: "scan",
        rule: "scan.invalid",
        severity: "high",
        message: "The static scan job answered outside its contract",
      }],
    };
  }
  return { format: parsed.data.report.format, findings: [...parsed.data.report.findings] };
}

async function renderAlone(
  session: ScanSession,
  rel: string,
  limits: ScanLimits,
): Promise<PrintedFinding[]> {
  const rendered = await session.runner.run({
    module: RENDER_TEMPLATE,
    input: { kind: "file", path: rel },
    args: [],
    limits: {
      timeoutMs: limits.renderTimeoutMs,
      ...RENDER_MEMORY,
      cpuSec: seconds(limits.renderTimeoutMs),
    },
  });
  const render = rendered.status === "ok" ? RenderResultSchema.safeParse(rendered.result) : null;
  if (render?.success) return render.data.findings;
  return [{
    ...jobFailure(rendered, "template renderer"),
    stage: "template",
    rule: "template.invalid",
  }];
}

/**
 * Static scan of a batch in one job. An entry is null where the file must be scanned again
 * on its own: its scan failed or ran past its deadline, or the whole job failed.
 */
async function staticScanBatch(
  session: ScanSession,
  rels: readonly string[],
  limits: ScanLimits,
): Promise<(ScanReport | null)[]> {
  const timeoutMs = Math.min(
    JOB_TIMEOUT_MAX_MS,
    limits.staticTimeoutMs + rels.length * limits.fileDeadlineMs,
  );
  const result = await session.runner.run({
    module: STATIC_SCAN_BATCH,
    input: { kind: "files", paths: [...rels] },
    args: [String(limits.fileDeadlineMs)],
    limits: { timeoutMs, ...STATIC_MEMORY, cpuSec: seconds(timeoutMs) },
    ffi: SCAN_LIBRARIES,
  });
  const parsed = result.status === "ok" ? StaticBatchSchema.safeParse(result.result) : null;
  if (!parsed?.success || parsed.data.results.length !== rels.length) return rels.map(() => null);
  return parsed.data.results.map((entry) => "report" in entry ? entry.report : null);
}

/** The template renderer on a batch in one job; null entries as for {@link staticScanBatch}. */
async function renderBatch(
  session: ScanSession,
  rels: readonly string[],
  limits: ScanLimits,
): Promise<(PrintedFinding[] | null)[]> {
  const timeoutMs = Math.min(
    JOB_TIMEOUT_MAX_MS,
    limits.renderTimeoutMs + rels.length * RENDER_PER_FILE_MS,
  );
  const rendered = await session.runner.run({
    module: RENDER_TEMPLATE,
    input: { kind: "files", paths: [...rels] },
    args: [],
    limits: { timeoutMs, ...RENDER_MEMORY, cpuSec: seconds(timeoutMs) },
  });
  const parsed = rendered.status === "ok" ? RenderBatchSchema.safeParse(rendered.result) : null;
  if (!parsed?.success || parsed.data.results.length !== rels.length) return rels.map(() => null);
  return parsed.data.results.map((entry) => "findings" in entry ? entry.findings : null);
}

/**
 * Scans staged files in one static scan job and one renderer job; a file the batch could not
 * answer for is scanned again in jobs of its own (see the module doc).
 * @param session the scan session
 * @param rels the staged paths (at most {@link BATCH_MAX_FILES})
 * @param options time limits (default {@link SCAN_LIMITS})
 * @returns per file, in order, its format, findings and the milliseconds its scan took
 */
export async function scanStagedBatch(
  session: ScanSession,
  rels: readonly string[],
  options: { limits?: ScanLimits } = {},
): Promise<{ format: string; findings: PrintedFinding[]; ms: number }[]> {
  const limits = options.limits ?? SCAN_LIMITS;
  if (rels.length === 0 || rels.length > BATCH_MAX_FILES) {
    throw new RangeError(`Invalid batch of ${rels.length} files: 1 to ${BATCH_MAX_FILES} allowed`);
  }
  const reports = await staticScanBatch(session, rels, limits);
  const out: { format: string; findings: PrintedFinding[]; ms: number }[] = [];
  const toRender: number[] = [];
  for (const [i, rel] of rels.entries()) {
    const report = reports[i] ?? null;
    if (report === null) {
      const started = performance.now();
      out.push({
        ...await scanStaged(session, rel, { limits }),
        ms: Math.round(performance.now() - started),
      });
      continue;
    }
    out.push({ format: report.format, findings: [...report.findings], ms: Math.round(report.ms) });
    if (hasTemplates(report.format)) toRender.push(i);
  }
  const renderRels = toRender.map((i) => rels[i] as string);
  const rendered = renderRels.length > 1
    ? await renderBatch(session, renderRels, limits)
    : renderRels.map(() => null);
  for (const [k, i] of toRender.entries()) {
    const line = out[i];
    if (line === undefined) continue;
    const started = performance.now();
    line.findings.push(
      ...rendered[k] ?? await renderAlone(session, renderRels[k] as string, limits),
    );
    line.ms += rendered[k] ? 0 : Math.round(performance.now() - started);
  }
  return out;
}

/** Options of {@link scanFiles}. */
export interface ScanFilesOptions {
  /** `false`: one job per file (the baseline of `tests/bench/scan_many.ts`). Default true. */
  batch?: boolean;
  /** Time limits (default {@link SCAN_LIMITS}). */
  limits?: ScanLimits;
  /** Called with each line once it and every line before it are known, in argument order. */
  onLine?: (line: ScanLine) => void;
}

/** A file to scan, with its position among the arguments. */
interface Planned {
  index: number;
  file: string;
  size: number;
}

/**
 * Scans files: a line per file, in argument order (see the module doc for the batching).
 * @param session the scan session
 * @param files paths as the user gave them
 * @param options batching, limits and a callback per line
 * @returns one line per file
 */
export async function scanFiles(
  session: ScanSession,
  files: readonly string[],
  options: ScanFilesOptions = {},
): Promise<ScanLine[]> {
  const limits = options.limits ?? SCAN_LIMITS;
  const lines: (ScanLine | null)[] = files.map(() => null);
  let shown = 0;
  const show = (): void => {
    for (let line = lines[shown]; line; line = lines[++shown]) options.onLine?.(line);
  };
  const planned: Planned[] = [];
  for (const [index, file] of files.entries()) {
    let info: Deno.FileInfo | null = null;
    try {
      info = await Deno.stat(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
    }
    if (info?.isDirectory) lines[index] = await scanDirectory(session, file);
    else if (info === null || !info.isFile) lines[index] = unreadable(file);
    else planned.push({ index, file, size: info.size });
  }
  for (const group of groupFiles(planned, options.batch ?? true)) {
    show();
    const staged: { entry: Planned; rel: string }[] = [];
    try {
      for (const entry of group) {
        const rel = await stageOrNull(session, entry.file);
        if (rel === null) lines[entry.index] = unreadable(entry.file);
        else staged.push({ entry, rel });
      }
      if (staged.length === 1) {
        const [{ entry, rel }] = staged as [{ entry: Planned; rel: string }];
        const started = performance.now();
        const { format, findings } = await scanStaged(session, rel, { limits });
        lines[entry.index] = lineOf(entry.file, format, findings, performance.now() - started);
      } else if (staged.length > 1) {
        const results = await scanStagedBatch(session, staged.map((s) => s.rel), { limits });
        for (const [k, { entry }] of staged.entries()) {
          const result = results[k];
          if (result) {
            lines[entry.index] = lineOf(entry.file, result.format, result.findings, result.ms);
          }
        }
      }
    } finally {
      for (const { rel } of staged) await Deno.remove(`${session.home}/${rel}`);
    }
  }
  for (const [index, line] of lines.entries()) {
    // Every path above sets a line; were one missed, the file must not pass unreported.
    if (line === null) lines[index] = unreadable(files[index] as string);
  }
  show();
  return lines as ScanLine[];
}

/**
 * Groups files into jobs: small files, in argument order, into batches bounded in count and
 * bytes; every other file alone.
 */
function groupFiles(planned: readonly Planned[], batch: boolean): Planned[][] {
  const groups: Planned[][] = [];
  let current: Planned[] = [];
  let bytes = 0;
  for (const entry of planned) {
    if (!batch || entry.size > BATCH_MAX_FILE_BYTES) {
      groups.push([entry]);
      continue;
    }
    if (current.length === BATCH_MAX_FILES || bytes + entry.size > BATCH_MAX_BYTES) {
      current = [];
      bytes = 0;
    }
    // A batch takes the place of its first file, so lines can be shown in argument order.
    if (current.length === 0) groups.push(current);
    current.push(entry);
    bytes += entry.size;
  }
  return groups.filter((group) => group.length > 0);
}

async function stageOrNull(session: ScanSession, file: string): Promise<string | null> {
  try {
    return await session.stage(file);
  } catch (error) {
    // Gone or replaced between the stat and the link: reported as unreadable.
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function unreadable(file: string): ScanLine {
  return {
    file,
    format: "unknown",
    verdict: "invalid",
    findings: [{
      stage: "format",
      rule: "format.invalid",
      severity: "high",
      message: `Cannot scan "${file}": not a readable regular file`,
    }],
    ms: 0,
  };
}

function lineOf(file: string, format: string, findings: PrintedFinding[], ms: number): ScanLine {
  return { file, format, verdict: verdictOf(findings), findings, ms: Math.round(ms) };
}

/** `secai scan`. */
export async function scanCommand(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv, { json: "boolean" });
  if (positional.length === 0) throw new UsageError("scan needs at least one FILE");
  const session = await openScanSession();
  let worst = 0;
  try {
    await scanFiles(session, positional, {
      onLine: (line) => {
        if (line.verdict !== "clean") worst = 1;
        print(flags.json ? JSON.stringify(line) : describe(line));
      },
    });
  } finally {
    await session.close().catch((error) =>
      printError(`secai: cannot remove "${session.home}": ${error}`)
    );
  }
  return worst;
}

function describe(line: ScanLine): string {
  const head = `${line.file}: ${line.verdict} (${line.format}, ${line.ms} ms)`;
  const rows = line.findings
    .filter((f) => f.severity !== "info")
    .map((f) => {
      const where = [
        f.offset === undefined ? null : `offset ${f.offset}`,
        f.member ? `member ${f.member}` : null,
        f.callable ? `callable ${f.callable}` : null,
        f.opcode ? `opcode ${f.opcode}` : null,
      ].filter(Boolean).join(", ");
      return `  [${f.severity}] ${f.rule}${where ? ` (${where})` : ""}: ${f.message}`;
    });
  return [head, ...rows].join("\n");
}
