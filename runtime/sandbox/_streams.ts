/**
 * Bounded readers for a job's stdout and stderr: a job must not be able to make the runner
 * hold unbounded memory. Private to runtime/sandbox.
 * @module
 */

/** Options of {@link readCapped}. */
export interface ReadCappedOptions {
  /** Most bytes kept; past it the rest is read and dropped. */
  maxBytes: number;
  /** Called once when the stream exceeds `maxBytes` (the runner kills the job). */
  onOverflow: () => void;
}

/** What {@link readCapped} read. */
export interface CappedBytes {
  bytes: Uint8Array;
  overflow: boolean;
}

/**
 * Reads a stream to its end, keeping at most `maxBytes`.
 * @returns the kept bytes and whether more came
 */
export async function readCapped(
  stream: ReadableStream<Uint8Array>,
  options: ReadCappedOptions,
): Promise<CappedBytes> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let overflow = false;
  for await (const chunk of stream) {
    if (overflow) continue; // drain, so the writer is not blocked before it is killed
    if (total + chunk.length > options.maxBytes) {
      overflow = true;
      options.onOverflow();
      continue;
    }
    chunks.push(chunk);
    total += chunk.length;
  }
  return { bytes: concat(chunks, total), overflow };
}

/** Options of {@link readHeadAndTail}. */
export interface ReadHeadAndTailOptions {
  /** Bytes kept from the start (where the sandbox's own report line is). */
  headBytes: number;
  /** Bytes kept from the end (for diagnosis). */
  tailBytes: number;
}

/** What {@link readHeadAndTail} kept. */
export interface HeadAndTail {
  head: Uint8Array;
  tail: Uint8Array;
}

/** Reads a stream to its end, keeping only its first and last bytes. */
export async function readHeadAndTail(
  stream: ReadableStream<Uint8Array>,
  options: ReadHeadAndTailOptions,
): Promise<HeadAndTail> {
  const head: Uint8Array[] = [];
  let headSize = 0;
  const tail: Uint8Array[] = [];
  let tailSize = 0;
  for await (const chunk of stream) {
    if (headSize < options.headBytes) {
      const part = chunk.subarray(0, options.headBytes - headSize);
      head.push(part);
      headSize += part.length;
    }
    tail.push(chunk);
    tailSize += chunk.length;
    // Drop whole chunks from the front while the rest still covers tailBytes.
    while (tail.length > 1 && tailSize - (tail[0]?.length ?? 0) >= options.tailBytes) {
      tailSize -= tail.shift()?.length ?? 0;
    }
  }
  const joined = concat(tail, tailSize);
  return {
    head: concat(head, headSize),
    tail: joined.subarray(Math.max(0, joined.length - options.tailBytes)),
  };
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
