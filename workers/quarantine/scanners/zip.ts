/**
 * A strict ZIP reader (PKWARE APPNOTE 6.3) for PyTorch checkpoints and npz archives. Unlike
 * tolerant readers it refuses to guess: one end-of-central-directory record at the very end,
 * no data before the first member (prepended data is how pickle/zip polyglots work), every
 * central entry matching its local header, no duplicate, overlapping or hidden members, CRC
 * checked for every member, ZIP64 fields only where the 32-bit fields say so.
 * @module
 */
import { crc32, inflateRawSync } from "node:zlib";
import { BufferSource, type ByteSource, CHUNK_BYTES, FileSource, readAt } from "./_source.ts";
import { FormatError } from "./errors.ts";
import type { Finding } from "./types.ts";

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_DESCRIPTOR = 0x08074b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;
const MAX_ENTRIES = 200_000;
const MAX_NAME = 4096;
/** Largest member we inflate (in memory); torch writes members stored, npz may deflate. */
export const MAX_INFLATED = 512 << 20;

const FLAG_ENCRYPTED = 1 << 0;
const FLAG_DESCRIPTOR = 1 << 3;
const FLAG_PATCHED = 1 << 5;
const FLAG_STRONG_ENCRYPTION = 1 << 6;
const FLAG_UTF8 = 1 << 11;
const FLAG_MASKED = 1 << 13;

/** One member, as the central directory and its local header agree on it. */
export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  size: number;
  /** Offset of the local header. */
  headerOffset: number;
  /** Offset of the member's data. */
  dataOffset: number;
  /** Offset just past the data (and its descriptor, if any). */
  end: number;
}

/** A parsed archive. */
export interface ZipArchive {
  entries: ZipEntry[];
  /** Offset of the central directory. */
  centralOffset: number;
  zip64: boolean;
  findings: Finding[];
}

const decoderUtf8 = new TextDecoder("utf-8", { fatal: true });
const decoderLatin1 = new TextDecoder("latin1");

function u16(b: Uint8Array, o: number): number {
  return (b[o] ?? 0) | ((b[o + 1] ?? 0) << 8);
}

function u32(b: Uint8Array, o: number): number {
  return u16(b, o) + u16(b, o + 2) * 0x10000;
}

function u64(b: Uint8Array, o: number, what: string, at: number): number {
  const high = u32(b, o + 4);
  if (high >= 0x20_0000) {
    throw tooLarge(`${what} is too large`, at);
  }
  return high * 0x1_0000_0000 + u32(b, o);
}

function malformed(message: string, offset?: number): FormatError {
  return new FormatError("MALFORMED", `Invalid zip: ${message}`, offset);
}

function unsupported(message: string, offset: number): FormatError {
  return new FormatError("UNSUPPORTED", `Invalid zip: ${message}`, offset);
}

function tooLarge(message: string, offset: number): FormatError {
  return new FormatError("LIMIT_EXCEEDED", `Invalid zip: ${message}`, offset);
}

/** Records one finding of the archive being read. */
type Report = (
  rule: string,
  severity: Finding["severity"],
  message: string,
  extra?: Partial<Finding>,
) => void;

/** Whether the file ends with something that looks like an end-of-central-directory record. */
export function hasZipTrailer(tail: Uint8Array): boolean {
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (u32(tail, i) === SIG_EOCD && i + EOCD_SIZE + u16(tail, i + 20) === tail.length) return true;
  }
  return false;
}

/** Options of {@link readZip}. */
export interface ReadZipOptions {
  /** Finding `stage`; default `zip`. */
  stage?: string;
  /** Called with bytes read, for progress. */
  onRead?: (bytes: number) => void;
  signal?: AbortSignal;
  /** Where findings go as they are found. */
  findings?: Finding[];
}

/**
 * Reads and checks an archive's structure and every member's CRC.
 * @param file the open file
 * @param size its size
 * @throws {FormatError} when the archive cannot be parsed unambiguously
 */
