/**
 * RFC 9162 Merkle tree hashing (SHA-256): leaf `H(0x00 || entry)`, node `H(0x01 || l || r)`,
 * the empty tree `H("")`; an incremental frontier for appends; inclusion and consistency
 * proofs (§2.1.3, §2.1.4) generated from stored subtree hashes and verified with the RFC's
 * own algorithms.
 *
 * Stored hashes follow Go's `golang.org/x/mod/sumdb/tlog` layout: after leaf `n` come its
 * leaf hash and every subtree it completes, so the hash of the complete subtree at
 * `(level, index)` lives at a fixed position ({@linkcode storedIndex}) of an append-only
 * file, and a restart reads `log2(n)` hashes instead of rehashing the log.
 * @module
 */
import { sha256Pair, sha256Prefixed } from "./sha256.ts";

/** Bytes in a SHA-256 hash. */
export const HASH_BYTES = 32;
/** Largest tree size handled (sizes stay exact JavaScript integers). */
export const MAX_TREE_SIZE = 2 ** 48;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const NIBBLE = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  NIBBLE["0123456789abcdef".charCodeAt(i)] = i;
  NIBBLE["0123456789ABCDEF".charCodeAt(i)] = i;
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i] as number];
  return out;
}

/**
 * Bytes of a hex string.
 * @throws {TypeError} when the text is not an even number of hex digits
 */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TypeError(`Not a hex string: "${hex.slice(0, 80)}"`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = (NIBBLE[hex.charCodeAt(2 * i)] as number) << 4 |
      (NIBBLE[hex.charCodeAt(2 * i + 1)] as number);
  }
  return out;
}

/** Whether two hashes are equal. */
export function hashEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** RFC 9162 leaf hash of one entry's bytes: `SHA-256(0x00 || entry)`. */
export function leafHash(entry: Uint8Array): Uint8Array {
  return sha256Prefixed(0x00, entry);
}

/** RFC 9162 interior node hash: `SHA-256(0x01 || left || right)`. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256Pair(0x01, left, right);
}

/** Root of the empty tree: `SHA-256("")`. */
export const EMPTY_ROOT: Uint8Array = fromHex(
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
);

/**
 * Position of the complete subtree `(level, index)` in the stored-hash order (tlog's
 * `StoredHashIndex`): level L's n-th hash is written right after level L+1's (2n+1)-th.
 * @param level 0 for leaves
 * @param index which subtree of that level, from the left
 */
export function storedIndex(level: number, index: number): number {
  let n = index;
  for (let l = level; l > 0; l--) n = 2 * n + 1;
  let i = 0;
  for (; n > 0; n = Math.floor(n / 2)) i += n;
  return i + level;
}

/** Hashes stored for a tree of `size` leaves. */
export function storedCount(size: number): number {
  return storedIndex(0, size);
}

/**
 * Leaves fully represented by `count` stored hashes (the largest size whose stored hashes
 * fit), so a file cut mid-leaf can be trimmed back to a whole tree.
 */
