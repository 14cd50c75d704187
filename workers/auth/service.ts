/**
 * The auth control's logic, independent of the worker so tests can run it on a temp dir:
 * first-run setup with a one-time setup code, login with lockout, sessions with idle and
 * absolute expiry, the CLI token, passphrase change and logout. Every file lives in one
 * directory (`<home>/auth/`, mode 0700):
 *
 * | file | content |
 * |---|---|
 * | `passphrase.json` | scrypt record (created exclusively: two racing setups cannot both win) |
 * | `auth.db` | SQLite: session, device and token hashes, lockout buckets |
 * | `cli-token` | the CLI's bearer token, 0600, rotated at every start |
 * | `setup-code` | one-time code for the first setup, 0600, deleted once used |
 * @module
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { syncDir, writeFileAtomic } from "../../runtime/kit/fs.ts";
import type {
  AuthConfig,
  CheckResult,
  ClientInfo,
  Credential,
  Grant,
  Outcome,
  Principal,
  RefusalCode,
} from "./api.ts";
import { passphraseProblem } from "./api.ts";
import {
  hashPassphrase,
  isWeaker,
  KdfLimiter,
  type PassphraseRecord,
  PassphraseRecordSchema,
  SCRYPT_PARAMS,
  type ScryptParams,
  verifyPassphrase,
} from "./kdf.ts";
import { afterFailure, bucketKey, EMPTY_BUCKET } from "./lockout.ts";
import { AuthStore, AuthStoreError } from "./store.ts";

/** Smallest move of a session's idle end that is written (see check()). */
const TOUCH_STEP_MS = 30_000;

/** Files of the auth directory. */
export const AUTH_FILES = {
  passphrase: "passphrase.json",
  database: "auth.db",
  cliToken: "cli-token",
  setupCode: "setup-code",
} as const;

/** How long a device token is remembered after its last login. */
export const DEVICE_LIFETIME_MS = 90 * 24 * 3600_000;
/** Most sessions kept at once; the oldest go first. */
export const MAX_SESSIONS = 64;
/** Most devices remembered. */
export const MAX_DEVICES = 64;
/** Lockout buckets kept (spec 10 §8: prune above 4096). */
export const MAX_BUCKETS = 4096;
/** Largest passphrase file read at first start. */
const MAX_PASSPHRASE_FILE_BYTES = 4096;

/** An audit entry the service asks to record (never holds a secret). */
export interface AuthAuditEntry {
  type: string;
  actor: string;
  subject: string;
  decision?: "allow" | "deny";
  evidence: Record<string, unknown>;
}

/** Options of {@link AuthService.open}. */
export interface AuthServiceOptions {
  /** Absolute path of the auth directory (`<home>/auth`). */
  dir: string;
  /** The `auth` config section. */
  config: AuthConfig;
  /** KDF cost of new hashes; spec values unless a test makes them cheaper. */
  kdf?: ScryptParams;
  /** Clock, epoch ms. */
  now?: () => number;
  /** Records an audit entry; failures are the caller's to report. */
  record?: (entry: AuthAuditEntry) => void;
  /** Derivations at once (≤ 2, spec 10 §8). */
  kdfConcurrency?: number;
  /** Logins allowed to wait for a derivation slot. */
  kdfMaxWaiting?: number;
}

/** Errors while opening the auth state. */
export class AuthError extends Error {
  /** Machine-readable code. */
  readonly code: "AUTH_STATE_INVALID" | "INVALID_CONFIG";
  /**
   * @param code what failed
   * @param message names the file or setting
   * @param options standard `cause`
   */
  constructor(
    code: "AUTH_STATE_INVALID" | "INVALID_CONFIG",
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "AuthError";
    this.code = code;
  }
}

/** A new random token (32 bytes, base64url). */
export function newToken(): string {
  return randomBytes(32).toString("base64url");
}

/** SHA-256 of a token, hex: what the database stores. */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