export function readZip(file: Deno.FsFile, size: number, options: ReadZipOptions = {}): ZipArchive {
  const stage = options.stage ?? "zip";
  const findings: Finding[] = options.findings ?? [];
  const finding: Report = (rule, severity, message, extra = {}) => {
    findings.push({ stage, rule, severity, message, ...extra });
  };

  if (size < EOCD_SIZE) throw malformed(`file of ${size} bytes is shorter than an end record`, 0);
  const tailLength = Math.min(size, EOCD_SIZE + MAX_COMMENT + 20);
  const tailStart = size - tailLength;
  const tail = readAt(file, tailStart, tailLength);
  const candidates: number[] = [];
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (u32(tail, i) === SIG_EOCD) candidates.push(i);
  }
  // The record whose comment ends exactly at the end of the file.
  const exact = candidates.filter((i) => i + EOCD_SIZE + u16(tail, i + 20) === tail.length);
  if (exact.length === 0) {
    if (candidates.length > 0) {
      const at = tailStart + (candidates[0] ?? 0);
      throw malformed(`data follows the end record at offset ${at}`, at);
    }
    throw malformed("no end-of-central-directory record", size);
  }
  if (exact.length > 1) {
    throw malformed(
      "more than one end record could end the file (a record hidden in the comment)",
      size,
    );
  }
  const eocdRel = exact[0] ?? 0;
  const eocdAt = tailStart + eocdRel;
  const disk = u16(tail, eocdRel + 4);
  const cdDisk = u16(tail, eocdRel + 6);
  let entriesOnDisk = u16(tail, eocdRel + 8);
  let totalEntries = u16(tail, eocdRel + 10);
  let cdSize = u32(tail, eocdRel + 12);
  let cdOffset = u32(tail, eocdRel + 16);
  let zip64 = false;
  let directoryEnd = eocdAt;
  const needs64 = entriesOnDisk === 0xffff || totalEntries === 0xffff || cdSize === 0xffffffff ||
    cdOffset === 0xffffffff;
  const locatorRel = eocdRel - 20;
  const hasLocator = locatorRel >= 0 && u32(tail, locatorRel) === SIG_ZIP64_LOCATOR;
  if (needs64 || hasLocator) {
    if (!hasLocator) throw malformed("ZIP64 values without a ZIP64 locator", eocdAt);
    zip64 = true;
    const locatorAt = tailStart + locatorRel;
    if (u32(tail, locatorRel + 4) !== 0 || u32(tail, locatorRel + 16) !== 1) {
      throw malformed("multi-disk ZIP64 archives are not supported", locatorAt);
    }
    const recordAt = u64(tail, locatorRel + 8, "ZIP64 record offset", locatorAt);
    if (recordAt + 56 > locatorAt) throw malformed("ZIP64 record overlaps its locator", locatorAt);
    const record = readAt(file, recordAt, 56);
    if (u32(record, 0) !== SIG_ZIP64_EOCD) {
      throw malformed("bad ZIP64 end record signature", recordAt);
    }
    const recordSize = u64(record, 4, "ZIP64 record size", recordAt);
    if (recordAt + 12 + recordSize !== locatorAt) {
      throw malformed("bytes between the ZIP64 end record and its locator", recordAt);
    }
    if (u32(record, 16) !== 0 || u32(record, 20) !== 0) {
      throw malformed("multi-disk ZIP64 archives are not supported", recordAt);
    }
    const e64Disk = u64(record, 24, "entry count", recordAt);
    const e64Total = u64(record, 32, "entry count", recordAt);
    const size64 = u64(record, 40, "directory size", recordAt);
    const offset64 = u64(record, 48, "directory offset", recordAt);
    // The 32-bit field must either say "see ZIP64" or agree.
    const agree = (small: number, max: number, big: number) => small === max || small === big;
    if (
      !agree(entriesOnDisk, 0xffff, e64Disk) || !agree(totalEntries, 0xffff, e64Total) ||
      !agree(cdSize, 0xffffffff, size64) || !agree(cdOffset, 0xffffffff, offset64)
    ) {
      throw malformed("end record and ZIP64 end record disagree", eocdAt);
    }
    entriesOnDisk = e64Disk;
    totalEntries = e64Total;
    cdSize = size64;
    cdOffset = offset64;
    directoryEnd = recordAt;
  }
  if (disk !== 0 || cdDisk !== 0 || entriesOnDisk !== totalEntries) {
    throw malformed("multi-disk archives are not supported", eocdAt);
  }
  if (totalEntries === 0) throw malformed("the archive has no members", eocdAt);
  if (totalEntries > MAX_ENTRIES) {
    throw tooLarge(`${totalEntries} members (limit ${MAX_ENTRIES})`, eocdAt);
  }
  if (cdOffset + cdSize !== directoryEnd) {
    // zipfile-style readers shift every offset by this difference: data was prepended.
    const shift = directoryEnd - cdSize - cdOffset;
    throw malformed(
      shift > 0
        ? `${shift} bytes before the central directory are unaccounted for (data prepended to the archive: a polyglot)`
        : "central directory runs past the end record",
      cdOffset,
    );
  }
  if (u16(tail, eocdRel + 20) > 0) {
    finding("zip.comment", "low", `Archive has a ${u16(tail, eocdRel + 20)}-byte comment`, {
      offset: eocdAt + 22,
    });
  }

  // ---- central directory --------------------------------------------------------------
  const cd = readCentral(file, cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  const seen = new Map<string, number>();
  let p = 0;
  for (let index = 0; index < totalEntries; index++) {
    const at = cdOffset + p;
    if (p + 46 > cd.length || u32(cd, p) !== SIG_CENTRAL) {
      throw malformed(`bad central entry ${index}`, at);
    }
    const flags = u16(cd, p + 8);
    const method = u16(cd, p + 10);
    const crc = u32(cd, p + 16);
    let compressedSize = u32(cd, p + 20);
    let size = u32(cd, p + 24);
    const nameLength = u16(cd, p + 28);
    const extraLength = u16(cd, p + 30);
    const commentLength = u16(cd, p + 32);
    const diskStart = u16(cd, p + 34);
    let headerOffset = u32(cd, p + 42);
    const recordEnd = p + 46 + nameLength + extraLength + commentLength;
    if (recordEnd > cd.length) {
      throw malformed(`central entry ${index} runs past the directory`, at);
    }
    if (nameLength === 0 || nameLength > MAX_NAME) {
      throw malformed(`central entry ${index} has a bad name length`, at);
    }
    const nameBytes = cd.subarray(p + 46, p + 46 + nameLength);
    const name = decodeName(nameBytes, flags, at);
    const extra = parseExtra(
      cd.subarray(p + 46 + nameLength, p + 46 + nameLength + extraLength),
      at,
    );
    const z64 = extra.get(0x0001);
    if (
      size === 0xffffffff || compressedSize === 0xffffffff || headerOffset === 0xffffffff ||
      diskStart === 0xffff
    ) {
      if (z64 === undefined) {
        throw malformed(`member "${name}" uses ZIP64 values without a ZIP64 field`, at);
      }
      let q = 0;
      const take = (what: string) => {
        if (q + 8 > z64.length) throw malformed(`member "${name}" has a short ZIP64 field`, at);
        const value = u64(z64, q, what, at);
        q += 8;
        return value;
      };
      if (size === 0xffffffff) size = take("size");
      if (compressedSize === 0xffffffff) compressedSize = take("compressed size");
      if (headerOffset === 0xffffffff) headerOffset = take("header offset");
      if (diskStart === 0xffff) throw malformed("multi-disk archives are not supported", at);
      zip64 = true;
    } else if (diskStart !== 0) {
      throw malformed("multi-disk archives are not supported", at);
    }
    checkFlags(name, flags, method, at);
    checkName(name, at, finding);
    if (seen.has(name)) {
      finding(
        "zip.duplicate_member",
        "high",
        `Member "${name}" appears twice (central entries ${
          seen.get(name)
        } and ${index}); readers disagree on which one counts`,
        { offset: at, member: name },
      );
    }
    seen.set(name, index);
    if (commentLength > 0) {
      finding("zip.member_comment", "low", `Member "${name}" has a comment`, {
        offset: at,
        member: name,
      });
    }
    entries.push(
      readLocal(file, {
        name,
        nameBytes,
        flags,
        method,
        crc,
        compressedSize,
        size,
        headerOffset,
        cdOffset,
        at,
      }),
    );
    p = recordEnd;
  }
  if (p !== cd.length) {
    throw malformed(`${cd.length - p} bytes after the last central entry`, cdOffset + p);
  }

  // ---- layout: no overlap, no hidden bytes ----------------------------------------------
  const ordered = [...entries].sort((a, b) => a.headerOffset - b.headerOffset);
  let cursor = 0;
  for (const entry of ordered) {
    if (entry.headerOffset < cursor) {
      finding(
        "zip.overlapping_members",
        "high",
        `Member "${entry.name}" at offset ${entry.headerOffset} overlaps the member before it (ends at ${cursor})`,
        { offset: entry.headerOffset, member: entry.name },
      );
    } else if (entry.headerOffset > cursor) {
      hiddenGap(file, cursor, entry.headerOffset, finding);
    }
    cursor = Math.max(cursor, entry.end);
  }
  if (cursor > cdOffset) throw malformed("a member runs into the central directory", cdOffset);
  if (cursor < cdOffset) hiddenGap(file, cursor, cdOffset, finding);

  // ---- every member's CRC ---------------------------------------------------------------
  for (const entry of entries) {
    options.signal?.throwIfAborted();
    const actual = memberCrc(file, entry, options.onRead);
    if (actual !== entry.crc) {
      finding(
        "zip.crc_mismatch",
        "high",
        `Member "${entry.name}" has CRC-32 ${hex(actual)}, but the archive records ${
          hex(entry.crc)
        }: it was changed after it was written`,
        { offset: entry.dataOffset, member: entry.name },
      );
    }
  }
  return { entries, centralOffset: cdOffset, zip64, findings };
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}

