/**
 * A strict, streaming bzip2 decoder for wrapped model files (issue #6). It follows the format
 * as bzip2 1.0.8 writes and reads it (`decompress.c`): the Huffman/MTF/RLE2 stage into one
 * block of at most level × 100 000 bytes, the inverse Burrows–Wheeler transform, the RLE1
 * stage, and the CRC of every block and of every stream. Concatenated streams (pbzip2,
 * `cat a.bz2 b.bz2`) are decoded in order, as Python's `bz2.open` does. Stricter than the
 * `bzip2` tool where it would hide bytes from the scan: data after the last stream is
 * `MALFORMED`, not ignored; randomised blocks (bzip2 0.9.0) are `UNSUPPORTED`.
 *
 * Memory: one block (4 bytes per symbol, 3.6 MB at level 9) plus a 1 MiB output chunk; the
 * decoded bytes go to a sink as they are produced.
 * @module
 */
import { ChunkWriter, type CompressedInput, type OutputSink } from "./_compressed.ts";
import { FormatError } from "./errors.ts";

const BLOCK_MAGIC = [0x314159, 0x265359];
const END_MAGIC = [0x177245, 0x385090];
const MIN_GROUPS = 2;
const MAX_GROUPS = 6;
const GROUP_SIZE = 50;
const MAX_CODE_LEN = 20;
/** bzip2 1.0.8 keeps at most this many selectors and ignores the rest (CVE-2019-12900). */
const MAX_SELECTORS = 18002;
/** A run of RUNA/RUNB symbols longer than this is corrupt (bzip2: `N >= 2*1024*1024`). */
const MAX_RUN_WEIGHT = 2 * 1024 * 1024;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    table[i] = c >>> 0;
  }
  return table;
})();

function malformed(message: string, offset: number): FormatError {
  return new FormatError("MALFORMED", `Invalid bz2 stream: ${message}`, offset);
}

/** MSB-first bit reader over the compressed bytes. */
class BitReader {
  readonly input: CompressedInput;
  #buffer = 0;
  #count = 0;

  constructor(input: CompressedInput) {
    this.input = input;
  }

