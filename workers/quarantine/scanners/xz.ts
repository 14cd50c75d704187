/**
 * A strict `.xz` reader for wrapped model files (issue #6), after the .xz file format
 * specification 1.1.0 (tukaani.org): stream header and footer with their CRC32s, block
 * headers (CRC32, reserved bits, sizes), LZMA2 data (`lzma.ts`), block padding, the
 * integrity check of every block (CRC32, CRC64 or SHA-256; none is accepted), the index
 * (every record must match the blocks read, CRC32) and stream padding. Concatenated streams
 * are decoded in order, as `xz -d` and Python's `lzma.open` do.
 *
 * Refused rather than guessed (`UNSUPPORTED`): filters other than a lone LZMA2 (BCJ, delta)
 * and check types this reader cannot verify. Anything after the last stream but zero
 * padding is `MALFORMED`: a loader could read bytes the scan never saw.
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { crc32 } from "node:zlib";
import type { CompressedInput, OutputSink } from "./_compressed.ts";
import { FormatError } from "./errors.ts";
import { decodeLzma2, type LzmaDecodeOptions } from "./lzma.ts";

const HEADER_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const FOOTER_MAGIC = [0x59, 0x5a];
const LZMA2_FILTER = 0x21;
/** Blocks per stream (each needs an index record; bounds the index kept in memory). */
const MAX_BLOCKS = 1 << 20;

function malformed(message: string, offset: number): FormatError {
  return new FormatError("MALFORMED", `Invalid xz stream: ${message}`, offset);
}

const CRC64_TABLE = (() => {
  // ECMA-182, reflected (polynomial 0xC96C5795D7870F42), as two 32-bit halves.
  const lo = new Uint32Array(256);
  const hi = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let l = i;
    let h = 0;
    for (let k = 0; k < 8; k++) {
      const carry = l & 1;
      l = ((l >>> 1) | (h << 31)) >>> 0;
      h = h >>> 1;
      if (carry) {
        l = (l ^ 0xd7870f42) >>> 0;
        h = (h ^ 0xc96c5795) >>> 0;
      }
    }
    lo[i] = l;
    hi[i] = h;
  }
  return { lo, hi };
})();

/** An integrity check over a block's uncompressed data. */
interface Check {
  update(chunk: Uint8Array): void;
  /** The value as stored in the file (little-endian for CRCs). */
  digest(): Uint8Array;
}

function crc32Check(): Check {
  let value = 0;
  return {
    update: (chunk) => {
      value = crc32(chunk, value);
    },
    digest: () => {
      const out = new Uint8Array(4);
      new DataView(out.buffer).setUint32(0, value >>> 0, true);
      return out;
    },
  };
}

function crc64Check(): Check {
  let lo = 0xffffffff;
  let hi = 0xffffffff;
  const { lo: tlo, hi: thi } = CRC64_TABLE;
  return {
    update: (chunk) => {
      for (let i = 0; i < chunk.length; i++) {
        const index = (lo ^ (chunk[i] as number)) & 0xff;
        lo = (((lo >>> 8) | (hi << 24)) ^ (tlo[index] as number)) >>> 0;
        hi = ((hi >>> 8) ^ (thi[index] as number)) >>> 0;
      }
    },
    digest: () => {
      const out = new Uint8Array(8);
      const view = new DataView(out.buffer);
      view.setUint32(0, ~lo >>> 0, true);
      view.setUint32(4, ~hi >>> 0, true);
      return out;
    },
  };
}

function sha256Check(): Check {
  const hash: Hash = createHash("sha256");
  return {
    update: (chunk) => {
      hash.update(chunk);
    },
    digest: () => new Uint8Array(hash.digest()),
  };
}

/** Check types and the size of their field (spec 2.1.1.2); null: not verifiable here. */
const CHECKS: Record<number, { size: number; make: (() => Check) | null }> = {
  0: { size: 0, make: null },
  1: { size: 4, make: crc32Check },
  4: { size: 8, make: crc64Check },
  10: { size: 32, make: sha256Check },
};

/** Reads `n` bytes. */
function readBytes(input: CompressedInput, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = input.readByte();
  return out;
}

function equalBytes(a: Uint8Array, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function u32le(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(at, true);
}

/** A variable-length integer (spec 1.2): 1–9 bytes, minimally encoded. */
function readVli(next: () => number, at: number): number {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    const byte = next();
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) {
      if (i > 0 && byte === 0) throw malformed("a size is not minimally encoded", at);
      if (value > Number.MAX_SAFE_INTEGER) {
        throw new FormatError("LIMIT_EXCEEDED", "An xz size is larger than 2^53", at);
      }
      return value;
    }
  }
  throw malformed("a size is longer than 9 bytes", at);
}