function readCentral(file: Deno.FsFile, offset: number, size: number): Uint8Array {
  if (size > 256 << 20) {
    throw tooLarge(`central directory of ${size} bytes`, offset);
  }
  return readAt(file, offset, size);
}

function decodeName(bytes: Uint8Array, flags: number, at: number): string {
  if (flags & FLAG_UTF8) {
    try {
      return decoderUtf8.decode(bytes);
    } catch {
      throw malformed("member name flagged UTF-8 is not valid UTF-8", at);
    }
  }
  return decoderLatin1.decode(bytes);
}

function parseExtra(bytes: Uint8Array, at: number): Map<number, Uint8Array> {
  const fields = new Map<number, Uint8Array>();
  let p = 0;
  while (p < bytes.length) {
    if (p + 4 > bytes.length) throw malformed("truncated extra field", at);
    const id = u16(bytes, p);
    const length = u16(bytes, p + 2);
    if (p + 4 + length > bytes.length) throw malformed("extra field runs past its record", at);
    if (fields.has(id)) throw malformed(`extra field 0x${id.toString(16)} appears twice`, at);
    fields.set(id, bytes.subarray(p + 4, p + 4 + length));
    p += 4 + length;
  }
  return fields;
}

function checkFlags(name: string, flags: number, method: number, at: number): void {
  if (flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED)) {
    throw unsupported(`member "${name}" is encrypted and cannot be inspected`, at);
  }
  if (flags & FLAG_PATCHED) {
    throw unsupported(`member "${name}" is patch data`, at);
  }
  if (method !== 0 && method !== 8) {
    throw unsupported(`member "${name}" uses compression method ${method}`, at);
  }
}