  /** The next `n` bits (n ≤ 24), most significant first. */
  bits(n: number): number {
    while (this.#count < n) {
      this.#buffer = ((this.#buffer << 8) | this.input.readByte()) >>> 0;
      this.#count += 8;
    }
    this.#count -= n;
    return (this.#buffer >>> this.#count) & ((1 << n) - 1);
  }

  bit(): number {
    return this.bits(1);
  }

  u32(): number {
    return ((this.bits(16) << 16) | this.bits(16)) >>> 0;
  }

  /** Drops the bits left of the current byte (streams end on a byte boundary). */
  align(): void {
    this.#count -= this.#count % 8;
  }
}

/** Canonical Huffman decoding table (bzip2's `hbCreateDecodeTables`). */
interface HuffmanTable {
  limit: Int32Array;
  base: Int32Array;
  perm: Int32Array;
  minLen: number;
}

function huffmanTable(lengths: Uint8Array, alphaSize: number): HuffmanTable {
  let minLen = 32;
  let maxLen = 0;
  for (let i = 0; i < alphaSize; i++) {
    const len = lengths[i] as number;
    if (len > maxLen) maxLen = len;
    if (len < minLen) minLen = len;
  }
  const perm = new Int32Array(alphaSize);
  let pp = 0;
  for (let len = minLen; len <= maxLen; len++) {
    for (let j = 0; j < alphaSize; j++) if (lengths[j] === len) perm[pp++] = j;
  }
  const base = new Int32Array(MAX_CODE_LEN + 2);
  for (let i = 0; i < alphaSize; i++) (base[(lengths[i] as number) + 1] as number)++;
  for (let i = 1; i < base.length; i++) base[i] = (base[i] as number) + (base[i - 1] as number);
  // -1: no code of that length, so decoding moves on to longer codes (and fails past 20).
  const limit = new Int32Array(MAX_CODE_LEN + 2).fill(-1);
  let vec = 0;
  for (let len = minLen; len <= maxLen; len++) {
    vec += (base[len + 1] as number) - (base[len] as number);
    limit[len] = vec - 1;
    vec <<= 1;
  }
  for (let len = minLen + 1; len <= maxLen; len++) {
    base[len] = (((limit[len - 1] as number) + 1) << 1) - (base[len] as number);
  }
  return { limit, base, perm, minLen };
}

/** Options of {@link bunzip2}. */
export interface Bunzip2Options {
  /** Called before each block is decoded; may throw to stop (cancellation, deadline). */
  onBlock?: () => void;
}

/**
 * Decodes a bzip2 file (one or more concatenated streams) into `sink`.
 * @param input the compressed bytes, from the first byte of the file
 * @param sink receives the decoded bytes in chunks of up to 1 MiB
 * @param options a hook called before each block
 * @throws {FormatError} `MALFORMED` (bad magic, Huffman code, CRC, data after the last stream),
 * `TRUNCATED`, or `UNSUPPORTED` (randomised blocks); whatever `sink` throws
 */
export function bunzip2(
  input: CompressedInput,
  sink: OutputSink,
  options: Bunzip2Options = {},
): void {
  const out = new ChunkWriter(sink);
  let tt = new Uint32Array(0);
  let streams = 0;
  do {
    const level = readStreamHeader(input, streams);
    const blockMax = level * 100_000;
    if (tt.length < blockMax) tt = new Uint32Array(blockMax);
    const bits = new BitReader(input);
    let combined = 0;
    for (;;) {
      const at = input.offset;
      const hi = bits.bits(24);
      const lo = bits.bits(24);
      if (hi === BLOCK_MAGIC[0] && lo === BLOCK_MAGIC[1]) {
        options.onBlock?.();
        const expected = bits.u32();
        const crc = decodeBlock(bits, tt, blockMax, out, at);
        if (crc !== expected) {
          throw malformed(
            `block CRC ${hex(crc)} does not match the recorded ${hex(expected)}`,
            at,
          );
        }
        combined = (((combined << 1) | (combined >>> 31)) ^ crc) >>> 0;
      } else if (hi === END_MAGIC[0] && lo === END_MAGIC[1]) {
        const expected = bits.u32();
        if (expected !== combined) {
          throw malformed(
            `stream CRC ${hex(combined)} does not match the recorded ${hex(expected)}`,
            at,
          );
        }
        bits.align();
        break;
      } else {
        throw malformed("a block does not start with the block or end-of-stream magic", at);
      }
    }
    streams++;
  } while (!input.atEnd());
  out.flush();
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

/** Reads "BZh1".."BZh9"; returns the level (block size in units of 100 000 bytes). */
function readStreamHeader(input: CompressedInput, streams: number): number {
  const at = input.offset;
  const head: number[] = [];
  try {
    for (let i = 0; i < 4; i++) head.push(input.readByte());
  } catch (error) {
    if (!(error instanceof FormatError) || streams === 0) throw error;
    head.length = 0;
  }
  const [b, z, h, level] = head;
  if (b === 0x42 && z === 0x5a && h === 0x68 && level !== undefined) {
    if (level >= 0x31 && level <= 0x39) return level - 0x30;
  }
  throw streams === 0
    ? malformed('the file does not start with "BZh1".."BZh9"', at)
    : malformed(`data at offset ${at} follows the last stream and is not another bz2 stream`, at);
}

/**
 * Decodes one block into `out`; returns the CRC of the bytes it produced.
 * @param at offset of the block magic, for errors
 */
function decodeBlock(
  bits: BitReader,
  tt: Uint32Array,
  blockMax: number,
  out: ChunkWriter,
  at: number,
): number {
  if (bits.bit() === 1) {
    throw new FormatError(
      "UNSUPPORTED",
      "The bz2 stream uses randomised blocks (bzip2 0.9.0), which are not supported",
      at,
    );
  }
  const origPtr = bits.bits(24);

  // Symbol map: which byte values occur in the block.
  const seqToUnseq = new Uint8Array(256);
  let inUse = 0;
  const used16 = bits.bits(16);
  for (let i = 0; i < 16; i++) {
    if ((used16 & (0x8000 >> i)) === 0) continue;
    const used = bits.bits(16);
    for (let j = 0; j < 16; j++) if (used & (0x8000 >> j)) seqToUnseq[inUse++] = i * 16 + j;
  }
  if (inUse === 0) throw malformed("a block uses no symbols", at);
  const alphaSize = inUse + 2;
  const endOfBlock = inUse + 1;

  const groups = bits.bits(3);
  if (groups < MIN_GROUPS || groups > MAX_GROUPS) {
    throw malformed(`a block has ${groups} Huffman tables (2 to 6 allowed)`, at);
  }
  const selectorCount = bits.bits(15);
  if (selectorCount < 1) throw malformed("a block has no selectors", at);
  const kept = Math.min(selectorCount, MAX_SELECTORS);
  const selectors = new Uint8Array(kept);
  const groupMtf = [0, 1, 2, 3, 4, 5];
  for (let i = 0; i < selectorCount; i++) {
    let j = 0;
    while (bits.bit() === 1) {
      j++;
      if (j >= groups) throw malformed("a selector names a missing Huffman table", at);
    }
    const value = groupMtf[j] as number;
    groupMtf.splice(j, 1);
    groupMtf.unshift(value);
    if (i < kept) selectors[i] = value;
  }

  const tables: HuffmanTable[] = [];
  const lengths = new Uint8Array(alphaSize);
  for (let t = 0; t < groups; t++) {
    let len = bits.bits(5);
    for (let i = 0; i < alphaSize; i++) {
      for (;;) {
        if (len < 1 || len > MAX_CODE_LEN) throw malformed(`a code length of ${len}`, at);
        if (bits.bit() === 0) break;
        len += bits.bit() === 0 ? 1 : -1;
      }
      lengths[i] = len;
    }
    tables.push(huffmanTable(lengths, alphaSize));
  }

  // Huffman → MTF/RLE2 → symbols in tt (low byte).
  const mtf = new Uint8Array(256);
  for (let i = 0; i < 256; i++) mtf[i] = i;
  const counts = new Uint32Array(256);
  let nblock = 0;
  let groupNo = -1;
  let groupPos = 0;
  let table = tables[0] as HuffmanTable;
  const nextSymbol = (): number => {
    if (groupPos === 0) {
      groupNo++;
      if (groupNo >= kept) throw malformed("a block needs more selectors than it has", at);
      groupPos = GROUP_SIZE;
      table = tables[selectors[groupNo] as number] as HuffmanTable;
    }
    groupPos--;
    let len = table.minLen;
    let code = bits.bits(len);
    while (code > (table.limit[len] as number)) {
      len++;
      if (len > MAX_CODE_LEN) throw malformed("an invalid Huffman code", at);
      code = (code << 1) | bits.bit();
    }
    const index = code - (table.base[len] as number);
    if (index < 0 || index >= alphaSize) throw malformed("an invalid Huffman code", at);
    return table.perm[index] as number;
  };

  let symbol = nextSymbol();
  while (symbol !== endOfBlock) {
    if (symbol <= 1) {
      // RUNA/RUNB: a run of the front MTF symbol, its length in bijective base 2.
      let run = 0;
      let weight = 1;
      do {
        if (weight >= MAX_RUN_WEIGHT) throw malformed("a run is too long", at);
        run += (symbol + 1) * weight;
        weight <<= 1;
        symbol = nextSymbol();
      } while (symbol <= 1);
      if (nblock + run > blockMax) throw malformed("a block is longer than its level allows", at);
      const value = seqToUnseq[mtf[0] as number] as number;
      tt.fill(value, nblock, nblock + run);
      counts[value] = (counts[value] as number) + run;
      nblock += run;
      continue;
    }
    if (nblock >= blockMax) throw malformed("a block is longer than its level allows", at);
    const index = symbol - 1;
    const front = mtf[index] as number;
    mtf.copyWithin(1, 0, index);
    mtf[0] = front;
    const value = seqToUnseq[front] as number;
    counts[value] = (counts[value] as number) + 1;
    tt[nblock++] = value;
    symbol = nextSymbol();
  }
  if (origPtr >= nblock) {
    throw malformed(`the BWT origin ${origPtr} is outside the block of ${nblock} bytes`, at);
  }

  // Inverse Burrows–Wheeler transform: link each position to the next in the upper 24 bits.
  const starts = new Uint32Array(256);
  for (let i = 0, sum = 0; i < 256; i++) {
    starts[i] = sum;
    sum += counts[i] as number;
  }
  for (let i = 0; i < nblock; i++) {
    const value = (tt[i] as number) & 0xff;
    const slot = starts[value] as number;
    tt[slot] = ((tt[slot] as number) | (i << 8)) >>> 0;
    starts[value] = slot + 1;
  }

  // Walk the chain, undo RLE1 (4 equal bytes, then a count of further copies), CRC.
  let crc = 0xffffffff;
  let pos = (tt[origPtr] as number) >>> 8;
  let last = -1;
  let run = 0;
  for (let k = 0; k < nblock; k++) {
    const entry = tt[pos] as number;
    const value = entry & 0xff;
    pos = entry >>> 8;
    if (run === 4) {
      for (let r = 0; r < value; r++) {
        crc = ((crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ last) & 0xff] as number)) >>> 0;
        out.byte(last);
      }
      run = 0;
      last = -1;
      continue;
    }
    if (value === last) run++;
    else {
      last = value;
      run = 1;
    }
    crc = ((crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ value) & 0xff] as number)) >>> 0;
    out.byte(value);
  }
  return ~crc >>> 0;
}
