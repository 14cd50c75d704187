/**
 * Token buckets for the tool firewall's rate limits (spec 12 §3.2 step 2): one per caller
 * and session (`tools.rate_limit`) and one per caller and tool where the tool's entry sets
 * `rate_limit`. Per-caller buckets, so one caller cannot starve the rest (spec 12 §4
 * weakness 9). The number of buckets is bounded: the least recently used is dropped.
 * @module
 */

/** A bucket's shape. */
export interface BucketLimit {
  requestsPerMinute: number;
  burstSize: number;
}

interface Bucket {
  tokens: number;
  at: number;
  limit: BucketLimit;
}

/** Outcome of taking a token. */
export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number };

/** A set of token buckets keyed by string. */
export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #maxBuckets: number;

  /** @param maxBuckets most buckets kept (least recently used dropped first) */
  constructor(maxBuckets = 10_000) {
    this.#maxBuckets = maxBuckets;
  }

  /** Buckets currently held. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes one token from the bucket for `key` (created full).
   * @param key bucket key
   * @param at the bucket's limit (refill rate and capacity; a changed limit resets the
   *   bucket) and the time in monotonic milliseconds
   */
  take(key: string, at: { limit: BucketLimit; now: number }): TakeResult {
    const { limit, now } = at;
    let bucket = this.#buckets.get(key);
    if (
      !bucket || bucket.limit.requestsPerMinute !== limit.requestsPerMinute ||
      bucket.limit.burstSize !== limit.burstSize
    ) {
      bucket = { tokens: limit.burstSize, at: now, limit };
    } else {
      const refill = ((now - bucket.at) / 60_000) * limit.requestsPerMinute;
      bucket.tokens = Math.min(limit.burstSize, bucket.tokens + Math.max(0, refill));
      bucket.at = now;
    }
    // Re-insert: Map order is the LRU order.
    this.#buckets.delete(key);
    this.#buckets.set(key, bucket);
    if (this.#buckets.size > this.#maxBuckets) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    const missing = 1 - bucket.tokens;
    return { ok: false, retryAfterMs: Math.ceil((missing / limit.requestsPerMinute) * 60_000) };
  }
}
