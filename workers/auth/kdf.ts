/**
 * The passphrase hash: scrypt from `node:crypto` (libuv thread pool, so the worker's event
 * loop keeps serving checks while a hash runs), parameters stored beside the hash so a
 * later, stronger setting can upgrade old records at the next login (spec 31 §2), and at
 * most two derivations at once ({@link KdfLimiter}): each one holds 128 MiB.
 * @module
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { z } from "zod";

/** scrypt cost parameters and output length. */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  n: number;
  /** Block size. */
  r: number;
  /** Parallelization. */
  p: number;
  /** Derived key length in bytes. */
  keyLength: number;
}

/** What new hashes use (spec 31 §2: N=2^17, r=8, p=1, 64-byte key, 32-byte salt). */
export const SCRYPT_PARAMS: Readonly<ScryptParams> = { n: 131_072, r: 8, p: 1, keyLength: 64 };
/** Salt length in bytes. */
export const SALT_BYTES = 32;

const Base64 = z.string().regex(/^[A-Za-z0-9+/]{1,400}={0,2}$/, "expected base64");

/**
 * The stored record (`<home>/auth/passphrase.json`). The lower bound on N admits the
 * original's legacy 2^14 records, which are upgraded at the next login; anything weaker is
 * refused as a broken record rather than trusted.
 */
export const PassphraseRecordSchema = z.strictObject({
  version: z.literal(1),
  algorithm: z.literal("scrypt"),
  params: z.strictObject({
    n: z.number().int().min(1 << 14).max(1 << 20).refine(
      (n) => (n & (n - 1)) === 0,
      "must be a power of two",
    ),
    r: z.number().int().min(1).max(32),
    p: z.number().int().min(1).max(16),
    keyLength: z.number().int().min(32).max(128),
  }),
  salt: Base64,
  hash: Base64,
  createdAt: z.string().max(40),
  upgradedAt: z.string().max(40).nullable(),
});
/** A stored passphrase hash. */
export type PassphraseRecord = z.infer<typeof PassphraseRecordSchema>;

/**
 * Derives a key with scrypt. The passphrase is NFKC-normalized first, so the same
 * passphrase typed with a different input method hashes the same.
 * @param passphrase the secret
 * @param salt random salt
 * @param params cost parameters
 * @returns the derived key
 */
export function deriveKey(
  passphrase: string,
  salt: Uint8Array,
  params: ScryptParams,
): Promise<Uint8Array> {
  // node:crypto refuses derivations above `maxmem`; each needs 128·N·r bytes.
  const maxmem = 128 * params.n * params.r * 2 + (1 << 20);
  return new Promise((resolve, reject) => {
    scrypt(
      passphrase.normalize("NFKC"),
      salt,
      params.keyLength,
      { N: params.n, r: params.r, p: params.p, maxmem },
      (err, key) => (err ? reject(err) : resolve(new Uint8Array(key))),
    );
  });
}

/**
 * Hashes a new passphrase.
 * @param passphrase the secret (rules already checked)
 * @param params cost parameters
 * @returns the record to store
 */
export async function hashPassphrase(
  passphrase: string,
  params: ScryptParams,
): Promise<PassphraseRecord> {
  const salt = new Uint8Array(randomBytes(SALT_BYTES));
  const key = await deriveKey(passphrase, salt, params);
  return {
    version: 1,
    algorithm: "scrypt",
    params: { ...params },
    salt: toBase64(salt),
    hash: toBase64(key),
    createdAt: new Date().toISOString(),
    upgradedAt: null,
  };
}

/**
 * Checks a passphrase against a record in constant time (the derived keys are compared
 * with `timingSafeEqual`; their length is public).
 * @param passphrase what the user typed
 * @param record the stored record
 * @returns whether it matches
 */
export async function verifyPassphrase(
  passphrase: string,
  record: PassphraseRecord,
): Promise<boolean> {
  const expected = fromBase64(record.hash);
  const key = await deriveKey(passphrase, fromBase64(record.salt), record.params);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Whether a record was made with weaker parameters than `target` (then it is upgraded). */
export function isWeaker(params: ScryptParams, target: ScryptParams): boolean {
  return params.n < target.n || params.r < target.r || params.p < target.p ||
    params.keyLength < target.keyLength;
}

/** Options of {@link KdfLimiter}. */
export interface KdfLimiterOptions {
  /** Derivations at once (spec 10 §8: at most 2). */
  concurrency: number;
  /** Callers allowed to wait for a slot; beyond that, {@link KdfLimiter.acquire} says no. */
  maxWaiting: number;
}

/**
 * Bounds concurrent key derivations: at most `concurrency` run, at most `maxWaiting` wait,
 * the rest are refused at once (so a flood of logins costs neither memory nor a queue).
 */
export class KdfLimiter {
  readonly #options: KdfLimiterOptions;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  /** @param options concurrency and queue bound */
  constructor(options: KdfLimiterOptions) {
    if (options.concurrency < 1) throw new RangeError("concurrency must be at least 1");
    this.#options = options;
  }

  /**
   * Takes a slot, synchronously deciding whether the caller may wait for one.
   * @returns a promise of the release function, or null when too many are waiting
   */
  acquire(): Promise<() => void> | null {
    if (this.#running < this.#options.concurrency) {
      this.#running++;
      return Promise.resolve(this.#releaser());
    }
    if (this.#waiting.length >= this.#options.maxWaiting) return null;
    return new Promise((resolve) => {
      this.#waiting.push(() => resolve(this.#releaser()));
    });
  }

  /** Derivations running now. */
  get running(): number {
    return this.#running;
  }

  #releaser(): () => void {
    let isReleased = false;
    return () => {
      if (isReleased) return;
      isReleased = true;
      const next = this.#waiting.shift();
      if (next) next(); // the slot passes on; running stays the same
      else this.#running--;
    };
  }
}

function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
