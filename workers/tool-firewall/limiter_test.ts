import { deepEqual, equal } from "node:assert/strict";
import { RateLimiter } from "./limiter.ts";

const LIMIT = { requestsPerMinute: 60, burstSize: 3 };

Deno.test("RateLimiter allows a burst, then refuses with the time to the next token", () => {
  const l = new RateLimiter();
  for (let i = 0; i < 3; i++) deepEqual(l.take("k", { limit: LIMIT, now: 0 }), { ok: true });
  deepEqual(l.take("k", { limit: LIMIT, now: 0 }), { ok: false, retryAfterMs: 1000 });
  deepEqual(l.take("k", { limit: LIMIT, now: 500 }), { ok: false, retryAfterMs: 500 });
  deepEqual(l.take("k", { limit: LIMIT, now: 1000 }), { ok: true });
});

Deno.test("RateLimiter keeps one bucket per key", () => {
  const l = new RateLimiter();
  for (let i = 0; i < 3; i++) l.take("a", { limit: LIMIT, now: 0 });
  equal(l.take("a", { limit: LIMIT, now: 0 }).ok, false);
  equal(l.take("b", { limit: LIMIT, now: 0 }).ok, true);
});

Deno.test("RateLimiter refills no more than the burst size", () => {
  const l = new RateLimiter();
  l.take("k", { limit: LIMIT, now: 0 });
  for (let i = 0; i < 3; i++) equal(l.take("k", { limit: LIMIT, now: 3_600_000 }).ok, true);
  equal(l.take("k", { limit: LIMIT, now: 3_600_000 }).ok, false);
});

Deno.test("RateLimiter resets a bucket when its limit changes", () => {
  const l = new RateLimiter();
  for (let i = 0; i < 3; i++) l.take("k", { limit: LIMIT, now: 0 });
  equal(l.take("k", { limit: { requestsPerMinute: 60, burstSize: 5 }, now: 0 }).ok, true);
});

Deno.test("RateLimiter drops the least recently used bucket beyond its bound", () => {
  const l = new RateLimiter(2);
  for (let i = 0; i < 3; i++) l.take("a", { limit: LIMIT, now: 0 });
  l.take("b", { limit: LIMIT, now: 0 });
  l.take("c", { limit: LIMIT, now: 0 }); // "a" is the oldest: dropped, and comes back full
  equal(l.size, 2);
  equal(l.take("a", { limit: LIMIT, now: 0 }).ok, true);
});
