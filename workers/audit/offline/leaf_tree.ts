/**
 * A Merkle tree builder for reading a log front to back: lines are read straight into the
 * memory of its own WebAssembly SHA-256 instance, and each line costs one call that hashes
 * the leaf and updates the frontier there. Nothing is allocated per line; verification of a
 * large log is bound by hashing, not by JavaScript. Same tree as {@linkcode MerkleFrontier}
 * (checked against it in `leaf_tree_test.ts`).
 * @module
 */
import { EMPTY_ROOT, MAX_TREE_SIZE, type MerkleFrontier } from "./merkle.ts";
import { type Sha256Exports, sha256Instance } from "./sha256.ts";
import { FREE, OUT, STACK } from "./sha256_wasm.ts";

/** Number of trailing one bits of a tree size: the subtrees a new leaf completes. */
function trailingOnes(size: number): number {
  if (size < 0x80000000) return 31 - Math.clz32(~size & (size + 1));
  let k = 0;
  for (let n = size; n % 2 === 1; n = Math.floor(n / 2)) k++;
  return k;
}

/** Leaves pushed from a window of memory; see the module doc. */
export class LeafTree {
  #exports: Sha256Exports;
  #window: Uint8Array;
  #size = 0;

  /**
   * @param windowBytes the largest window a caller reads into
   * @param start the tree to continue (default: the empty tree)
   */
  constructor(windowBytes: number, start?: MerkleFrontier) {
    this.#exports = sha256Instance();
    const needed = FREE + windowBytes;
    const memory = this.#exports.memory;
    if (needed > memory.buffer.byteLength) {
      memory.grow(Math.ceil((needed - memory.buffer.byteLength) / 65_536));
    }
    this.#window = new Uint8Array(memory.buffer, FREE, windowBytes);
    if (start) {
      const bytes = new Uint8Array(memory.buffer);
      start.hashes.forEach((hash, i) => bytes.set(hash, STACK + 32 * i));
      this.#exports.height.value = start.hashes.length;
      this.#size = start.size;
    }
  }

  /** Leaves in the tree. */
  get size(): number {
    return this.#size;
  }

  /** The memory lines are read into; stays valid for the life of the tree. */
  get window(): Uint8Array {
    return this.#window;
  }

  /**
   * Adds the leaf whose bytes are `window[start..end)`.
   * @throws {RangeError} past the largest tree size handled
   */
  pushWindow(start: number, end: number): void {
    if (this.#size >= MAX_TREE_SIZE) throw new RangeError("The tree is too large");
    this.#exports.leafPush(FREE + start, end - start, trailingOnes(this.#size));
    this.#size++;
  }

  /** RFC 9162 MTH of the leaves so far. */
  root(): Uint8Array {
    if (this.#size === 0) return EMPTY_ROOT;
    this.#exports.root();
    return new Uint8Array(this.#exports.memory.buffer, OUT, 32).slice();
  }
}
