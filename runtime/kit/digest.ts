/**
 * Streaming integrity digests of a file in one pass: the plain SHA-256 of the content and the
 * fs-verity file digest (Linux `Documentation/filesystems/fsverity.rst`, "File digest
 * computation"; the same value `fsverity digest --hash-alg=sha256 --block-size=4096` prints
 * and the kernel reports with `FS_IOC_MEASURE_VERITY`). Used by the quarantine's integrity pin
 * and by the registry, which re-hashes a model before every load.
 *
 * fs-verity, as fixed here: 4 KiB blocks, SHA-256, no salt. Data blocks (the last one
 * zero-padded) are hashed; the hashes are packed into 4 KiB tree blocks (128 per block, the
 * last block zero-padded), which are hashed level by level until one hash is left: the
 * Merkle root. An empty file has an all-zero root. The file digest is the SHA-256 of the
 * 256-byte `fsverity_descriptor` {version 1, hash algorithm 1, log2 block size 12, salt size
 * 0, data size (u64 LE), root hash (zero-padded to 64 bytes), zeros}.
 * @module
 */
import { createHash, hash } from "node:crypto";

/** fs-verity block size (log2 = 12). */
export const FSVERITY_BLOCK_SIZE = 4096;
const LOG_BLOCK_SIZE = 12;
const DIGEST_SIZE = 32;
const HASHES_PER_BLOCK = FSVERITY_BLOCK_SIZE / DIGEST_SIZE;
/** `FS_VERITY_HASH_ALG_SHA256` in `linux/fsverity.h`. */
const FS_VERITY_HASH_ALG_SHA256 = 1;
const DESCRIPTOR_SIZE = 256;
/** Read size of {@link digestFile}: large reads keep the per-call overhead negligible. */
const READ_CHUNK = 4 << 20;

/** The digests of one file. */
export interface FileDigests {
  /** Bytes hashed. */
  size: number;
  /** SHA-256 of the content, 64 lowercase hex. */
  sha256: string;
  /** fs-verity file digest (SHA-256 of the descriptor), 64 lowercase hex. */
  fsverity: string;
  /** fs-verity Merkle tree root hash, 64 lowercase hex. */
  merkleRoot: string;
}

function sha256Block(block: Uint8Array): Uint8Array {
  return hash("sha256", block, "buffer") as unknown as Uint8Array;
}

/**
 * The Merkle tree above the data blocks: leaf hashes are appended in order; each level is
 * one block being filled, hashed into the level above when full (libfsverity's order).
 */
class MerkleTree {
  readonly #levels: { buffer: Uint8Array; fill: number }[] = [];

  /** Appends the hash of the next data block. */
  addLeaf(digest: Uint8Array): void {
    this.#add(0, digest);
  }

  #add(level: number, digest: Uint8Array): void {
    let entry = this.#levels[level];
    if (entry === undefined) {
      entry = { buffer: new Uint8Array(FSVERITY_BLOCK_SIZE), fill: 0 };
      this.#levels[level] = entry;
    }
    entry.buffer.set(digest, entry.fill);
    entry.fill += DIGEST_SIZE;
    if (entry.fill === FSVERITY_BLOCK_SIZE) {
      entry.fill = 0;
      this.#add(level + 1, sha256Block(entry.buffer));
    }
  }

  /**
   * Pads and hashes the partial levels and returns the root.
   * @param size bytes of data the leaves covered (all leaves added)
   */
  root(size: number): Uint8Array {
    const root = new Uint8Array(DIGEST_SIZE);
    if (size === 0) return root; // an empty file has an all-zero root
    // Levels below the root: libfsverity's count, blocks → ceil(blocks / 128) until one.
    let levels = 0;
    for (
      let blocks = Math.ceil(size / FSVERITY_BLOCK_SIZE);
      blocks > 1;
      blocks = Math.ceil(blocks / HASHES_PER_BLOCK)
    ) levels++;
    for (let level = 0; level < levels; level++) {
      const entry = this.#levels[level];
      if (entry === undefined || entry.fill === 0) continue;
      entry.buffer.fill(0, entry.fill);
      entry.fill = 0;
      this.#add(level + 1, sha256Block(entry.buffer));
    }
    const top = this.#levels[levels];
    if (top === undefined || top.fill !== DIGEST_SIZE) {
      throw new RangeError("fs-verity tree did not end in a single root hash");
    }
    root.set(top.buffer.subarray(0, DIGEST_SIZE));
    return root;
  }
}

/** The digests from the content hash, the Merkle root and the size. */
function finish(sha256: string, root: Uint8Array, size: number): FileDigests {
  const descriptor = new Uint8Array(DESCRIPTOR_SIZE);
  const view = new DataView(descriptor.buffer);
  descriptor[0] = 1; // version
  descriptor[1] = FS_VERITY_HASH_ALG_SHA256;
  descriptor[2] = LOG_BLOCK_SIZE;
  descriptor[3] = 0; // salt size
  view.setBigUint64(8, BigInt(size), true);
  descriptor.set(root, 16);
  return {
    size,
    sha256,
    fsverity: createHash("sha256").update(descriptor).digest("hex"),
    merkleRoot: toHex(root),
  };
}

