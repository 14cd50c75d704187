/**
 * Sequential byte sources for the sync parsers (pickle VM, npy, legacy torch): one over a
 * buffer, one over a window of an open file read in chunks, so that a multi-GiB member is
 * never held in memory. Every read is bounds-checked and fails with a {@link FormatError}.
 * @module
 */
import { FormatError } from "./errors.ts";

/** Bytes read per file chunk. */
export const CHUNK_BYTES = 4 << 20;

/** A forward-only reader of a byte range. */
export interface ByteSource {
  /** Bytes in the range. */
  readonly length: number;
  /** Offset of the next byte, relative to the range. */
  readonly position: number;
  /** Offset of the range in the scanned file (for findings). */
  readonly base: number;
  /** Next byte. */
  readByte(): number;
  /** Next `n` bytes (a copy, or a view valid until the next read). */
  readBytes(n: number): Uint8Array;
  /** Skips `n` bytes. */
  skip(n: number): void;
  /** Bytes up to and excluding the next `\n` (at most `max`), which is consumed. */
  readLine(max: number): Uint8Array;
  /** Whether every byte has been read. */
  atEnd(): boolean;
}

function truncated(what: string, offset: number): FormatError {
  return new FormatError(
    "TRUNCATED",
    `Cannot read ${what}: the data ends at offset ${offset}`,
    offset,
  );
}

/** A {@link ByteSource} over bytes in memory. */
export class BufferSource implements ByteSource {
  readonly #bytes: Uint8Array;
  #position = 0;
  /** Offset of the range in the scanned file. */
  readonly base: number;

  /**
   * @param bytes the range
   * @param base offset of the range in the file (for findings)
   */
  constructor(bytes: Uint8Array, base = 0) {
    this.#bytes = bytes;
    this.base = base;
  }

  /** Bytes in the range. */
  get length(): number {
    return this.#bytes.length;
  }

  /** Offset of the next byte. */
  get position(): number {
    return this.#position;
  }

  /** Next byte. */
  readByte(): number {
    const byte = this.#bytes[this.#position];
    if (byte === undefined) throw truncated("a byte", this.base + this.#position);
    this.#position++;
    return byte;
  }

  /** Next `n` bytes, as a view. */
  readBytes(n: number): Uint8Array {
    if (n < 0 || this.#position + n > this.#bytes.length) {
      throw truncated(`${n} bytes`, this.base + this.#bytes.length);
    }
    const out = this.#bytes.subarray(this.#position, this.#position + n);
    this.#position += n;
    return out;
  }

  /** Skips `n` bytes. */
  skip(n: number): void {
    this.readBytes(n);
  }

  /** Bytes up to the next newline. */
  readLine(max: number): Uint8Array {
    const end = this.#bytes.indexOf(0x0a, this.#position);
    if (end < 0) throw truncated("a line", this.base + this.#bytes.length);
    if (end - this.#position > max) {
      throw new FormatError(
        "LIMIT_EXCEEDED",
        `Cannot read a line longer than ${max} bytes`,
        this.base + this.#position,
      );
    }
    const out = this.#bytes.subarray(this.#position, end);
    this.#position = end + 1;
    return out;
  }

  /** Whether every byte has been read. */
  atEnd(): boolean {
    return this.#position >= this.#bytes.length;
  }
}

/** Options of {@link FileSource}. */
export interface FileSourceOptions {
  /** Offset of the window in the file. */
  start: number;
  /** Bytes in the window. */
  length: number;
  /** Called with the number of bytes each chunk read adds. */
  onRead?: (bytes: number) => void;
}

/** A {@link ByteSource} over a window of an open file, read in {@link CHUNK_BYTES} chunks. */
export class FileSource implements ByteSource {
  readonly #file: Deno.FsFile;
  readonly #onRead: ((bytes: number) => void) | undefined;
  /** Offset of the range in the file. */
  readonly base: number;
  /** Bytes in the range. */
  readonly length: number;
  #buffer = new Uint8Array(0);
  /** Range offset of `#buffer[0]`. */
  #bufferStart = 0;
  #position = 0;

  /**
   * @param file an open file (the source seeks it)
   * @param options the window and a read counter
   */
  constructor(file: Deno.FsFile, options: FileSourceOptions) {
    this.#file = file;
    this.base = options.start;
    this.length = options.length;
    this.#onRead = options.onRead;
  }

  /** Offset of the next byte. */
  get position(): number {
    return this.#position;
  }

  /** Makes `[position, position + n)` available in the buffer (n ≤ CHUNK_BYTES * 2). */
  #fill(n: number, what: string): void {
    if (this.#position + n > this.length) throw truncated(what, this.base + this.length);
    const have = this.#bufferStart + this.#buffer.length - this.#position;
    if (have >= n) return;
    const want = Math.min(Math.max(n, CHUNK_BYTES), this.length - this.#position);
    const next = new Uint8Array(want);
    this.#file.seekSync(this.base + this.#position, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < want) {
      const count = this.#file.readSync(next.subarray(filled));
      if (count === null || count === 0) {
        throw truncated(what, this.base + this.#position + filled);
      }
      filled += count;
    }
    this.#onRead?.(want);
    this.#buffer = next;
    this.#bufferStart = this.#position;
  }

  /** Next byte. */
  readByte(): number {
    this.#fill(1, "a byte");
    const byte = this.#buffer[this.#position - this.#bufferStart] ?? 0;
    this.#position++;
    return byte;
  }

  /** Next `n` bytes; large reads are copied in chunks. */
  readBytes(n: number): Uint8Array {
    if (n < 0) throw new RangeError(`Cannot read ${n} bytes`);
    if (n <= CHUNK_BYTES) {
      this.#fill(n, `${n} bytes`);
      const at = this.#position - this.#bufferStart;
      this.#position += n;
      return this.#buffer.subarray(at, at + n);
    }
    const out = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      const part = Math.min(CHUNK_BYTES, n - done);
      out.set(this.readBytes(part), done);
      done += part;
    }
    return out;
  }

  /** Skips `n` bytes without reading them. */
  skip(n: number): void {
    if (n < 0 || this.#position + n > this.length) {
      throw truncated(`${n} bytes`, this.base + this.length);
    }
    this.#position += n;
  }

  /** Bytes up to the next newline. */
  readLine(max: number): Uint8Array {
    const line: number[] = [];
    for (;;) {
      const byte = this.readByte();
      if (byte === 0x0a) return Uint8Array.from(line);
      if (line.length >= max) {
        throw new FormatError(
          "LIMIT_EXCEEDED",
          `Cannot read a line longer than ${max} bytes`,
          this.base + this.#position,
        );
      }
      line.push(byte);
    }
  }

  /** Whether every byte has been read. */
  atEnd(): boolean {
    return this.#position >= this.length;
  }
}

/**
 * Reads `[offset, offset + length)` of an open file completely.
 * @throws {FormatError} `TRUNCATED` when the file is shorter
 */
export function readAt(file: Deno.FsFile, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  file.seekSync(offset, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const count = file.readSync(out.subarray(filled));
    if (count === null || count === 0) throw truncated(`${length} bytes`, offset + filled);
    filled += count;
  }
  return out;
}
