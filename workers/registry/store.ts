/**
 * The registry's manifest: SQLite (node:sqlite, WAL, synchronous FULL) in
 * `<home>/registry/registry.db`, one row per promoted model. A revoked model keeps its row
 * (with the reason), so its content can never be promoted again: revocation is by content.
 *
 * Schema 2 adds the tensor manifest columns (spec 13 §6 `gguf_guard_fingerprint`,
 * `gguf_guard_manifest`); a schema-1 database is migrated in place at open by adding the
 * columns it lacks, its rows keeping a null manifest (promoted before manifests were kept).
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { z } from "zod";
import {
  ArtifactSignatureSchema,
  ModelFormatSchema,
  PromotionDecisionSchema,
} from "../quarantine/api.ts";
import {
  type Model,
  ModelSchema,
  ProvenanceSchema,
  ScanSummarySchema,
  SmokeTestSchema,
  type TensorManifestRef,
} from "./api.ts";
import { RegistryError } from "./errors.ts";

const SCHEMA_VERSION = 2;

/** Columns added by schema 2, added to an older database when missing. */
const TENSOR_COLUMNS: readonly [string, string][] = [
  ["gguf_guard_fingerprint", "TEXT"],
  /** Relative to the registry dir. */
  ["gguf_guard_manifest", "TEXT"],
  ["gguf_guard_manifest_sha256", "TEXT"],
  ["gguf_guard_tensors", "INTEGER"],
  /** Set when no manifest could be listed (then the other four are null). */
  ["gguf_guard_skipped_reason", "TEXT"],
];

/** A stored model and where its blob lies (relative to the state dir). */
export interface StoredModel extends Model {
  blob: string;
}

const RowSchema = z.object({
  id: z.string(),
  name: z.string(),
  filename: z.string(),
  format: ModelFormatSchema,
  size: z.number(),
  sha256: z.string(),
  fsverity: z.string(),
  source: z.string(),
  provenance_json: z.string(),
  signature_json: z.string().nullable(),
  scan_json: z.string(),
  smoke_json: z.string(),
  decision_json: z.string(),
  job_id: z.string(),
  promoted_at: z.string(),
  promoted_by: z.string(),
  last_verified_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
  revoked_reason: z.string().nullable(),
  blob: z.string(),
  gguf_guard_fingerprint: z.string().nullable(),
  gguf_guard_manifest: z.string().nullable(),
  gguf_guard_manifest_sha256: z.string().nullable(),
  gguf_guard_tensors: z.number().nullable(),
  gguf_guard_skipped_reason: z.string().nullable(),
});

const DecisionRecordSchema = PromotionDecisionSchema.extend({
  approvedBy: z.string().max(200).nullable(),
});

/** The model database. */
export class ModelStore {
  readonly #db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /**
   * Opens (creating when absent) the database.
   * @throws {RegistryError} STORE_CORRUPT when it fails its integrity check or has another version
   */
  static open(path: string): ModelStore {
    const db = new DatabaseSync(path);
    try {
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = FULL");
      db.exec("PRAGMA busy_timeout = 5000");
      const check = db.prepare("PRAGMA quick_check").get() as Record<string, unknown> | undefined;
      if (check?.quick_check !== "ok") {
        throw new RegistryError(
          "STORE_CORRUPT",
          `Registry database "${path}" failed its integrity check`,
        );
      }
      const version = (db.prepare("PRAGMA user_version").get() as { user_version: number })
        .user_version;
      if (version > SCHEMA_VERSION) {
        throw new RegistryError(
          "STORE_CORRUPT",
          `Registry database "${path}" has schema version ${version}, newer than ${SCHEMA_VERSION}`,
        );
      }
      db.exec("BEGIN IMMEDIATE");
      try {
        db.exec(`
          CREATE TABLE IF NOT EXISTS models (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            filename TEXT NOT NULL,
            format TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL UNIQUE,
            fsverity TEXT NOT NULL,
            source TEXT NOT NULL,
            provenance_json TEXT NOT NULL,
            signature_json TEXT,
            scan_json TEXT NOT NULL,
            smoke_json TEXT NOT NULL,
            decision_json TEXT NOT NULL,
            job_id TEXT NOT NULL,
            promoted_at TEXT NOT NULL,
            promoted_by TEXT NOT NULL,
            last_verified_at TEXT,
            revoked_at TEXT,
            revoked_reason TEXT,
            blob TEXT NOT NULL
          );
        `);
        // Schema 1 → 2 (and a fresh database): add the tensor manifest columns it lacks.
        const present = new Set(
          db.prepare("PRAGMA table_info(models)").all().map((c) => String(c.name)),
        );
        for (const [column, type] of TENSOR_COLUMNS) {
          if (!present.has(column)) db.exec(`ALTER TABLE models ADD COLUMN ${column} ${type}`);
        }
        db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
        db.exec("COMMIT");
      } catch (error) {
        db.exec("ROLLBACK");
        throw error;
      }
    } catch (error) {
      db.close();
      throw error;
    }
    return new ModelStore(db);
  }

  /** Closes the database. */
  close(): void {
    this.#db.close();
  }

