/**
 * Read access to `tree.bin`, the stored subtree hashes (layout in `merkle.ts`), as a
 * {@link HashSource} for proofs and for rebuilding the frontier on restart.
 * @module
 */
import { AuditError } from "./errors.ts";
import { HASH_BYTES, type HashSource, sizeForStoredCount, storedIndex } from "./merkle.ts";

/** A read-only view of the stored hashes of a tree of {@link size} leaves. */
export class TreeFileReader implements HashSource {
  readonly #file: Deno.FsFile;
  readonly #path: string;
  /** Whole hashes in the file. */
  readonly count: number;
  /** Leaves whose stored hashes are all present. */
  readonly size: number;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(file: Deno.FsFile, path: string, count: number) {
    this.#file = file;
    this.#path = path;
    this.count = count;
    this.size = sizeForStoredCount(count);
  }

  /**
   * Opens the file read-only.
   * @returns null when it does not exist
   */
  static async open(path: string): Promise<TreeFileReader | null> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
    const bytes = (await file.stat()).size;
    return new TreeFileReader(file, path, Math.floor(bytes / HASH_BYTES));
  }

  /**
   * Hash of a complete subtree.
   * @throws {AuditError} AUDIT_RANGE_INVALID when it is not stored
   */
  get(level: number, index: number): Promise<Uint8Array> {
    const at = storedIndex(level, index);
    if (at >= this.count) {
      return Promise.reject(
        new AuditError(
          "AUDIT_RANGE_INVALID",
          `Subtree ${level}/${index} is not in "${this.#path}" (${this.count} hashes)`,
        ),
      );
    }
    // seek + read must not interleave with another caller's.
    const next = this.#queue.then(() => this.#read(at));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** Leaf hash of entry `seq`. */
  leaf(seq: number): Promise<Uint8Array> {
    return this.get(0, seq);
  }

  async #read(at: number): Promise<Uint8Array> {
    await this.#file.seek(at * HASH_BYTES, Deno.SeekMode.Start);
    const out = new Uint8Array(HASH_BYTES);
    let filled = 0;
    while (filled < HASH_BYTES) {
      const n = await this.#file.read(out.subarray(filled));
      if (n === null) {
        throw new AuditError("AUDIT_MALFORMED", `"${this.#path}" ended inside hash ${at}`);
      }
      filled += n;
    }
    return out;
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }
}
