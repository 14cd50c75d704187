import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { AuditLog } from "./log.ts";
import { AuditError } from "./offline/errors.ts";
import { readEntries } from "./offline/read.ts";
import { listSegments } from "./offline/segments.ts";
import { verifyLog } from "./offline/verify.ts";
import { queryLog } from "./query.ts";
import { testEntry, withDir } from "./_testing.ts";

Deno.test("AuditLog acknowledges concurrent appends with consecutive seqs, all durable and signed", async () => {
  await withDir(async (dir) => {
    const { log } = await AuditLog.open(dir);
    const seqs = await Promise.all(Array.from({ length: 300 }, (_, i) => log.append(testEntry(i))));
    deepEqual([...seqs].sort((a, b) => a - b), Array.from({ length: 300 }, (_, i) => i));
    equal((await log.settledHead())?.head.size, 300);
    await log.close();
    const report = await verifyLog(dir);
    ok(report.isIntact, report.detail);
    equal(report.entries, 300);
    const again = await AuditLog.open(dir);
    equal(again.log.size, 300);
    equal(again.recovery.rehashed, 0, "a clean restart rehashes nothing");
    equal(await again.log.append(testEntry(300)), 300);
    await again.log.close();
  });
});

Deno.test("AuditLog rotates segments by size and the tree spans them", async () => {
  await withDir(async (dir) => {
    const { log } = await AuditLog.open(dir, { segmentMaxBytes: 4096 });
    for (let i = 0; i < 60; i++) await log.append(testEntry(i));
    await log.close();
    const { segments } = await listSegments(dir);
    ok(segments.length > 3, `${segments.length} segments`);
    equal(segments[0]?.firstSeq, 0);
    const sealed = await Deno.stat(segments[0]?.path as string);
    equal((sealed.mode as number) & 0o777, 0o400, "a rotated segment is read-only");
    const report = await verifyLog(dir);
    ok(report.isIntact, report.detail);
    equal(report.entries, 60);
    equal(report.segments, segments.length);
    const entries = await readEntries(dir, { from: 0, to: 59 });
    deepEqual(
      entries.map((e) => e.entry.subject),
      Array.from({ length: 60 }, (_, i) => `subject ${i}`),
    );
  });
});

Deno.test("AuditLog refuses an entry it cannot encode before it takes a seq", async () => {
  await withDir(async (dir) => {
    const { log } = await AuditLog.open(dir);
    await rejects(
      log.append(testEntry(0, { evidence: { when: new Date() } })),
      (err: unknown) => err instanceof AuditError && err.code === "AUDIT_ENTRY_INVALID",
    );
    equal(await log.append(testEntry(1)), 0);
    await log.close();
    await rejects(
      log.append(testEntry(2)),
      (err: unknown) => err instanceof AuditError && err.code === "AUDIT_UNAVAILABLE",
    );
  });
});

Deno.test("AuditLog creates the signing key 0600 and refuses one readable by others", async () => {
  await withDir(async (dir) => {
    const { log, recovery } = await AuditLog.open(dir);
    ok(recovery.isKeyNew);
    await log.close();
    equal(((await Deno.stat(`${dir}/keys/signing.key`)).mode as number) & 0o777, 0o600);
    ok(
      (await Deno.readTextFile(`${dir}/keys/signing.pub`)).startsWith("-----BEGIN PUBLIC KEY-----"),
    );
    await Deno.chmod(`${dir}/keys/signing.key`, 0o644);
    await rejects(
      AuditLog.open(dir),
      (err: unknown) =>
        err instanceof AuditError && err.code === "AUDIT_KEY_INVALID" && /0600/.test(err.message),
    );
  });
});

