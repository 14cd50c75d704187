import { deepEqual, equal, throws } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { Model } from "./api.ts";
import { RegistryError } from "./errors.ts";
import { ModelStore, type StoredModel } from "./store.ts";

/** The schema-1 table, as the registry created it before tensor manifests were kept. */
const SCHEMA_1 = `
  CREATE TABLE models (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, filename TEXT NOT NULL, format TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL UNIQUE, fsverity TEXT NOT NULL,
    source TEXT NOT NULL, provenance_json TEXT NOT NULL, signature_json TEXT,
    scan_json TEXT NOT NULL, smoke_json TEXT NOT NULL, decision_json TEXT NOT NULL,
    job_id TEXT NOT NULL, promoted_at TEXT NOT NULL, promoted_by TEXT NOT NULL,
    last_verified_at TEXT, revoked_at TEXT, revoked_reason TEXT, blob TEXT NOT NULL
  );
  PRAGMA user_version = 1;
`;

const SHA = "ab".repeat(32);

function model(overrides: Partial<StoredModel> = {}): StoredModel {
  const base: Model = {
    id: `m${SHA.slice(0, 24)}`,
    name: "old",
    filename: "old.gguf",
    format: "gguf",
    size: 1024,
    sha256: SHA,
    fsverity: "cd".repeat(32),
    source: "",
    provenance: { status: "none", signer: null, pinned: false },
    signature: null,
    scan: {
      verdict: "clean",
      format: "gguf",
      bytesScanned: 1024,
      findingsTotal: 0,
      bySeverity: { info: 0, low: 0, medium: 0, high: 0, critical: 0 },
      findings: [],
    },
    smokeTest: { status: "passed", score: 0, critical: 0, reason: "" },
    decision: {
      decision: "allow",
      rule: "default",
      reasons: [],
      policy_version: "1",
      approvedBy: null,
    },
    jobId: "q0123456789abcdef01234567",
    promotedAt: "2026-11-01T00:00:00.000Z",
    promotedBy: "quarantine",
    lastVerifiedAt: null,
    revokedAt: null,
    revokedReason: null,
    tensorManifest: null,
  };
  return { ...base, blob: `registry/models/${SHA}.gguf`, ...overrides };
}

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "secai-store-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes a schema-1 database holding one model, with the old INSERT. */
function writeSchema1(path: string, m: StoredModel): void {
  const db = new DatabaseSync(path);
  try {
    db.exec(SCHEMA_1);
    db.prepare(
      `INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      m.id,
      m.name,
      m.filename,
      m.format,
      m.size,
      m.sha256,
      m.fsverity,
      m.source,
      JSON.stringify(m.provenance),
      null,
      JSON.stringify(m.scan),
      JSON.stringify(m.smokeTest),
      JSON.stringify(m.decision),
      m.jobId,
      m.promotedAt,
      m.promotedBy,
      null,
      null,
      null,
      m.blob,
    );
  } finally {
    db.close();
  }
}

function columnsAndVersion(path: string): { columns: string[]; version: number } {
  const db = new DatabaseSync(path);
  try {
    return {
      columns: db.prepare("PRAGMA table_info(models)").all().map((c) => String(c.name)),
      version: Number(
        (db.prepare("PRAGMA user_version").get() as { user_version: number })
          .user_version,
      ),
    };
  } finally {
    db.close();
  }
}

const TENSOR_COLUMNS = [
  "gguf_guard_fingerprint",
  "gguf_guard_manifest",
  "gguf_guard_manifest_sha256",
  "gguf_guard_tensors",
  "gguf_guard_skipped_reason",
];

Deno.test("ModelStore.open() migrates a schema-1 database by adding the tensor manifest columns", async () => {
  await withDir((dir) => {
    const path = `${dir}/registry.db`;
    writeSchema1(path, model());
    equal(columnsAndVersion(path).columns.some((c) => c.startsWith("gguf_guard_")), false);

    const store = ModelStore.open(path);
    try {
      // The old row reads back unchanged, with no manifest (promoted before they were kept).
      deepEqual(store.require(model().id), model());
      const fresh = model({
        id: `m${"ef".repeat(12)}`,
        name: "new",
        filename: "new.gguf",
        sha256: "ef".repeat(32),
        blob: `registry/models/${"ef".repeat(32)}.gguf`,
        tensorManifest: {
          status: "recorded",
          fingerprint: "12".repeat(32),
          path: `manifests/${"ef".repeat(32)}.tensors.json`,
          sha256: "34".repeat(32),
          tensors: 21,
          reason: null,
        },
      });
      store.insert(fresh);
      deepEqual(store.require(fresh.id), fresh);
    } finally {
      store.close();
    }
    const after = columnsAndVersion(path);
    equal(after.version, 2);
    deepEqual(after.columns.filter((c) => c.startsWith("gguf_guard_")), TENSOR_COLUMNS);

    // Opening again is a no-op: nothing added twice, rows intact.
    const again = ModelStore.open(path);
    try {
      equal(again.list({ includeRevoked: true }).length, 2);
    } finally {
      again.close();
    }
    deepEqual(columnsAndVersion(path), after);
  });
});

Deno.test("ModelStore.open() keeps a skipped manifest with its reason", async () => {
  await withDir((dir) => {
    const store = ModelStore.open(`${dir}/registry.db`);
    try {
      const skipped = model({
        tensorManifest: {
          status: "skipped",
          fingerprint: null,
          path: null,
          sha256: null,
          tensors: null,
          reason: "The file has 70000 tensors; a manifest lists at most 65536",
        },
      });
      store.insert(skipped);
      deepEqual(store.require(skipped.id).tensorManifest, skipped.tensorManifest);
    } finally {
      store.close();
    }
  });
});

Deno.test("ModelStore.open() refuses a database of a newer schema", async () => {
  await withDir((dir) => {
    const path = `${dir}/registry.db`;
    const db = new DatabaseSync(path);
    db.exec("PRAGMA user_version = 3");
    db.close();
    throws(() => ModelStore.open(path), (e: unknown) => {
      equal((e as RegistryError).constructor, RegistryError);
      equal((e as RegistryError).code, "STORE_CORRUPT");
      return /schema version 3, newer than 2/.test((e as Error).message);
    });
  });
});
