/**
 * Contract of the auth control: the local passphrase, browser sessions, the CLI token and the
 * login lockout (spec 31 §2, spec 10 §8). Only the gateway holds a port to it. The control
 * keeps every secret (passphrase hash, session table, token hashes) in `<home>/auth/`, which
 * only it may read or write: the internet-facing gateway sees tokens a client presents, never
 * the stored hashes.
 *
 * Expected refusals (wrong passphrase, locked, weak passphrase, …) are values
 * (`{ ok: false, code }`), so the gateway maps each to its HTTP status without parsing
 * messages; only faults are thrown.
 * @module
 */
import { z } from "zod";
import { defineApi } from "../../runtime/kit/rpc.ts";

/** A session, device or CLI token: 32 random bytes, base64url without padding. */
export const TOKEN_PATTERN: RegExp = /^[A-Za-z0-9_-]{43}$/;
/** Shortest passphrase accepted at setup or change (spec 31 §2: 15–256 characters). */
export const MIN_PASSPHRASE_CHARS = 15;
/** Longest passphrase accepted. */
export const MAX_PASSPHRASE_CHARS = 256;

const Token = z.string().regex(TOKEN_PATTERN, "expected a 43-character base64url token");
const Instant = z.string().max(40);

/**
 * Passphrases anyone would try first. Compared after lower-casing and removing everything
 * but letters and digits, so "Password-Password!" counts as "passwordpassword".
 * Spec 31 asks for a larger offline list and a strength score too (TODO(#8): ship a list).
 */
const BLOCKLIST: ReadonlySet<string> = new Set([
  "passwordpassword",
  "passwordpassword1",
  "password123456789",
  "1234567890123456",
  "123456789012345",
  "qwertyuiopasdfgh",
  "qwertyuiopasdfghjkl",
  "correcthorsebatterystaple",
  "iloveyouiloveyou",
  "letmeinletmein",
  "letmeinletmeinletmein",
  "administratoradmin",
  "adminadminadmin",
  "changemechangeme",
  "secaisecaisecai",
  "secairuntimepassword",
  "welcomewelcome",
  "abcdefghijklmnop",
  "trustno1trustno1",
  "thequickbrownfox",
  "thequickbrownfoxjumpsoverthelazydog",
]);

/**
 * Checks a new passphrase against the rules of spec 31 §2: 15–256 characters (code points,
 * after NFKC normalization, as it will be hashed), not on the blocklist, not one short
 * pattern repeated, and at least 5 distinct characters.
 * @param passphrase the candidate
 * @returns null when acceptable, else a sentence saying what is wrong (never echoing it)
 */
export function passphraseProblem(passphrase: string): string | null {
  const chars = [...passphrase.normalize("NFKC")];
  if (chars.length < MIN_PASSPHRASE_CHARS) {
    return `The passphrase must have at least ${MIN_PASSPHRASE_CHARS} characters (it has ${chars.length})`;
  }
  if (chars.length > MAX_PASSPHRASE_CHARS) {
    return `The passphrase must have at most ${MAX_PASSPHRASE_CHARS} characters`;
  }
  const folded = chars.join("").toLowerCase().replace(/[^\p{L}\p{N}]/gu, "");
  if (BLOCKLIST.has(folded)) return "The passphrase is on the list of common passphrases";
  if (new Set(chars.map((c) => c.toLowerCase())).size < 5) {
    return "The passphrase must use at least 5 different characters";
  }
  for (let period = 1; period <= chars.length / 2; period++) {
    if (chars.length % period !== 0) continue;
    const unit = chars.slice(0, period).join("");
    if (unit.repeat(chars.length / period) === chars.join("")) {
      return "The passphrase must not be one short piece repeated";
    }
  }
  return null;
}

/** Who is asking, for the audit entry and nothing else (never used as the lockout key). */
export const ClientInfoSchema = z.strictObject({
  /** Remote address as the gateway saw it. */
  address: z.string().max(64),
  /** User-Agent, truncated. */
  userAgent: z.string().max(200),
});
/** Client info. */
export type ClientInfo = z.infer<typeof ClientInfoSchema>;

/** A credential presented with a request. */
export const CredentialSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("none") }),
  /** The `secai_session` cookie of a browser. */
  z.strictObject({ kind: z.literal("session"), token: Token }),
  /** `Authorization: Bearer` with the CLI token of `<home>/auth/cli-token`. */
  z.strictObject({ kind: z.literal("bearer"), token: Token }),
]);
/** A credential. */
export type Credential = z.infer<typeof CredentialSchema>;

/** An authenticated caller. */
export const PrincipalSchema = z.strictObject({
  kind: z.enum(["session", "cli"]),
  /** Short public id (a prefix of the token's hash), safe to show and log. */
  id: z.string().regex(/^[0-9a-f]{12}$/),
  createdAt: Instant,
  /** When an idle session ends unless a mutating request extends it; null for the CLI token. */
  idleExpiresAt: Instant.nullable(),
  /** Absolute end of the session; null for the CLI token (it is rotated at every start). */
  expiresAt: Instant.nullable(),
});
/** An authenticated caller. */
export type Principal = z.infer<typeof PrincipalSchema>;

