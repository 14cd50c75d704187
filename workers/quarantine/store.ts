/**
 * The quarantine's job store: SQLite (node:sqlite, WAL, synchronous FULL) in
 * `<home>/quarantine/jobs.db`. One row per job and one per (job, stage), written as each
 * stage starts and ends, so that a restart — even after `kill -9` — resumes every unfinished
 * job at the stage that was interrupted, keeping the stages that had finished.
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import {
  type ArtifactFormat,
  ArtifactFormatSchema,
  type ArtifactSignature,
  ArtifactSignatureSchema,
  type Finding,
  FindingSchema,
  type Job,
  type JobState,
  JobStateSchema,
  type JobSummary,
  type PromotionDecision,
  PromotionDecisionSchema,
  STAGE_NAMES,
  type StageName,
  StageNameSchema,
  type StageRecord,
  StageRecordSchema,
} from "./api.ts";
import { QuarantineError } from "./errors.ts";
import { z } from "zod";

const SCHEMA_VERSION = 1;

/** What a new job starts with. */
export interface NewJob {
  id: string;
  filename: string;
  /** Origin URL, or null for a local import. */
  source: string | null;
  size: number;
  /** Artifact path relative to the state dir. */
  artifact: string;
  signature: ArtifactSignature | null;
  /** Importer's ticket (inbox items), or null. */
  ticket?: string | null;
}

/** Fields of a job the pipeline updates. */
export interface JobPatch {
  state?: JobState;
  stage?: StageName | null;
  format?: ArtifactFormat | null;
  size?: number;
  bytesDone?: number;
  sha256?: string | null;
  fsverity?: string | null;
  error?: { code: string; message: string } | null;
  decision?: PromotionDecision | null;
  modelId?: string | null;
  artifact?: string | null;
}

/** A job as the pipeline sees it: the public record plus internal fields. */
export interface StoredJob extends Job {
  /** Artifact path relative to the state dir, or null once deleted or handed over. */
  artifact: string | null;
  signature: ArtifactSignature | null;
  /** Origin URL, or null for a local import. */
  sourceUrl: string | null;
}

/** How a stage ended. */
export interface StageEnd {
  status: "passed" | "failed" | "skipped";
  verdict: "pass" | "fail" | "skipped";
  findings: Finding[];
  facts: Record<string, unknown>;
  note: string | null;
  finishedAt: string;
  ms: number;
}

