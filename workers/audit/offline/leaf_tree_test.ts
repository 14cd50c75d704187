/**
 * The in-place tree builder of verification against an independent RFC 9162 MTH (recursion
 * over arrays, hashing with @noble/hashes), and line ranges read into one reused buffer
 * against the plain line reader, across chunk borders.
 */
import { equal, rejects } from "node:assert/strict";
import { sha256 } from "@noble/hashes/sha256";
import { LeafTree } from "./leaf_tree.ts";
import { leafHash, MerkleFrontier, toHex } from "./merkle.ts";
import { MAX_LINE_BYTES } from "./format.ts";
import { scanLineRanges, scanLines } from "./segments.ts";

function mth(lines: Uint8Array[]): Uint8Array {
  if (lines.length === 0) return sha256(new Uint8Array(0));
  if (lines.length === 1) return sha256(Uint8Array.of(0, ...(lines[0] as Uint8Array)));
  let k = 1;
  while (k * 2 < lines.length) k *= 2;
  return sha256(Uint8Array.of(1, ...mth(lines.slice(0, k)), ...mth(lines.slice(k))));
}

Deno.test("LeafTree roots equal the RFC 9162 tree hash for every size up to 300", () => {
  const lines = Array.from(
    { length: 300 },
    (_, i) => crypto.getRandomValues(new Uint8Array(1 + (i * 53) % 700)),
  );
  const tree = new LeafTree(1024);
  equal(toHex(tree.root()), toHex(mth([])));
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as Uint8Array;
    // Dirty the byte before the line: the leaf prefix borrows it and must restore it.
    tree.window.fill(0xee, 0, 8);
    tree.window.set(line, 8);
    tree.pushWindow(8, 8 + line.length);
    equal(tree.window[7], 0xee, `the byte before leaf ${i} is restored`);
    equal(toHex(tree.root()), toHex(mth(lines.slice(0, i + 1))), `size ${i + 1}`);
  }
  equal(tree.size, 300);
});

Deno.test("two LeafTrees do not share a frontier", () => {
  const a = new LeafTree(64);
  const b = new LeafTree(64);
  a.window.set([1, 2, 3], 1);
  a.pushWindow(1, 4);
  a.pushWindow(1, 4);
  b.window.set([1, 2, 3], 1);
  b.pushWindow(1, 4);
  const line = Uint8Array.of(1, 2, 3);
  equal(toHex(a.root()), toHex(mth([line, line])));
  equal(toHex(b.root()), toHex(mth([line])));
});

Deno.test("scanLineRanges into one buffer sees the same lines as scanLines across chunk borders", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const text = Array.from({ length: 500 }, (_, i) => "x".repeat((i * 7919) % 300) + i)
      .join("\n") + "\ntorn tail";
    await Deno.writeTextFile(`${dir}/s.jsonl`, text);
    const plain: string[] = [];
    const plainScan = await scanLines(`${dir}/s.jsonl`, (line, offset) => {
      plain.push(`${offset}:${new TextDecoder().decode(line)}`);
    }, { chunkBytes: 97 });
    const ranged: string[] = [];
    const into = new Uint8Array(97 + MAX_LINE_BYTES + 1);
    const rangedScan = await scanLineRanges(`${dir}/s.jsonl`, (chunk, start, end, offset) => {
      equal(chunk.buffer, into.buffer, "every chunk is read into the caller's buffer");
      ranged.push(`${offset}:${new TextDecoder().decode(chunk.subarray(start, end))}`);
    }, { chunkBytes: 97, into });
    equal(ranged.length, 500);
    equal(ranged.join("\n"), plain.join("\n"));
    equal(JSON.stringify(rangedScan), JSON.stringify(plainScan));
    equal(rangedScan.torn?.length, "torn tail".length);
    await rejects(
      () =>
        scanLineRanges(`${dir}/s.jsonl`, () => {}, { chunkBytes: 97, into: new Uint8Array(97) }),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a LeafTree started from a frontier continues that tree", () => {
  const lines = Array.from({ length: 40 }, (_, i) => new TextEncoder().encode(`line ${i}`));
  for (const at of [1, 5, 8, 13, 31]) {
    const start = new MerkleFrontier();
    for (const line of lines.slice(0, at)) start.push(leafHash(line));
    const tree = new LeafTree(64, start);
    for (const line of lines.slice(at)) {
      tree.window.set(line, 1);
      tree.pushWindow(1, 1 + line.length);
    }
    equal(tree.size, 40);
    equal(toHex(tree.root()), toHex(mth(lines)), `continued from ${at}`);
  }
});
