/**
 * SHA-256 of a file's byte ranges in one sequential pass: the whole file, each named region
 * (a model's header and every tensor) and the bytes that belong to no region (padding, gaps,
 * trailing data). Used inside the sandbox to build a model's tensor manifest and by the
 * registry to say which tensors of a tampered blob changed: the registry hashes only the
 * ranges of its own stored manifest and never parses the tampered file.
 * @module
 */
import { createHash, type Hash } from "node:crypto";

/** Read size: large reads keep the per-call overhead negligible. */
const READ_CHUNK = 4 << 20;

/** A byte range of a file. */
export interface ByteRegion {
  /** Absolute offset of the first byte. */
  offset: number;
  /** Length in bytes (0 allowed). */
  size: number;
}

/** The digests of {@link digestRegions}. */
export interface RegionDigests {
  /** Bytes in the file. */
  size: number;
  /** SHA-256 of the whole file, 64 lowercase hex. */
  sha256: string;
  /** SHA-256 of each region, in the caller's order; null when it runs past the file's end. */
  regions: (string | null)[];
  /** The bytes in no region, hashed in file order. */
  rest: { size: number; sha256: string };
}

/** Options of {@link digestRegions}. */
export interface DigestRegionsOptions {
  /** Aborting stops the read; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Refuse files larger than this (checked while reading, so growth is caught too). */
  maxBytes?: number;
}

/**
 * Hashes a file and the given regions of it in one streaming pass (constant memory).
 * @param path absolute path of a regular file
 * @param regions non-overlapping byte ranges, in any order
 * @param options cancellation and size limit
 * @returns the whole file's digest, each region's and that of the bytes outside them
 * @throws {RangeError} when a region is not a pair of safe non-negative integers, regions
 * overlap, or the file is larger than `maxBytes`
 * @example
 * ```ts
 * const d = await digestRegions("/tmp/model.gguf", [{ offset: 0, size: 128 }]);
 * console.log(d.regions[0], d.rest.size);
 * ```
 */
export async function digestRegions(
  path: string,
  regions: readonly ByteRegion[],
  options: DigestRegionsOptions = {},
): Promise<RegionDigests> {
  for (const [i, r] of regions.entries()) {
    if (
      !Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.size) || r.offset < 0 ||
      r.size < 0 || !Number.isSafeInteger(r.offset + r.size)
    ) {
      throw new RangeError(`Cannot hash region ${i}: offset ${r.offset}, size ${r.size}`);
    }
  }
  const order = regions.map((_, i) => i).sort((a, b) =>
    (regions[a] as ByteRegion).offset - (regions[b] as ByteRegion).offset
  );
  for (let k = 1; k < order.length; k++) {
    const before = regions[order[k - 1] as number] as ByteRegion;
    const here = regions[order[k] as number] as ByteRegion;
    if (here.offset < before.offset + before.size) {
      throw new RangeError(
        `Cannot hash overlapping regions at offsets ${before.offset} and ${here.offset}`,
      );
    }
  }
  const whole = createHash("sha256");
  const rest = createHash("sha256");
  let restSize = 0;
  const hashers: (Hash | null)[] = regions.map(() => null);
  let next = 0; // index into `order` of the first region not yet fully read
  let position = 0;
  const file = await Deno.open(path, { read: true });
  try {
    const buffer = new Uint8Array(READ_CHUNK);
    for (;;) {
      options.signal?.throwIfAborted();
      const count = await file.read(buffer);
      if (count === null) break;
      if (options.maxBytes !== undefined && position + count > options.maxBytes) {
        throw new RangeError(`Cannot hash "${path}": larger than ${options.maxBytes} bytes`);
      }
      const chunk = buffer.subarray(0, count);
      whole.update(chunk);
      let at = 0;
      while (at < count) {
        const absolute = position + at;
        const index = order[next];
        const region = index === undefined ? undefined : regions[index];
        if (index === undefined || region === undefined) {
          rest.update(chunk.subarray(at));
          restSize += count - at;
          at = count;
        } else if (absolute < region.offset) {
          const take = Math.min(count - at, region.offset - absolute);
          rest.update(chunk.subarray(at, at + take));
          restSize += take;
          at += take;
        } else {
          const end = region.offset + region.size;
          const take = Math.min(count - at, end - absolute);
          const hasher = hashers[index] ?? createHash("sha256");
          hashers[index] = hasher;
          hasher.update(chunk.subarray(at, at + take));
          at += take;
          if (absolute + take >= end) next++;
        }
      }
      position += count;
    }
  } finally {
    file.close();
  }
  // Empty regions that start at or before the end are complete; the others were cut short.
  for (let k = next; k < order.length; k++) {
    const index = order[k] as number;
    const region = regions[index] as ByteRegion;
    if (region.size === 0 && region.offset <= position) {
      hashers[index] = createHash("sha256");
    } else hashers[index] = null;
  }
  return {
    size: position,
    sha256: whole.digest("hex"),
    regions: hashers.map((h) => h === null ? null : h.digest("hex")),
    rest: { size: restSize, sha256: rest.digest("hex") },
  };
}