/** Options of {@link unxz}. */
export type UnxzOptions = LzmaDecodeOptions;

/**
 * Decodes an `.xz` file (one or more streams, with stream padding) into `sink`.
 * @param input the file from its first byte
 * @param sink receives the decoded bytes in chunks
 * @param options a hook called before each LZMA2 chunk
 * @throws {FormatError} `MALFORMED`, `TRUNCATED`, `UNSUPPORTED` (filters, check types) or
 * `LIMIT_EXCEEDED`; whatever `sink` throws
 */
export function unxz(input: CompressedInput, sink: OutputSink, options: UnxzOptions = {}): void {
  let first = true;
  let pending: number | null = null;
  while (first || pending !== null) {
    decodeStream(input, sink, options, pending);
    first = false;
    pending = null;
    // Stream padding: groups of four zero bytes, then the end or another stream.
    let zeros = 0;
    while (!input.atEnd()) {
      const byte = input.readByte();
      if (byte === 0) {
        zeros++;
        continue;
      }
      if (zeros % 4 !== 0) {
        throw malformed("stream padding is not a multiple of four bytes", input.offset - 1);
      }
      pending = byte;
      break;
    }
    if (pending === null && zeros % 4 !== 0) {
      throw malformed("stream padding is not a multiple of four bytes", input.offset);
    }
  }
}

/** One stream; `firstByte` was already read by the caller (after stream padding). */
function decodeStream(
  input: CompressedInput,
  sink: OutputSink,
  options: UnxzOptions,
  firstByte: number | null,
): void {
  const streamAt = input.offset - (firstByte === null ? 0 : 1);
  const magic = firstByte === null
    ? readBytes(input, 6)
    : Uint8Array.of(firstByte, ...readBytes(input, 5));
  if (!equalBytes(magic, HEADER_MAGIC)) {
    throw streamAt === 0 ? malformed("the file does not start with the xz magic", 0) : malformed(
      `data at offset ${streamAt} follows the last stream and is not an xz stream`,
      streamAt,
    );
  }
  const flags = readBytes(input, 2);
  const flagsCrc = u32le(readBytes(input, 4), 0);
  if (crc32(flags) >>> 0 !== flagsCrc) {
    throw malformed("the stream header CRC32 does not match", streamAt + 6);
  }
  if (flags[0] !== 0 || ((flags[1] as number) & 0xf0) !== 0) {
    throw new FormatError(
      "UNSUPPORTED",
      "The xz stream header has flags this reader does not know",
      streamAt + 6,
    );
  }
  const checkType = (flags[1] as number) & 0x0f;
  const check = CHECKS[checkType];
  if (check === undefined) {
    throw new FormatError(
      "UNSUPPORTED",
      `The xz stream uses check type ${checkType}, which this reader cannot verify`,
      streamAt + 7,
    );
  }

  const records: { unpadded: number; uncompressed: number }[] = [];
  for (;;) {
    const blockAt = input.offset;
    const sizeByte = input.readByte();
    if (sizeByte === 0) break; // the index indicator
    if (records.length >= MAX_BLOCKS) {
      throw new FormatError(
        "LIMIT_EXCEEDED",
        `The xz stream has over ${MAX_BLOCKS} blocks`,
        blockAt,
      );
    }
    const header = readBlockHeader(input, sizeByte, blockAt);
    const dataAt = input.offset;
    const integrity = check.make?.() ?? null;
    let uncompressed = 0;
    decodeLzma2(
      input,
      (chunk) => {
        integrity?.update(chunk);
        uncompressed += chunk.length;
        sink(chunk);
      },
      { ...options, dictSize: header.dictSize },
    );
    const compressed = input.offset - dataAt;
    if (header.compressedSize !== null && header.compressedSize !== compressed) {
      throw malformed(
        `a block is ${compressed} bytes, its header says ${header.compressedSize}`,
        dataAt,
      );
    }
    if (header.uncompressedSize !== null && header.uncompressedSize !== uncompressed) {
      throw malformed(
        `a block decodes to ${uncompressed} bytes, its header says ${header.uncompressedSize}`,
        dataAt,
      );
    }
    while ((input.offset - blockAt) % 4 !== 0) {
      if (input.readByte() !== 0) throw malformed("block padding is not zero", input.offset - 1);
    }
    const stored = readBytes(input, check.size);
    if (integrity !== null && !equalBytes(stored, integrity.digest())) {
      throw malformed(
        `the ${checkName(checkType)} of a block does not match its data`,
        input.offset - check.size,
      );
    }
    records.push({ unpadded: header.size + compressed + check.size, uncompressed });
  }
  const indexSize = readIndex(input, records, input.offset - 1);
  readFooter(input, flags, indexSize);
}

