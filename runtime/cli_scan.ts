/**
 * `secai scan FILE... [--json]`: runs the static stages on local files through the real
 * sandboxed job runner (the `static_scan` job with libyara, then the sandboxed chat-template
 * renderer for GGUF/safetensors) and prints one result per file. Exit 0 when every file is
 * clean, 1 when any is a threat or invalid, 2 on a usage error.
 *
 * Each file is staged into a private temporary state dir (a hard link when possible, else a
 * copy), because the runner only hands a job inputs that lie inside its state dir.
 * @module
 */
import { z } from "zod";
import { FindingSchema } from "../workers/quarantine/api.ts";
import { parseArgs, UsageError } from "./cli_args.ts";
import type { JobResult } from "./kit/sandbox_api.ts";
import { print, printError } from "./log.ts";
import { JobRunner } from "./sandbox/mod.ts";

const PROJECT_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const STATIC_SCAN = `${PROJECT_ROOT}/workers/quarantine/jobs/static_scan.ts`;
const RENDER_TEMPLATE = `${PROJECT_ROOT}/workers/quarantine/jobs/render_template.ts`;
/** The library the scan jobs load themselves (YARA). */
export const SCAN_LIBRARIES = ["libyara.so.9"];

/** A finding as printed. */
export type PrintedFinding = z.infer<typeof FindingSchema>;

/** The `static_scan` job's report, validated at this boundary. */
export const ScanReportSchema = z.strictObject({
  format: z.string().max(64),
  verdict: z.enum(["clean", "threat", "invalid"]),
  findings: z.array(FindingSchema).max(100_000),
  bytesScanned: z.number().int().nonnegative(),
  ms: z.number().nonnegative(),
});
/** A scan report. */
export type ScanReport = z.infer<typeof ScanReportSchema>;

const RenderResultSchema = z.strictObject({
  findings: z.array(FindingSchema).max(10_000),
  templates: z.number().int().nonnegative(),
});

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

function jobFailure(result: JobResult, what: string): PrintedFinding {
  return {
    stage: "scan",
    rule: "scan.invalid",
    severity: "high",
    message: `The ${what} job ended "${result.status}"${
      result.error ? `: ${result.error.code} ${result.error.message}` : ""
    }`.slice(0, 2000),
  };
}

function verdictOf(findings: readonly PrintedFinding[]): ScanLine["verdict"] {
  const order = ["info", "low", "medium", "high", "critical"];
  if (findings.some((f) => !f.rule.endsWith(".invalid") && order.indexOf(f.severity) >= 2)) {
    return "threat";
  }
  if (findings.some((f) => f.rule.endsWith(".invalid"))) return "invalid";
  return "clean";
}

/**
 * Scans one staged file: the static scan job, then (GGUF/safetensors) the template renderer.
 * @param session the scan session
 * @param rel the staged path
 * @returns the format and findings (job failures become `scan.invalid` findings)
 */
export async function scanStaged(
  session: ScanSession,
  rel: string,
): Promise<{ format: string; findings: PrintedFinding[] }> {
  const result = await session.runner.run({
    module: STATIC_SCAN,
    input: { kind: "file", path: rel },
    args: [],
    limits: { timeoutMs: 600_000, heapMb: 1024, memMb: 4096, cpuSec: 600 },
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
  const report = parsed.data.report;
  const findings = [...report.findings];
  if (report.format === "gguf" || report.format === "safetensors") {
    const rendered = await session.runner.run({
      module: RENDER_TEMPLATE,
      input: { kind: "file", path: rel },
      args: [],
      limits: { timeoutMs: 30_000, heapMb: 256, memMb: 1024, cpuSec: 30 },
    });
    const render = rendered.status === "ok" ? RenderResultSchema.safeParse(rendered.result) : null;
    if (render?.success) findings.push(...render.data.findings);
    else {findings.push({
        ...jobFailure(rendered, "template renderer"),
        stage: "template",
        rule: "template.invalid",
      });}
  }
  return { format: report.format, findings };
}

/** `secai scan`. */
export async function scanCommand(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv, { json: "boolean" });
  if (positional.length === 0) throw new UsageError("scan needs at least one FILE");
  const session = await openScanSession();
  let worst = 0;
  try {
    for (const file of positional) {
      const started = performance.now();
      let line: ScanLine;
      let info: Deno.FileInfo | null = null;
      try {
        info = await Deno.stat(file);
      } catch (error) {
        if (error instanceof Deno.errors.NotCapable) throw error;
      }
      if (info === null || !info.isFile) {
        line = {
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
      } else {
        const rel = await session.stage(file);
        try {
          const { format, findings } = await scanStaged(session, rel);
          line = {
            file,
            format,
            verdict: verdictOf(findings),
            findings,
            ms: Math.round(performance.now() - started),
          };
        } finally {
          await Deno.remove(`${session.home}/${rel}`);
        }
      }
      if (line.verdict !== "clean") worst = 1;
      print(flags.json ? JSON.stringify(line) : describe(line));
    }
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
