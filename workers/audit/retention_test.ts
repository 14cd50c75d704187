/**
 * Retention by size: the oldest segments go, a signed anchor stands for them, the rest still
 * verifies and proves; moving the boundary without the key, deleting more, or a crash in the
 * middle of a run are each handled.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { AuditLog } from "./log.ts";
import { signAnchor } from "./keys.ts";
import { canonicalJson } from "./offline/canonical.ts";
import { type SignedAnchor, SignedAnchorSchema, type SignedHead } from "./offline/format.ts";
import { publicKeyInfo, readPublicKey } from "./offline/keys.ts";
import { proveConsistency, proveInclusion, readEntries } from "./offline/read.ts";
import { listSegments, type SegmentInfo } from "./offline/segments.ts";
import { verifyLog } from "./offline/verify.ts";
import { testEntry, withDir } from "./_testing.ts";

type Pruned = NonNullable<Awaited<ReturnType<AuditLog["prune"]>>>;

/** A log of `n` entries, one batch each, rotated every ~2 KiB (many small segments). */
async function makeLog(dir: string, n: number): Promise<AuditLog> {
  const { log } = await AuditLog.open(dir, { segmentMaxBytes: 4096 });
  for (let i = 0; i < n; i++) await log.append(testEntry(i, { data: { pad: "x".repeat(200) } }));
  return log;
}

async function segmentBytes(dir: string): Promise<number> {
  return (await listSegments(dir)).segments.reduce((n, s) => n + s.size, 0);
}

async function readAnchorFile(dir: string): Promise<SignedAnchor> {
  return SignedAnchorSchema.parse(JSON.parse(await Deno.readTextFile(`${dir}/anchor.json`)));
}

Deno.test("prune deletes the oldest segments down to the budget and the log still verifies", async () => {
  await withDir(async (dir) => {
    const log = await makeLog(dir, 120);
    const before = (await listSegments(dir)).segments;
    ok(before.length > 5, `${before.length} segments`);
    const result = await log.prune(16 * 1024);
    ok(result, "something was deleted");
    const after = (await listSegments(dir)).segments;
    equal(after[0]?.firstSeq, result.before);
    equal(before.filter((s) => s.firstSeq < result.before).length, result.segments);
    ok(
      await segmentBytes(dir) <= 16 * 1024 + 4096,
      "within the budget (plus the segment that tips it)",
    );
    // The run is itself on the record.
    const last = (await readEntries(dir, { from: log.size - 1, to: log.size - 1 }))[0];
    equal(last?.entry.type, "audit.pruned");
    deepEqual(last?.entry.evidence.before, result.before);
    for (let i = 0; i < 5; i++) await log.append(testEntry(1000 + i));
    const head = await log.settledHead();
    await log.close();
    const report = await verifyLog(dir);
    ok(report.isIntact, report.detail);
    equal(report.prunedBefore, result.before);
    equal(report.entries, log.size - result.before);
    ok(report.detail.includes("deleted by retention"), report.detail);
    // Proofs: a kept entry proves into the latest head; a consistency proof from before the
    // boundary still works (tree.bin keeps every stored hash); a deleted entry is gone.
    const proof = await proveInclusion(dir, { seq: result.before + 1, head: head as SignedHead });
    equal(proof.seq, result.before + 1);
    const consistency = await proveConsistency(dir, { from: 3, head: head as SignedHead });
    equal(consistency.from, 3);
    await rejects(
      () => proveInclusion(dir, { seq: 0, head: head as SignedHead }),
      /deleted by retention/,
    );
  });
});

Deno.test("within the budget prune deletes nothing, and the written segment is never deleted", async () => {
  await withDir(async (dir) => {
    const log = await makeLog(dir, 30);
    equal(await log.prune(1024 * 1024), null);
    const active = (await listSegments(dir)).segments.at(-1);
    const result = await log.prune(0);
    const { segments } = await listSegments(dir);
    equal(segments[0]?.name, active?.name, "the segment being written is kept");
    equal(segments[0]?.firstSeq, result?.before);
    await log.append(testEntry(99));
    await log.close();
    ok((await verifyLog(dir)).isIntact);
  });
});

Deno.test("a log pruned twice reopens from its checkpoint and from the anchor alone", async () => {
  await withDir(async (dir) => {
    let log = await makeLog(dir, 60);
    const first = await log.prune(12 * 1024);
    for (let i = 0; i < 60; i++) await log.append(testEntry(200 + i));
    const second = await log.prune(12 * 1024);
    ok(first && second && second.before > first.before);
    equal(second.from, first.before);
    const anchor = await readAnchorFile(dir);
    equal(anchor.anchor.segments, first.segments + second.segments, "the anchor counts every run");
    await log.close();
    // Without the checkpoint the writer rehashes from the anchor over the kept segments.
    await Deno.remove(`${dir}/tree.json`);
    ({ log } = await AuditLog.open(dir, { segmentMaxBytes: 4096 }));
    await log.append(testEntry(999));
    await log.close();
    const report = await verifyLog(dir);
    ok(report.isIntact, report.detail);
    equal(report.prunedBefore, second.before);
  });
});