function checkName(
  name: string,
  at: number,
  finding: Report,
): void {
  if (
    // deno-lint-ignore no-control-regex -- control characters in a member name are the threat
    /[\u0000-\u001f\u007f\\]/.test(name) || name.startsWith("/") || name.split("/").includes("..")
  ) {
    finding(
      "zip.unsafe_name",
      "high",
      `Member name "${
        JSON.stringify(name).slice(1, -1)
      }" is absolute, escapes the archive or has control characters`,
      {
        offset: at,
        member: name,
      },
    );
  }
}

interface CentralFields {
  name: string;
  nameBytes: Uint8Array;
  flags: number;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  headerOffset: number;
  cdOffset: number;
  at: number;
}

/** Reads a local header and checks it against its central entry. */
function readLocal(file: Deno.FsFile, c: CentralFields): ZipEntry {
  const at = c.headerOffset;
  if (at + 30 > c.cdOffset) throw malformed(`local header of "${c.name}" is past the members`, at);
  const head = readAt(file, at, 30);
  if (u32(head, 0) !== SIG_LOCAL) {
    throw malformed(`no local header for "${c.name}" at offset ${at}`, at);
  }
  const flags = u16(head, 6);
  const method = u16(head, 8);
  const nameLength = u16(head, 26);
  const extraLength = u16(head, 28);
  if (at + 30 + nameLength + extraLength > c.cdOffset) {
    throw malformed(`local header of "${c.name}" runs past the members`, at);
  }
  const rest = readAt(file, at + 30, nameLength + extraLength);
  const localName = rest.subarray(0, nameLength);
  if (localName.length !== c.nameBytes.length || !localName.every((b, i) => b === c.nameBytes[i])) {
    throw malformed(
      `local header at offset ${at} names "${
        decoderLatin1.decode(localName)
      }" but the central directory names "${c.name}"`,
      at,
    );
  }
  if (flags !== c.flags || method !== c.method) {
    throw malformed(
      `local header of "${c.name}" disagrees with the central directory on flags or method`,
      at,
    );
  }
  const extra = parseExtra(rest.subarray(nameLength), at);
  const hasDescriptor = (flags & FLAG_DESCRIPTOR) !== 0;
  let localCrc = u32(head, 14);
  let localCompressed = u32(head, 18);
  let localSize = u32(head, 22);
  if (localCompressed === 0xffffffff || localSize === 0xffffffff) {
    const z64 = extra.get(0x0001);
    if (z64 === undefined || z64.length < 16) {
      throw malformed(`local header of "${c.name}" lacks its ZIP64 sizes`, at);
    }
    localSize = u64(z64, 0, "size", at);
    localCompressed = u64(z64, 8, "compressed size", at);
  }
  const dataOffset = at + 30 + nameLength + extraLength;
  let end = dataOffset + c.compressedSize;
  if (end > c.cdOffset) {
    throw malformed(`data of "${c.name}" runs into the central directory`, dataOffset);
  }
  if (hasDescriptor) {
    // Sizes in the local header are zero; the descriptor after the data carries them.
    if (localCrc !== 0 && localCrc !== c.crc) {
      throw malformed(`local CRC of "${c.name}" disagrees`, at);
    }
    const descriptor = readAt(file, end, Math.min(24, c.cdOffset - end));
    let q = 0;
    if (u32(descriptor, 0) === SIG_DESCRIPTOR) q = 4;
    const wide = descriptor.length >= q + 20 &&
      (c.size >= 0xffffffff || c.compressedSize >= 0xffffffff);
    localCrc = u32(descriptor, q);
    localCompressed = wide ? u64(descriptor, q + 4, "size", end) : u32(descriptor, q + 4);
    localSize = wide ? u64(descriptor, q + 12, "size", end) : u32(descriptor, q + 8);
    end += q + (wide ? 20 : 12);
    if (end > c.cdOffset) {
      throw malformed(`data descriptor of "${c.name}" runs into the central directory`, at);
    }
  }
  if (localCrc !== c.crc || localCompressed !== c.compressedSize || localSize !== c.size) {
    throw malformed(
      `local header of "${c.name}" disagrees with the central directory on CRC or sizes`,
      at,
    );
  }
  if (c.method === 0 && c.size !== c.compressedSize) {
    throw malformed(`stored member "${c.name}" has different sizes`, at);
  }
  return {
    name: c.name,
    method: c.method,
    flags: c.flags,
    crc: c.crc,
    compressedSize: c.compressedSize,
    size: c.size,
    headerOffset: at,
    dataOffset,
    end,
  };
}

