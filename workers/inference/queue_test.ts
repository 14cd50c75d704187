import { deepEqual, equal } from "node:assert/strict";
import { Mutex, TurnQueue } from "./queue.ts";

const NEVER = new AbortController().signal;

Deno.test("TurnQueue.acquire() grants free turns at once", async () => {
  const queue = new TurnQueue(2, 0);
  equal(await queue.acquire({ timeoutMs: 1000, signal: NEVER }), null);
  equal(await queue.acquire({ timeoutMs: 1000, signal: NEVER }), null);
  equal(queue.running, 2);
});

Deno.test("TurnQueue.acquire() refuses with QUEUE_FULL when turns and queue are taken", async () => {
  const queue = new TurnQueue(1, 1);
  equal(await queue.acquire({ timeoutMs: 1000, signal: NEVER }), null);
  const waiting = queue.acquire({ timeoutMs: 1000, signal: NEVER });
  equal(queue.canAdmit, false);
  equal(await queue.acquire({ timeoutMs: 1000, signal: NEVER }), "QUEUE_FULL");
  queue.release();
  equal(await waiting, null);
});

Deno.test("TurnQueue.release() hands turns to waiters in arrival order", async () => {
  const queue = new TurnQueue(1, 3);
  await queue.acquire({ timeoutMs: 1000, signal: NEVER });
  const order: number[] = [];
  const waits = [1, 2, 3].map((n) =>
    queue.acquire({ timeoutMs: 1000, signal: NEVER }).then(() => order.push(n))
  );
  for (let i = 0; i < 3; i++) queue.release();
  await Promise.all(waits);
  deepEqual(order, [1, 2, 3]);
});

Deno.test("TurnQueue.acquire() gives up with QUEUE_TIMEOUT and leaves the queue", async () => {
  const queue = new TurnQueue(1, 1);
  await queue.acquire({ timeoutMs: 1000, signal: NEVER });
  equal(await queue.acquire({ timeoutMs: 5, signal: NEVER }), "QUEUE_TIMEOUT");
  equal(queue.queued, 0);
});

Deno.test("TurnQueue.acquire() stops waiting when its signal aborts", async () => {
  const queue = new TurnQueue(1, 1);
  await queue.acquire({ timeoutMs: 1000, signal: NEVER });
  const controller = new AbortController();
  const waiting = queue.acquire({ timeoutMs: 1000, signal: controller.signal });
  controller.abort();
  equal(await waiting, "CANCELLED");
  equal(queue.queued, 0);
});

Deno.test("Mutex.run() runs holders one after another even when one fails", async () => {
  const mutex = new Mutex();
  const log: string[] = [];
  const slow = mutex.run(async () => {
    await new Promise((r) => setTimeout(r, 5));
    log.push("a");
    throw new Error("boom");
  });
  const next = mutex.run(() => {
    log.push("b");
    return Promise.resolve(1);
  });
  await slow.catch(() => undefined);
  equal(await next, 1);
  deepEqual(log, ["a", "b"]);
});