  /** Inserts a promoted model. */
  insert(model: StoredModel): void {
    this.#db.prepare(
      `INSERT INTO models (id, name, filename, format, size, sha256, fsverity, source,
         provenance_json, signature_json, scan_json, smoke_json, decision_json, job_id,
         promoted_at, promoted_by, last_verified_at, revoked_at, revoked_reason, blob,
         gguf_guard_fingerprint, gguf_guard_manifest, gguf_guard_manifest_sha256,
         gguf_guard_tensors, gguf_guard_skipped_reason)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      model.id,
      model.name,
      model.filename,
      model.format,
      model.size,
      model.sha256,
      model.fsverity,
      model.source,
      JSON.stringify(model.provenance),
      model.signature === null ? null : JSON.stringify(model.signature),
      JSON.stringify(model.scan),
      JSON.stringify(model.smokeTest),
      JSON.stringify(model.decision),
      model.jobId,
      model.promotedAt,
      model.promotedBy,
      model.lastVerifiedAt,
      model.revokedAt,
      model.revokedReason,
      model.blob,
      model.tensorManifest?.fingerprint ?? null,
      model.tensorManifest?.path ?? null,
      model.tensorManifest?.sha256 ?? null,
      model.tensorManifest?.tensors ?? null,
      model.tensorManifest?.status === "skipped" ? model.tensorManifest.reason : null,
    );
  }

  /** A model by id, or null. */
  get(id: string): StoredModel | null {
    const row = this.#db.prepare("SELECT * FROM models WHERE id = ?").get(id);
    return row === undefined ? null : readRow(row);
  }

  /**
   * A model by id.
   * @throws {RegistryError} MODEL_NOT_FOUND
   */
  require(id: string): StoredModel {
    const model = this.get(id);
    if (model === null) {
      throw new RegistryError("MODEL_NOT_FOUND", `No model "${id}" in the registry`);
    }
    return model;
  }

  /** The row holding this content, revoked or not. */
  bySha256(sha256: string): StoredModel | null {
    const row = this.#db.prepare("SELECT * FROM models WHERE sha256 = ?").get(sha256);
    return row === undefined ? null : readRow(row);
  }

  /** Active models with this name or file name. */
  activeByName(name: string, filename: string): StoredModel[] {
    return this.#db.prepare(
      "SELECT * FROM models WHERE revoked_at IS NULL AND (name = ? OR filename = ?)",
    ).all(name, filename).map(readRow);
  }

  /** Models in promotion order. */
  list(options: { includeRevoked: boolean }): StoredModel[] {
    const sql = options.includeRevoked
      ? "SELECT * FROM models ORDER BY promoted_at, id"
      : "SELECT * FROM models WHERE revoked_at IS NULL ORDER BY promoted_at, id";
    return this.#db.prepare(sql).all().map(readRow);
  }

  /** Marks a model revoked. */
  revoke(id: string, reason: string, at: string): void {
    this.#db.prepare(
      "UPDATE models SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
    ).run(at, reason, id);
  }

  /** Records a successful re-verification. */
  markVerified(id: string, at: string): void {
    this.#db.prepare("UPDATE models SET last_verified_at = ? WHERE id = ?").run(at, id);
  }
}

function readRow(row: unknown): StoredModel {
  const parsed = RowSchema.safeParse(row);
  if (!parsed.success) {
    throw new RegistryError("STORE_CORRUPT", "A model row of the registry is malformed", {
      cause: parsed.error,
    });
  }
  const r = parsed.data;
  try {
    const model = ModelSchema.parse({
      id: r.id,
      name: r.name,
      filename: r.filename,
      format: r.format,
      size: r.size,
      sha256: r.sha256,
      fsverity: r.fsverity,
      source: r.source,
      provenance: ProvenanceSchema.parse(JSON.parse(r.provenance_json)),
      signature: r.signature_json === null
        ? null
        : ArtifactSignatureSchema.parse(JSON.parse(r.signature_json)),
      scan: ScanSummarySchema.parse(JSON.parse(r.scan_json)),
      smokeTest: SmokeTestSchema.parse(JSON.parse(r.smoke_json)),
      decision: DecisionRecordSchema.parse(JSON.parse(r.decision_json)),
      jobId: r.job_id,
      promotedAt: r.promoted_at,
      promotedBy: r.promoted_by,
      lastVerifiedAt: r.last_verified_at,
      revokedAt: r.revoked_at,
      revokedReason: r.revoked_reason,
      tensorManifest: tensorManifestOf(r),
    });
    return { ...model, blob: r.blob };
  } catch (error) {
    throw new RegistryError("STORE_CORRUPT", `Model row "${r.id}" of the registry is malformed`, {
      cause: error,
    });
  }
}

function tensorManifestOf(r: z.infer<typeof RowSchema>): TensorManifestRef | null {
  if (r.gguf_guard_fingerprint !== null) {
    return {
      status: "recorded",
      fingerprint: r.gguf_guard_fingerprint,
      path: r.gguf_guard_manifest,
      sha256: r.gguf_guard_manifest_sha256,
      tensors: r.gguf_guard_tensors,
      reason: null,
    };
  }
  if (r.gguf_guard_skipped_reason !== null) {
    return {
      status: "skipped",
      fingerprint: null,
      path: null,
      sha256: null,
      tensors: null,
      reason: r.gguf_guard_skipped_reason,
    };
  }
  return null;
}

/** The public record of a stored model (without the blob path). */
export function publicModel(model: StoredModel): Model {
  const { blob: _blob, ...rest } = model;
  return rest;
}
