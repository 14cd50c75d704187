/**
 * Read-only access to the segment files: listing them in order and scanning their lines in
 * large chunks (a callback per line, no per-line promise), with a bound on line length so a
 * malformed file is reported, never loaded whole.
 * @module
 */
import { AuditError } from "./errors.ts";
import { MAX_LINE_BYTES, segmentFirstSeq } from "./format.ts";

/** One segment file. */
export interface SegmentInfo {
  /** File name, `<first seq>.jsonl`. */
  name: string;
  /** Absolute path. */
  path: string;
  /** Sequence number of its first entry, from the name. */
  firstSeq: number;
  /** Bytes. */
  size: number;
}

/** The segment directory's content. */
export interface SegmentListing {
  /** Segments by first sequence number. */
  segments: SegmentInfo[];
  /** Names in the directory that are not segments (they do not belong in an audit log). */
  strays: string[];
}

/** Path of the segment directory of an audit directory. */
export function segmentsDir(auditDir: string): string {
  return `${auditDir}/segments`;
}

/**
 * Lists the segments of an audit directory.
 * @throws {AuditError} AUDIT_NOT_FOUND when there is no segment directory
 */
export async function listSegments(auditDir: string): Promise<SegmentListing> {
  const dir = segmentsDir(auditDir);
  const segments: SegmentInfo[] = [];
  const strays: string[] = [];
  try {
    for await (const item of Deno.readDir(dir)) {
      const firstSeq = item.isFile ? segmentFirstSeq(item.name) : null;
      if (firstSeq === null) {
        strays.push(item.name);
        continue;
      }
      const path = `${dir}/${item.name}`;
      segments.push({ name: item.name, path, firstSeq, size: (await Deno.stat(path)).size });
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new AuditError("AUDIT_NOT_FOUND", `No audit log at "${auditDir}" (no segments/)`, {
        cause: err,
      });
    }
    throw err;
  }
  segments.sort((a, b) => a.firstSeq - b.firstSeq);
  strays.sort();
  return { segments, strays };
}

/** How a scan ended. */
export interface ScanResult {
  /** Offset just after the last complete line that was delivered. */
  end: number;
  /** Bytes after the last newline (a torn last line), if any. */
  torn: { offset: number; length: number } | null;
  /** Offset of a line longer than {@link MAX_LINE_BYTES}; the scan stops there. */
  overlong: number | null;
  /** Whether the callback stopped the scan. */
  isStopped: boolean;
}

/** Options of {@linkcode scanLines}. */
export interface ScanOptions {
  /** Offset to start at (a line start). Default 0. */
  start?: number;
  /** Offset to stop at (exclusive). Default: the end of the file. */
  end?: number;
  /** Read size. Default 4 MiB. */
  chunkBytes?: number;
  /** Aborts the scan between chunks. */
  signal?: AbortSignal;
}

/**
 * Calls `onLine` for each complete line of a file (without its newline). The bytes passed
 * stay valid after the call (every chunk is a fresh buffer).
 * @param path the file
 * @param onLine gets the line and its offset; returning false stops the scan
 * @param options range and chunk size
 * @returns where the scan ended and what it found at the end
 */
export function scanLines(
  path: string,
  onLine: (line: Uint8Array, offset: number) => boolean | void,
  options: ScanOptions = {},
): Promise<ScanResult> {
  return scanLineRanges(
    path,
    (chunk, start, end, offset) => onLine(chunk.subarray(start, end), offset),
    options,
  );
}

/**
 * Like {@linkcode scanLines}, but hands out each line as a range of the chunk it was read
 * into, and can read every chunk into one caller-owned buffer (`into`, at least
 * `chunkBytes + MAX_LINE_BYTES` long): no allocation per chunk or per line. A line's bytes
 * are then valid only during its call.
 * @param path the file
 * @param onLine gets the chunk, the line's range in it and its file offset; returning false
 *   stops the scan
 * @param options range, chunk size and the buffer to read into
 * @returns where the scan ended and what it found at the end
 */
export async function scanLineRanges(
  path: string,
  onLine: (chunk: Uint8Array, start: number, end: number, offset: number) => boolean | void,
  options: ScanOptions & { into?: Uint8Array } = {},
): Promise<ScanResult> {
  const chunkBytes = options.chunkBytes ?? 4 * 1024 * 1024;
  const into = options.into;
  if (into && into.length < chunkBytes + MAX_LINE_BYTES + 1) {
    throw new RangeError("The buffer is smaller than a chunk and the longest line");
  }
  const file = await Deno.open(path, { read: true });
  try {
    const limit = options.end ?? (await file.stat()).size;
    let position = options.start ?? 0;
    await file.seek(position, Deno.SeekMode.Start);
    let carry: Uint8Array = new Uint8Array(0);
    let carryOffset = position;
    while (position < limit) {
      options.signal?.throwIfAborted();
      const want = Math.min(chunkBytes, limit - position);
      let chunk: Uint8Array;
      if (into) {
        const from = carry.byteOffset - into.byteOffset;
        if (carry.length > 0) into.copyWithin(0, from, from + carry.length);
        chunk = into.subarray(0, carry.length + want);
      } else {
        chunk = new Uint8Array(carry.length + want);
        chunk.set(carry);
      }
      let filled = carry.length;
      while (filled < chunk.length) {
        const n = await file.read(chunk.subarray(filled));
        if (n === null) break;
        filled += n;
      }
      if (filled === carry.length) break; // the file shrank under us
      position += filled - carry.length;
      const data = chunk.subarray(0, filled);
      let start = 0;
      for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a, start)) {
        if (nl - start > MAX_LINE_BYTES) {
          return {
            end: carryOffset + start,
            torn: null,
            overlong: carryOffset + start,
            isStopped: false,
          };
        }
        if (onLine(data, start, nl, carryOffset + start) === false) {
          return { end: carryOffset + nl + 1, torn: null, overlong: null, isStopped: true };
        }
        start = nl + 1;
      }
      carry = data.subarray(start);
      carryOffset += start;
      if (carry.length > MAX_LINE_BYTES) {
        return { end: carryOffset, torn: null, overlong: carryOffset, isStopped: false };
      }
    }
    return {
      end: carryOffset,
      torn: carry.length > 0 ? { offset: carryOffset, length: carry.length } : null,
      overlong: null,
      isStopped: false,
    };
  } finally {
    file.close();
  }
}

/**
 * The last complete line of a file (without its newline), read from the file's end.
 * @returns null when the file has no complete line within the last {@link MAX_LINE_BYTES}
 */
export async function readLastLine(path: string): Promise<Uint8Array | null> {
  const file = await Deno.open(path, { read: true });
  try {
    const size = (await file.stat()).size;
    const length = Math.min(size, MAX_LINE_BYTES + 2);
    const bytes = new Uint8Array(length);
    await file.seek(size - length, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < length) {
      const n = await file.read(bytes.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    if (filled === 0 || bytes[filled - 1] !== 0x0a) return null;
    const start = bytes.lastIndexOf(0x0a, filled - 2) + 1;
    if (start === 0 && length < size) return null; // longer than any line may be
    return bytes.slice(start, filled - 1);
  } finally {
    file.close();
  }
}

/**
 * How many leading segments lie wholly before entry `size`: each is followed by a segment
 * that starts at or before it (what a retention run deletes; leftovers of an interrupted one).
 * @param segments sorted by first seq
 * @param size the first entry kept
 */
export function countWhollyBefore(segments: readonly SegmentInfo[], size: number): number {
  let n = 0;
  while (n + 1 < segments.length && (segments[n + 1] as SegmentInfo).firstSeq <= size) n++;
  return n;
}