const JobRowSchema = z.object({
  id: z.string(),
  filename: z.string(),
  source: z.string().nullable(),
  state: JobStateSchema,
  stage: StageNameSchema.nullable(),
  format: ArtifactFormatSchema.nullable(),
  size: z.number(),
  bytes_done: z.number(),
  sha256: z.string().nullable(),
  fsverity: z.string().nullable(),
  error_json: z.string().nullable(),
  decision_json: z.string().nullable(),
  model_id: z.string().nullable(),
  artifact: z.string().nullable(),
  signature_json: z.string().nullable(),
  ticket: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
type JobRow = z.infer<typeof JobRowSchema>;

const StageRowSchema = z.object({
  stage: StageNameSchema,
  status: z.string(),
  input_json: z.string(),
  findings_json: z.string(),
  verdict: z.string().nullable(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  ms: z.number().nullable(),
  attempts: z.number(),
  facts_json: z.string(),
  note: z.string().nullable(),
});

const ErrorSchema = z.strictObject({ code: z.string().max(64), message: z.string().max(2000) });

/** The job database. */
export class JobStore {
  readonly #db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /**
   * Opens (creating when absent) the database.
   * @param path absolute path of the database file
   * @throws {QuarantineError} STORE_CORRUPT when the file is not a job store of this version
   */
  static open(path: string): JobStore {
    const db = new DatabaseSync(path);
    try {
      db.exec("PRAGMA journal_mode = WAL");
      // FULL: a stage marked finished survives power loss, so a resume never repeats it
      // on the word of a lost write.
      db.exec("PRAGMA synchronous = FULL");
      db.exec("PRAGMA foreign_keys = ON");
      db.exec("PRAGMA busy_timeout = 5000");
      const check = db.prepare("PRAGMA quick_check").get() as Record<string, unknown> | undefined;
      if (check?.quick_check !== "ok") {
        throw new QuarantineError(
          "STORE_CORRUPT",
          `Job store "${path}" failed its integrity check`,
        );
      }
      const version = (db.prepare("PRAGMA user_version").get() as { user_version: number })
        .user_version;
      if (version === 0) {
        db.exec(`
          CREATE TABLE IF NOT EXISTS jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            filename TEXT NOT NULL,
            source TEXT,
            state TEXT NOT NULL,
            stage TEXT,
            format TEXT,
            size INTEGER NOT NULL,
            bytes_done INTEGER NOT NULL DEFAULT 0,
            sha256 TEXT,
            fsverity TEXT,
            error_json TEXT,
            decision_json TEXT,
            model_id TEXT,
            artifact TEXT,
            signature_json TEXT,
            ticket TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
          );
          CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
          CREATE INDEX IF NOT EXISTS jobs_ticket ON jobs(ticket);
          CREATE TABLE IF NOT EXISTS stages (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            stage TEXT NOT NULL,
            status TEXT NOT NULL,
            input_json TEXT NOT NULL DEFAULT '{}',
            findings_json TEXT NOT NULL DEFAULT '[]',
            verdict TEXT,
            started_at TEXT,
            finished_at TEXT,
            ms REAL,
            attempts INTEGER NOT NULL DEFAULT 0,
            facts_json TEXT NOT NULL DEFAULT '{}',
            note TEXT,
            PRIMARY KEY (job_id, stage)
          );
          PRAGMA user_version = ${SCHEMA_VERSION};
        `);
      } else if (version !== SCHEMA_VERSION) {
        throw new QuarantineError(
          "STORE_CORRUPT",
          `Job store "${path}" has schema version ${version}, expected ${SCHEMA_VERSION}`,
        );
      }
    } catch (error) {
      db.close();
      throw error;
    }
    return new JobStore(db);
  }

  /** Closes the database. */
  close(): void {
    this.#db.close();
  }

  /** Inserts a queued job and its seven pending stages in one transaction. */
  create(job: NewJob): JobSummary {
    const now = new Date().toISOString();
    this.#transaction(() => {
      this.#db.prepare(
        `INSERT INTO jobs (id, filename, source, state, size, artifact, signature_json,
           ticket, created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)`,
      ).run(
        job.id,
        job.filename,
        job.source,
        job.size,
        job.artifact,
        job.signature === null ? null : JSON.stringify(job.signature),
        job.ticket ?? null,
        now,
        now,
      );
      const insert = this.#db.prepare(
        "INSERT INTO stages (job_id, position, stage, status) VALUES (?, ?, ?, 'pending')",
      );
      STAGE_NAMES.forEach((stage, position) => insert.run(job.id, position, stage));
    });
    return this.summary(job.id);
  }

  /**
   * A job with its stages.
   * @throws {QuarantineError} JOB_NOT_FOUND
   */
  require(id: string): StoredJob {
    const job = this.get(id);
    if (job === null) throw new QuarantineError("JOB_NOT_FOUND", `No quarantine job "${id}"`);
    return job;
  }

  /**
   * A job's summary (no stage records, no internal fields).
   * @throws {QuarantineError} JOB_NOT_FOUND
   */
  summary(id: string): JobSummary {
    const row = this.#db.prepare("SELECT * FROM jobs WHERE id = ?").get(id);
    if (row === undefined) throw new QuarantineError("JOB_NOT_FOUND", `No quarantine job "${id}"`);
    return summaryOf(readJobRow(row));
  }

  /** The public record of a job: summary and stage records. */
  view(id: string): Job {
    const { artifact: _artifact, signature: _signature, sourceUrl: _sourceUrl, ...job } = this
      .require(id);
    return job;
  }

  /** A job with its stages, or null. */
  get(id: string): StoredJob | null {
    const row = this.#db.prepare("SELECT * FROM jobs WHERE id = ?").get(id);
    if (row === undefined) return null;
    const job = readJobRow(row);
    const stages = this.#db.prepare(
      "SELECT * FROM stages WHERE job_id = ? ORDER BY position",
    ).all(id).map(readStageRow);
    return {
      ...summaryOf(job),
      stages,
      artifact: job.artifact,
      signature: job.signature_json === null
        ? null
        : ArtifactSignatureSchema.parse(JSON.parse(job.signature_json)),
      sourceUrl: job.source,
    };
  }

  /** Jobs, newest first. */
  list(
    options: { limit: number; state?: JobState | undefined; ticket?: string | undefined },
  ): JobSummary[] {
    const where: string[] = [];
    const values: string[] = [];
    if (options.state !== undefined) {
      where.push("state = ?");
      values.push(options.state);
    }
    if (options.ticket !== undefined) {
      where.push("ticket = ?");
      values.push(options.ticket);
    }
    const sql = `SELECT * FROM jobs ${
      where.length ? `WHERE ${where.join(" AND ")}` : ""
    } ORDER BY seq DESC LIMIT ?`;
    return this.#db.prepare(sql).all(...values, options.limit).map((row) =>
      summaryOf(readJobRow(row))
    );
  }

  /** Ids of jobs a restart must pick up again, oldest first. */
  unfinished(): string[] {
    return this.#db.prepare(
      "SELECT id FROM jobs WHERE state IN ('queued', 'running', 'promoting') ORDER BY seq",
    ).all().map((row) => String((row as { id: unknown }).id));
  }

  /** Updates job fields. */
  update(id: string, patch: JobPatch): void {
    const sets: string[] = [];
    const values: (string | number | null)[] = [];
    const put = (column: string, value: string | number | null) => {
      sets.push(`${column} = ?`);
      values.push(value);
    };
    if (patch.state !== undefined) put("state", patch.state);
    if (patch.stage !== undefined) put("stage", patch.stage);
    if (patch.format !== undefined) put("format", patch.format);
    if (patch.size !== undefined) put("size", patch.size);
    if (patch.bytesDone !== undefined) put("bytes_done", patch.bytesDone);
    if (patch.sha256 !== undefined) put("sha256", patch.sha256);
    if (patch.fsverity !== undefined) put("fsverity", patch.fsverity);
    if (patch.error !== undefined) {
      put("error_json", patch.error === null ? null : JSON.stringify(patch.error));
    }
    if (patch.decision !== undefined) {
      put("decision_json", patch.decision === null ? null : JSON.stringify(patch.decision));
    }
    if (patch.modelId !== undefined) put("model_id", patch.modelId);
    if (patch.artifact !== undefined) put("artifact", patch.artifact);
    put("updated_at", new Date().toISOString());
    this.#db.prepare(`UPDATE jobs SET ${sets.join(", ")} WHERE id = ?`).run(...values, id);
  }

  /** Marks a stage running (one more attempt) and the job as being in it. */
  startStage(id: string, stage: StageName, input: Record<string, unknown>): string {
    const now = new Date().toISOString();
    this.#transaction(() => {
      this.#db.prepare(
        `UPDATE stages SET status = 'running', input_json = ?, findings_json = '[]',
           verdict = NULL, started_at = ?, finished_at = NULL, ms = NULL,
           attempts = attempts + 1, facts_json = '{}', note = NULL
         WHERE job_id = ? AND stage = ?`,
      ).run(JSON.stringify(input), now, id, stage);
      this.#db.prepare(
        "UPDATE jobs SET state = 'running', stage = ?, bytes_done = 0, updated_at = ? WHERE id = ?",
      ).run(stage, now, id);
    });
    return now;
  }

  /** Records how a stage ended. */
  finishStage(id: string, stage: StageName, end: StageEnd): void {
    this.#db.prepare(
      `UPDATE stages SET status = ?, verdict = ?, findings_json = ?, facts_json = ?, note = ?,
         finished_at = ?, ms = ? WHERE job_id = ? AND stage = ?`,
    ).run(
      end.status,
      end.verdict,
      JSON.stringify(end.findings),
      JSON.stringify(end.facts),
      end.note,
      end.finishedAt,
      end.ms,
      id,
      stage,
    );
  }

  /** Puts an interrupted stage back to pending (resume after a crash). */
  resetInterrupted(id: string): void {
    this.#db.prepare(
      "UPDATE stages SET status = 'pending' WHERE job_id = ? AND status = 'running'",
    ).run(id);
  }

  #transaction(fn: () => void): void {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      fn();
      this.#db.exec("COMMIT");
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }
}

