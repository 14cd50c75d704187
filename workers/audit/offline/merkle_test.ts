/**
 * The Merkle code checked against an independent, deliberately plain implementation of RFC
 * 9162 §2.1 written here: recursion over arrays of leaves, hashing with @noble/hashes
 * instead of node:crypto.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { sha256 } from "@noble/hashes/sha256";
import {
  consistencyProof,
  EMPTY_ROOT,
  type HashSource,
  inclusionProof,
  leafHash,
  MerkleFrontier,
  sizeForStoredCount,
  storedCount,
  storedIndex,
  toHex,
  verifyConsistency,
  verifyInclusion,
} from "./merkle.ts";

// ----- the reference: RFC 9162 §2.1 as written -----
function h(...parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return sha256(all);
}
function k(n: number): number {
  let x = 1;
  while (x * 2 < n) x *= 2;
  return x;
}
function mth(d: Uint8Array[]): Uint8Array {
  if (d.length === 0) return sha256(new Uint8Array(0));
  if (d.length === 1) return h(new Uint8Array([0]), d[0] as Uint8Array);
  const s = k(d.length);
  return h(new Uint8Array([1]), mth(d.slice(0, s)), mth(d.slice(s)));
}
function path(m: number, d: Uint8Array[]): Uint8Array[] {
  if (d.length <= 1) return [];
  const s = k(d.length);
  return m < s
    ? [...path(m, d.slice(0, s)), mth(d.slice(s))]
    : [...path(m - s, d.slice(s)), mth(d.slice(0, s))];
}
function subproof(m: number, d: Uint8Array[], b: boolean): Uint8Array[] {
  if (m === d.length) return b ? [] : [mth(d)];
  const s = k(d.length);
  return m <= s
    ? [...subproof(m, d.slice(0, s), b), mth(d.slice(s))]
    : [...subproof(m - s, d.slice(s), false), mth(d.slice(0, s))];
}
// ----- end of the reference -----

const MAX = 33;
const leaves = Array.from({ length: MAX }, (_, i) => new TextEncoder().encode(`entry ${i}`));

/** The stored-hash file in memory: what the writer appends, indexed like tree.bin. */
function storedTree(n: number): { source: HashSource; count: number; frontier: MerkleFrontier } {
  const stored: Uint8Array[] = [];
  const frontier = new MerkleFrontier();
  for (const leaf of leaves.slice(0, n)) stored.push(...frontier.push(leafHash(leaf)));
  return {
    count: stored.length,
    frontier,
    source: {
      get: (level, index) => Promise.resolve(stored[storedIndex(level, index)] as Uint8Array),
    },
  };
}

Deno.test("leafHash() and the empty root are RFC 9162's (known vectors)", () => {
  equal(
    toHex(leafHash(new Uint8Array(0))),
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  );
  equal(toHex(EMPTY_ROOT), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  equal(toHex(new MerkleFrontier().root()), toHex(EMPTY_ROOT));
});

Deno.test("leafHash() gives the same hash for a line inside a larger buffer and leaves it intact", () => {
  const buffer = new TextEncoder().encode("xx\nentry 7\nyy");
  const before = buffer.slice();
  deepEqual(leafHash(buffer.subarray(3, 10)), leafHash(leaves[7] as Uint8Array));
  deepEqual(buffer, before);
});

Deno.test("MerkleFrontier roots and stored hashes match the reference for every size to 33", async () => {
  for (let n = 0; n <= MAX; n++) {
    const tree = storedTree(n);
    equal(toHex(tree.frontier.root()), toHex(mth(leaves.slice(0, n))), `root of ${n}`);
    equal(tree.count, storedCount(n), `stored count of ${n}`);
    equal(sizeForStoredCount(tree.count), n);
    if (n > 0) equal(sizeForStoredCount(tree.count - 1), n - 1, "a cut hash drops the leaf");
    const rebuilt = await MerkleFrontier.fromStored(n, tree.source);
    equal(toHex(rebuilt.root()), toHex(tree.frontier.root()), `frontier rebuilt at ${n}`);
  }
});

Deno.test("inclusionProof() equals the reference PATH and verifies, for every leaf of every size to 33", async () => {
  for (let n = 1; n <= MAX; n++) {
    const tree = storedTree(n);
    const root = mth(leaves.slice(0, n));
    for (let m = 0; m < n; m++) {
      const proof = await inclusionProof(tree.source, { index: m, size: n });
      deepEqual(proof.map(toHex), path(m, leaves.slice(0, n)).map(toHex), `PATH(${m}, ${n})`);
      const leaf = { index: m, size: n, hash: leafHash(leaves[m] as Uint8Array) };
      ok(verifyInclusion(leaf, proof, root), `verifies ${m} in ${n}`);
      ok(
        !verifyInclusion(
          { ...leaf, hash: leafHash(leaves[(m + 1) % MAX] as Uint8Array) },
          proof,
          root,
        ),
      );
      if (n > 1) ok(!verifyInclusion({ ...leaf, index: (m + 1) % n }, proof, root), "wrong index");
      if (proof.length > 0) {
        const bent = proof.map((p, i) => i === proof.length - 1 ? leafHash(p) : p);
        ok(!verifyInclusion(leaf, bent, root), "an altered proof fails");
        ok(!verifyInclusion(leaf, proof.slice(0, -1), root), "a short proof fails");
      }
    }
  }
});

Deno.test("consistencyProof() equals the reference PROOF and verifies, for every pair of sizes to 33", async () => {
  for (let n = 1; n <= MAX; n++) {
    const tree = storedTree(n);
    const newRoot = mth(leaves.slice(0, n));
    for (let m = 1; m <= n; m++) {
      const proof = await consistencyProof(tree.source, { from: m, to: n });
      const expected = m === n ? [] : subproof(m, leaves.slice(0, n), true);
      deepEqual(proof.map(toHex), expected.map(toHex), `PROOF(${m}, ${n})`);
      const oldRoot = mth(leaves.slice(0, m));
      ok(verifyConsistency({ from: m, to: n }, { from: oldRoot, to: newRoot }, proof), `${m}→${n}`);
      if (m < n) {
        const forged = mth([...leaves.slice(0, m - 1), new Uint8Array([9])]);
        ok(
          !verifyConsistency({ from: m, to: n }, { from: forged, to: newRoot }, proof),
          "other old tree",
        );
        ok(
          !verifyConsistency({ from: m, to: n }, { from: oldRoot, to: forged }, proof),
          "other new tree",
        );
        if (proof.length > 0) {
          ok(
            !verifyConsistency({ from: m, to: n }, { from: oldRoot, to: newRoot }, proof.slice(1)),
          );
        }
      }
    }
  }
});
