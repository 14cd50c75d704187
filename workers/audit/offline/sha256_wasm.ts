/**
 * A WebAssembly SHA-256 (FIPS 180-4), emitted byte by byte from this file: no toolchain, no
 * binary in the repository, nothing downloaded. The 64 rounds and the message schedule are
 * unrolled by the generator and keep every word in a local, which V8 compiles to straight
 * register code — several times the throughput of the JavaScript loop and, unlike
 * node:crypto, without a fixed cost of microseconds per call. A Merkle tree hashes one short
 * input per leaf and one per node, so that per-call cost is what verification time is made of.
 *
 * Module interface: exported `memory`; `hash(ptr, len)` writes SHA-256 of
 * `memory[ptr..ptr+len)` to `memory[OUT..OUT+32)`; `pair(ptr)` hashes the 65 bytes at `ptr`
 * (an interior node). The caller places inputs at {@link INPUT}.
 * @module
 */

/** Where the digest is written. */
export const OUT = 128;
/** Where inputs go (after the two padding blocks at 0 and the digest). */
export const INPUT = 256;
/** The frontier: complete subtree hashes, 32 bytes each, oldest (largest) first. */
export const STACK = 512;
/** Most subtrees on the frontier (a tree of up to 2^64 leaves). */
export const STACK_SLOTS = 64;
/** Free memory for callers (file chunks read in place), after the frontier. */
export const FREE = STACK + 32 * STACK_SLOTS + 64;

const K = [
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
];
const IV = [
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
];