function checkName(type: number): string {
  return type === 1 ? "CRC32" : type === 4 ? "CRC64" : "SHA-256";
}

/** A parsed block header. */
interface BlockHeader {
  /** Header size in bytes. */
  size: number;
  compressedSize: number | null;
  uncompressedSize: number | null;
  dictSize: number;
}

function readBlockHeader(input: CompressedInput, sizeByte: number, at: number): BlockHeader {
  const size = (sizeByte + 1) * 4;
  const bytes = Uint8Array.of(sizeByte, ...readBytes(input, size - 1));
  if (crc32(bytes.subarray(0, size - 4)) >>> 0 !== u32le(bytes, size - 4)) {
    throw malformed("a block header CRC32 does not match", at);
  }
  let p = 1;
  const next = (): number => {
    if (p >= size - 4) throw malformed("a block header is longer than its size", at);
    return bytes[p++] as number;
  };
  const flags = next();
  if ((flags & 0x3c) !== 0) {
    throw new FormatError("UNSUPPORTED", "An xz block header sets reserved flags", at);
  }
  const filters = (flags & 0x03) + 1;
  const compressedSize = flags & 0x40 ? readVli(next, at) : null;
  const uncompressedSize = flags & 0x80 ? readVli(next, at) : null;
  if (compressedSize === 0) throw malformed("a block header declares 0 compressed bytes", at);
  const ids: number[] = [];
  let dictSize = 0;
  for (let i = 0; i < filters; i++) {
    const id = readVli(next, at);
    const propsSize = readVli(next, at);
    const props: number[] = [];
    for (let k = 0; k < propsSize; k++) props.push(next());
    ids.push(id);
    if (id === LZMA2_FILTER) {
      const dict = props[0];
      if (propsSize !== 1 || dict === undefined || dict > 40) {
        throw malformed("invalid LZMA2 filter properties", at);
      }
      dictSize = dict === 40 ? 0xffffffff : (2 | (dict & 1)) * 2 ** (Math.floor(dict / 2) + 11);
    }
  }
  if (ids.length !== 1 || ids[0] !== LZMA2_FILTER) {
    throw new FormatError(
      "UNSUPPORTED",
      `The xz block uses the filter chain [${
        ids.map((id) => `0x${id.toString(16)}`).join(", ")
      }]; only a lone LZMA2 filter is supported`,
      at,
    );
  }
  while (p < size - 4) {
    if (bytes[p++] !== 0) throw malformed("block header padding is not zero", at);
  }
  return { size, compressedSize, uncompressedSize, dictSize };
}

/** Reads the index (indicator already read at `at`); returns its size in bytes. */
function readIndex(
  input: CompressedInput,
  records: readonly { unpadded: number; uncompressed: number }[],
  at: number,
): number {
  // The CRC32 covers the indicator, the records and the padding: fed in 4 KiB pieces.
  const piece = new Uint8Array(4096);
  let filled = 1;
  let length = 1;
  let crc = 0;
  const next = (): number => {
    const byte = input.readByte();
    if (filled === piece.length) {
      crc = crc32(piece, crc);
      filled = 0;
    }
    piece[filled++] = byte;
    length++;
    return byte;
  };
  const count = readVli(next, at);
  if (count !== records.length) {
    throw malformed(`the index lists ${count} blocks, the stream has ${records.length}`, at);
  }
  for (const record of records) {
    const unpadded = readVli(next, at);
    const uncompressed = readVli(next, at);
    if (unpadded !== record.unpadded || uncompressed !== record.uncompressed) {
      throw malformed("an index record does not match its block", at);
    }
  }
  while (length % 4 !== 0) {
    if (next() !== 0) throw malformed("index padding is not zero", at);
  }
  crc = crc32(piece.subarray(0, filled), crc);
  const stored = u32le(readBytes(input, 4), 0);
  if (crc >>> 0 !== stored) throw malformed("the index CRC32 does not match", at);
  return length + 4;
}

function readFooter(input: CompressedInput, headerFlags: Uint8Array, indexSize: number): void {
  const at = input.offset;
  const footer = readBytes(input, 12);
  if (!equalBytes(footer.subarray(10, 12), FOOTER_MAGIC)) {
    throw malformed("the stream footer magic is missing", at);
  }
  if (crc32(footer.subarray(4, 10)) >>> 0 !== u32le(footer, 0)) {
    throw malformed("the stream footer CRC32 does not match", at);
  }
  if ((u32le(footer, 4) + 1) * 4 !== indexSize) {
    throw malformed("the stream footer's index size does not match the index", at);
  }
  if (!equalBytes(footer.subarray(8, 10), headerFlags)) {
    throw malformed("the stream footer flags differ from the header's", at);
  }
}