export function sizeForStoredCount(count: number): number {
  let lo = 0;
  let hi = Math.min(count, MAX_TREE_SIZE);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (storedCount(mid) <= count) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

function isOdd(n: number): boolean {
  return n % 2 === 1;
}

function half(n: number): number {
  return Math.floor(n / 2);
}

/**
 * The right edge of a growing tree: one hash per complete subtree, largest first. Appending a
 * leaf costs one hash plus one per subtree it completes (one on average); the root costs
 * `popcount(size) - 1` hashes.
 */
export class MerkleFrontier {
  #stack: Uint8Array[];
  #size: number;

  /** @param stack complete subtree hashes, largest first @param size leaves covered */
  constructor(stack: Uint8Array[] = [], size = 0) {
    this.#stack = stack;
    this.#size = size;
  }

  /** Leaves in the tree. */
  get size(): number {
    return this.#size;
  }

  /**
   * Adds a leaf.
   * @param leaf its leaf hash
   * @returns the hashes to store, in stored order: the leaf, then each subtree completed
   */
  push(leaf: Uint8Array): Uint8Array[] {
    const stored = [leaf];
    let node = leaf;
    for (let n = this.#size; isOdd(n); n = half(n)) {
      node = nodeHash(this.#stack.pop() as Uint8Array, node);
      stored.push(node);
    }
    this.#stack.push(node);
    this.#size++;
    return stored;
  }

  /** The complete subtree hashes, largest first (a copy of the list). */
  get hashes(): Uint8Array[] {
    return [...this.#stack];
  }

  /** RFC 9162 MTH of the leaves so far. */
  root(): Uint8Array {
    if (this.#stack.length === 0) return EMPTY_ROOT;
    let root = this.#stack[this.#stack.length - 1] as Uint8Array;
    for (let i = this.#stack.length - 2; i >= 0; i--) {
      root = nodeHash(this.#stack[i] as Uint8Array, root);
    }
    return root;
  }

  /** An independent copy (appends to it leave this one unchanged). */
  clone(): MerkleFrontier {
    return new MerkleFrontier([...this.#stack], this.#size);
  }

  /**
   * Rebuilds the frontier of a tree from its stored hashes.
   * @param size leaves
   * @param source reads the complete subtree `(level, index)`
   */
  static async fromStored(size: number, source: HashSource): Promise<MerkleFrontier> {
    const stack: Uint8Array[] = [];
    let start = 0;
    for (let level = Math.floor(Math.log2(Math.max(size, 1))); level >= 0; level--) {
      const width = 2 ** level;
      if (size - start >= width) {
        stack.push(await source.get(level, start / width));
        start += width;
      }
    }
    return new MerkleFrontier(stack, size);
  }
}

/** Reads complete subtree hashes, e.g. from the stored-hash file. */
export interface HashSource {
  /** Hash of the complete subtree of `2^level` leaves starting at leaf `index * 2^level`. */
  get(level: number, index: number): Promise<Uint8Array>;
}

/** MTH(D[start:end]) from stored complete subtrees (RFC 9162 §2.1.1). */
export async function subtreeRoot(
  source: HashSource,
  range: { start: number; end: number },
): Promise<Uint8Array> {
  const { start, end } = range;
  const n = end - start;
  if (n === 0) return EMPTY_ROOT;
  if (isPowerOfTwo(n) && start % n === 0) return await source.get(Math.log2(n), start / n);
  const k = largestPowerOfTwoBelow(n);
  return nodeHash(
    await subtreeRoot(source, { start, end: start + k }),
    await subtreeRoot(source, { start: start + k, end }),
  );
}

function checkSizes(index: number, size: number): void {
  if (
    !Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || size > MAX_TREE_SIZE
  ) {
    throw new RangeError(`Invalid tree position ${index} of ${size}`);
  }
}

/**
 * RFC 9162 §2.1.3.1 inclusion proof PATH(m, D[0:n]).
 * @param source stored subtree hashes of a tree of at least `size` leaves
 * @param at `{ index: m, size: n }` with `0 <= m < n`
 * @returns the audit path, leaf side first
 * @throws {RangeError} when m is not below n
 */
export async function inclusionProof(
  source: HashSource,
  at: { index: number; size: number },
): Promise<Uint8Array[]> {
  checkSizes(at.index, at.size);
  if (at.index >= at.size) {
    throw new RangeError(`Leaf ${at.index} is not in a tree of ${at.size} leaves`);
  }
  const path: Uint8Array[] = [];
  async function walk(m: number, start: number, end: number): Promise<void> {
    const n = end - start;
    if (n === 1) return;
    const k = largestPowerOfTwoBelow(n);
    if (m < k) {
      await walk(m, start, start + k);
      path.push(await subtreeRoot(source, { start: start + k, end }));
    } else {
      await walk(m - k, start + k, end);
      path.push(await subtreeRoot(source, { start, end: start + k }));
    }
  }
  await walk(at.index, 0, at.size);
  return path;
}

/**
 * RFC 9162 §2.1.4.1 consistency proof PROOF(m, D[0:n]).
 * @param source stored subtree hashes of a tree of at least `to` leaves
 * @param sizes `{ from: m, to: n }` with `0 <= m <= n`
 * @returns the proof (empty when m is 0 or m equals n)
 * @throws {RangeError} when m exceeds n
 */
export async function consistencyProof(
  source: HashSource,
  sizes: { from: number; to: number },
): Promise<Uint8Array[]> {
  checkSizes(sizes.from, sizes.to);
  if (sizes.from > sizes.to) {
    throw new RangeError(`Tree size ${sizes.from} is larger than ${sizes.to}`);
  }
  const proof: Uint8Array[] = [];
  if (sizes.from === 0 || sizes.from === sizes.to) return proof;
  async function sub(m: number, start: number, end: number, isComplete: boolean): Promise<void> {
    const n = end - start;
    if (m === n) {
      if (!isComplete) proof.push(await subtreeRoot(source, { start, end }));
      return;
    }
    const k = largestPowerOfTwoBelow(n);
    if (m <= k) {
      await sub(m, start, start + k, isComplete);
      proof.push(await subtreeRoot(source, { start: start + k, end }));
    } else {
      await sub(m - k, start + k, end, false);
      proof.push(await subtreeRoot(source, { start, end: start + k }));
    }
  }
  await sub(sizes.from, 0, sizes.to, true);
  return proof;
}

/**
 * RFC 9162 §2.1.3.2: checks an inclusion proof against a root.
 * @returns true only when the proof leads from the leaf to exactly this root
 */
export function verifyInclusion(
  leaf: { index: number; size: number; hash: Uint8Array },
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!Number.isSafeInteger(leaf.index) || !Number.isSafeInteger(leaf.size)) return false;
  if (leaf.index < 0 || leaf.index >= leaf.size) return false;
  let fn = leaf.index;
  let sn = leaf.size - 1;
  let r = leaf.hash;
  for (const p of proof) {
    if (sn === 0 || p.length !== HASH_BYTES) return false;
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && hashEquals(r, root);
}

/**
 * RFC 9162 §2.1.4.2: checks that the tree of `to` leaves with root `toRoot` extends the tree
 * of `from` leaves with root `fromRoot`.
 * @returns true only when the proof shows the older tree is a prefix of the newer one
 */
export function verifyConsistency(
  sizes: { from: number; to: number },
  roots: { from: Uint8Array; to: Uint8Array },
  proof: readonly Uint8Array[],
): boolean {
  const { from, to } = sizes;
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || from > to) {
    return false;
  }
  if (from === to) return proof.length === 0 && hashEquals(roots.from, roots.to);
  if (from === 0) return proof.length === 0 && hashEquals(roots.from, EMPTY_ROOT);
  if (proof.some((p) => p.length !== HASH_BYTES)) return false;
  const path = isPowerOfTwo(from) ? [roots.from, ...proof] : [...proof];
  if (path.length === 0) return false;
  let fn = from - 1;
  let sn = to - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0] as Uint8Array;
  let sr = path[0] as Uint8Array;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && hashEquals(fr, roots.from) && hashEquals(sr, roots.to);
}
