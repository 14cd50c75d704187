/**
 * The evidence matrix: every control of the spec (M0–M53, the roadmap, our runtime's own)
 * with its status, and for a `partial` or `working` claim the tests that prove it in the real
 * path. {@linkcode checkEvidence} holds a test run to those claims: a claim whose test is
 * missing, skipped or failing is a CI failure, so "Implemented" cannot be written without
 * proof (the original's matrix claimed 54 milestones, several never wired in; spec 00).
 * @module
 */
import type { EvidenceView } from "./kit/system_api.ts";
import { z } from "zod";
import { parseDocument } from "yaml";
import type { TestOutcome, TestReport } from "./junit.ts";

/** The matrix, relative to the project root. */
export const MATRIX_PATH = "policy/controls.yaml";
/** The document generated from it, relative to the project root. */
export const CONTROLS_DOC_PATH = "docs/CONTROLS.md";
/** Largest matrix file read. */
export const MAX_MATRIX_BYTES = 256 * 1024;
/** M0 … M53: every control of spec/00-overview.md must be listed. */
export const MILESTONE_COUNT = 54;

/** Spec files a control may cite (../shared/spec/), plus ARCHITECTURE.md for our own. */
export const SPEC_FILES = [
  "00-overview.md",
  "10-runtime-gateway.md",
  "11-audit.md",
  "12-policy-tool-firewall.md",
  "13-quarantine-registry.md",
  "14-inference-ui.md",
  "20-agent.md",
  "21-mcp-firewall.md",
  "22-airlock-search-pii.md",
  "30-enforcement.md",
  "31-vault-auth-ops.md",
  "32-supply-chain-image.md",
  "ARCHITECTURE.md",
] as const;

const SpecRefSchema = z.string().max(80).refine((ref) => {
  const match = /^(\S+?)(?: §(\d{1,2}(?:\.\d{1,2})?))?$/.exec(ref);
  return match !== null && (SPEC_FILES as readonly string[]).includes(match[1] as string);
}, `expected a spec file (${SPEC_FILES.join(", ")}), optionally followed by " §<section>"`);

/** One test that proves a claim. */
export const ProofSchema = z.strictObject({
  /** Test file, relative to the project root. */
  file: z.string().max(200).regex(
    /^(tests|runtime|workers|routes|islands|ffi|policy|tools)\/([a-z0-9_-]+\/)*[a-z0-9_]+_test\.tsx?$/,
    "expected a project test file such as tests/x_test.ts",
  ),
  /** The exact `Deno.test` name (steps: `parent > step`). */
  test: z.string().min(1).max(300),
});
/** One proof. */
export type Proof = z.infer<typeof ProofSchema>;

/** How far a control is: `planned` claims nothing; the others need proofs. */
export const ControlStatusSchema = z.enum(["planned", "partial", "working"]);
/** A control's status. */
export type ControlStatus = z.infer<typeof ControlStatusSchema>;

/** One control of the matrix. */
export const ControlEntrySchema = z.strictObject({
  /** `M<n>` (spec milestone), `R<n>` (roadmap item) or `RT<n>` (our runtime's own). */
  id: z.string().regex(/^(M|R|RT)(0|[1-9][0-9]?)$/, "expected M<n>, R<n> or RT<n>"),
  title: z.string().min(1).max(160),
  spec: z.array(SpecRefSchema).min(1).max(8),
  status: ControlStatusSchema,
  /** The issue that builds (the rest of) it. */
  issue: z.number().int().min(1).max(100_000).optional(),
  /** For `partial`: what is missing. For others: anything a reader must know. */
  note: z.string().min(1).max(600).optional(),
  proofs: z.array(ProofSchema).max(32).default([]),
}).superRefine((entry, ctx) => {
  if (entry.status === "planned" && entry.proofs.length > 0) {
    ctx.addIssue({
      code: "custom",
      path: ["proofs"],
      message: "a planned control claims nothing and lists no proofs",
    });
  }
  if (entry.status !== "planned" && entry.proofs.length === 0) {
    ctx.addIssue({
      code: "custom",
      path: ["proofs"],
      message: `a ${entry.status} control needs at least one proof`,
    });
  }
  if (entry.status === "partial" && entry.note === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["note"],
      message: "a partial control says in a note what is missing",
    });
  }
  const seen = new Set<string>();
  entry.proofs.forEach((proof, i) => {
    const key = `${proof.file}\u0000${proof.test}`;
    if (seen.has(key)) {
      ctx.addIssue({ code: "custom", path: ["proofs", i], message: "duplicate proof" });
    }
    seen.add(key);
  });
});
/** One control. */
export type ControlEntry = z.infer<typeof ControlEntrySchema>;