// Opcodes used (WebAssembly core 2.0).
const op = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  call: 0x10,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  globalGet: 0x23,
  globalSet: 0x24,
  load: 0x28,
  store: 0x36,
  store8: 0x3a,
  const: 0x41,
  eqz: 0x45,
  ltU: 0x49,
  add: 0x6a,
  sub: 0x6b,
  and: 0x71,
  or: 0x72,
  xor: 0x73,
  shl: 0x74,
  shrU: 0x76,
  rotl: 0x77,
  rotr: 0x78,
  void: 0x40,
  i32: 0x7f,
} as const;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb32(n: number): number[] {
  n |= 0;
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

/** Instruction emitter for one function body. */
class Body {
  code: number[] = [];
  get(i: number): this {
    this.code.push(op.localGet, ...uleb(i));
    return this;
  }
  set(i: number): this {
    this.code.push(op.localSet, ...uleb(i));
    return this;
  }
  tee(i: number): this {
    this.code.push(op.localTee, ...uleb(i));
    return this;
  }
  gget(i: number): this {
    this.code.push(op.globalGet, ...uleb(i));
    return this;
  }
  gset(i: number): this {
    this.code.push(op.globalSet, ...uleb(i));
    return this;
  }
  i32(n: number): this {
    this.code.push(op.const, ...sleb32(n));
    return this;
  }
  /** `i32.load offset=at` (alignment hint 1 byte: inputs are not aligned). */
  load(at: number): this {
    this.code.push(op.load, 0, ...uleb(at));
    return this;
  }
  store(at: number): this {
    this.code.push(op.store, 0, ...uleb(at));
    return this;
  }
  op(...codes: number[]): this {
    this.code.push(...codes);
    return this;
  }
  /** Byte swap of the i32 on the stack, through local `tmp`. */
  bswap(tmp: number): this {
    return this.tee(tmp).i32(8).op(op.rotl).i32(0x00ff00ff).op(op.and)
      .get(tmp).i32(8).op(op.rotr).i32(0xff00ff00 | 0).op(op.and).op(op.or);
  }
  /** Pushes rotr(x, a) ^ rotr(x, b) ^ (rotr or shr)(x, c) of local `x`. */
  sigma(x: number, a: number, b: number, c: number, isShift: boolean): this {
    return this.get(x).i32(a).op(op.rotr).get(x).i32(b).op(op.rotr).op(op.xor)
      .get(x).i32(c).op(isShift ? op.shrU : op.rotr).op(op.xor);
  }
  finish(locals: number): number[] {
    const declared = locals > 0 ? [1, ...uleb(locals), op.i32] : [0];
    const body = [...declared, ...this.code, op.end];
    return [...uleb(body.length), ...body];
  }
}

/**
 * `blocks(ptr, n)`: runs the compression function over `n` 64-byte blocks at `ptr`, chaining
 * through the eight globals (the hash state).
 */
function blocksBody(): number[] {
  // Locals: 0 ptr, 1 n (params); 2..9 working variables; 10..25 schedule; 26 t1; 27 tmp.
  const PTR = 0, N = 1, T1 = 26, TMP = 27;
  const w = (i: number) => 10 + (i & 15);
  const b = new Body();
  b.op(op.block, op.void, op.loop, op.void);
  b.get(N).op(op.eqz, op.brIf, 1);
  for (let i = 0; i < 16; i++) b.get(PTR).load(4 * i).bswap(TMP).set(w(i));
  for (let i = 0; i < 8; i++) b.gget(i).set(2 + i);
  // vars[k] is the local holding the k-th working variable (a..h) in this round.
  let vars = [2, 3, 4, 5, 6, 7, 8, 9];
  for (let i = 0; i < 64; i++) {
    if (i >= 16) {
      // w[i] = σ1(w[i-2]) + w[i-7] + σ0(w[i-15]) + w[i-16]
      b.sigma(w(i - 2), 17, 19, 10, true).get(w(i - 7)).op(op.add)
        .sigma(w(i - 15), 7, 18, 3, true).op(op.add).get(w(i)).op(op.add).set(w(i));
    }
    const [a, bb, c, d, e, f, g, h] = vars as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    // t1 = h + Σ1(e) + Ch(e, f, g) + K[i] + w[i];  Ch = g ^ (e & (f ^ g))
    b.get(h).sigma(e, 6, 11, 25, false).op(op.add)
      .get(g).get(e).get(f).get(g).op(op.xor).op(op.and).op(op.xor).op(op.add)
      .i32(K[i] as number).op(op.add).get(w(i)).op(op.add).set(T1);
    // d += t1 (d becomes the new e); h = t1 + Σ0(a) + Maj(a, b, c) (h becomes the new a).
    b.get(d).get(T1).op(op.add).set(d);
    b.get(T1).sigma(a, 2, 13, 22, false).op(op.add)
      .get(a).get(bb).op(op.and).get(c).get(a).get(bb).op(op.or).op(op.and).op(op.or)
      .op(op.add).set(h);
    vars = [h, a, bb, c, d, e, f, g];
  }
  // 64 rounds rotate the names back to the start: vars[k] is local 2 + k again.
  for (let i = 0; i < 8; i++) b.gget(i).get(2 + i).op(op.add).gset(i);
  b.get(PTR).i32(64).op(op.add).set(PTR);
  b.get(N).i32(1).op(op.sub).set(N);
  b.op(op.br, 0, op.end, op.end);
  return b.finish(26);
}

/** `hash(ptr, len)`: SHA-256 of `memory[ptr..ptr+len)` into `memory[OUT..OUT+32)`. */
function hashBody(blocksIndex: number): number[] {
  // Locals: 0 ptr, 1 len (params); 2 tail; 3 padded blocks (1 or 2); 4 tmp.
  const PTR = 0, LEN = 1, TAIL = 2, LAST = 3, TMP = 4;
  const b = new Body();
  for (let i = 0; i < 8; i++) b.i32(IV[i] as number).gset(i);
  b.get(PTR).get(LEN).i32(6).op(op.shrU).op(op.call, ...uleb(blocksIndex));
  b.get(LEN).i32(63).op(op.and).set(TAIL);
  b.i32(0).i32(0).i32(128).op(0xfc, 0x0b, 0x00);
  b.i32(0).get(PTR).get(LEN).i32(-64).op(op.and).op(op.add).get(TAIL).op(0xfc, 0x0a, 0x00, 0x00);
  b.get(TAIL).i32(0x80).op(op.store8, 0, 0);
  b.i32(1).i32(2).get(TAIL).i32(56).op(op.ltU).op(0x1b).set(LAST);
  // Address of the length field: last * 64 - 8.
  b.get(LAST).i32(6).op(op.shl).i32(8).op(op.sub).get(LEN).i32(29).op(op.shrU).bswap(TMP)
    .store(0);
  b.get(LAST).i32(6).op(op.shl).i32(4).op(op.sub).get(LEN).i32(3).op(op.shl).bswap(TMP)
    .store(0);
  b.i32(0).get(LAST).op(op.call, ...uleb(blocksIndex));
  for (let i = 0; i < 8; i++) b.i32(OUT + 4 * i).gget(i).bswap(TMP).store(0);
  return b.finish(3);
}

/** `pair(ptr)`: `hash(ptr, 65)`, the size of an RFC 9162 interior node input. */
function pairBody(hashIndex: number): number[] {
  const b = new Body();
  b.get(0).i32(65).op(op.call, ...uleb(hashIndex));
  return b.finish(0);
}

/** `leaf(ptr, len)`: `SHA-256(0x00 || memory[ptr..ptr+len))`, borrowing the byte at ptr-1. */
function leafBody(hashIndex: number): number[] {
  // Locals: 0 ptr, 1 len; 2 the borrowed byte.
  const b = new Body();
  b.get(0).i32(1).op(op.sub).op(0x2d, 0, 0).set(2); // i32.load8_u
  b.get(0).i32(1).op(op.sub).i32(0).op(op.store8, 0, 0);
  b.get(0).i32(1).op(op.sub).get(1).i32(1).op(op.add).op(op.call, ...uleb(hashIndex));
  b.get(0).i32(1).op(op.sub).get(2).op(op.store8, 0, 0);
  return b.finish(1);
}

/** Address of frontier slot `index` (an i32 on the stack) is left on the stack. */
function slotAddress(b: Body): Body {
  return b.i32(5).op(op.shl).i32(STACK).op(op.add);
}

/**
 * `push(merges)`: puts the digest at OUT on the frontier, then merges the two newest
 * subtrees `merges` times (the number of trailing one bits of the old tree size).
 */
function pushBody(pairIndex: number): number[] {
  // Locals: 0 merges (param). Global 8 is the frontier's height.
  const TOP = 8;
  const b = new Body();
  b.gget(TOP);
  slotAddress(b).i32(OUT).i32(32).op(0xfc, 0x0a, 0x00, 0x00);
  b.gget(TOP).i32(1).op(op.add).gset(TOP);
  b.op(op.block, op.void, op.loop, op.void);
  b.get(0).op(op.eqz, op.brIf, 1);
  b.i32(INPUT).i32(1).op(op.store8, 0, 0);
  b.i32(INPUT + 1).gget(TOP).i32(2).op(op.sub);
  slotAddress(b).i32(64).op(0xfc, 0x0a, 0x00, 0x00);
  b.i32(INPUT).op(op.call, ...uleb(pairIndex));
  b.gget(TOP).i32(2).op(op.sub);
  slotAddress(b).i32(OUT).i32(32).op(0xfc, 0x0a, 0x00, 0x00);
  b.gget(TOP).i32(1).op(op.sub).gset(TOP);
  b.get(0).i32(1).op(op.sub).set(0);
  b.op(op.br, 0, op.end, op.end);
  return b.finish(0);
}

/** `root()`: folds the frontier (height ≥ 1) into the tree root at OUT. */
function rootBody(pairIndex: number): number[] {
  // Locals: 0 i (the slot folded next).
  const TOP = 8;
  const b = new Body();
  b.i32(OUT).gget(TOP).i32(1).op(op.sub);
  slotAddress(b).i32(32).op(0xfc, 0x0a, 0x00, 0x00);
  b.gget(TOP).i32(2).op(op.sub).set(0);
  b.op(op.block, op.void, op.loop, op.void);
  b.get(0).i32(0).op(0x48, op.brIf, 1); // i32.lt_s: i < 0 ends
  b.i32(INPUT).i32(1).op(op.store8, 0, 0);
  b.i32(INPUT + 1).get(0);
  slotAddress(b).i32(32).op(0xfc, 0x0a, 0x00, 0x00);
  b.i32(INPUT + 33).i32(OUT).i32(32).op(0xfc, 0x0a, 0x00, 0x00);
  b.i32(INPUT).op(op.call, ...uleb(pairIndex));
  b.get(0).i32(1).op(op.sub).set(0);
  b.op(op.br, 0, op.end, op.end);
  return b.finish(1);
}

/** `leafPush(ptr, len, merges)`: `leaf` then `push` in one call. */
function leafPushBody(leafIndex: number, pushIndex: number): number[] {
  const b = new Body();
  b.get(0).get(1).op(op.call, ...uleb(leafIndex));
  b.get(2).op(op.call, ...uleb(pushIndex));
  return b.finish(0);
}

/** The module's bytes. */
export function sha256WasmBytes(): Uint8Array<ArrayBuffer> {
  const BLOCKS = 0, HASH = 1, PAIR = 2, LEAF = 3, PUSH = 4, ROOT = 5, LEAF_PUSH = 6;
  const types = section(
    1,
    vec([
      [0x60, ...vec([[op.i32], [op.i32]]), 0], // (i32, i32) -> ()
      [0x60, ...vec([[op.i32]]), 0], // (i32) -> ()
      [0x60, 0, 0], // () -> ()
      [0x60, ...vec([[op.i32], [op.i32], [op.i32]]), 0], // (i32, i32, i32) -> ()
    ]),
  );
  const functions = section(3, vec([[0], [0], [1], [0], [1], [2], [3]]));
  const memory = section(5, vec([[0x00, ...uleb(1)]]));
  // Eight words of hash state, then the frontier's height (exported: callers reset it).
  const globals = section(6, vec([...IV, 0].map(() => [op.i32, 0x01, op.const, 0, op.end])));
  const exports = section(
    7,
    vec([
      [...name("memory"), 0x02, 0],
      [...name("hash"), 0x00, HASH],
      [...name("pair"), 0x00, PAIR],
      [...name("leaf"), 0x00, LEAF],
      [...name("push"), 0x00, PUSH],
      [...name("root"), 0x00, ROOT],
      [...name("leafPush"), 0x00, LEAF_PUSH],
      [...name("height"), 0x03, 8],
    ]),
  );
  const code = section(10, [
    ...uleb(7),
    ...blocksBody(),
    ...hashBody(BLOCKS),
    ...pairBody(HASH),
    ...leafBody(HASH),
    ...pushBody(PAIR),
    ...rootBody(PAIR),
    ...leafPushBody(LEAF, PUSH),
  ]);
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...types,
    ...functions,
    ...memory,
    ...globals,
    ...exports,
    ...code,
  ]);
}