/**
 * Incremental SHA-256 and fs-verity digests. Feed the content in order with
 * {@link IntegrityHasher.update}, then call {@link IntegrityHasher.digest} once.
 * @example
 * ```ts
 * const hasher = new IntegrityHasher();
 * hasher.update(new TextEncoder().encode("a"));
 * const { sha256, fsverity } = hasher.digest();
 * ```
 */
export class IntegrityHasher {
  readonly #sha = createHash("sha256");
  readonly #tree = new MerkleTree();
  /** Pending partial data block. */
  readonly #block = new Uint8Array(FSVERITY_BLOCK_SIZE);
  #blockFill = 0;
  #size = 0;
  #isDone = false;

  /** Bytes fed so far. */
  get size(): number {
    return this.#size;
  }

  /**
   * Feeds the next bytes.
   * @param chunk content, any length (the hasher does not keep a reference)
   * @throws {TypeError} after {@link digest}
   */
  update(chunk: Uint8Array): void {
    if (this.#isDone) throw new TypeError("Cannot update a finished IntegrityHasher");
    this.#sha.update(chunk);
    this.#size += chunk.length;
    let offset = 0;
    if (this.#blockFill > 0) {
      const take = Math.min(FSVERITY_BLOCK_SIZE - this.#blockFill, chunk.length);
      this.#block.set(chunk.subarray(0, take), this.#blockFill);
      this.#blockFill += take;
      offset = take;
      if (this.#blockFill < FSVERITY_BLOCK_SIZE) return;
      this.#tree.addLeaf(sha256Block(this.#block));
      this.#blockFill = 0;
    }
    // Whole blocks straight from the caller's buffer, without copying.
    for (; offset + FSVERITY_BLOCK_SIZE <= chunk.length; offset += FSVERITY_BLOCK_SIZE) {
      this.#tree.addLeaf(sha256Block(chunk.subarray(offset, offset + FSVERITY_BLOCK_SIZE)));
    }
    if (offset < chunk.length) {
      this.#block.set(chunk.subarray(offset), 0);
      this.#blockFill = chunk.length - offset;
    }
  }

  /**
   * Finishes and returns the digests.
   * @throws {TypeError} when called twice
   */
  digest(): FileDigests {
    if (this.#isDone) throw new TypeError("IntegrityHasher.digest() was already called");
    this.#isDone = true;
    if (this.#blockFill > 0) {
      this.#block.fill(0, this.#blockFill);
      this.#tree.addLeaf(sha256Block(this.#block));
    }
    return finish(this.#sha.digest("hex"), this.#tree.root(this.#size), this.#size);
  }
}

/** Options of {@link digestFile}. */
export interface DigestFileOptions {
  /** Aborting stops the read; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called after each read with the bytes hashed so far. */
  onProgress?: (bytes: number) => void;
  /** Refuse files larger than this (checked while reading, so growth is caught too). */
  maxBytes?: number;
}

/**
 * Hashes a file in one streaming pass (constant memory).
 * @param path absolute path of a regular file
 * @param options cancellation, progress and size limit
 * @returns SHA-256, fs-verity digest, Merkle root and size
 * @throws {RangeError} when the file is larger than `maxBytes`
 * @throws {Deno.errors.NotFound} and other filesystem errors unchanged
 * @example
 * ```ts
 * const { sha256, fsverity } = await digestFile("/var/lib/secai/registry/models/x");
 * ```
 */
export async function digestFile(
  path: string,
  options: DigestFileOptions = {},
): Promise<FileDigests> {
  const file = await Deno.open(path, { read: true });
  try {
    // Synchronous hashing on this thread: measured faster than handing the 4 KiB blocks to
    // WebCrypto's thread pool, whose per-call cost exceeds the hashing itself.
    const hasher = new IntegrityHasher();
    const buffer = new Uint8Array(READ_CHUNK);
    for (;;) {
      options.signal?.throwIfAborted();
      // Fill the buffer before hashing: full 4 MiB updates keep per-call overhead low.
      let filled = 0;
      while (filled < buffer.length) {
        const count = await file.read(buffer.subarray(filled));
        if (count === null) break;
        filled += count;
      }
      if (filled === 0) break;
      if (options.maxBytes !== undefined && hasher.size + filled > options.maxBytes) {
        throw new RangeError(`File "${path}" is larger than ${options.maxBytes} bytes`);
      }
      hasher.update(buffer.subarray(0, filled));
      options.onProgress?.(hasher.size);
      if (filled < buffer.length) break;
    }
    return hasher.digest();
  } finally {
    file.close();
  }
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}