const SETUP_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"; // no 0/O, 1/I

function newSetupCode(): string {
  const bytes = randomBytes(20);
  const chars = [...bytes].map((b) => SETUP_CODE_ALPHABET[b & 31]).join("");
  return chars.match(/.{5}/g)?.join("-") ?? chars;
}

function normalizeSetupCode(code: string): string {
  return code.toUpperCase().replace(/[\s-]/g, "");
}

function refusal(code: RefusalCode, message: string, lockedUntil: number | null = null): Outcome {
  return {
    ok: false,
    code,
    message,
    lockedUntil: lockedUntil === null ? null : new Date(lockedUntil).toISOString(),
  };
}

function lockedMessage(until: number): string {
  return `Too many failed attempts: try again after ${new Date(until).toISOString()}`;
}

/** The auth control's state and operations. */
export class AuthService {
  readonly #dir: string;
  readonly #store: AuthStore;
  readonly #now: () => number;
  readonly #kdf: ScryptParams;
  readonly #limiter: KdfLimiter;
  readonly #idleMs: number;
  readonly #lifetimeMs: number;
  readonly #record: (entry: AuthAuditEntry) => void;
  #passphrase: PassphraseRecord | null;
  #setupCode: string | null = null;
  #isSetupRunning = false;

  private constructor(
    options: AuthServiceOptions,
    store: AuthStore,
    passphrase: PassphraseRecord | null,
  ) {
    this.#dir = options.dir;
    this.#store = store;
    this.#now = options.now ?? Date.now;
    this.#kdf = options.kdf ?? SCRYPT_PARAMS;
    this.#limiter = new KdfLimiter({
      concurrency: Math.min(2, options.kdfConcurrency ?? 2),
      maxWaiting: options.kdfMaxWaiting ?? 8,
    });
    this.#idleMs = options.config.idleTimeoutMinutes * 60_000;
    this.#lifetimeMs = options.config.sessionLifetimeHours * 3600_000;
    this.#record = options.record ?? (() => {});
    this.#passphrase = passphrase;
  }

  /**
   * Opens the auth state: loads the passphrase record (a broken one stops the start rather
   * than falling back to setup, which would let anyone who can corrupt the file choose a new
   * passphrase), opens the database, rotates the CLI token, consumes the configured initial
   * passphrase file, and otherwise writes a fresh setup code.
   * @param options directory, config, KDF cost, clock, audit sink
   * @returns the service
   * @throws {AuthError} AUTH_STATE_INVALID, INVALID_CONFIG
   */
  static async open(options: AuthServiceOptions): Promise<AuthService> {
    await Deno.mkdir(options.dir, { recursive: true, mode: 0o700 });
    const passphrase = await readPassphraseRecord(`${options.dir}/${AUTH_FILES.passphrase}`);
    let store: AuthStore;
    try {
      store = AuthStore.open(`${options.dir}/${AUTH_FILES.database}`);
    } catch (err) {
      if (err instanceof AuthStoreError) throw new AuthError("AUTH_STATE_INVALID", err.message);
      throw err;
    }
    const service = new AuthService(options, store, passphrase);
    try {
      await service.#start(options.config);
    } catch (err) {
      store.close();
      throw err;
    }
    return service;
  }

  async #start(config: AuthConfig): Promise<void> {
    const now = this.#now();
    this.#store.pruneSessions(now, MAX_SESSIONS);
    // The CLI token: a fresh one at every start, so a leaked copy dies with the next restart.
    const cli = newToken();
    this.#store.setToken({ name: "cli", hash: tokenHash(cli), createdAt: now });
    await writeFileAtomic(`${this.#dir}/${AUTH_FILES.cliToken}`, `${cli}\n`, { mode: 0o600 });

    if (config.initialPassphraseFile !== null) await this.#consumeInitialPassphrase(config);
    const codePath = `${this.#dir}/${AUTH_FILES.setupCode}`;
    if (this.#passphrase === null) {
      this.#setupCode = newSetupCode();
      await writeFileAtomic(codePath, `${this.#setupCode}\n`, { mode: 0o600 });
    } else {
      await removeIfPresent(codePath);
    }
  }

  async #consumeInitialPassphrase(config: AuthConfig): Promise<void> {
    const name = (config.initialPassphraseFile ?? "").slice("auth/".length);
    if ((Object.values(AUTH_FILES) as string[]).includes(name)) {
      throw new AuthError(
        "INVALID_CONFIG",
        `Setting "auth.initialPassphraseFile" must not name the auth control's own file "${name}"`,
      );
    }
    const path = `${this.#dir}/${name}`;
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return; // consumed at an earlier start
      throw err;
    }
    if (this.#passphrase === null) {
      if (bytes.length > MAX_PASSPHRASE_FILE_BYTES) {
        throw new AuthError(
          "INVALID_CONFIG",
          `Initial passphrase file "${config.initialPassphraseFile}" is larger than ${MAX_PASSPHRASE_FILE_BYTES} bytes`,
        );
      }
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(bytes).replace(/\r?\n$/, "");
      } catch (err) {
        throw new AuthError(
          "INVALID_CONFIG",
          `Initial passphrase file "${config.initialPassphraseFile}" is not UTF-8 text`,
          { cause: err },
        );
      }
      const problem = passphraseProblem(text);
      if (problem !== null) {
        throw new AuthError(
          "INVALID_CONFIG",
          `Initial passphrase file "${config.initialPassphraseFile}": ${problem}`,
        );
      }
      const record = await hashPassphrase(text, this.#kdf);
      if (!(await this.#writeRecordExclusive(record))) {
        throw new AuthError("AUTH_STATE_INVALID", "A passphrase was set while starting");
      }
      this.#record({
        type: "auth.setup",
        actor: "config",
        subject: "passphrase",
        decision: "allow",
        evidence: { source: "initialPassphraseFile" },
      });
    }
    // Hashed now, or a passphrase already exists: the clear text must not stay on disk.
    await Deno.remove(path);
    await syncDir(this.#dir);
  }

  /** Whether a passphrase is set. */
  get isConfigured(): boolean {
    return this.#passphrase !== null;
  }

  /**
   * Validates a credential. `touch` (set by the gateway for mutating requests only) moves
   * an idle session's end; passive reads never do (spec 10 §8).
   * @param credential what the request presented
   * @param touch whether to extend the idle timeout
   * @returns the principal, or why not
   */
  check(credential: Credential, touch: boolean): CheckResult {
    const configured = this.isConfigured;
    if (credential.kind === "none") return { ok: false, configured, reason: "NO_CREDENTIAL" };
    const hash = tokenHash(credential.token);
    if (credential.kind === "bearer") {
      const token = this.#store.token(hash);
      if (token === undefined) return { ok: false, configured, reason: "UNKNOWN" };
      return {
        ok: true,
        configured,
        principal: {
          kind: "cli",
          id: hash.slice(0, 12),
          createdAt: new Date(token.createdAt).toISOString(),
          idleExpiresAt: null,
          expiresAt: null,
        },
      };
    }
    const session = this.#store.session(hash);
    if (session === undefined) return { ok: false, configured, reason: "UNKNOWN" };
    const now = this.#now();
    if (now >= session.idleExpiresAt || now >= session.expiresAt) {
      this.#store.deleteSession(hash);
      return { ok: false, configured, reason: "EXPIRED" };
    }
    let idleExpiresAt = session.idleExpiresAt;
    if (touch) {
      // Written only when it moves by a step: a burst of requests is one durable write,
      // not one per request, and the session can only end earlier than exact, never later.
      const moved = Math.min(now + this.#idleMs, session.expiresAt);
      if (moved - idleExpiresAt >= Math.min(TOUCH_STEP_MS, this.#idleMs / 10)) {
        idleExpiresAt = moved;
        this.#store.touchSession(hash, idleExpiresAt);
      }
    }
    return { ok: true, configured, principal: this.#principal({ ...session, idleExpiresAt }) };
  }

  #principal(
    session: { hash: string; createdAt: number; idleExpiresAt: number; expiresAt: number },
  ): Principal {
    return {
      kind: "session",
      id: session.hash.slice(0, 12),
      createdAt: new Date(session.createdAt).toISOString(),
      idleExpiresAt: new Date(session.idleExpiresAt).toISOString(),
      expiresAt: new Date(session.expiresAt).toISOString(),
    };
  }

  /**
   * First-run setup: the setup code (constant-time compare, rate-limited in its own
   * bucket) proves the caller can read the state dir, i.e. is the owner and not another
   * local user racing to the page first.
   * @param input setup code, new passphrase, device token, client info
   * @returns a session, or the refusal
   */
  async setup(input: {
    setupCode: string;
    passphrase: string;
    device: string | null;
    client: ClientInfo;
  }): Promise<Outcome> {
    if (this.isConfigured) {
      return refusal("ALREADY_CONFIGURED", "A passphrase is already set: log in instead");
    }
    const now = this.#now();
    const bucket = this.#store.bucket("setup") ?? EMPTY_BUCKET;
    if (bucket.lockedUntil > now) {
      return refusal("LOGIN_LOCKED", lockedMessage(bucket.lockedUntil), bucket.lockedUntil);
    }
    const expected = this.#setupCode;
    const given = new TextEncoder().encode(normalizeSetupCode(input.setupCode));
    const wanted = new TextEncoder().encode(normalizeSetupCode(expected ?? ""));
    // Length is not secret (fixed format); the content is compared in constant time.
    const isCodeRight = expected !== null && given.length === wanted.length &&
      timingSafeEqual(given, wanted);
    if (!isCodeRight) {
      const next = afterFailure(bucket, now);
      this.#store.setBucket("setup", next);
      this.#audit("auth.setup", input.client, "deny", { reason: "SETUP_CODE_INVALID" });
      return refusal(
        "SETUP_CODE_INVALID",
        `The setup code is wrong: use the one in "auth/${AUTH_FILES.setupCode}" of the state dir`,
        next.lockedUntil > now ? next.lockedUntil : null,
      );
    }
    const problem = passphraseProblem(input.passphrase);
    if (problem !== null) return refusal("WEAK_PASSPHRASE", problem);
    if (this.#isSetupRunning) {
      return refusal("AUTH_BUSY", "Setup is already in progress in another window");
    }
    const slot = this.#limiter.acquire();
    if (slot === null) return refusal("AUTH_BUSY", "Too many logins at once: try again shortly");
    this.#isSetupRunning = true;
    const release = await slot;
    try {
      const record = await hashPassphrase(input.passphrase, this.#kdf);
      if (!(await this.#writeRecordExclusive(record))) {
        return refusal("ALREADY_CONFIGURED", "A passphrase is already set: log in instead");
      }
    } finally {
      release();
      this.#isSetupRunning = false;
    }
    this.#setupCode = null;
    await removeIfPresent(`${this.#dir}/${AUTH_FILES.setupCode}`);
    this.#store.clearBucket("setup");
    this.#audit("auth.setup", input.client, "allow", {});
    return { ok: true, grant: this.#grant(input.device, now) };
  }

  /**
   * Login. The attempt is counted as a failure before the passphrase is checked and the
   * count cleared on success, so parallel guesses cannot overrun the lockout.
   * @param input passphrase, device token, client info
   * @returns a session, or the refusal (LOGIN_LOCKED carries `lockedUntil`)
   */
  async login(input: {
    passphrase: string;
    device: string | null;
    client: ClientInfo;
  }): Promise<Outcome> {
    const record = this.#passphrase;
    if (record === null) {
      return refusal("NOT_CONFIGURED", "No passphrase is set yet: finish the setup first");
    }
    const verdict = await this.#verify(record, input.passphrase, input.device, input.client);
    if (!verdict.ok) return verdict.outcome;
    this.#audit("auth.login", input.client, "allow", { bucket: verdict.bucketKind });
    return { ok: true, grant: this.#grant(input.device, this.#now()) };
  }

  /**
   * Changes the passphrase: the current one is checked like a login (same lockout), then
   * every session ends and the caller gets a new one.
   */
  async change(input: {
    token: string;
    current: string;
    next: string;
    device: string | null;
    client: ClientInfo;
  }): Promise<Outcome> {
    const record = this.#passphrase;
    const session = this.check({ kind: "session", token: input.token }, true);
    if (record === null || !session.ok) {
      return refusal("UNAUTHENTICATED", "Log in again to change the passphrase");
    }
    const problem = passphraseProblem(input.next);
    if (problem !== null) return refusal("WEAK_PASSPHRASE", problem);
    const verdict = await this.#verify(record, input.current, input.device, input.client);
    if (!verdict.ok) return verdict.outcome;
    const slot = this.#limiter.acquire();
    if (slot === null) return refusal("AUTH_BUSY", "Too many logins at once: try again shortly");
    const release = await slot;
    try {
      const next = await hashPassphrase(input.next, this.#kdf);
      await writeFileAtomic(`${this.#dir}/${AUTH_FILES.passphrase}`, JSON.stringify(next));
      this.#passphrase = next;
    } finally {
      release();
    }
    const ended = this.#store.deleteAllSessions();
    this.#audit("auth.passphrase_changed", input.client, "allow", { sessionsEnded: ended });
    return { ok: true, grant: this.#grant(input.device, this.#now()) };
  }

  /** Ends a session; returns whether it existed. */
  logout(input: { token: string; client: ClientInfo }): { ended: boolean } {
    const ended = this.#store.deleteSession(tokenHash(input.token));
    if (ended) this.#audit("auth.logout", input.client, "allow", {});
    return { ended };
  }

  /** Closes the database. */
  close(): void {
    this.#store.close();
  }

  async #verify(
    record: PassphraseRecord,
    passphrase: string,
    device: string | null,
    client: ClientInfo,
  ): Promise<
    { ok: true; bucketKind: "device" | "anonymous" } | { ok: false; outcome: Outcome }
  > {
    const now = this.#now();
    const deviceHash = device === null ? null : tokenHash(device);
    const isKnown = deviceHash !== null && this.#store.isKnownDevice(deviceHash, now);
    const key = bucketKey(isKnown ? deviceHash : null);
    const bucketKind = isKnown ? "device" : "anonymous";
    const before = this.#store.bucket(key) ?? EMPTY_BUCKET;
    if (before.lockedUntil > now) {
      this.#audit("auth.login", client, "deny", {
        reason: "LOGIN_LOCKED",
        bucket: bucketKind,
        lockedUntil: new Date(before.lockedUntil).toISOString(),
      });
      return {
        ok: false,
        outcome: refusal("LOGIN_LOCKED", lockedMessage(before.lockedUntil), before.lockedUntil),
      };
    }
    const slot = this.#limiter.acquire();
    if (slot === null) {
      return {
        ok: false,
        outcome: refusal("AUTH_BUSY", "Too many logins at once: try again shortly"),
      };
    }
    const counted = afterFailure(before, now);
    this.#store.setBucket(key, counted);
    const release = await slot;
    let isMatch: boolean;
    try {
      isMatch = await verifyPassphrase(passphrase, record);
      if (isMatch && isWeaker(record.params, this.#kdf)) {
        // A legacy record: rehash with today's cost now that the passphrase is known.
        const upgraded = {
          ...(await hashPassphrase(passphrase, this.#kdf)),
          createdAt: record.createdAt,
          upgradedAt: new Date(this.#now()).toISOString(),
        };
        await writeFileAtomic(`${this.#dir}/${AUTH_FILES.passphrase}`, JSON.stringify(upgraded));
        this.#passphrase = upgraded;
      }
    } finally {
      release();
    }
    if (isMatch) {
      this.#store.clearBucket(key);
      return { ok: true, bucketKind };
    }
    const after = this.#store.bucket(key) ?? counted;
    const lockedUntil = after.lockedUntil > now ? after.lockedUntil : null;
    this.#audit("auth.login", client, "deny", {
      reason: "WRONG_PASSPHRASE",
      bucket: bucketKind,
      failures: after.failures,
      lockedUntil: lockedUntil === null ? null : new Date(lockedUntil).toISOString(),
    });
    this.#store.pruneBuckets(now - 24 * 3600_000, MAX_BUCKETS);
    return {
      ok: false,
      outcome: refusal(
        "WRONG_PASSPHRASE",
        lockedUntil === null
          ? "Wrong passphrase"
          : `Wrong passphrase. ${lockedMessage(lockedUntil)}`,
        lockedUntil,
      ),
    };
  }

  #grant(device: string | null, now: number): Grant {
    const token = newToken();
    const expiresAt = now + this.#lifetimeMs;
    const idleExpiresAt = Math.min(now + this.#idleMs, expiresAt);
    this.#store.pruneSessions(now, MAX_SESSIONS - 1);
    this.#store.addSession({ hash: tokenHash(token), createdAt: now, idleExpiresAt, expiresAt });
    const deviceHash = device === null ? null : tokenHash(device);
    const deviceToken = deviceHash !== null && this.#store.isKnownDevice(deviceHash, now)
      ? device as string
      : newToken();
    this.#store.rememberDevice(tokenHash(deviceToken), now, {
      expiresAt: now + DEVICE_LIFETIME_MS,
      keep: MAX_DEVICES,
    });
    return {
      session: {
        token,
        idleExpiresAt: new Date(idleExpiresAt).toISOString(),
        expiresAt: new Date(expiresAt).toISOString(),
        maxAgeSeconds: Math.max(1, Math.floor((expiresAt - now) / 1000)),
      },
      device: { token: deviceToken, maxAgeSeconds: Math.floor(DEVICE_LIFETIME_MS / 1000) },
    };
  }

  /** Writes the first record; false when one already exists (create-exclusive via link). */
  async #writeRecordExclusive(record: PassphraseRecord): Promise<boolean> {
    const path = `${this.#dir}/${AUTH_FILES.passphrase}`;
    const temp = `${path}.tmp-${crypto.randomUUID()}`;
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    try {
      await file.write(new TextEncoder().encode(JSON.stringify(record)));
      await file.sync();
    } finally {
      file.close();
    }
    try {
      await Deno.link(temp, path);
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) return false;
      throw err;
    } finally {
      await Deno.remove(temp);
    }
    await syncDir(this.#dir);
    this.#passphrase = record;
    return true;
  }

  #audit(
    type: string,
    client: ClientInfo,
    decision: "allow" | "deny",
    evidence: Record<string, unknown>,
  ): void {
    this.#record({
      type,
      actor: `browser ${client.address}`.slice(0, 100),
      subject: "local passphrase",
      decision,
      evidence: { ...evidence, userAgent: client.userAgent.slice(0, 120) },
    });
  }
}

async function readPassphraseRecord(path: string): Promise<PassphraseRecord | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text.slice(0, 64 * 1024));
  } catch (err) {
    throw new AuthError("AUTH_STATE_INVALID", `Passphrase record "${path}" is not valid JSON`, {
      cause: err,
    });
  }
  const parsed = PassphraseRecordSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AuthError(
      "AUTH_STATE_INVALID",
      `Passphrase record "${path}" is invalid at "${issue?.path.join(".") ?? ""}": ${
        issue?.message ?? "invalid"
      } (fix or remove it; it is never replaced automatically)`,
    );
  }
  return parsed.data;
}

async function removeIfPresent(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}
