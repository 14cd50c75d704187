/**
 * Append-only JSON-lines store with group commit: appends that arrive together are written
 * in one write and one fsync, and each is acknowledged only after that fsync. On open, a torn
 * last line (crash mid-write) is detected and truncated so that every remaining line parses.
 * The Merkle tree, signed heads and proofs come with issue #4.
 * @module
 */
import { type AuditEntry, AuditEntrySchema } from "./api.ts";

/** Result of opening the store. */
export interface OpenResult {
  store: AuditStore;
  /** Bytes cut from a torn tail, 0 when the file was clean. */
  truncatedBytes: number;
}

interface Waiting {
  entry: Omit<AuditEntry, "seq">;
  resolve: (seq: number) => void;
  reject: (err: Error) => void;
}

/** The audit log file. */
export class AuditStore {
  readonly #path: string;
  readonly #file: Deno.FsFile;
  #nextSeq: number;
  #size: number;
  #queue: Waiting[] = [];
  #writing = false;

  private constructor(path: string, file: Deno.FsFile, nextSeq: number, size: number) {
    this.#path = path;
    this.#file = file;
    this.#nextSeq = nextSeq;
    this.#size = size;
  }

  /** Opens (or creates) the log, repairing a torn tail. */
  static async open(path: string): Promise<OpenResult> {
    const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
    const bytes = await Deno.readFile(path);
    let end = bytes.lastIndexOf(0x0a) + 1; // everything after the last newline is torn
    let nextSeq = 0;
    // The last complete line must parse too: a crash can leave a line whose bytes were
    // allocated but not all written (zeros) before a newline from a later write.
    while (end > 0) {
      const start = bytes.lastIndexOf(0x0a, end - 2) + 1;
      const line = new TextDecoder().decode(bytes.subarray(start, end - 1));
      const parsed = safeJson(line);
      const entry = AuditEntrySchema.safeParse(parsed);
      if (entry.success) {
        nextSeq = entry.data.seq + 1;
        break;
      }
      end = start;
    }
    const truncatedBytes = bytes.length - end;
    if (truncatedBytes > 0) {
      await file.truncate(end);
      await file.sync();
    }
    return { store: new AuditStore(path, file, nextSeq, end), truncatedBytes };
  }

  /** Sequence number the next entry gets. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** Appends an entry; resolves with its seq after it is durable. */
  append(entry: Omit<AuditEntry, "seq">): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ entry, resolve, reject });
      if (!this.#writing) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, 512);
        const firstSeq = this.#nextSeq;
        const text = batch.map((w, i) => JSON.stringify({ seq: firstSeq + i, ...w.entry }) + "\n")
          .join("");
        const bytes = new TextEncoder().encode(text);
        try {
          await this.#file.seek(this.#size, Deno.SeekMode.Start);
          let written = 0;
          while (written < bytes.length) {
            written += await this.#file.write(bytes.subarray(written));
          }
          await this.#file.sync();
        } catch (err) {
          // Nothing of this batch is acknowledged; cut whatever part reached the file.
          await this.#file.truncate(this.#size).catch(() => undefined);
          for (const w of batch) w.reject(err instanceof Error ? err : new Error(String(err)));
          continue;
        }
        this.#size += bytes.length;
        this.#nextSeq += batch.length;
        batch.forEach((w, i) => w.resolve(firstSeq + i));
      }
    } finally {
      this.#writing = false;
    }
  }

  /** Reads entries, newest first, matching the filter. */
  async query(filter: {
    before?: number | undefined;
    limit: number;
    control?: string | undefined;
    type?: string | undefined;
  }): Promise<{ entries: AuditEntry[]; next: number | null; total: number }> {
    const text = new TextDecoder().decode(
      (await Deno.readFile(this.#path)).subarray(0, this.#size),
    );
    const lines = text.split("\n");
    const entries: AuditEntry[] = [];
    let next: number | null = null;
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i];
      if (!line) continue;
      const parsed = AuditEntrySchema.safeParse(safeJson(line));
      if (!parsed.success) continue;
      const e = parsed.data;
      if (filter.before !== undefined && e.seq >= filter.before) continue;
      if (filter.control && e.control !== filter.control) continue;
      if (filter.type && e.type !== filter.type) continue;
      if (entries.length === filter.limit) {
        next = entries.at(-1)?.seq ?? null;
        break;
      }
      entries.push(e);
    }
    return { entries, next, total: this.#nextSeq };
  }

  /** Waits for queued appends, then closes the file. */
  async close(): Promise<void> {
    while (this.#writing || this.#queue.length > 0) {
      await new Promise((r) => setTimeout(r, 5));
    }
    this.#file.close();
  }
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined; // reported as a schema failure by the caller
  }
}
