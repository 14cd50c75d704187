/**
 * Byte-level writers for the scanner corpus: a pickle assembler (every opcode of protocols
 * 0–5, with labels for the offsets tests assert), a ZIP writer that can break every rule
 * (ZIP64, data descriptors, duplicate/hidden members, wrong CRCs and names, prepended data),
 * a tar writer, and GGUF, safetensors and npy writers. Written from the format specs for the
 * tests; nothing here is product code.
 * @module
 */
import { crc32, deflateRawSync } from "node:zlib";
import { seededRandom } from "../_random.ts";

const enc = new TextEncoder();

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Little-endian integers. */
export function le(value: number | bigint, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let v = BigInt(value);
  if (v < 0n) v += 1n << BigInt(8 * bytes);
  for (let i = 0; i < bytes; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** A pickle assembler; `at(label)` records the offset of the next opcode. */
export class PickleWriter {
  readonly parts: number[] = [];
  readonly labels: Record<string, number> = {};

  /** Records the offset of the next byte. */
  at(label: string): this {
    this.labels[label] = this.parts.length;
    return this;
  }
  /** Raw bytes. */
  raw(...bytes: (number | Uint8Array)[]): this {
    for (const b of bytes) {
      if (typeof b === "number") this.parts.push(b);
      else this.parts.push(...b);
    }
    return this;
  }
  proto(n: number): this {
    return this.raw(0x80, n);
  }
  frame(length: number): this {
    return this.raw(0x95, le(length, 8));
  }
  mark(): this {
    return this.raw(0x28);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  none(): this {
    return this.raw(0x4e);
  }
  bool(v: boolean): this {
    return this.raw(v ? 0x88 : 0x89);
  }
  int(n: number | bigint): this {
    const v = BigInt(n);
    if (v >= 0n && v < 256n) return this.raw(0x4b, Number(v));
    if (v >= 0n && v < 65536n) return this.raw(0x4d, le(v, 2));
    if (v >= -(1n << 31n) && v < 1n << 31n) return this.raw(0x4a, le(v, 4));
    return this.long1(v);
  }
  long1(v: bigint): this {
    const bytes: number[] = [];
    let x = v;
    do {
      bytes.push(Number(x & 0xffn));
      x >>= 8n;
    } while (
      !(x === 0n && (bytes[bytes.length - 1] ?? 0) < 0x80) &&
      !(x === -1n && (bytes[bytes.length - 1] ?? 0) >= 0x80)
    );
    return this.raw(0x8a, bytes.length, ...bytes);
  }
  intLine(text: string): this {
    return this.raw(0x49, enc.encode(`${text}\n`));
  }
  longLine(text: string): this {
    return this.raw(0x4c, enc.encode(`${text}\n`));
  }
  floatLine(text: string): this {
    return this.raw(0x46, enc.encode(`${text}\n`));
  }
  binfloat(v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, false);
    return this.raw(0x47, b);
  }
  str(s: string): this {
    const b = enc.encode(s);
    return b.length < 256 ? this.raw(0x8c, b.length, b) : this.raw(0x58, le(b.length, 4), b);
  }
  binunicode(s: string): this {
    const b = enc.encode(s);
    return this.raw(0x58, le(b.length, 4), b);
  }
  binunicode8(s: string): this {
    const b = enc.encode(s);
    return this.raw(0x8d, le(b.length, 8), b);
  }
  unicodeLine(s: string): this {
    return this.raw(0x56, enc.encode(`${s}\n`));
  }
  stringLine(quoted: string): this {
    return this.raw(0x53, enc.encode(`${quoted}\n`));
  }
  binstring(s: string): this {
    return this.raw(0x54, le(s.length, 4), enc.encode(s));
  }
  shortBinstring(s: string): this {
    return this.raw(0x55, s.length, enc.encode(s));
  }
  bytes(b: Uint8Array): this {
    return b.length < 256 ? this.raw(0x43, b.length, b) : this.raw(0x42, le(b.length, 4), b);
  }
  bytes8(b: Uint8Array): this {
    return this.raw(0x8e, le(b.length, 8), b);
  }
  bytearray8(b: Uint8Array): this {
    return this.raw(0x96, le(b.length, 8), b);
  }
  global(module: string, name: string): this {
    return this.raw(0x63, enc.encode(`${module}\n${name}\n`));
  }
  stackGlobal(module: string, name: string): this {
    return this.str(module).str(name).raw(0x93);
  }
  inst(module: string, name: string): this {
    return this.raw(0x69, enc.encode(`${module}\n${name}\n`));
  }
  memoize(): this {
    return this.raw(0x94);
  }
  put(i: number): this {
    return i < 256 ? this.raw(0x71, i) : this.raw(0x72, le(i, 4));
  }
  putLine(i: number): this {
    return this.raw(0x70, enc.encode(`${i}\n`));
  }
  get(i: number): this {
    return i < 256 ? this.raw(0x68, i) : this.raw(0x6a, le(i, 4));
  }
  getLine(i: number): this {
    return this.raw(0x67, enc.encode(`${i}\n`));
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  tuple(n: 1 | 2 | 3): this {
    return this.raw(0x84 + n);
  }
  tupleMark(): this {
    return this.raw(0x74);
  }
  emptyList(): this {
    return this.raw(0x5d);
  }
  listMark(): this {
    return this.raw(0x6c);
  }
  append(): this {
    return this.raw(0x61);
  }
  appends(): this {
    return this.raw(0x65);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  dictMark(): this {
    return this.raw(0x64);
  }
  setitem(): this {
    return this.raw(0x73);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  emptySet(): this {
    return this.raw(0x8f);
  }
  additems(): this {
    return this.raw(0x90);
  }
  frozenset(): this {
    return this.raw(0x91);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  build(): this {
    return this.raw(0x62);
  }
  newobj(): this {
    return this.raw(0x81);
  }
  newobjEx(): this {
    return this.raw(0x92);
  }
  obj(): this {
    return this.raw(0x6f);
  }
  dup(): this {
    return this.raw(0x32);
  }
  pop(): this {
    return this.raw(0x30);
  }
  popMark(): this {
    return this.raw(0x31);
  }
  binpersid(): this {
    return this.raw(0x51);
  }
  persid(id: string): this {
    return this.raw(0x50, enc.encode(`${id}\n`));
  }
  ext1(code: number): this {
    return this.raw(0x82, code);
  }
  ext2(code: number): this {
    return this.raw(0x83, le(code, 2));
  }
  ext4(code: number): this {
    return this.raw(0x84, le(code, 4));
  }
  nextBuffer(): this {
    return this.raw(0x97);
  }
  readonlyBuffer(): this {
    return this.raw(0x98);
  }
  /** The assembled bytes. */
  done(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

// ---- ZIP --------------------------------------------------------------------------------

/** One member to write, with switches to break it. */
export interface ZipMember {
  name: string;
  data: Uint8Array;
  /** 0 stored (default) or 8 deflated, or any other number written as is. */
  method?: number;
  flags?: number;
  /** CRC to record instead of the real one. */
  crc?: number;
  /** Name in the local header instead of `name`. */
  localName?: string;
  /** Write sizes in a data descriptor after the data (flag bit 3). */
  descriptor?: boolean;
  /** Leave the member out of the central directory (a hidden member). */
  hidden?: boolean;
}

/** Options of {@link writeZip}. */
export interface ZipOptions {
  /** Write ZIP64 records and extra fields even for small archives. */
  zip64?: boolean;
  /** Bytes before the first member (self-extractor / polyglot). */
  prefix?: Uint8Array;
  /** Bytes after the end record. */
  suffix?: Uint8Array;
  comment?: string;
  /** Shift the recorded central directory offset by this many bytes. */
  cdOffsetDelta?: number;
  /** Bytes between members (hidden data). */
  gap?: Uint8Array;
}

/** Writes a ZIP archive. Offsets recorded are relative to the start of the zip (after prefix). */
export function writeZip(members: ZipMember[], options: ZipOptions = {}): Uint8Array {
  const prefix = options.prefix ?? new Uint8Array(0);
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = prefix.length;
  const z64 = options.zip64 === true;
  let count = 0;
  for (const m of members) {
    const method = m.method ?? 0;
    const payload = method === 8 ? new Uint8Array(deflateRawSync(m.data)) : m.data;
    const crc = m.crc ?? crc32(m.data);
    const flags = (m.flags ?? 0) | (m.descriptor ? 8 : 0) | 0x800;
    const name = enc.encode(m.name);
    const localName = enc.encode(m.localName ?? m.name);
    const localExtra = z64
      ? concat(le(1, 2), le(16, 2), le(m.data.length, 8), le(payload.length, 8))
      : new Uint8Array(0);
    const local = concat(
      le(0x04034b50, 4),
      le(z64 ? 45 : 20, 2),
      le(flags, 2),
      le(method, 2),
      le(0, 4),
      le(m.descriptor ? 0 : crc, 4),
      le(m.descriptor ? 0 : z64 ? 0xffffffff : payload.length, 4),
      le(m.descriptor ? 0 : z64 ? 0xffffffff : m.data.length, 4),
      le(localName.length, 2),
      le(localExtra.length, 2),
      localName,
      localExtra,
      payload,
      m.descriptor
        ? concat(le(0x08074b50, 4), le(crc, 4), le(payload.length, 4), le(m.data.length, 4))
        : new Uint8Array(0),
    );
    if (!m.hidden) {
      const extra = z64
        ? concat(le(1, 2), le(24, 2), le(m.data.length, 8), le(payload.length, 8), le(offset, 8))
        : new Uint8Array(0);
      centrals.push(concat(
        le(0x02014b50, 4),
        le(z64 ? 45 : 20, 2),
        le(z64 ? 45 : 20, 2),
        le(flags, 2),
        le(method, 2),
        le(0, 4),
        le(crc, 4),
        le(z64 ? 0xffffffff : payload.length, 4),
        le(z64 ? 0xffffffff : m.data.length, 4),
        le(name.length, 2),
        le(extra.length, 2),
        le(0, 2),
        le(0, 2),
        le(0, 2),
        le(0, 4),
        le(z64 ? 0xffffffff : offset, 4),
        name,
        extra,
      ));
      count++;
    }
    locals.push(local);
    offset += local.length;
    if (options.gap) {
      locals.push(options.gap);
      offset += options.gap.length;
    }
  }
  const cd = concat(...centrals);
  const cdOffset = offset + (options.cdOffsetDelta ?? 0);
  const comment = enc.encode(options.comment ?? "");
  const tail: Uint8Array[] = [];
  if (z64) {
    const recordAt = offset + cd.length;
    tail.push(concat(
      le(0x06064b50, 4),
      le(44, 8),
      le(45, 2),
      le(45, 2),
      le(0, 4),
      le(0, 4),
      le(count, 8),
      le(count, 8),
      le(cd.length, 8),
      le(cdOffset, 8),
    ));
    tail.push(concat(le(0x07064b50, 4), le(0, 4), le(recordAt, 8), le(1, 4)));
  }
  tail.push(concat(
    le(0x06054b50, 4),
    le(0, 2),
    le(0, 2),
    le(z64 ? 0xffff : count, 2),
    le(z64 ? 0xffff : count, 2),
    le(z64 ? 0xffffffff : cd.length, 4),
    le(z64 ? 0xffffffff : cdOffset, 4),
    le(comment.length, 2),
    comment,
  ));
  return concat(prefix, ...locals, cd, ...tail, options.suffix ?? new Uint8Array(0));
}

// ---- tar ----------------------------------------------------------------------------------

/** Writes a ustar archive of regular files. */
export function writeTar(members: { name: string; data: Uint8Array; type?: string }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const m of members) {
    const header = new Uint8Array(512);
    header.set(enc.encode(m.name), 0);
    header.set(enc.encode("0000644\0"), 100);
    header.set(enc.encode("0000000\0"), 108);
    header.set(enc.encode("0000000\0"), 116);
    header.set(enc.encode(`${m.data.length.toString(8).padStart(11, "0")}\0`), 124);
    header.set(enc.encode("00000000000\0"), 136);
    header.set(enc.encode("        "), 148);
    header[156] = (m.type ?? "0").charCodeAt(0);
    header.set(enc.encode("ustar\0"), 257);
    header.set(enc.encode("00"), 263);
    const sum = header.reduce((a, b) => a + b, 0);
    header.set(enc.encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
    parts.push(header, m.data, new Uint8Array((512 - (m.data.length % 512)) % 512));
  }
  parts.push(new Uint8Array(1024));
  return concat(...parts);
}

// ---- GGUF ---------------------------------------------------------------------------------

/** A GGUF metadata value: [type id, value]. Arrays: [9, [elementType, values]]. */
export type GgufValue = [number, unknown];

/** Encodes a GGUF string. */
export function ggufString(s: string | Uint8Array, lengthOverride?: number): Uint8Array {
  const b = typeof s === "string" ? enc.encode(s) : s;
  return concat(le(lengthOverride ?? b.length, 8), b);
}

function ggufScalar(type: number, value: unknown): Uint8Array {
  switch (type) {
    case 0:
    case 1:
    case 7:
      return le(Number(value), 1);
    case 2:
    case 3:
      return le(Number(value), 2);
    case 4:
    case 5:
      return le(Number(value), 4);
    case 6: {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setFloat32(0, Number(value), true);
      return b;
    }
    case 8:
      return ggufString(value as string);
    case 10:
    case 11:
      return le(BigInt(value as number), 8);
    case 12: {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, Number(value), true);
      return b;
    }
    default:
      return new Uint8Array(0);
  }
}

/** Encodes a value with its type id. */
export function ggufValue([type, value]: GgufValue): Uint8Array {
  if (type === 9) {
    const [elementType, items] = value as [number, unknown[]];
    return concat(
      le(9, 4),
      le(elementType, 4),
      le(items.length, 8),
      ...items.map((v) => ggufScalar(elementType, v)),
    );
  }
  return concat(le(type, 4), ggufScalar(type, value));
}

/** One tensor of a GGUF file. */
export interface GgufTensorSpec {
  name: string;
  dims: number[];
  /** ggml type id (0 F32, 1 F16, 8 Q8_0…). */
  type: number;
  data: Uint8Array;
  /** Offset to record instead of the computed one. */
  offset?: number;
}

/** Options of {@link writeGguf}. */
export interface GgufOptions {
  version?: number;
  kv: [string, GgufValue][];
  tensors: GgufTensorSpec[];
  alignment?: number;
  /** Raw bytes to insert after the key/values (e.g. a malformed pair); counted in kvCount. */
  rawKv?: { bytes: Uint8Array; count: number };
  tensorCount?: number;
  kvCount?: number;
  /** Bytes after the last tensor. */
  trailing?: Uint8Array;
  /** Zero bytes between tensors beyond alignment padding. */
  gap?: number;
}

/** Writes a GGUF file; tensors are laid out in order with alignment padding. */
export function writeGguf(options: GgufOptions): Uint8Array {
  const alignment = options.alignment ?? 32;
  const kv = options.kv.map(([key, value]) => concat(ggufString(key), ggufValue(value)));
  if (options.rawKv) kv.push(options.rawKv.bytes);
  let cursor = 0;
  const infos: Uint8Array[] = [];
  const datas: Uint8Array[] = [];
  for (const t of options.tensors) {
    const offset = t.offset ?? cursor;
    infos.push(
      concat(
        ggufString(t.name),
        le(t.dims.length, 4),
        ...t.dims.map((d) => le(d, 8)),
        le(t.type, 4),
        le(offset, 8),
      ),
    );
    const padded = Math.ceil(t.data.length / alignment) * alignment;
    datas.push(t.data, new Uint8Array(padded - t.data.length));
    cursor += padded;
    if (options.gap) {
      datas.push(new Uint8Array(options.gap));
      cursor += options.gap;
    }
  }
  const header = concat(
    enc.encode("GGUF"),
    le(options.version ?? 3, 4),
    le(options.tensorCount ?? options.tensors.length, 8),
    le(options.kvCount ?? options.kv.length + (options.rawKv?.count ?? 0), 8),
    ...kv,
    ...infos,
  );
  const pad = new Uint8Array((alignment - (header.length % alignment)) % alignment);
  return concat(header, pad, ...datas, options.trailing ?? new Uint8Array(0));
}

// ---- safetensors --------------------------------------------------------------------------

/** Writes a safetensors file from a header (object or raw text) and data. */
export function writeSafetensors(
  header: Record<string, unknown> | string,
  data: Uint8Array,
  options: { length?: bigint; trailing?: Uint8Array } = {},
): Uint8Array {
  const text = typeof header === "string" ? header : JSON.stringify(header);
  const bytes = enc.encode(text);
  const length = new Uint8Array(8);
  new DataView(length.buffer).setBigUint64(0, options.length ?? BigInt(bytes.length), true);
  return concat(length, bytes, data, options.trailing ?? new Uint8Array(0));
}

/** Builds header and data for tensors laid out in order. */
export function safetensorsOf(
  tensors: { name: string; dtype: string; shape: number[]; data: Uint8Array }[],
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + t.data.length],
    };
    offset += t.data.length;
  }
  return writeSafetensors(header, concat(...tensors.map((t) => t.data)));
}

// ---- npy ----------------------------------------------------------------------------------

/** Writes a .npy (version 1.0) with a header dict literal and data. */
export function writeNpy(
  headerLiteral: string,
  data: Uint8Array,
  version: [number, number] = [1, 0],
): Uint8Array {
  let text = headerLiteral;
  const fixed = version[0] === 1 ? 10 : 12;
  const total = Math.ceil((fixed + text.length + 1) / 64) * 64;
  text = text.padEnd(total - fixed - 1, " ") + "\n";
  const lengthBytes = version[0] === 1 ? le(text.length, 2) : le(text.length, 4);
  return concat(
    Uint8Array.of(0x93),
    enc.encode("NUMPY"),
    Uint8Array.of(version[0], version[1]),
    lengthBytes,
    enc.encode(text),
    data,
  );
}

// ---- tensor data --------------------------------------------------------------------------

/** Normal-ish weights (sum of uniforms) as F32 bytes. */
export function f32Weights(count: number, seed: number, scale = 0.02): Uint8Array {
  const random = seededRandom(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (random() + random() + random() - 1.5) * scale;
  return new Uint8Array(out.buffer);
}

/** The same as F16 bytes. */
export function f16Weights(count: number, seed: number, scale = 0.02): Uint8Array {
  const floats = new Float32Array(f32Weights(count, seed, scale).buffer);
  const out = new Uint16Array(count);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < count; i++) {
    f[0] = floats[i] ?? 0;
    const x = u[0] ?? 0;
    const sign = (x >>> 16) & 0x8000;
    const exponent = ((x >>> 23) & 0xff) - 127 + 15;
    out[i] = exponent <= 0
      ? sign
      : exponent >= 31
      ? sign | 0x7c00
      : sign | (exponent << 10) | ((x >>> 13) & 0x3ff);
  }
  return new Uint8Array(out.buffer);
}
