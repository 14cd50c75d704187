import { equal, ok, rejects } from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { AuditLog } from "./log.ts";
import { buildBundle, checkBundle } from "./offline/bundle.ts";
import { AuditError } from "./offline/errors.ts";
import type { Bundle } from "./offline/format.ts";
import { publicKeyInfo, readPublicKey } from "./offline/keys.ts";
import { proveConsistency, proveInclusion, readLatestHead } from "./offline/read.ts";
import { fromHex, leafHash, verifyConsistency, verifyInclusion } from "./offline/merkle.ts";
import { testEntry, withDir } from "./_testing.ts";

async function exported(dir: string, from: number, to: number): Promise<Bundle> {
  const { log } = await AuditLog.open(dir, { segmentMaxBytes: 2048 });
  await Promise.all(Array.from({ length: 40 }, (_, i) => log.append(testEntry(i))));
  for (let i = 40; i < 50; i++) await log.append(testEntry(i));
  const head = await log.settledHead();
  await log.close();
  return await buildBundle(dir, {
    from,
    to,
    head: head as NonNullable<typeof head>,
    publicKeyPem: (await readPublicKey(`${dir}/keys/signing.pub`)).pem,
  });
}

const tampers: { name: string; edit: (b: Bundle) => void; seq: number | null }[] = [
  {
    name: "an altered entry",
    edit: (b) => {
      const e = b.entries[3] as Bundle["entries"][number];
      e.line = e.line.replace("subject 13", "subject 31");
    },
    seq: 13,
  },
  { name: "a dropped entry", edit: (b) => void b.entries.splice(2, 1), seq: 12 },
  {
    name: "a wrong proof",
    edit: (b) => void (b.entries[1] as Bundle["entries"][number]).proof.reverse(),
    seq: 11,
  },
  {
    name: "an altered head",
    edit: (b) => void (b.head.head.size = b.head.head.size + 1),
    seq: null,
  },
];

Deno.test("checkBundle() accepts an exported range with only the public key", async () => {
  await withDir(async (dir) => {
    const bundle = await exported(dir, 10, 20);
    const key = await readPublicKey(`${dir}/keys/signing.pub`);
    const report = checkBundle(JSON.parse(JSON.stringify(bundle)), key);
    ok(report.isValid, report.detail);
    equal(report.entries, 11);
    equal(report.from, 10);
    equal(report.to, 20);
    equal(report.size, 50);
  });
});

for (const c of tampers) {
  Deno.test(`checkBundle() rejects a bundle with ${c.name}`, async () => {
    await withDir(async (dir) => {
      const bundle = await exported(dir, 10, 20);
      c.edit(bundle);
      const report = checkBundle(bundle, await readPublicKey(`${dir}/keys/signing.pub`));
      equal(report.isValid, false);
      equal(report.firstBadSeq, c.seq, report.detail);
    });
  });
}

Deno.test("checkBundle() rejects a bundle checked with another key and one that is not a bundle", async () => {
  await withDir(async (dir) => {
    const bundle = await exported(dir, 0, 3);
    const other = publicKeyInfo(generateKeyPairSync("ed25519").publicKey);
    const report = checkBundle(bundle, other);
    equal(report.isValid, false);
    ok(report.detail.includes("not the trusted key"));
    const junk = checkBundle({ format: "x" }, other);
    equal(junk.isValid, false);
    ok(junk.detail.startsWith("Not an audit bundle"));
  });
});

Deno.test("buildBundle() refuses ranges outside the signed tree or too large", async () => {
  await withDir(async (dir) => {
    await exported(dir, 0, 0);
    const head = (await readLatestHead(dir))?.signed as NonNullable<
      Awaited<ReturnType<typeof readLatestHead>>
    >["signed"];
    for (const [from, to] of [[5, 4], [0, 50], [0, 20_000]] as const) {
      await rejects(
        buildBundle(dir, { from, to, head, publicKeyPem: "" }),
        (err: unknown) => err instanceof AuditError && err.code === "AUDIT_RANGE_INVALID",
      );
    }
  });
});

Deno.test("proveInclusion() and proveConsistency() give proofs that check against the signed head", async () => {
  await withDir(async (dir) => {
    await exported(dir, 0, 0);
    const head = (await readLatestHead(dir))?.signed;
    ok(head);
    const root = fromHex(head.head.root);
    for (const seq of [0, 17, 49]) {
      const p = await proveInclusion(dir, { seq, head });
      ok(verifyInclusion(
        { index: seq, size: 50, hash: leafHash(new TextEncoder().encode(p.line)) },
        p.proof.map(fromHex),
        root,
      ));
    }
    for (const from of [1, 13, 32, 50]) {
      const c = await proveConsistency(dir, { from, head });
      ok(
        verifyConsistency(
          { from, to: 50 },
          { from: fromHex(c.fromRoot), to: root },
          c.proof.map(fromHex),
        ),
      );
    }
    await rejects(
      proveInclusion(dir, { seq: 50, head }),
      (err: unknown) => err instanceof AuditError && err.code === "AUDIT_RANGE_INVALID",
    );
  });
});