Deno.test("deleting one more segment than the anchor covers is detected as deleted", async () => {
  await withDir(async (dir) => {
    const log = await makeLog(dir, 80);
    const result = await log.prune(16 * 1024);
    await log.close();
    const { segments } = await listSegments(dir);
    await Deno.remove((segments[0] as SegmentInfo).path);
    const report = await verifyLog(dir);
    equal(report.isIntact, false);
    equal(report.kind, "deleted");
    equal(report.firstBadSeq, (result as Pruned).before);
    // And the writer refuses to rebuild over the gap instead of inventing a tree.
    await Deno.remove(`${dir}/tree.json`);
    await rejects(() => AuditLog.open(dir), /without a retention anchor|deleted outside/);
  });
});

Deno.test("an anchor moved without the log's key is a bad signature; one signed by another key too", async () => {
  await withDir(async (dir) => {
    const log = await makeLog(dir, 80);
    await log.prune(16 * 1024);
    await log.close();
    const original = await readAnchorFile(dir);
    await Deno.writeTextFile(
      `${dir}/anchor.json`,
      canonicalJson({ ...original, anchor: { ...original.anchor, bytes: 1 } }),
    );
    let report = await verifyLog(dir);
    equal(report.kind, "bad-signature");
    ok(report.detail.includes("not signed by the log's key"), report.detail);
    const pair = generateKeyPairSync("ed25519");
    const other = { privateKey: pair.privateKey, publicKey: publicKeyInfo(pair.publicKey) };
    await Deno.writeTextFile(
      `${dir}/anchor.json`,
      canonicalJson(signAnchor({ ...original.anchor, key: other.publicKey.id }, other)),
    );
    report = await verifyLog(dir);
    equal(report.kind, "bad-signature");
    await Deno.writeTextFile(`${dir}/anchor.json`, "{ not json");
    report = await verifyLog(dir);
    equal(report.kind, "malformed");
    ok(report.detail.includes("not a valid retention anchor"), report.detail);
  });
});

Deno.test("an older anchor put back after a second run leaves a gap that is detected", async () => {
  await withDir(async (dir) => {
    const log = await makeLog(dir, 60);
    await log.prune(12 * 1024);
    const older = await Deno.readTextFile(`${dir}/anchor.json`);
    for (let i = 0; i < 60; i++) await log.append(testEntry(300 + i));
    const second = await log.prune(12 * 1024);
    await log.close();
    await Deno.writeTextFile(`${dir}/anchor.json`, older);
    const report = await verifyLog(dir);
    equal(report.kind, "deleted");
    ok(report.firstBadSeq !== null && report.firstBadSeq < (second as Pruned).before);
  });
});

Deno.test("a crash after the anchor is written but before the files go is finished at open", async () => {
  await withDir(async (dir) => {
    const log = await makeLog(dir, 80);
    const copy = `${dir}-copy`;
    await log.close();
    await Deno.mkdir(copy);
    for (const seg of (await listSegments(dir)).segments) {
      await Deno.mkdir(`${copy}/segments`, { recursive: true });
      await Deno.copyFile(seg.path, `${copy}/segments/${seg.name}`);
    }
    const { log: reopened } = await AuditLog.open(dir, { segmentMaxBytes: 4096 });
    const result = await reopened.prune(16 * 1024);
    await reopened.close();
    // Restore the deleted files: the state a crash between anchor and deletion leaves.
    for (const entry of Deno.readDirSync(`${copy}/segments`)) {
      const target = `${dir}/segments/${entry.name}`;
      try {
        await Deno.lstat(target);
      } catch {
        await Deno.copyFile(`${copy}/segments/${entry.name}`, target);
      }
    }
    await Deno.remove(copy, { recursive: true });
    const halfway = await verifyLog(dir);
    ok(halfway.isIntact, `leftover segments before the anchor are ignored: ${halfway.detail}`);
    const { log: again, recovery } = await AuditLog.open(dir, { segmentMaxBytes: 4096 });
    equal(recovery.prunedSegments, (result as Pruned).segments);
    equal((await listSegments(dir)).segments[0]?.firstSeq, (result as Pruned).before);
    await again.close();
    ok((await verifyLog(dir)).isIntact);
  });
});

Deno.test("verification with a trusted head inside the deleted range checks what it still can", async () => {
  await withDir(async (dir) => {
    const log = await makeLog(dir, 40);
    const early = await log.settledHead();
    for (let i = 0; i < 60; i++) await log.append(testEntry(500 + i));
    await log.prune(8 * 1024);
    await log.close();
    const report = await verifyLog(dir, {
      publicKey: await readPublicKey(`${dir}/keys/signing.pub`),
      trustedHeads: [early as SignedHead],
    });
    ok(report.isIntact, report.detail);
  });
});