const encoder = new TextEncoder();
const tails: { name: string; tail: (line: string) => string; kept: number; cut: boolean }[] = [
  { name: "a half-written entry line", tail: (line) => line.slice(0, 25), kept: 0, cut: true },
  { name: "zero bytes from a torn block", tail: () => "\0\0\0\0\n", kept: 0, cut: true },
  {
    name: "a complete entry whose head was lost",
    tail: (line) => line + "\n",
    kept: 1,
    cut: false,
  },
  {
    name: "a complete entry followed by a torn one",
    tail: (line) => line + "\n" + line.replace('"seq":3', '"seq":4').slice(0, 40),
    kept: 1,
    cut: true,
  },
];
for (const c of tails) {
  Deno.test(`AuditLog.open() after ${c.name} keeps every valid entry, cuts the rest and verifies`, async () => {
    await withDir(async (dir) => {
      const first = await AuditLog.open(dir);
      for (let i = 0; i < 3; i++) await first.log.append(testEntry(i));
      await first.log.close();
      const segment = `${dir}/segments/00000000000000000000.jsonl`;
      // A line exactly as the writer would have written entry 3.
      const line = (await Deno.readTextFile(segment)).split("\n")[0]?.replace('"seq":0', '"seq":3')
        .replace('"subject":"subject 0"', '"subject":"subject 3"').replace(
          '"i":0',
          '"i":3',
        ) as string;
      await Deno.writeFile(segment, encoder.encode(c.tail(line)), { append: true });
      const second = await AuditLog.open(dir);
      equal(second.recovery.sealedEntries, c.kept);
      equal(second.recovery.truncatedBytes > 0, c.cut);
      if (c.cut) {
        ok(second.recovery.quarantined?.startsWith("recovered/"));
        ok((await Deno.stat(`${dir}/${second.recovery.quarantined}`)).size > 0);
      }
      equal(second.log.size, 3 + c.kept);
      equal(await second.log.append(testEntry(9)), 3 + c.kept);
      await second.log.close();
      const report = await verifyLog(dir);
      ok(report.isIntact, report.detail);
    });
  });
}

Deno.test("AuditLog.open() rebuilds a lost or damaged stored tree from the segments", async () => {
  await withDir(async (dir) => {
    const first = await AuditLog.open(dir);
    for (let i = 0; i < 20; i++) await first.log.append(testEntry(i));
    const root = (await first.log.settledHead())?.head.root;
    await first.log.close();
    await Deno.writeFile(`${dir}/tree.bin`, new Uint8Array(64)); // garbage hashes
    const second = await AuditLog.open(dir);
    ok(second.recovery.isTreeRebuilt);
    equal(second.log.size, 20);
    equal((await second.log.settledHead())?.head.root, root);
    await second.log.close();
    ok((await verifyLog(dir)).isIntact);
  });
});

Deno.test("queryLog() filters by control, type, decision, time and text, newest first, paginated", async () => {
  await withDir(async (dir) => {
    let clock = Date.parse("2026-01-01T00:00:00Z");
    const { log } = await AuditLog.open(dir, { now: () => new Date(clock) });
    for (let i = 0; i < 30; i++) {
      clock += 60_000;
      await log.append(testEntry(i, {
        control: i % 2 ? "policy" : "gateway",
        type: i % 3 ? "policy.decision" : "gateway.request_denied",
        decision: i % 5 ? "allow" : "deny",
        subject: i === 17 ? "Egress to EXAMPLE.org" : `subject ${i}`,
      }));
    }
    const at = { size: log.size };
    const seqs = async (f: Parameters<typeof queryLog>[1]) =>
      (await queryLog(dir, f, at)).entries.map((e) => e.seq);
    deepEqual(await seqs({ limit: 3 }), [29, 28, 27]);
    deepEqual(await seqs({ limit: 3, before: 27 }), [26, 25, 24]);
    deepEqual(await seqs({ limit: 50, decision: "deny" }), [25, 20, 15, 10, 5, 0]);
    deepEqual(await seqs({ limit: 50, control: "policy", type: "gateway.request_denied" }), [
      27,
      21,
      15,
      9,
      3,
    ]);
    deepEqual(await seqs({ limit: 50, text: "example.org" }), [17]);
    deepEqual(
      await seqs({ limit: 50, from: "2026-01-01T00:05:00Z", to: "2026-01-01T00:08:00Z" }),
      [6, 5, 4],
    );
    const page = await queryLog(dir, { limit: 4, decision: "deny" }, at);
    equal(page.next, 10);
    equal(page.total, 30);
    const last = await queryLog(
      dir,
      { limit: 2, before: page.next as number, decision: "deny" },
      at,
    );
    deepEqual(last.entries.map((e) => e.seq), [5, 0]);
    equal(last.next, null);
    await log.close();
  });
});