function readJobRow(row: unknown): JobRow {
  const parsed = JobRowSchema.safeParse(row);
  if (!parsed.success) {
    throw new QuarantineError("STORE_CORRUPT", "A job row in the job store is malformed", {
      cause: parsed.error,
    });
  }
  return parsed.data;
}

function readStageRow(row: unknown): StageRecord {
  const parsed = StageRowSchema.safeParse(row);
  if (!parsed.success) {
    throw new QuarantineError("STORE_CORRUPT", "A stage row in the job store is malformed", {
      cause: parsed.error,
    });
  }
  const r = parsed.data;
  return StageRecordSchema.parse({
    stage: r.stage,
    status: r.status,
    input: JSON.parse(r.input_json),
    findings: z.array(FindingSchema).parse(JSON.parse(r.findings_json)),
    verdict: r.verdict,
    timing: { startedAt: r.started_at, finishedAt: r.finished_at, ms: r.ms },
    attempts: r.attempts,
    facts: JSON.parse(r.facts_json),
    note: r.note,
  });
}

function summaryOf(job: JobRow): JobSummary {
  return {
    id: job.id,
    filename: job.filename,
    source: job.source ?? "local-import",
    state: job.state,
    stage: job.stage,
    format: job.format,
    size: job.size,
    bytesDone: job.bytes_done,
    sha256: job.sha256,
    fsverity: job.fsverity,
    error: job.error_json === null ? null : ErrorSchema.parse(JSON.parse(job.error_json)),
    decision: job.decision_json === null
      ? null
      : PromotionDecisionSchema.parse(JSON.parse(job.decision_json)),
    modelId: job.model_id,
    createdAt: job.created_at,
    updatedAt: job.updated_at,
  };
}