/** Result of a credential check. */
export const CheckResultSchema = z.discriminatedUnion("ok", [
  z.strictObject({ ok: z.literal(true), configured: z.boolean(), principal: PrincipalSchema }),
  z.strictObject({
    ok: z.literal(false),
    /** Whether a passphrase is set; false ⇒ every protected route answers setup_required. */
    configured: z.boolean(),
    reason: z.enum(["NO_CREDENTIAL", "UNKNOWN", "EXPIRED"]),
  }),
]);
/** Result of a credential check. */
export type CheckResult = z.infer<typeof CheckResultSchema>;

/** A new browser session, for the gateway to put in cookies. */
export const GrantSchema = z.strictObject({
  session: z.strictObject({
    token: Token,
    idleExpiresAt: Instant,
    expiresAt: Instant,
    /** Seconds until the absolute end: the cookie's Max-Age. */
    maxAgeSeconds: z.number().int().min(1).max(7 * 24 * 3600),
  }),
  /** The browser's device token: lockout is keyed by it (see `lockout.ts`). */
  device: z.strictObject({
    token: Token,
    maxAgeSeconds: z.number().int().min(1).max(400 * 24 * 3600),
  }),
});
/** A new session. */
export type Grant = z.infer<typeof GrantSchema>;

/** Codes of a refused login, setup or change. */
export const RefusalCodeSchema = z.enum([
  "WRONG_PASSPHRASE",
  "LOGIN_LOCKED",
  "NOT_CONFIGURED",
  "ALREADY_CONFIGURED",
  "SETUP_CODE_INVALID",
  "WEAK_PASSPHRASE",
  "AUTH_BUSY",
  "UNAUTHENTICATED",
]);
/** Code of a refusal. */
export type RefusalCode = z.infer<typeof RefusalCodeSchema>;

/** Outcome of a login, setup or passphrase change. */
export const OutcomeSchema = z.discriminatedUnion("ok", [
  z.strictObject({ ok: z.literal(true), grant: GrantSchema }),
  z.strictObject({
    ok: z.literal(false),
    code: RefusalCodeSchema,
    /** Sentence for the user; never contains the passphrase. */
    message: z.string().max(300),
    /** Set for LOGIN_LOCKED. */
    lockedUntil: Instant.nullable(),
  }),
]);
/** Outcome of a login, setup or passphrase change. */
export type Outcome = z.infer<typeof OutcomeSchema>;

const Passphrase = z.string().min(1).max(MAX_PASSPHRASE_CHARS * 4);

/**
 * Session check only, for controls that must recognise a dashboard session without being
 * able to log in, set up or change the passphrase (inference, for the dashboard chat).
 */
export const authCheckApi = defineApi("auth-check", {
  /** Validates a credential without extending it. */
  check: {
    input: z.strictObject({ credential: CredentialSchema, touch: z.literal(false) }),
    output: CheckResultSchema,
  },
});

/** The auth contract (granted to the gateway only). */
export const authApi = defineApi("auth", {
  /** Validates a credential; `touch` (mutating requests only) extends an idle session. */
  check: {
    input: z.strictObject({ credential: CredentialSchema, touch: z.boolean() }),
    output: CheckResultSchema,
  },
  /** First-run setup: sets the passphrase once, with the one-time setup code. */
  setup: {
    input: z.strictObject({
      setupCode: z.string().min(1).max(64),
      passphrase: Passphrase,
      device: Token.nullable(),
      client: ClientInfoSchema,
    }),
    output: OutcomeSchema,
  },
  /** Login with the passphrase; rate-limited per device (lockout). */
  login: {
    input: z.strictObject({
      passphrase: Passphrase,
      device: Token.nullable(),
      client: ClientInfoSchema,
    }),
    output: OutcomeSchema,
  },
  /** Ends a session (idempotent). */
  logout: {
    input: z.strictObject({ token: Token, client: ClientInfoSchema }),
    output: z.strictObject({ ended: z.boolean() }),
  },
  /** Changes the passphrase: ends every session, then grants the caller a new one. */
  change: {
    input: z.strictObject({
      token: Token,
      current: Passphrase,
      next: Passphrase,
      device: Token.nullable(),
      client: ClientInfoSchema,
    }),
    output: OutcomeSchema,
  },
});

/** Config section `auth`. */
export const AuthConfigSchema = z.strictObject({
  /** Minutes without a mutating request after which a session ends (spec 31 §2: 30). */
  idleTimeoutMinutes: z.number().int().min(1).max(240).default(30),
  /** Absolute session lifetime in hours (spec 31 §2: 12). */
  sessionLifetimeHours: z.number().int().min(1).max(168).default(12),
  /**
   * A file under `auth/` in the state dir holding the first passphrase, for unattended
   * installs. Read once at the first start (when no passphrase is set), hashed, then
   * deleted. Null: the passphrase is set in the browser with the setup code.
   */
  initialPassphraseFile: z.string().regex(
    /^auth\/[A-Za-z0-9._-]{1,64}$/,
    'expected "auth/<file name>" (a file in the auth folder of the state dir)',
  ).refine((p) => !p.endsWith("/.") && !p.endsWith("/.."), "must name a file")
    .nullable().default(null),
}).default({});
/** Auth config. */
export type AuthConfig = z.infer<typeof AuthConfigSchema>;
