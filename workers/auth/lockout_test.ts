import { deepEqual, equal } from "node:assert/strict";
import { afterFailure, bucketKey, EMPTY_BUCKET, FAILURE_MEMORY_MS, lockMsFor } from "./lockout.ts";

const schedule: { failures: number; lockMs: number }[] = [
  { failures: 1, lockMs: 0 },
  { failures: 4, lockMs: 0 },
  { failures: 5, lockMs: 60_000 },
  { failures: 14, lockMs: 60_000 },
  { failures: 15, lockMs: 900_000 },
  { failures: 400, lockMs: 900_000 },
];
for (const c of schedule) {
  Deno.test(`lockMsFor() locks ${c.lockMs / 1000} s after ${c.failures} failures`, () => {
    equal(lockMsFor(c.failures), c.lockMs);
  });
}

Deno.test("afterFailure() locks on the fifth failure and again on each one after", () => {
  let state = EMPTY_BUCKET;
  for (let i = 1; i <= 4; i++) state = afterFailure(state, 1_000 * i);
  deepEqual(state, { failures: 4, lockedUntil: 0, lastFailureAt: 4_000 });
  state = afterFailure(state, 5_000);
  deepEqual(state, { failures: 5, lockedUntil: 65_000, lastFailureAt: 5_000 });
  state = afterFailure(state, 70_000);
  equal(state.lockedUntil, 130_000);
});

Deno.test("afterFailure() forgets failures older than a day", () => {
  const old = { failures: 14, lockedUntil: 0, lastFailureAt: 0 };
  deepEqual(afterFailure(old, FAILURE_MEMORY_MS + 1), {
    failures: 1,
    lockedUntil: 0,
    lastFailureAt: FAILURE_MEMORY_MS + 1,
  });
});

Deno.test("bucketKey() keys a known device apart from every unknown caller", () => {
  equal(bucketKey(null), "anonymous");
  equal(bucketKey("ab12"), "device:ab12");
});
