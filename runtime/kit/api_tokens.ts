/**
 * Client tokens of the OpenAI-compatible inference API (issue #7): each client gets its own
 * bearer token, created and revoked with `secai tokens`, and stored only as a SHA-256 hash in
 * `<state dir>/inference/tokens.json` (written atomically, 0600). The inference control
 * verifies a presented token against the file, re-reading it when it changes, so a revoked
 * token stops working at once without a restart.
 *
 * A token is 32 random bytes, base64url, behind the prefix `sk-secai-` (so secret scanners
 * and people recognise it). Shared by the inference control and the CLI.
 * @module
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { writeFileAtomic } from "./fs.ts";
import { describeZodError } from "./validate.ts";

/** The prefix of every client token. */
export const TOKEN_PREFIX = "sk-secai-";
/** A well-formed client token. */
export const CLIENT_TOKEN_PATTERN: RegExp = /^sk-secai-[A-Za-z0-9_-]{43}$/;
/** The token file, relative to the state dir. */
export const TOKENS_FILE = "inference/tokens.json";
/**
 * The local CLI's token of the running instance (`secai chat`), relative to the state dir:
 * written 0600 by the inference control at each start, removed at stop.
 */
export const CLI_TOKEN_FILE = "inference/cli-token";
/** Most tokens kept (revoked ones included). */
export const MAX_TOKENS = 1000;
const MAX_FILE_BYTES = 1 << 20;

/** A token's public id: the first 12 hex digits of its hash; safe to show and log. */
export const TokenIdSchema = z.string().regex(/^[0-9a-f]{12}$/);
/** A token's name: who or what uses it. */
export const TokenNameSchema = z.string().regex(
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
  "expected 1–64 letters, digits, dots, dashes or underscores",
);

const StoredTokenSchema = z.strictObject({
  id: TokenIdSchema,
  name: TokenNameSchema,
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.string().max(40),
  revokedAt: z.string().max(40).nullable(),
});
/** A token as stored (its hash, never the token). */
export type StoredToken = z.infer<typeof StoredTokenSchema>;

const TokenFileSchema = z.strictObject({
  version: z.literal(1),
  tokens: z.array(StoredTokenSchema).max(MAX_TOKENS),
});

/** Codes of {@link TokenStoreError}. */
export type TokenStoreErrorCode =
  | "TOKEN_FILE_INVALID"
  | "TOKEN_NAME_TAKEN"
  | "TOKEN_NOT_FOUND"
  | "TOO_MANY_TOKENS";

/** A token file that cannot be used, or a refused change. */
export class TokenStoreError extends Error {
  /** Machine-readable code. */
  readonly code: TokenStoreErrorCode;
  /** @param code what went wrong @param message names the file or token, never a secret */
  constructor(code: TokenStoreErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TokenStoreError";
    this.code = code;
  }
}

/** SHA-256 of a token, hex. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** A new random token. */
export function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return `${TOKEN_PREFIX}${
    btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")
  }`;
}

/**
 * Reads the token file; a missing file is an empty list.
 * @param path absolute path of the file
 * @throws {TokenStoreError} TOKEN_FILE_INVALID naming the field
 */
export async function readTokens(path: string): Promise<StoredToken[]> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (info.size > MAX_FILE_BYTES) {
      throw new TokenStoreError("TOKEN_FILE_INVALID", `Token file "${path}" is too large`);
    }
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new TokenStoreError("TOKEN_FILE_INVALID", `Token file "${path}" is not JSON`, {
      cause: error,
    });
  }
  const parsed = TokenFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new TokenStoreError(
      "TOKEN_FILE_INVALID",
      `Token file "${path}" is invalid ${describeZodError(parsed.error)}`,
    );
  }
  return parsed.data.tokens;
}

async function writeTokens(path: string, tokens: StoredToken[]): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, `${JSON.stringify({ version: 1, tokens }, null, 2)}\n`, {
    mode: 0o600,
  });
}

/**
 * Creates a token for a client.
 * @param path absolute path of the token file
 * @param name who uses it (unique among active tokens)
 * @returns the token, shown once, and its public id
 * @throws {TokenStoreError} TOKEN_NAME_TAKEN, TOO_MANY_TOKENS, TOKEN_FILE_INVALID
 */
