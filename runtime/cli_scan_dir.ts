/**
 * `secai scan DIR`: a diffusion model directory (spec 13 §4) through the same sandboxed jobs
 * as the quarantine's stages 2, 5 and 7 — the directory gate (`diffusion_checks gate`), every
 * static scanner on every safetensors file (`static_scan` on the directory, with libyara) and
 * the deep scan (`diffusion_checks deep`) — as one line of format `diffusion-directory` whose
 * findings name the relative file (`member`).
 *
 * The runner hands a job only inputs inside its state dir, so the tree is mirrored into the
 * scan session's private state dir first: directories recreated, regular files hard-linked
 * (copied when links are refused). The mirror is made from an `lstat`-only walk that follows
 * no link: links, special files and whatever lies past the walk's limits are not mirrored but
 * reported from the walk, with the rule ids the directory checks use.
 * @module
 */
import { z } from "zod";
import {
  DirectoryReportSchema,
  type Finding,
  ScanReportSchema,
} from "../workers/quarantine/api.ts";
import { jobFailure, verdictOf } from "./_scan_verdict.ts";
import { type TreeProblemCode, walkTree } from "./kit/tree.ts";
import type { JobRunner } from "./sandbox/mod.ts";

const PROJECT_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const DIFFUSION_CHECKS = `${PROJECT_ROOT}/workers/quarantine/jobs/diffusion_checks.ts`;
const STATIC_SCAN = `${PROJECT_ROOT}/workers/quarantine/jobs/static_scan.ts`;
/** Limits of each job on a directory: it may read many files. */
const LIMITS = { timeoutMs: 600_000, heapMb: 1024, memMb: 4096, cpuSec: 600 };

const DirectoryJobSchema = z.strictObject({ report: DirectoryReportSchema });
const ScanJobSchema = z.strictObject({ report: ScanReportSchema });

/** What a directory scan needs of a scan session (`cli_scan.ts`). */
export interface DirectoryScanSession {
  runner: JobRunner;
  /** The session's private state dir. */
  home: string;
}

/** The line of one directory, as `secai scan` prints it. */
export interface DirectoryScanLine {
  file: string;
  format: "diffusion-directory";
  verdict: "clean" | "threat" | "invalid";
  findings: Finding[];
  ms: number;
}

const PROBLEM_RULES: Readonly<Record<TreeProblemCode, string>> = {
  TOO_MANY_ENTRIES: "diffusion.too_many_entries",
  TOO_DEEP: "diffusion.too_deep",
  PATH_TOO_LONG: "diffusion.path_too_long",
  UNREADABLE: "diffusion.unreadable",
};

/**
 * Scans one directory.
 * @param session the scan session (runner and private state dir)
 * @param path the directory as the user gave it
 * @returns its line; a job that fails is an `invalid` finding, never a clean line
 */
export async function scanDirectory(
  session: DirectoryScanSession,
  path: string,
): Promise<DirectoryScanLine> {
  const started = performance.now();
  const findings: Finding[] = [];
  // The directory the user named may be reached through a link; links inside it are not.
  const root = await Deno.realPath(path);
  const listing = await walkTree(root);
  for (const problem of listing.problems) {
    findings.push({
      stage: "diffusion",
      rule: PROBLEM_RULES[problem.code],
      severity: "high",
      message: problem.message,
      member: problem.path,
    });
  }
  const rel = `in/dir-${crypto.randomUUID()}`;
  const mirror = `${session.home}/${rel}`;
  await Deno.mkdir(mirror, { recursive: true, mode: 0o700 });
  try {
    for (const entry of listing.entries) {
      const from = `${root}/${entry.path}`;
      const to = `${mirror}/${entry.path}`;
      if (entry.kind === "directory") {
        await Deno.mkdir(to, { recursive: true });
      } else if (entry.kind === "file") {
        await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
        try {
          await Deno.link(from, to);
        } catch (error) {
          if (error instanceof Deno.errors.NotCapable) throw error;
          // Another filesystem, or hard links refused: a copy has the same bytes.
          await Deno.copyFile(from, to);
        }
      } else {
        findings.push({
          stage: "diffusion",
          rule: entry.kind === "symlink" ? "diffusion.link" : "diffusion.special_file",
          severity: "critical",
          message: `"${entry.path}" is ${
            entry.kind === "symlink" ? "a symbolic link (links are refused)" : "a special file"
          }; only regular files are admitted`,
          member: entry.path,
        });
      }
    }
    const run = (module: string, args: string[], ffi: string[] = []) =>
      session.runner.run({
        module,
        input: { kind: "directory", path: rel },
        args,
        limits: LIMITS,
        ...(ffi.length > 0 ? { ffi } : {}),
      });
    for (const mode of ["gate", "deep"] as const) {
      const result = await run(DIFFUSION_CHECKS, [mode]);
      const parsed = result.status === "ok" ? DirectoryJobSchema.safeParse(result.result) : null;
      if (parsed?.success) findings.push(...parsed.data.report.findings);
      else findings.push(jobFailure(result, `directory checks (${mode})`));
    }
    const scanned = await run(STATIC_SCAN, [], ["libyara.so.9"]);
    const scan = scanned.status === "ok" ? ScanJobSchema.safeParse(scanned.result) : null;
    if (scan?.success) findings.push(...scan.data.report.findings);
    else findings.push(jobFailure(scanned, "static scan"));
  } finally {
    await Deno.remove(mirror, { recursive: true });
  }
  // The gate and the deep scan both read the JSON files: one finding per rule, file and text.
  const seen = new Set<string>();
  const unique = findings.filter((f) => {
    const key = `${f.rule}\0${f.member ?? ""}\0${f.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return {
    file: path,
    format: "diffusion-directory",
    verdict: verdictOf(unique),
    findings: unique,
    ms: Math.round(performance.now() - started),
  };
}
