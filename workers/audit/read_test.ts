/**
 * Proofs against older signed heads: the head of a given size is found and checked, an
 * inclusion or consistency proof into it verifies against its root, and a size without a
 * head is a clear error — offline and through `secai audit`.
 */
import { equal, ok, rejects } from "node:assert/strict";
import { AuditLog } from "./log.ts";
import { readPublicKey } from "./offline/keys.ts";
import { fromHex, leafHash, verifyConsistency, verifyInclusion } from "./offline/merkle.ts";
import { proveConsistency, proveInclusion, readHeadOfSize } from "./offline/read.ts";
import type { SignedHead } from "./offline/format.ts";
import { auditCommand } from "../../runtime/cli_audit.ts";
import { testEntry, withDir } from "./_testing.ts";

Deno.test("an entry proves into an older signed head found by its size", async () => {
  await withDir(async (dir) => {
    const { log } = await AuditLog.open(dir, { segmentMaxBytes: 4096 });
    const heads = new Map<number, SignedHead>();
    for (let i = 0; i < 40; i++) {
      await log.append(testEntry(i));
      const head = await log.settledHead();
      if (head) heads.set(head.head.size, head);
    }
    await log.close();
    const publicKey = await readPublicKey(`${dir}/keys/signing.pub`);
    const older = await readHeadOfSize(dir, { size: 7, publicKey });
    equal(older.head.root, heads.get(7)?.head.root);
    // Sizes at a segment border too (the head closes the segment before).
    for (const size of [1, 20, 33, 40]) {
      equal((await readHeadOfSize(dir, { size, publicKey })).head.root, heads.get(size)?.head.root);
    }
    const proof = await proveInclusion(dir, { seq: 3, head: older });
    equal(proof.size, 7);
    ok(verifyInclusion(
      { index: 3, size: 7, hash: leafHash(new TextEncoder().encode(proof.line)) },
      proof.proof.map(fromHex),
      fromHex(older.head.root),
    ));
    const consistency = await proveConsistency(dir, { from: 4, head: older });
    ok(verifyConsistency(
      { from: 4, to: 7 },
      { from: fromHex(consistency.fromRoot), to: fromHex(older.head.root) },
      consistency.proof.map(fromHex),
    ));
    await rejects(() => readHeadOfSize(dir, { size: 41, publicKey }), /no signed head of size 41/);
    await rejects(() => proveInclusion(dir, { seq: 7, head: older }), /not in the signed tree/);
  });
});

Deno.test("secai audit proof --size and consistency --to answer for older heads", async () => {
  await withDir(async (dir) => {
    const home = dir;
    const { log } = await AuditLog.open(`${home}/audit`);
    for (let i = 0; i < 10; i++) await log.append(testEntry(i));
    await log.close();
    const out: string[] = [];
    const errors: string[] = [];
    const run = (argv: string[]) =>
      auditCommand([...argv, "--home", home, "--json"], {
        write: (t) => out.push(t),
        writeError: (t) => errors.push(t),
      });
    equal(await run(["proof", "2", "--size", "5"]), 0);
    const proof = JSON.parse(out.pop() as string);
    equal(proof.size, 5);
    equal(proof.head.head.size, 5);
    equal(await run(["consistency", "3", "--to", "6"]), 0);
    equal(JSON.parse(out.pop() as string).to, 6);
    equal(await run(["proof", "2", "--size", "11"]), 1);
    ok(errors.join("\n").includes("no signed head of size 11"), errors.join("\n"));
  });
});
