/**
 * The login lockout schedule (spec 10 §8, spec 31 §2) and how attempts are keyed.
 *
 * Keying (spec 10 §9.2: the original keyed by client address, which is always 127.0.0.1 on
 * loopback, so one attacker locked everyone out and a proxy made it one global lock by
 * accident). Here the key is deliberate:
 * - a browser that has logged in before holds a device token (HttpOnly cookie, stored only
 *   as a hash here); its failures count against that device alone;
 * - every caller without a known device token shares one `anonymous` bucket, whatever its
 *   address: the secret is one passphrase, so an attacker cannot multiply guesses by
 *   changing address, and cannot lock out the owner's known browser either;
 * - setup attempts (wrong setup code) have their own `setup` bucket.
 * Counters live in SQLite, so neither a gateway nor an auth restart resets them (§9.1).
 * @module
 */

/** One step of the schedule: from this many failures on, each failure locks for `lockMs`. */
export interface LockStep {
  failures: number;
  lockMs: number;
}

/** 5 failures ⇒ 60 s, 15 or more ⇒ 900 s (spec 10 §8); strongest step first. */
export const LOCK_STEPS: readonly LockStep[] = [
  { failures: 15, lockMs: 900_000 },
  { failures: 5, lockMs: 60_000 },
];

/** Failures older than this are forgotten at the next attempt. */
export const FAILURE_MEMORY_MS = 24 * 3600_000;

/**
 * How long the failure that brought the count to `failures` locks the bucket.
 * @param failures failures so far, this one included
 * @returns lock duration in ms (0: no lock)
 */
export function lockMsFor(failures: number): number {
  for (const step of LOCK_STEPS) if (failures >= step.failures) return step.lockMs;
  return 0;
}

/** A bucket's persisted state. */
export interface BucketState {
  failures: number;
  /** Epoch ms until which attempts are refused without running the KDF (0: not locked). */
  lockedUntil: number;
  /** Epoch ms of the last failure. */
  lastFailureAt: number;
}

/** A fresh bucket. */
export const EMPTY_BUCKET: Readonly<BucketState> = {
  failures: 0,
  lockedUntil: 0,
  lastFailureAt: 0,
};

/**
 * The state after one more failed attempt at `now`. Counted before the passphrase is
 * checked (and cleared on success), so concurrent guesses cannot all slip in before the
 * first failure is recorded.
 * @param state the bucket before the attempt
 * @param now epoch ms
 * @returns the bucket with this attempt counted as a failure
 */
export function afterFailure(state: BucketState, now: number): BucketState {
  const base = now - state.lastFailureAt > FAILURE_MEMORY_MS ? EMPTY_BUCKET : state;
  const failures = base.failures + 1;
  const lockMs = lockMsFor(failures);
  return {
    failures,
    lockedUntil: lockMs > 0 ? now + lockMs : base.lockedUntil,
    lastFailureAt: now,
  };
}

/**
 * Lockout key of an attempt.
 * @param deviceHash hash of a known device token, or null
 * @returns the bucket key
 */
export function bucketKey(deviceHash: string | null): string {
  return deviceHash === null ? "anonymous" : `device:${deviceHash}`;
}