/** The matrix file. */
export const ControlMatrixSchema = z.strictObject({
  version: z.literal(1),
  controls: z.array(ControlEntrySchema).min(1).max(200),
}).superRefine((matrix, ctx) => {
  const ids = new Set<string>();
  matrix.controls.forEach((control, i) => {
    if (ids.has(control.id)) {
      ctx.addIssue({
        code: "custom",
        path: ["controls", i, "id"],
        message: `"${control.id}" is listed twice`,
      });
    }
    ids.add(control.id);
  });
  const missing: string[] = [];
  for (let n = 0; n < MILESTONE_COUNT; n++) if (!ids.has(`M${n}`)) missing.push(`M${n}`);
  const extra = [...ids].filter((id) =>
    /^M\d+$/.test(id) && Number(id.slice(1)) >= MILESTONE_COUNT
  );
  if (missing.length > 0) {
    ctx.addIssue({
      code: "custom",
      path: ["controls"],
      message: `every milestone of spec 00 must be listed; missing ${missing.join(", ")}`,
    });
  }
  if (extra.length > 0) {
    ctx.addIssue({
      code: "custom",
      path: ["controls"],
      message: `spec 00 has no milestone ${extra.join(", ")}`,
    });
  }
});
/** The validated matrix. */
export type ControlMatrix = z.infer<typeof ControlMatrixSchema>;

/** Raised when the matrix cannot be used; the message names the file and field. */
export class EvidenceError extends Error {
  /** Machine-readable code. */
  readonly code: "EVIDENCE_INVALID" | "EVIDENCE_UNREADABLE";
  /** @param code kind of failure @param message names file and field */
  constructor(
    code: "EVIDENCE_INVALID" | "EVIDENCE_UNREADABLE",
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "EvidenceError";
    this.code = code;
  }
}

/**
 * Validates matrix text.
 * @param text YAML source
 * @param source file name for messages
 * @returns the matrix
 * @throws {EvidenceError} EVIDENCE_INVALID naming the field and reason
 */
export function parseControlMatrix(text: string, source: string): ControlMatrix {
  if (new TextEncoder().encode(text).byteLength > MAX_MATRIX_BYTES) {
    throw new EvidenceError(
      "EVIDENCE_INVALID",
      `Control matrix "${source}" is larger than ${MAX_MATRIX_BYTES} bytes`,
    );
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  const yamlError = doc.errors[0];
  if (yamlError) {
    throw new EvidenceError(
      "EVIDENCE_INVALID",
      `Control matrix "${source}" is not valid YAML: ${yamlError.message.split("\n")[0]}`,
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 0 });
  } catch (err) {
    // yaml throws a plain ReferenceError for aliases (maxAliasCount: 0 refuses them all).
    throw new EvidenceError(
      "EVIDENCE_INVALID",
      `Control matrix "${source}" is not valid YAML: ${
        err instanceof Error ? err.message.split("\n")[0] : String(err)
      }`,
      { cause: err },
    );
  }
  const parsed = ControlMatrixSchema.safeParse(raw);
  if (!parsed.success) {
    throw new EvidenceError(
      "EVIDENCE_INVALID",
      `Control matrix "${source}" is invalid ${describeMatrixError(parsed.error, raw)}`,
    );
  }
  return parsed.data;
}

/**
 * Formats the first issues like `describeZodError()` (runtime/kit/validate.ts), naming a
 * control by its id rather than its index: `at "controls.M13.proofs": …`.
 */
function describeMatrixError(error: z.ZodError, raw: unknown): string {
  const controls = (raw as { controls?: unknown } | null)?.controls;
  return error.issues.slice(0, 5).map((issue) => {
    const path = issue.path.map((part, i) => {
      if (i !== 1 || issue.path[0] !== "controls" || typeof part !== "number") return part;
      const id = Array.isArray(controls) ? (controls[part] as { id?: unknown } | null)?.id : null;
      return typeof id === "string" && /^[A-Z]{1,2}\d{1,2}$/.test(id) ? id : part;
    });
    return `at "${path.length ? path.join(".") : "(root)"}": ${issue.message}`;
  }).join("; ").slice(0, 1000);
}

