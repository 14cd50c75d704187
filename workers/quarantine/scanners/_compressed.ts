/**
 * Byte input and output sink shared by the strict decoders of compression wrappers
 * (`bzip2.ts`, `lzma.ts`, `xz.ts`): the compressed bytes are read forward in chunks (never
 * the whole file in memory), and the decoded bytes go to a sink in chunks, which enforces the
 * size limit and cancellation. A stream that ends early is a {@link FormatError}
 * `TRUNCATED`, never a crash.
 * @module
 */
import { FormatError } from "./errors.ts";

/** Bytes read from the file per refill. */
const INPUT_CHUNK = 1 << 20;
/** Decoded bytes collected before they are handed to the sink. */
export const OUTPUT_CHUNK = 1 << 20;

/** A forward-only source of compressed bytes. */
export interface CompressedInput {
  /** Bytes consumed so far (offset of the next byte in the compressed data). */
  readonly offset: number;
  /** The next byte; throws a `TRUNCATED` {@link FormatError} at the end of the data. */
  readByte(): number;
  /** Whether every byte has been consumed. */
  atEnd(): boolean;
}

/** Receives decoded bytes; the chunk is only valid during the call. */
export type OutputSink = (chunk: Uint8Array) => void;

function truncated(what: string, offset: number): FormatError {
  return new FormatError(
    "TRUNCATED",
    `The ${what} stream is truncated: the data ends at offset ${offset}`,
    offset,
  );
}

/** A {@link CompressedInput} over an open file, read from its start in 1 MiB chunks. */
export class FileInput implements CompressedInput {
  readonly #file: Deno.FsFile;
  readonly #size: number;
  readonly #what: string;
  readonly #onRead: (n: number) => void;
  readonly #buffer = new Uint8Array(INPUT_CHUNK);
  #start = 0;
  #end = 0;
  #position = 0;

  /**
   * @param file the open file; it is read from offset 0
   * @param size its size in bytes
   * @param options the format's name for messages, and a callback per chunk read
   */
  constructor(
    file: Deno.FsFile,
    size: number,
    options: { what: string; onRead?: (n: number) => void },
  ) {
    this.#file = file;
    this.#size = size;
    this.#what = options.what;
    this.#onRead = options.onRead ?? (() => {});
    file.seekSync(0, Deno.SeekMode.Start);
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#start + this.#position;
  }

  /** The next byte. */
  readByte(): number {
    if (this.#position === this.#end) this.#refill();
    // #refill leaves at least one byte at #position.
    return this.#buffer[this.#position++] as number;
  }

  /** Whether every byte has been consumed. */
  atEnd(): boolean {
    return this.offset >= this.#size;
  }

  #refill(): void {
    const at = this.offset;
    const want = Math.min(INPUT_CHUNK, this.#size - at);
    if (want <= 0) throw truncated(this.#what, at);
    let filled = 0;
    while (filled < want) {
      const n = this.#file.readSync(this.#buffer.subarray(filled, want));
      if (n === null || n === 0) throw truncated(this.#what, at + filled);
      filled += n;
    }
    this.#onRead(filled);
    this.#start = at;
    this.#position = 0;
    this.#end = filled;
  }
}

/** A {@link CompressedInput} over bytes in memory. */
export class BytesInput implements CompressedInput {
  readonly #bytes: Uint8Array;
  readonly #what: string;
  #position = 0;

  /**
   * @param bytes the compressed data
   * @param what the format's name for messages
   */
  constructor(bytes: Uint8Array, what: string) {
    this.#bytes = bytes;
    this.#what = what;
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#position;
  }

  /** The next byte. */
  readByte(): number {
    const byte = this.#bytes[this.#position];
    if (byte === undefined) throw truncated(this.#what, this.#position);
    this.#position++;
    return byte;
  }

  /** Whether every byte has been consumed. */
  atEnd(): boolean {
    return this.#position >= this.#bytes.length;
  }
}

/**
 * Collects decoded bytes into chunks for a sink.
 * @internal shared by the decoders of this folder
 */
export class ChunkWriter {
  readonly #sink: OutputSink;
  readonly #buffer = new Uint8Array(OUTPUT_CHUNK);
  #length = 0;

  /** @param sink where full chunks go */
  constructor(sink: OutputSink) {
    this.#sink = sink;
  }

  /** Appends one byte. */
  byte(value: number): void {
    this.#buffer[this.#length++] = value;
    if (this.#length === OUTPUT_CHUNK) this.flush();
  }

  /** Appends bytes (copied). */
  bytes(values: Uint8Array): void {
    let done = 0;
    while (done < values.length) {
      const n = Math.min(values.length - done, OUTPUT_CHUNK - this.#length);
      this.#buffer.set(values.subarray(done, done + n), this.#length);
      this.#length += n;
      done += n;
      if (this.#length === OUTPUT_CHUNK) this.flush();
    }
  }

  /** Hands what was collected to the sink. */
  flush(): void {
    if (this.#length === 0) return;
    this.#sink(this.#buffer.subarray(0, this.#length));
    this.#length = 0;
  }
}
