import assert, { deepEqual, equal } from "node:assert/strict";
import { AuditStore } from "./store.ts";

function entry(i: number) {
  return {
    ts: new Date(0).toISOString(),
    control: "test",
    type: "test.entry",
    actor: "tester",
    subject: `s${i}`,
    evidence: {},
    data: { i },
  };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("AuditStore acknowledges concurrent appends with consecutive seqs, all durable", async () => {
  await withDir(async (dir) => {
    const { store } = await AuditStore.open(`${dir}/log.jsonl`);
    const seqs = await Promise.all(Array.from({ length: 100 }, (_, i) => store.append(entry(i))));
    deepEqual([...seqs].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
    await store.close();
    const lines = (await Deno.readTextFile(`${dir}/log.jsonl`)).trim().split("\n");
    equal(lines.length, 100);
  });
});

const torn: { name: string; tail: string }[] = [
  { name: "a half-written last line", tail: '{"seq":3,"ts":"x","contr' },
  { name: "a complete but invalid last line", tail: '{"seq":3,"garbage":true}\n' },
  { name: "zero bytes from a torn block", tail: "\0\0\0\0\n" },
];
for (const c of torn) {
  Deno.test(`AuditStore.open() truncates ${c.name} and continues the sequence`, async () => {
    await withDir(async (dir) => {
      const path = `${dir}/log.jsonl`;
      const first = await AuditStore.open(path);
      for (let i = 0; i < 3; i++) await first.store.append(entry(i));
      await first.store.close();
      const clean = await Deno.readTextFile(path);
      await Deno.writeTextFile(path, c.tail, { append: true });
      const second = await AuditStore.open(path);
      equal(second.truncatedBytes, new TextEncoder().encode(c.tail).length);
      equal(await Deno.readTextFile(path), clean);
      equal(await second.store.append(entry(3)), 3);
      const page = await second.store.query({ limit: 2 });
      deepEqual(page.entries.map((e) => e.seq), [3, 2]);
      equal(page.next, 2);
      await second.store.close();
      assert(page.total === 4);
    });
  });
}
