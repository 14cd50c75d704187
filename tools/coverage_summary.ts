/**
 * Coverage per top-level folder, from the LCOV that `deno coverage --lcov` writes. CI prints
 * it at the end of `tools/test`; there is no threshold. Files no test loaded have no LCOV
 * record, so each row also says how many of the folder's source files were loaded at all.
 *
 *     deno run --allow-read tools/coverage_summary.ts <coverage.lcov>
 * @module
 */
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { print, printError } from "../runtime/log.ts";

/** The folders summarised, in print order. */
export const COVERAGE_FOLDERS: readonly string[] = [
  "runtime/",
  "workers/",
  "routes/",
  "islands/",
  "ffi/",
  "policy/",
];

/** One folder's numbers. */
export interface FolderCoverage {
  /** `runtime/`, or `total` for the sum of all folders. */
  folder: string;
  linesHit: number;
  linesFound: number;
  branchesHit: number;
  branchesFound: number;
  /** Source files of the folder that some test loaded. */
  filesLoaded: number;
  /** Source files of the folder (tests excluded). */
  files: number;
}

/** Options of {@linkcode summarizeLcov}. */
export interface SummarizeOptions {
  /** Project root; LCOV `SF:` paths are made relative to it. */
  root: string;
  /** Project-relative source files (tests excluded), for the loaded/total file counts. */
  sourceFiles: readonly string[];
}

interface FileRecord {
  path: string;
  linesHit: number;
  linesFound: number;
  branchesHit: number;
  branchesFound: number;
}

function count(value: string, line: string): number {
  if (!/^\d{1,12}$/.test(value)) throw new SyntaxError(`Invalid LCOV line "${line}"`);
  return Number(value);
}

/**
 * Sums an LCOV report per top-level folder.
 * @param lcov the LCOV text
 * @param options the project root and its source files
 * @returns one row per folder of {@linkcode COVERAGE_FOLDERS}, then a `total` row
 * @throws {SyntaxError} on a malformed count or an unterminated record
 */
export function summarizeLcov(lcov: string, options: SummarizeOptions): FolderCoverage[] {
  const records: FileRecord[] = [];
  let current: FileRecord | null = null;
  for (const line of lcov.split("\n")) {
    const colon = line.indexOf(":");
    const key = colon === -1 ? line.trim() : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).trim();
    if (key === "SF") {
      const path = value.startsWith("file://") ? fileURLToPath(value) : value;
      current = {
        path: relative(options.root, path).split(sep).join("/"),
        linesHit: 0,
        linesFound: 0,
        branchesHit: 0,
        branchesFound: 0,
      };
    } else if (key === "end_of_record") {
      if (current) records.push(current);
      current = null;
    } else if (current && key === "LH") current.linesHit = count(value, line);
    else if (current && key === "LF") current.linesFound = count(value, line);
    else if (current && key === "BRH") current.branchesHit = count(value, line);
    else if (current && key === "BRF") current.branchesFound = count(value, line);
  }
  if (current) throw new SyntaxError(`LCOV record for "${current.path}" has no end_of_record`);
  const rows = COVERAGE_FOLDERS.map((folder): FolderCoverage => {
    const inFolder = records.filter((r) => r.path.startsWith(folder));
    const sum = (pick: (r: FileRecord) => number) => inFolder.reduce((n, r) => n + pick(r), 0);
    const files = options.sourceFiles.filter((f) => f.startsWith(folder));
    return {
      folder,
      linesHit: sum((r) => r.linesHit),
      linesFound: sum((r) => r.linesFound),
      branchesHit: sum((r) => r.branchesHit),
      branchesFound: sum((r) => r.branchesFound),
      filesLoaded: files.filter((f) => inFolder.some((r) => r.path === f)).length,
      files: files.length,
    };
  });
  const total: FolderCoverage = {
    folder: "total",
    linesHit: 0,
    linesFound: 0,
    branchesHit: 0,
    branchesFound: 0,
    filesLoaded: 0,
    files: 0,
  };
  for (const row of rows) {
    total.linesHit += row.linesHit;
    total.linesFound += row.linesFound;
    total.branchesHit += row.branchesHit;
    total.branchesFound += row.branchesFound;
    total.filesLoaded += row.filesLoaded;
    total.files += row.files;
  }
  return [...rows, total];
}

function percent(hit: number, found: number): string {
  return (found === 0 ? "-" : `${(100 * hit / found).toFixed(1)}%`).padStart(6);
}

/**
 * Formats the rows as the table CI prints.
 * @param rows from {@linkcode summarizeLcov}
 * @returns the text, one folder per line
 */
export function formatCoverage(rows: readonly FolderCoverage[]): string {
  const cells = rows.map((r) => [
    r.folder,
    percent(r.linesHit, r.linesFound),
    `${r.linesHit}/${r.linesFound}`,
    percent(r.branchesHit, r.branchesFound),
    `${r.filesLoaded}/${r.files}`,
  ]);
  const header = ["folder", "lines", "(hit/found)", "branches", "files loaded"];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  const line = (c: string[]) =>
    `  ${
      c.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join("  ")
    }`;
  return ["coverage by folder (no threshold):", line(header), ...cells.map(line)].join("\n");
}

/** Product source files under the coverage folders (no tests, benchmarks or fixtures). */
async function listSourceFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(join(root, dir))) {
      const rel = `${dir}${entry.name}`;
      if (entry.isDirectory && !entry.name.startsWith(".")) await walk(`${rel}/`);
      else if (entry.isFile && /\.tsx?$/.test(rel) && !/_(test|bench)\.tsx?$/.test(rel)) {
        out.push(rel);
      }
    }
  }
  for (const folder of COVERAGE_FOLDERS) {
    try {
      await walk(folder);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return out.sort();
}

if (import.meta.main) {
  const [path] = Deno.args;
  if (Deno.args.length !== 1 || !path) {
    printError("usage: tools/coverage_summary.ts <coverage.lcov>");
    Deno.exit(2);
  }
  const root = fileURLToPath(new URL("../", import.meta.url));
  const rows = summarizeLcov(await Deno.readTextFile(path), {
    root,
    sourceFiles: await listSourceFiles(root),
  });
  print(formatCoverage(rows));
}
