/**
 * Tampering with a real log, each case detected at the exact sequence number with its kind.
 * The log has 12 entries appended one at a time, so every entry has its own signed head and
 * the segment's lines alternate: entry 0, head 1, entry 1, head 2, …
 */
import { equal, ok } from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { AuditLog } from "./log.ts";
import { signHead, type SigningKey } from "./keys.ts";
import { canonicalJson } from "./offline/canonical.ts";
import { readHeadLine, type SignedHead } from "./offline/format.ts";
import { headHash, publicKeyInfo, readPublicKey } from "./offline/keys.ts";
import { leafHash, MerkleFrontier, toHex } from "./offline/merkle.ts";
import { type TamperKind, verifyLog } from "./offline/verify.ts";
import { testEntry, withDir } from "./_testing.ts";

const SEGMENT = "segments/00000000000000000000.jsonl";
const ENTRIES = 12;

async function makeLog(dir: string, options: { segmentMaxBytes?: number } = {}): Promise<void> {
  const { log } = await AuditLog.open(dir, options);
  for (let i = 0; i < ENTRIES; i++) await log.append(testEntry(i));
  await log.close();
}

async function readLines(dir: string, name = SEGMENT): Promise<string[]> {
  return (await Deno.readTextFile(`${dir}/${name}`)).split("\n").slice(0, -1);
}

async function writeText(dir: string, text: string, name = SEGMENT): Promise<void> {
  await Deno.chmod(`${dir}/${name}`, 0o600);
  await Deno.writeTextFile(`${dir}/${name}`, text);
}

function entryIndex(seq: number): number {
  return 2 * seq;
}

/** Re-signs every head from line `from` on with `key`, over the lines as they now are. */
function resign(lines: string[], key: SigningKey): string[] {
  const frontier = new MerkleFrontier();
  let prev = "";
  return lines.map((line) => {
    if (!line.startsWith('{"head":')) {
      frontier.push(leafHash(new TextEncoder().encode(line)));
      return line;
    }
    const old = readHeadLine(line) as SignedHead;
    const signed = signHead({
      ...old.head,
      root: toHex(frontier.root()),
      prev,
      key: key.publicKey.id,
    }, key);
    prev = headHash(signed);
    return canonicalJson(signed);
  });
}

function otherKey(): SigningKey {
  const pair = generateKeyPairSync("ed25519");
  return { privateKey: pair.privateKey, publicKey: publicKeyInfo(pair.publicKey) };
}

interface Case {
  name: string;
  edit: (lines: string[]) => string;
  seq: number | null;
  kind: TamperKind;
}

const cases: Case[] = [
  {
    name: "a flipped byte in an entry",
    edit(lines) {
      const i = entryIndex(5);
      const line = lines[i] as string;
      const at = line.indexOf("subject 5") + 8;
      lines[i] = line.slice(0, at) + String.fromCharCode(line.charCodeAt(at) ^ 1) +
        line.slice(at + 1);
      return lines.join("\n") + "\n";
    },
    seq: 5,
    kind: "modified",
  },
  {
    name: "a deleted entry",
    edit: (lines) => lines.filter((_, i) => i !== entryIndex(5)).join("\n") + "\n",
    seq: 5,
    kind: "deleted",
  },
  {
    name: "two swapped entries",
    edit(lines) {
      const a = lines[entryIndex(3)] as string;
      lines[entryIndex(3)] = lines[entryIndex(8)] as string;
      lines[entryIndex(8)] = a;
      return lines.join("\n") + "\n";
    },
    seq: 3,
    kind: "reordered",
  },
  {
    name: "a truncated log",
    edit: (lines) =>
      lines.slice(0, entryIndex(7)).join("\n") + "\n" + lines[entryIndex(7)]?.slice(0, 30),
    seq: 7,
    kind: "truncated",
  },
  {
    name: "a log cut cleanly after a head",
    edit: (lines) => lines.slice(0, entryIndex(7)).join("\n") + "\n",
    seq: 7,
    kind: "truncated",
  },
  {
    name: "an inserted entry",
    edit(lines) {
      const forged = (lines[entryIndex(5)] as string).replace("subject 5", "subject X");
      lines.splice(entryIndex(5), 0, forged);
      return lines.join("\n") + "\n";
    },
    seq: 5,
    kind: "inserted",
  },
  {
    name: "a replaced head",
    edit(lines) {
      const head = readHeadLine(lines[entryIndex(9) + 1] as string) as SignedHead;
      lines[entryIndex(9) + 1] = canonicalJson({
        ...head,
        head: { ...head.head, root: "0".repeat(64) },
      });
      return lines.join("\n") + "\n";
    },
    seq: 9,
    kind: "bad-signature",
  },
  {
    name: "an earlier genuine head put in place of a later one",
    edit(lines) {
      lines[entryIndex(9) + 1] = lines[entryIndex(2) + 1] as string;
      return lines.join("\n") + "\n";
    },
    seq: 9,
    kind: "bad-signature",
  },
  {
    name: "an entry rewritten and its heads re-signed with another key",
    edit(lines) {
      lines[entryIndex(6)] = (lines[entryIndex(6)] as string).replace('"decision"', '"decision"')
        .replace("subject 6", "subject 6 (rewritten)");
      const resigned = resign(lines, otherKey());
      // Keep the genuine heads before the rewrite, as an attacker would.
      return [...lines.slice(0, entryIndex(6)), ...resigned.slice(entryIndex(6))].join("\n") + "\n";
    },
    seq: 6,
    kind: "bad-signature",
  },
];