/**
 * Reads and validates the matrix file.
 * @param path the file
 * @returns the matrix
 * @throws {EvidenceError} EVIDENCE_UNREADABLE or EVIDENCE_INVALID
 */
export async function loadControlMatrix(path: string): Promise<ControlMatrix> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
      throw err;
    }
    throw new EvidenceError("EVIDENCE_UNREADABLE", `Cannot read control matrix "${path}"`, {
      cause: err,
    });
  }
  return parseControlMatrix(text, path);
}

/** Why a claimed control is not proven by a test run. */
export interface EvidenceProblem {
  control: string;
  file: string;
  test: string;
  /** `missing`: the file ran but has no such test; `not-run`: no test of the file ran. */
  outcome: "missing" | "not-run" | "skipped" | "failed";
  message: string;
}

/**
 * Holds a test run to the matrix: each proof of a `partial` or `working` control must have run
 * and passed (a test that ran several times, e.g. table-driven, must pass every time).
 * @param matrix the validated matrix
 * @param report the run's test report
 * @returns one problem per unproven claim; empty when every claim held
 * @example
 * ```ts
 * const problems = checkEvidence(matrix, parseJunitReport(xml));
 * ```
 */
export function checkEvidence(matrix: ControlMatrix, report: TestReport): EvidenceProblem[] {
  const outcomes = new Map<string, TestOutcome[]>();
  const files = new Set<string>();
  for (const c of report.cases) {
    const key = `${c.file}\u0000${c.name}`;
    outcomes.set(key, [...(outcomes.get(key) ?? []), c.outcome]);
    files.add(c.file);
  }
  const problems: EvidenceProblem[] = [];
  for (const control of matrix.controls) {
    if (control.status === "planned") continue;
    const claim = `Control ${control.id} "${control.title}" is ${control.status}, but its test`;
    for (const proof of control.proofs) {
      const seen = outcomes.get(`${proof.file}\u0000${proof.test}`) ?? [];
      const where = `"${proof.test}" in ${proof.file}`;
      let outcome: EvidenceProblem["outcome"] | null = null;
      let message = "";
      if (seen.length === 0 && !files.has(proof.file)) {
        outcome = "not-run";
        message = `${claim} ${where} did not run (no test of that file is in the report)`;
      } else if (seen.length === 0) {
        outcome = "missing";
        message = `${claim} ${where} does not exist (renamed or removed?)`;
      } else if (seen.includes("failed")) {
        outcome = "failed";
        message = `${claim} ${where} failed`;
      } else if (!seen.includes("passed")) {
        outcome = "skipped";
        message = `${claim} ${where} was skipped`;
      }
      if (outcome !== null) {
        problems.push({
          control: control.id,
          file: proof.file,
          test: proof.test,
          outcome,
          message,
        });
      }
    }
  }
  return problems;
}

/** `milestone` (M), `roadmap` (R) or `runtime` (RT). */
export function kindOf(id: string): "milestone" | "roadmap" | "runtime" {
  return id.startsWith("RT") ? "runtime" : id.startsWith("R") ? "roadmap" : "milestone";
}

/** Counts per status. */
export function summarize(matrix: ControlMatrix): Record<ControlStatus, number> {
  const counts: Record<ControlStatus, number> = { working: 0, partial: 0, planned: 0 };
  for (const c of matrix.controls) counts[c.status]++;
  return counts;
}

function summaryLine(matrix: ControlMatrix): string {
  const n = summarize(matrix);
  return `${n.working} working, ${n.partial} partial, ${n.planned} planned ` +
    `(${matrix.controls.length} controls)`;
}

/**
 * The matrix as the plain text `secai controls` prints: one line per control, its proofs
 * below it.
 * @param matrix the validated matrix
 * @returns text ending in a newline
 */