function hiddenGap(
  file: Deno.FsFile,
  start: number,
  end: number,
  finding: Report,
): void {
  const sample = readAt(file, start, Math.min(end - start, 1 << 20));
  let hasHeader = false;
  for (let i = 0; i + 4 <= sample.length; i++) {
    if (u32(sample, i) === SIG_LOCAL) {
      hasHeader = true;
      break;
    }
  }
  finding(
    hasHeader ? "zip.hidden_member" : "zip.hidden_data",
    hasHeader ? "high" : "medium",
    hasHeader
      ? `A member at offset ${start} is not listed in the central directory (hidden member)`
      : `${end - start} bytes at offset ${start} belong to no member (hidden data)`,
    { offset: start },
  );
}

function memberCrc(file: Deno.FsFile, entry: ZipEntry, onRead?: (bytes: number) => void): number {
  if (entry.method === 8) return crc32(inflateMember(file, entry));
  let crc = 0;
  for (let done = 0; done < entry.size;) {
    const part = Math.min(CHUNK_BYTES, entry.size - done);
    crc = crc32(readAt(file, entry.dataOffset + done, part), crc);
    onRead?.(part);
    done += part;
  }
  return crc;
}

function inflateMember(file: Deno.FsFile, entry: ZipEntry): Uint8Array {
  if (entry.size > MAX_INFLATED) {
    throw tooLarge(
      `compressed member "${entry.name}" inflates to ${entry.size} bytes (limit ${MAX_INFLATED})`,
      entry.dataOffset,
    );
  }
  if (entry.compressedSize > MAX_INFLATED) {
    throw tooLarge(`compressed member "${entry.name}" is too large`, entry.dataOffset);
  }
  const compressed = readAt(file, entry.dataOffset, entry.compressedSize);
  let out: Uint8Array;
  try {
    out = inflateRawSync(compressed, { maxOutputLength: Math.max(entry.size, 1) });
  } catch (error) {
    throw malformed(
      `member "${entry.name}" does not inflate to its recorded size: ${(error as Error).message}`,
      entry.dataOffset,
    );
  }
  if (out.length !== entry.size) {
    throw malformed(
      `member "${entry.name}" inflates to ${out.length} bytes, not ${entry.size}`,
      entry.dataOffset,
    );
  }
  return out;
}

/**
 * A byte source over one member's uncompressed data (stored: read from the file in chunks;
 * deflated: inflated in memory up to {@link MAX_INFLATED}).
 */
export function openMember(
  file: Deno.FsFile,
  entry: ZipEntry,
  onRead?: (bytes: number) => void,
): ByteSource {
  if (entry.method === 8) return new BufferSource(inflateMember(file, entry), 0);
  return new FileSource(file, {
    start: entry.dataOffset,
    length: entry.size,
    ...(onRead ? { onRead } : {}),
  });
}
