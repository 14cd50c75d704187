/**
 * The auth control's SQLite database (`<home>/auth/auth.db`, WAL): sessions, devices, the
 * CLI token and lockout buckets. Tokens are never stored, only their SHA-256, so a copy of
 * the database does not let anyone in (spec 10 §9.1: persist hashed session IDs). All times
 * are epoch milliseconds.
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { BucketState } from "./lockout.ts";

/** A stored session. */
export interface SessionRow {
  hash: string;
  createdAt: number;
  idleExpiresAt: number;
  expiresAt: number;
}

/** A stored API token (the CLI token). */
export interface TokenRow {
  hash: string;
  name: string;
  createdAt: number;
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS sessions (
  hash TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  idle_expires_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS devices (
  hash TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS tokens (
  name TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS lockout (
  bucket TEXT PRIMARY KEY,
  failures INTEGER NOT NULL,
  locked_until INTEGER NOT NULL,
  last_failure_at INTEGER NOT NULL
) STRICT;
`;

/** Errors of the store. */
export class AuthStoreError extends Error {
  /** Machine-readable code. */
  readonly code: "AUTH_STATE_INVALID";
  /**
   * @param message names the file and what is wrong
   * @param options standard `cause`
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthStoreError";
    this.code = "AUTH_STATE_INVALID";
  }
}

function int(value: unknown): number {
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  if (typeof value === "bigint") return Number(value);
  throw new AuthStoreError(`Unexpected value in the auth database: ${typeof value}`);
}

function text(value: unknown): string {
  if (typeof value === "string") return value;
  throw new AuthStoreError(`Unexpected value in the auth database: ${typeof value}`);
}

/** The database. Every method is synchronous: node:sqlite is, and the rows are few. */
export class AuthStore {
  readonly #db: DatabaseSync;
  /** Prepared once per SQL text: the session check runs on every request. */
  readonly #statements = new Map<string, StatementSync>();

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  #sql(text: string): StatementSync {
    let statement = this.#statements.get(text);
    if (statement === undefined) {
      statement = this.#db.prepare(text);
      this.#statements.set(text, statement);
    }
    return statement;
  }

  /**
   * Opens or creates the database.
   * @param path absolute path of `auth.db`
   * @returns the store
   * @throws {AuthStoreError} AUTH_STATE_INVALID when the schema version is not ours
   */
  static open(path: string): AuthStore {
    const db = new DatabaseSync(path);
    try {
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;");
      db.exec(SCHEMA);
      const row = db.prepare("SELECT value FROM meta WHERE key = 'schema'").get();
      if (row === undefined) {
        db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(
          String(SCHEMA_VERSION),
        );
      } else if (row.value !== String(SCHEMA_VERSION)) {
        throw new AuthStoreError(
          `Auth database "${path}" has schema ${
            String(row.value).slice(0, 20)
          }, expected ${SCHEMA_VERSION}`,
        );
      }
    } catch (err) {
      db.close();
      if (err instanceof AuthStoreError) throw err;
      throw new AuthStoreError(`Cannot open the auth database "${path}"`, { cause: err });
    }
    return new AuthStore(db);
  }

  /** Stores a new session. */
  addSession(row: SessionRow): void {
    this.#sql(
      "INSERT INTO sessions (hash, created_at, idle_expires_at, expires_at) VALUES (?, ?, ?, ?)",
    ).run(row.hash, row.createdAt, row.idleExpiresAt, row.expiresAt);
  }

  /** The session with this token hash, if any. */
  session(hash: string): SessionRow | undefined {
    const row = this.#sql(
      "SELECT hash, created_at, idle_expires_at, expires_at FROM sessions WHERE hash = ?",
    ).get(hash);
    if (row === undefined) return undefined;
    return {
      hash: text(row.hash),
      createdAt: int(row.created_at),
      idleExpiresAt: int(row.idle_expires_at),
      expiresAt: int(row.expires_at),
    };
  }

  /** Moves a session's idle end. */
  touchSession(hash: string, idleExpiresAt: number): void {
    this.#sql("UPDATE sessions SET idle_expires_at = ? WHERE hash = ?").run(
      idleExpiresAt,
      hash,
    );
  }

  /** Deletes one session; returns whether it existed. */
  deleteSession(hash: string): boolean {
    return int(this.#sql("DELETE FROM sessions WHERE hash = ?").run(hash).changes) > 0;
  }

  /** Deletes every session; returns how many there were. */
  deleteAllSessions(): number {
    return int(this.#sql("DELETE FROM sessions").run().changes);
  }

  /**
   * Deletes expired sessions, then the oldest beyond `keep`.
   * @param now epoch ms
   * @param keep most sessions kept
   */
  pruneSessions(now: number, keep: number): void {
    this.#sql("DELETE FROM sessions WHERE expires_at <= ? OR idle_expires_at <= ?").run(
      now,
      now,
    );
    this.#sql(
      "DELETE FROM sessions WHERE hash NOT IN (SELECT hash FROM sessions ORDER BY created_at DESC LIMIT ?)",
    ).run(keep);
  }

  /** Number of live session rows (expired ones included until pruned). */
  sessionCount(): number {
    return int(this.#sql("SELECT count(*) AS n FROM sessions").get()?.n);
  }

  /** Whether a device hash is known and not expired. */
  isKnownDevice(hash: string, now: number): boolean {
    const row = this.#sql("SELECT expires_at FROM devices WHERE hash = ?").get(hash);
    return row !== undefined && int(row.expires_at) > now;
  }

  /**
   * Records a device after a successful login, keeping at most `keep` devices.
   * @param hash the device token's hash
   * @param now epoch ms
   * @param options expiry and bound
   */
  rememberDevice(hash: string, now: number, options: { expiresAt: number; keep: number }): void {
    this.#sql(
      `INSERT INTO devices (hash, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (hash) DO UPDATE SET last_seen_at = excluded.last_seen_at,
         expires_at = excluded.expires_at`,
    ).run(hash, now, now, options.expiresAt);
    this.#sql("DELETE FROM devices WHERE expires_at <= ?").run(now);
    this.#sql(
      "DELETE FROM devices WHERE hash NOT IN (SELECT hash FROM devices ORDER BY last_seen_at DESC LIMIT ?)",
    ).run(options.keep);
  }

  /** Replaces the named token's hash. */
  setToken(row: TokenRow): void {
    this.#sql(
      `INSERT INTO tokens (name, hash, created_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at`,
    ).run(row.name, row.hash, row.createdAt);
  }

  /** The token with this hash, if any. */
  token(hash: string): TokenRow | undefined {
    const row = this.#sql("SELECT name, hash, created_at FROM tokens WHERE hash = ?").get(
      hash,
    );
    if (row === undefined) return undefined;
    return { name: text(row.name), hash: text(row.hash), createdAt: int(row.created_at) };
  }

  /** A lockout bucket (undefined when it has no failures on record). */
  bucket(key: string): BucketState | undefined {
    const row = this.#sql(
      "SELECT failures, locked_until, last_failure_at FROM lockout WHERE bucket = ?",
    ).get(key);
    if (row === undefined) return undefined;
    return {
      failures: int(row.failures),
      lockedUntil: int(row.locked_until),
      lastFailureAt: int(row.last_failure_at),
    };
  }

  /** Writes a lockout bucket. */
  setBucket(key: string, state: BucketState): void {
    this.#sql(
      `INSERT INTO lockout (bucket, failures, locked_until, last_failure_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (bucket) DO UPDATE SET failures = excluded.failures,
         locked_until = excluded.locked_until, last_failure_at = excluded.last_failure_at`,
    ).run(key, state.failures, state.lockedUntil, state.lastFailureAt);
  }

  /** Clears a lockout bucket (after a success). */
  clearBucket(key: string): void {
    this.#sql("DELETE FROM lockout WHERE bucket = ?").run(key);
  }

  /**
   * Forgets buckets whose last failure is older than `before` and whose lock has ended,
   * then the least recent beyond `keep` (spec 10 §8: pruned above 4096).
   */
  pruneBuckets(before: number, keep: number): void {
    this.#sql("DELETE FROM lockout WHERE last_failure_at < ? AND locked_until < ?").run(
      before,
      before,
    );
    this.#sql(
      `DELETE FROM lockout WHERE bucket NOT IN
        (SELECT bucket FROM lockout ORDER BY last_failure_at DESC LIMIT ?)`,
    ).run(keep);
  }

  /** Closes the database (again: no effect). */
  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}