export async function createToken(
  path: string,
  name: string,
): Promise<{ token: string; id: string }> {
  const checked = TokenNameSchema.safeParse(name);
  if (!checked.success) {
    throw new TypeError(
      `Invalid token name "${name.slice(0, 64)}": ${describeZodError(checked.error)}`,
    );
  }
  const tokens = await readTokens(path);
  if (tokens.some((t) => t.name === name && t.revokedAt === null)) {
    throw new TokenStoreError("TOKEN_NAME_TAKEN", `An active token named "${name}" exists already`);
  }
  if (tokens.length >= MAX_TOKENS) {
    throw new TokenStoreError("TOO_MANY_TOKENS", `The token file holds ${MAX_TOKENS} tokens`);
  }
  const token = newToken();
  const sha256 = hashToken(token);
  const id = sha256.slice(0, 12);
  tokens.push({ id, name, sha256, createdAt: new Date().toISOString(), revokedAt: null });
  await writeTokens(path, tokens);
  return { token, id };
}

/**
 * Revokes active tokens by id or name.
 * @returns the revoked tokens
 * @throws {TokenStoreError} TOKEN_NOT_FOUND when none is active under that id or name
 */
export async function revokeToken(path: string, idOrName: string): Promise<StoredToken[]> {
  const tokens = await readTokens(path);
  const now = new Date().toISOString();
  const hits = tokens.filter((t) =>
    t.revokedAt === null && (t.id === idOrName || t.name === idOrName)
  );
  if (hits.length === 0) {
    throw new TokenStoreError(
      "TOKEN_NOT_FOUND",
      `No active token with id or name "${idOrName.slice(0, 64)}"`,
    );
  }
  for (const hit of hits) hit.revokedAt = now;
  await writeTokens(path, tokens);
  return hits;
}

/** Who a verified token belongs to. */
export interface TokenOwner {
  id: string;
  name: string;
}

/**
 * Verifies presented tokens against the token file, re-reading it when it changed (size,
 * mtime or inode), so creations and revocations apply at once. A file that cannot be read
 * makes every token fail (fail closed) until it is fixed.
 */
export class TokenVerifier {
  readonly #path: string;
  readonly #extra = new Map<string, TokenOwner>();
  #byHash = new Map<string, TokenOwner>();
  #stamp = "";
  #error: string | null = null;

  /** @param path absolute path of the token file */
  constructor(path: string) {
    this.#path = path;
  }

  /** Adds a token that lives only in memory (the local CLI token of this run). */
  addEphemeral(token: string, owner: TokenOwner): void {
    this.#extra.set(hashToken(token), owner);
  }

  /** Active tokens in the file now (re-read when it changed). */
  async activeCount(): Promise<number> {
    await this.#refresh();
    return this.#byHash.size;
  }

  /** Why the file cannot be used, or null. */
  get error(): string | null {
    return this.#error;
  }

  /**
   * Checks a token.
   * @returns its owner, or null for a malformed, unknown or revoked token
   */
  async verify(token: string): Promise<TokenOwner | null> {
    if (!CLIENT_TOKEN_PATTERN.test(token)) return null;
    await this.#refresh();
    // Looked up by the SHA-256 of a 256-bit random token: lookup timing reveals nothing an
    // attacker could use to build a valid token.
    const hash = hashToken(token);
    return this.#byHash.get(hash) ?? this.#extra.get(hash) ?? null;
  }

  async #refresh(): Promise<void> {
    let stamp: string;
    try {
      const info = await Deno.stat(this.#path);
      stamp = `${info.ino}:${info.size}:${info.mtime?.getTime()}`;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      stamp = "absent";
    }
    if (stamp === this.#stamp) return;
    try {
      const tokens = await readTokens(this.#path);
      this.#byHash = new Map(
        tokens.filter((t) => t.revokedAt === null).map((
          t,
        ) => [t.sha256, { id: t.id, name: t.name }]),
      );
      this.#error = null;
    } catch (error) {
      if (!(error instanceof TokenStoreError)) throw error;
      this.#byHash = new Map();
      this.#error = error.message;
    }
    this.#stamp = stamp;
  }
}
