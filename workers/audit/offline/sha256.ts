/**
 * SHA-256 (FIPS 180-4) in plain JavaScript, for the many tiny inputs of a Merkle tree.
 *
 * Why not node:crypto: in Deno every `createHash` call costs about 2–4 µs of fixed overhead
 * (op calls, a Hash object, a hex digest), whatever the input size. An interior node is 65
 * bytes (two compression blocks), which this code hashes in well under half that, with no
 * allocation but the 32-byte result. Long inputs (entry lines, a few hundred bytes and up)
 * are still faster through node:crypto, whose native code uses the CPU's SHA instructions:
 * `merkle.ts` picks per call site. Checked against node:crypto in `sha256_test.ts`.
 * @module
 */

const K = new Int32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);
/** The message schedule, reused by every block (this code is synchronous, never re-entered). */
const W = new Int32Array(64);
/** The padded message; grown when an input does not fit. */
let scratch = new Uint8Array(1024);

/** Runs the compression function over `m[0..total)` (whole blocks) into `out`. */
function compress(m: Uint8Array, total: number, out: Uint8Array): void {
  let h0 = 0x6a09e667 | 0;
  let h1 = 0xbb67ae85 | 0;
  let h2 = 0x3c6ef372 | 0;
  let h3 = 0xa54ff53a | 0;
  let h4 = 0x510e527f | 0;
  let h5 = 0x9b05688c | 0;
  let h6 = 0x1f83d9ab | 0;
  let h7 = 0x5be0cd19 | 0;
  for (let block = 0; block < total; block += 64) {
    for (let i = 0, j = block; i < 16; i++, j += 4) {
      W[i] = (m[j] as number) << 24 | (m[j + 1] as number) << 16 | (m[j + 2] as number) << 8 |
        (m[j + 3] as number);
    }
    for (let i = 16; i < 64; i++) {
      const x = W[i - 15] as number;
      const y = W[i - 2] as number;
      const s0 = (x >>> 7 | x << 25) ^ (x >>> 18 | x << 14) ^ (x >>> 3);
      const s1 = (y >>> 17 | y << 15) ^ (y >>> 19 | y << 13) ^ (y >>> 10);
      W[i] = ((W[i - 16] as number) + s0 + (W[i - 7] as number) + s1) | 0;
    }
    let a = h0;
    let b = h1;
    let c = h2;
    let d = h3;
    let e = h4;
    let f = h5;
    let g = h6;
    let h = h7;
    for (let i = 0; i < 64; i++) {
      const s1 = (e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7);
      const t1 = (h + s1 + ((e & f) ^ (~e & g)) + (K[i] as number) + (W[i] as number)) | 0;
      const s0 = (a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10);
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
    h5 = (h5 + f) | 0;
    h6 = (h6 + g) | 0;
    h7 = (h7 + h) | 0;
  }
  writeWord(out, 0, h0);
  writeWord(out, 4, h1);
  writeWord(out, 8, h2);
  writeWord(out, 12, h3);
  writeWord(out, 16, h4);
  writeWord(out, 20, h5);
  writeWord(out, 24, h6);
  writeWord(out, 28, h7);
}

function writeWord(out: Uint8Array, at: number, word: number): void {
  out[at] = word >>> 24;
  out[at + 1] = word >>> 16;
  out[at + 2] = word >>> 8;
  out[at + 3] = word;
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
  const length = message.length;
  // Message, the 0x80 marker, zeros, and the 64-bit bit length, to a whole number of blocks.
  const total = (length + 9 + 63) & ~63;
  if (total > scratch.length) scratch = new Uint8Array(total);
  const m = scratch;
  // A byte loop beats TypedArray.set() (a runtime call) for the short inputs this is for.
  if (length <= 256) { for (let i = 0; i < length; i++) m[i] = message[i] as number; }
  else m.set(message);
  m.fill(0, length, total);
  m[length] = 0x80;
  writeWord(m, total - 8, Math.floor(length / 0x20000000)); // (length * 8) >>> 32
  writeWord(m, total - 4, (length * 8) >>> 0);
  const out = new Uint8Array(32);
  compress(m, total, out);
  return out;
}