for (const c of cases) {
  Deno.test(`verifyLog() reports ${c.name} at seq ${c.seq} as ${c.kind}`, async () => {
    await withDir(async (dir) => {
      await makeLog(dir);
      ok((await verifyLog(dir)).isIntact, "intact before tampering");
      await writeText(dir, c.edit(await readLines(dir)));
      const report = await verifyLog(dir);
      equal(report.isIntact, false);
      equal(report.kind, c.kind, report.detail);
      equal(report.firstBadSeq, c.seq, report.detail);
      ok(report.detail.length > 10);
    });
  });
}

Deno.test("verifyLog() with a trusted public key reports a log re-signed under a replaced key file", async () => {
  await withDir(async (dir) => {
    await makeLog(dir);
    const trusted = await readPublicKey(`${dir}/keys/signing.pub`);
    const key = otherKey();
    const lines = await readLines(dir);
    lines[entryIndex(4)] = (lines[entryIndex(4)] as string).replace("subject 4", "subject 4!");
    await writeText(dir, resign(lines, key).join("\n") + "\n");
    await Deno.writeTextFile(`${dir}/keys/signing.pub`, key.publicKey.pem);
    ok((await verifyLog(dir)).isIntact, "the replaced key file vouches for the forgery");
    const report = await verifyLog(dir, { publicKey: trusted });
    equal(report.kind, "bad-signature");
    equal(report.firstBadSeq, 0);
  });
});

Deno.test("verifyLog() reports a deleted segment and a stray file", async () => {
  await withDir(async (dir) => {
    await makeLog(dir, { segmentMaxBytes: 1500 });
    const names = [...Deno.readDirSync(`${dir}/segments`)].map((e) => e.name).sort();
    ok(names.length >= 3, `${names.length} segments`);
    const second = names[1] as string;
    const firstSeqOfSecond = Number(second.slice(0, 20));
    await Deno.remove(`${dir}/segments/${second}`);
    let report = await verifyLog(dir);
    equal(report.kind, "deleted");
    equal(report.firstBadSeq, firstSeqOfSecond);
    await Deno.writeTextFile(`${dir}/segments/notes.txt`, "hello");
    report = await verifyLog(dir);
    equal(report.kind, "malformed");
    ok(report.detail.includes("notes.txt"));
  });
});

const malformed: { name: string; bytes: () => Uint8Array; kind: TamperKind }[] = [
  {
    name: "random binary",
    bytes: () => crypto.getRandomValues(new Uint8Array(5000)).map((b) => (b === 10 ? 11 : b)),
    kind: "truncated",
  },
  {
    name: "a line longer than 1 MiB",
    bytes: () => new Uint8Array(1_200_000).fill(0x61),
    kind: "malformed",
  },
  {
    name: "JSON that is not an entry, with a broken head",
    bytes: () => new TextEncoder().encode('{"actor":1}\n{"head":{"v":2},"sig":"x"}\n'),
    kind: "bad-signature",
  },
  { name: "an empty file", bytes: () => new Uint8Array(0), kind: "truncated" },
];
for (const c of malformed) {
  Deno.test(`verifyLog() reports a segment holding ${c.name} clearly, without crashing`, async () => {
    await withDir(async (dir) => {
      await makeLog(dir);
      await Deno.writeFile(`${dir}/${SEGMENT}`, c.bytes());
      const report = await verifyLog(dir);
      equal(report.isIntact, false);
      equal(report.kind, c.kind, report.detail);
      equal(report.firstBadSeq, 0);
    });
  });
  Deno.test(`AuditLog.open() recovers from a segment holding ${c.name} and keeps logging`, async () => {
    await withDir(async (dir) => {
      await makeLog(dir);
      await Deno.writeFile(`${dir}/${SEGMENT}`, c.bytes());
      const { log, recovery } = await AuditLog.open(dir);
      ok(recovery.isTreeRebuilt || recovery.truncatedBytes >= 0);
      await log.append(testEntry(99));
      await log.close();
      const report = await verifyLog(dir);
      ok(report.entries >= 1);
    });
  });
}

Deno.test("verifyLog() reports a log that lost entries a trusted head covers", async () => {
  await withDir(async (dir) => {
    await makeLog(dir);
    const trusted = readHeadLine(
      (await readLines(dir))[entryIndex(11) + 1] as string,
    ) as SignedHead;
    const lines = await readLines(dir);
    await writeText(dir, lines.slice(0, entryIndex(8)).join("\n") + "\n");
    await Deno.remove(`${dir}/tree.bin`);
    await Deno.remove(`${dir}/tree.json`);
    ok((await verifyLog(dir)).isIntact, "without the trusted head a clean cut is invisible");
    const report = await verifyLog(dir, { trustedHeads: [trusted] });
    equal(report.kind, "truncated");
    equal(report.firstBadSeq, 8);
  });
});