export function renderControlsText(matrix: ControlMatrix): string {
  const idWidth = Math.max(...matrix.controls.map((c) => c.id.length));
  const lines = [`Controls: ${summaryLine(matrix)}; source ${MATRIX_PATH}`, ""];
  for (const c of matrix.controls) {
    lines.push(`${c.id.padEnd(idWidth)}  ${c.status.padEnd(7)}  ${c.title}`);
    const indent = " ".repeat(idWidth + 11);
    for (const proof of c.proofs) lines.push(`${indent}proof: ${proof.file}: ${proof.test}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Escapes text for a Markdown paragraph or table cell. */
function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_<>[\]|#]/g, (ch) => `\\${ch}`);
}

/** A table with aligned columns, readable as plain text. */
function markdownTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) =>
    Math.max(3, [...h].length, ...rows.map((r) => [...(r[i] ?? "")].length))
  );
  const line = (cells: string[]) =>
    `| ${
      cells.map((cell, i) => cell + " ".repeat((widths[i] ?? 0) - [...cell].length)).join(" | ")
    } |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)];
}

const KIND_HEADINGS = {
  milestone: "Controls of the spec (M0–M53)",
  roadmap: "Roadmap",
  runtime: "Our runtime's own controls",
} as const;

/**
 * The matrix as `docs/CONTROLS.md`: a table per kind, then the evidence of every claim.
 * @param matrix the validated matrix
 * @returns Markdown text (marked for `deno fmt` to leave alone)
 */
export function renderControlsMarkdown(matrix: ControlMatrix): string {
  const out = [
    // The generator owns this file's layout: `deno fmt` would re-wrap it and make the
    // up-to-date check depend on the formatter's version.
    "<!-- deno-fmt-ignore-file -->",
    `<!-- Generated from ${MATRIX_PATH} by \`tools/deno task controls:render\`; do not edit. -->`,
    "",
    "# Controls and evidence",
    "",
    `Every control of the spec with its status: ${escapeMarkdown(summaryLine(matrix))}. A ` +
    "`working` or `partial` control names the tests that prove it; CI fails when one of them " +
    "is missing, skipped or failing in the same run (`tools/evidence.ts check`). `planned` " +
    "claims nothing.",
  ];
  for (const kind of ["milestone", "roadmap", "runtime"] as const) {
    const controls = matrix.controls.filter((c) => kindOf(c.id) === kind);
    if (controls.length === 0) continue;
    out.push("", `## ${KIND_HEADINGS[kind]}`, "");
    out.push(...markdownTable(
      ["ID", "Control", "Status", "Spec", "Tests", "Issue"],
      controls.map((c) => [
        c.id,
        escapeMarkdown(c.title),
        c.status,
        escapeMarkdown(c.spec.join(", ")),
        c.proofs.length === 0 ? "" : String(c.proofs.length),
        c.issue === undefined ? "" : `#${c.issue}`,
      ]),
    ));
  }
  const claimed = matrix.controls.filter((c) => c.status !== "planned");
  out.push("", "## Evidence");
  for (const c of claimed) {
    out.push("", `### ${c.id}: ${escapeMarkdown(c.title)} (${c.status})`, "");
    if (c.note !== undefined) out.push(escapeMarkdown(c.note), "");
    for (const proof of c.proofs) out.push(`- \`${proof.file}\`: ${escapeMarkdown(proof.test)}`);
  }
  const notes = matrix.controls.filter((c) => c.status === "planned" && c.note !== undefined);
  if (notes.length > 0) {
    out.push("", "## Notes on planned controls", "");
    for (const c of notes) out.push(`- ${c.id}: ${escapeMarkdown(c.note ?? "")}`);
  }
  return `${out.join("\n")}\n`;
}

/** The matrix as the dashboard shows it (through the supervisor's `system.evidence`). */
export function toEvidenceView(matrix: ControlMatrix): EvidenceView {
  return {
    summary: summarize(matrix),
    controls: matrix.controls.map((c) => ({
      id: c.id,
      title: c.title,
      status: c.status,
      issue: c.issue ?? null,
      note: c.note ?? null,
      proofs: c.proofs.map((p) => ({ file: p.file, test: p.test })),
    })),
  };
}

/** Loads the project's matrix as a view (used by `secai start` and the tests). */
export async function loadEvidenceView(projectRoot: string): Promise<EvidenceView> {
  return toEvidenceView(await loadControlMatrix(`${projectRoot}/${MATRIX_PATH}`));
}
