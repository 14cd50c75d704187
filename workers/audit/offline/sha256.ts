/**
 * SHA-256 (FIPS 180-4) for the many short inputs of a Merkle tree, through the WebAssembly
 * module that `sha256_wasm.ts` emits.
 *
 * Why not node:crypto: in Deno every `createHash` call costs about 2–4 µs of fixed overhead
 * (op calls, a Hash object, a hex digest), whatever the input size, and a tree hashes one
 * entry line (a few hundred bytes) and one 65-byte node per leaf. Here a call is a copy into
 * the module's memory and one WebAssembly call. Checked against the FIPS examples and
 * node:crypto in `sha256_test.ts`. Synchronous and never re-entered, so one module instance
 * and its memory serve every call.
 * @module
 */
import { INPUT, OUT, sha256WasmBytes } from "./sha256_wasm.ts";

/** What an instance of the module exports (see `sha256_wasm.ts`). */
export interface Sha256Exports {
  memory: WebAssembly.Memory;
  hash(ptr: number, len: number): void;
  pair(ptr: number): void;
  leafPush(ptr: number, len: number, merges: number): void;
  root(): void;
  height: WebAssembly.Global;
}

const MODULE = new WebAssembly.Module(sha256WasmBytes());

/** A fresh instance, with its own memory and frontier (for a {@link LeafTree}). */
export function sha256Instance(): Sha256Exports {
  return new WebAssembly.Instance(MODULE).exports as unknown as Sha256Exports;
}

const exports = sha256Instance();
let memory = new Uint8Array(exports.memory.buffer);

/** Makes room for `length` input bytes at {@link INPUT}. */
function reserve(length: number): Uint8Array {
  const needed = INPUT + length;
  if (needed > memory.length) {
    exports.memory.grow(Math.ceil((needed - memory.length) / 65_536));
    memory = new Uint8Array(exports.memory.buffer);
  }
  return memory;
}

function copyIn(m: Uint8Array, at: number, bytes: Uint8Array): void {
  // A byte loop beats TypedArray.set() (a runtime call) for inputs this short.
  if (bytes.length <= 64) {
    for (let i = 0; i < bytes.length; i++) m[at + i] = bytes[i] as number;
  } else m.set(bytes, at);
}

/** The digest the last call wrote, in a fresh small array (V8 keeps those on its heap). */
function digest(m: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = m[OUT + i] as number;
  return out;
}

/**
 * SHA-256 of `message`.
 * @param message the bytes to hash (not kept)
 * @returns the 32-byte digest
 * @example
 * ```ts
 * sha256(new TextEncoder().encode("abc")); // ba7816bf…
 * ```
 */
export function sha256(message: Uint8Array): Uint8Array {
  const m = reserve(message.length);
  copyIn(m, INPUT, message);
  exports.hash(INPUT, message.length);
  return digest(m);
}

/**
 * SHA-256 of one prefix byte followed by `message` (RFC 9162 leaves: prefix 0x00).
 * @param prefix the first byte hashed
 * @param message the rest
 * @returns the 32-byte digest
 */
export function sha256Prefixed(prefix: number, message: Uint8Array): Uint8Array {
  const m = reserve(message.length + 1);
  m[INPUT] = prefix;
  copyIn(m, INPUT + 1, message);
  exports.hash(INPUT, message.length + 1);
  return digest(m);
}

/**
 * SHA-256 of `prefix || left || right` for two 32-byte hashes (RFC 9162 nodes: prefix 0x01).
 * @param prefix the first byte hashed
 * @param left a 32-byte hash
 * @param right a 32-byte hash
 * @returns the 32-byte digest
 */
export function sha256Pair(prefix: number, left: Uint8Array, right: Uint8Array): Uint8Array {
  const m = memory;
  m[INPUT] = prefix;
  for (let i = 0; i < 32; i++) {
    m[INPUT + 1 + i] = left[i] as number;
    m[INPUT + 33 + i] = right[i] as number;
  }
  exports.pair(INPUT);
  return digest(m);
}
