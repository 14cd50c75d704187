/**
 * The audit log writer: an append-only Merkle log (RFC 9162) in size-rotated segments, with
 * a signed tree head after every batch.
 *
 * Group commit: appends that arrive while a batch is being written form the next batch; a
 * batch is one write and one fsync of the segment, and each entry is acknowledged only after
 * that fsync (plus a directory fsync whenever a segment file is created). Leaf hashing and
 * the head signature run while the fsync is in flight; the head line follows the batch.
 *
 * A write that fails (a full disk) leaves nothing behind: the files are cut back, the batch
 * is refused (its entries take no seq) and a head not yet written stays pending; the log goes
 * on once there is room. Only a failed cut, rotation or checkpoint stops the log.
 *
 * Recovery on open: the stored tree is trusted up to its checkpoint (`tree.json`), the lines
 * after it are rehashed, and whatever follows the last head signed by our key in the last
 * segment is checked entry by entry: valid entries (acknowledged before a crash) are kept and
 * sealed with a new head; from the first invalid line on, the bytes are a torn batch that was
 * never acknowledged: they are copied to `recovered/` and cut.
 * @module
 */
import { syncDir, writeFileAtomic } from "../../runtime/kit/fs.ts";
import { canonicalJson, MAX_CANONICAL_LENGTH } from "./offline/canonical.ts";
import { AuditError } from "./offline/errors.ts";
import {
  ANCHOR_FILE,
  type AuditEntry,
  type Checkpoint,
  CheckpointSchema,
  isHeadLine,
  parseJsonLine,
  readEntryLine,
  readHeadLine,
  segmentName,
  type SignedHead,
} from "./offline/format.ts";
import { headHash, isHeadSigned, type PublicKeyInfo } from "./offline/keys.ts";
import {
  HASH_BYTES,
  type HashSource,
  leafHash,
  MerkleFrontier,
  storedCount,
  storedIndex,
  toHex,
} from "./offline/merkle.ts";
import { listSegments, scanLines, type SegmentInfo } from "./offline/segments.ts";
import { loadSigningKey, signAnchor, signHead, type SigningKey } from "./keys.ts";
import { anchorFor, deleteBefore, planRetention } from "./retention.ts";
import { readAnchor, requireAnchor } from "./offline/anchor.ts";

/** What a caller appends; `ts` and `seq` are assigned by the log. */
export type AppendEntry = Omit<AuditEntry, "seq" | "ts">;

/** Options of {@linkcode AuditLog.open}. */
export interface AuditLogOptions {
  /** A segment is rotated once it holds this many bytes. Default 32 MiB. */
  segmentMaxBytes?: number;
  /** Entries between two checkpoints of the stored tree. Default 65536. */
  checkpointEvery?: number;
  /** Most entries in one batch. Default 1024. */
  maxBatch?: number;
  /** Clock for entry and head timestamps. */
  now?: () => Date;
  /** Called after a segment is sealed and the next one started (retention checks then). */
  onRotate?: () => void;
}

/** What opening the log found and repaired. */
export interface Recovery {
  /** Bytes cut from the end of the last segment (a torn batch, never acknowledged). */
  truncatedBytes: number;
  /** Complete or partial lines among them. */
  droppedLines: number;
  /** File under `recovered/` holding the cut bytes; null when nothing was cut. */
  quarantined: string | null;
  /** Entries after the last head that were valid, kept and sealed with a new head. */
  sealedEntries: number;
  /** Entries hashed at start (those after the tree checkpoint). */
  rehashed: number;
  /** Heads in the rehashed region that are signed by our key but do not match the entries
   * before them: the log was altered (`verify` tells where). */
  mismatchedHeads: number;
  /** The stored tree was missing or inconsistent and was rebuilt from the segments. */
  isTreeRebuilt: boolean;
  /** The signing key was generated now. */
  isKeyNew: boolean;
  /** `keys/signing.pub` was missing or wrong and was rewritten from the private key. */
  isPublicKeyRepaired: boolean;
  /** Segment files deleted to finish a retention run that a crash interrupted. */
  prunedSegments: number;
}

interface Waiting {
  /** Canonical text of the entry before and after its seq number. */
  prefix: string;
  suffix: string;
  resolve: (seq: number) => void;
  reject: (err: Error) => void;
}

interface OpenSegment {
  name: string;
  path: string;
  file: Deno.FsFile;
  size: number;
}

const DEFAULT_SEGMENT_MAX_BYTES = 32 * 1024 * 1024;
const DEFAULT_CHECKPOINT_EVERY = 65_536;
const DEFAULT_MAX_BATCH = 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads stored hashes through a read/write handle (recovery only, nothing else uses it). */
class HandleSource implements HashSource {
  constructor(readonly file: Deno.FsFile) {}
  async get(level: number, index: number): Promise<Uint8Array> {
    await this.file.seek(storedIndex(level, index) * HASH_BYTES, Deno.SeekMode.Start);
    const out = new Uint8Array(HASH_BYTES);
    let filled = 0;
    while (filled < HASH_BYTES) {
      const n = await this.file.read(out.subarray(filled));
      if (n === null) throw new AuditError("AUDIT_MALFORMED", "tree.bin ended inside a hash");
      filled += n;
    }
    return out;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/**
 * The hot path's writes: a batch's lines, a head line, a few stored hashes. They land in the
 * page cache in microseconds, while an async write costs a round trip through Deno's
 * blocking thread pool (~30–60 µs of CPU and latency each, measured). Only the fsync, which
 * waits on the disk, stays async.
 */
function writeAllSync(file: Deno.FsFile, bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** A head signed for an acknowledged batch whose line is not in the segment yet. */
interface PendingHead {
  signed: SignedHead;
  line: Uint8Array;
  /** Stored hashes of the batch (tree.bin order). */
  stored: Uint8Array[];
  /** The tree with the batch. */
  frontier: MerkleFrontier;
}

function concatHashes(hashes: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(hashes.length * HASH_BYTES);
  hashes.forEach((h, i) => out.set(h, i * HASH_BYTES));
  return out;
}

/** The audit log of one state directory; one writer at a time (the audit control). */
export class AuditLog {
  readonly #dir: string;
  readonly #key: SigningKey;
  readonly #segmentMaxBytes: number;
  readonly #checkpointEvery: number;
  readonly #maxBatch: number;
  readonly #now: () => Date;
  readonly #onRotate: () => void;
  #segment: OpenSegment;
  #tree: Deno.FsFile;
  #frontier: MerkleFrontier;
  #head: SignedHead | null;
  #headHash: string;
  #checkpointSize: number;
  #queue: Waiting[] = [];
  /** The last batch's head: signed, its line not yet written (see #commit). */
  #pending: PendingHead | null = null;
  #draining: Promise<void> | null = null;
  #failure: AuditError | null = null;
  #isClosed = false;
  /** Entries acknowledged so far (the head catches up right after each batch). */
  #acked = 0;
  #headWaiters: { size: number; resolve: () => void }[] = [];
  /** Why the last batch's head could not be written (a full disk); null once one is. */
  #headError: unknown = null;

  private constructor(init: {
    dir: string;
    key: SigningKey;
    options: AuditLogOptions;
    segment: OpenSegment;
    tree: Deno.FsFile;
    frontier: MerkleFrontier;
    head: SignedHead | null;
  }) {
    this.#dir = init.dir;
    this.#key = init.key;
    this.#segmentMaxBytes = init.options.segmentMaxBytes ?? DEFAULT_SEGMENT_MAX_BYTES;
    this.#checkpointEvery = init.options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
    this.#maxBatch = init.options.maxBatch ?? DEFAULT_MAX_BATCH;
    this.#now = init.options.now ?? (() => new Date());
    this.#onRotate = init.options.onRotate ?? (() => {});
    this.#segment = init.segment;
    this.#tree = init.tree;
    this.#frontier = init.frontier;
    this.#head = init.head;
    this.#headHash = init.head ? headHash(init.head) : "";
    this.#checkpointSize = init.frontier.size;
    this.#acked = init.frontier.size;
  }

  /**
   * Opens (or creates) the log in `dir`, recovering from a crash.
   * @param dir `<home>/audit`
   * @param options rotation size, checkpoint interval, batch size, clock
   * @returns the log and what recovery did
   * @throws {AuditError} AUDIT_KEY_INVALID when the signing key is unusable
   * @example
   * ```ts
   * const { log } = await AuditLog.open(`${home}/audit`);
   * const seq = await log.append({ control: "policy", type: "policy.decision", actor: "a",
   *   subject: "s", evidence: {}, data: {} });
   * ```
   */
  static async open(
    dir: string,
    options: AuditLogOptions = {},
  ): Promise<{ log: AuditLog; recovery: Recovery }> {
    await Deno.mkdir(`${dir}/segments`, { recursive: true, mode: 0o700 });
    const loaded = await loadSigningKey(`${dir}/keys`);
    const recovery: Recovery = {
      truncatedBytes: 0,
      droppedLines: 0,
      quarantined: null,
      sealedEntries: 0,
      rehashed: 0,
      mismatchedHeads: 0,
      isTreeRebuilt: false,
      isKeyNew: loaded.isNew,
      isPublicKeyRepaired: loaded.isPublicKeyRepaired,
      prunedSegments: 0,
    };
    const tree = await Deno.open(`${dir}/tree.bin`, {
      read: true,
      append: true,
      create: true,
      mode: 0o600,
    });
    try {
      const state = await recover(dir, { key: loaded.key, tree, recovery });
      const log = new AuditLog({ dir, key: loaded.key, options, tree, ...state });
      if ((state.head?.head.size ?? 0) !== state.frontier.size) {
        await log.#sealNow();
      }
      await log.#checkpoint();
      return { log, recovery };
    } catch (err) {
      tree.close();
      throw err;
    }
  }

  /** Entries in the log: acknowledged (or sealed at open). */
  get size(): number {
    return this.#acked;
  }

  /**
   * The latest signed head; null while the log is empty. It may lag the last acknowledged
   * batch for the moment its head line is written: {@link settledHead} waits for it.
   */
  get head(): SignedHead | null {
    return this.#head;
  }

  /**
   * The head once it covers every entry acknowledged before this call. A head that could not
   * be written (a full disk) is tried again first.
   * @throws {AuditError} AUDIT_UNAVAILABLE while that head still cannot be written
   */
  async settledHead(): Promise<SignedHead | null> {
    const size = this.#acked;
    const lags = () => (this.#head?.head.size ?? 0) < size && !this.#failure;
    if (lags() && this.#draining) {
      this.#headError = null; // the batch being written carries the head, or fails it again
    } else if (lags() && this.#pending) {
      try {
        this.#writePending();
      } catch (err) {
        this.#headError = err;
      }
    }
    if (lags() && this.#headError === null) {
      await new Promise<void>((resolve) => this.#headWaiters.push({ size, resolve }));
    }
    if (lags() && this.#headError !== null) {
      const cause = this.#headError;
      throw new AuditError(
        "AUDIT_UNAVAILABLE",
        `The signed head of the latest entries cannot be written yet: ${
          cause instanceof Error ? cause.message : String(cause)
        }`,
        { cause },
      );
    }
    return this.#head;
  }

  /** The public key heads are signed with. */
  get publicKey(): PublicKeyInfo {
    return this.#key.publicKey;
  }

  /** The log's directory. */
  get dir(): string {
    return this.#dir;
  }

  /**
   * Appends an entry; resolves with its seq once it is durable (fsynced).
   * @throws {AuditError} AUDIT_ENTRY_INVALID when the entry cannot be encoded (rejected at
   *   once, before it takes a seq); AUDIT_UNAVAILABLE when the log is closed or broken
   */
  append(entry: AppendEntry): Promise<number> {
    if (this.#isClosed) {
      return Promise.reject(new AuditError("AUDIT_UNAVAILABLE", "The audit log is closed"));
    }
    if (this.#failure) return Promise.reject(this.#failure);
    let prefix: string;
    let suffix: string;
    try {
      ({ prefix, suffix } = encodeParts(entry, this.#now().toISOString()));
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ prefix, suffix, resolve, reject });
      this.#draining ??= this.#drain();
    });
  }

  async #drain(): Promise<void> {
    try {
      for (;;) {
        if (this.#queue.length > 0) {
          const batch = this.#queue.splice(0, this.#maxBatch);
          if (this.#failure) {
            for (const w of batch) w.reject(this.#failure);
            continue;
          }
          await this.#commit(batch);
          continue;
        }
        // Idle: the last batch's head goes out on its own. When it cannot be written (a
        // full disk) nothing of it stays behind and it goes out with the next batch.
        if (this.#pending && !this.#failure) {
          try {
            this.#writePending();
          } catch (err) {
            this.#headError = err;
            this.#wakeHeadWaiters();
            break;
          }
          continue;
        }
        break;
      }
    } finally {
      this.#draining = null;
    }
  }

  /**
   * Commits one batch. Its lines go out in one write together with the previous batch's
   * head line (signed while that batch's fsync ran), then one fsync; the batch is
   * acknowledged once that fsync returns. The previous head is published then (its line is
   * durable, its stored hashes written), and this batch's head waits for the next write —
   * or is written on its own when no batch follows. A crash before a head reaches the disk
   * leaves valid unsealed entries, which the next open keeps and seals.
   */
  async #commit(batch: Waiting[]): Promise<void> {
    if (this.#segment.size >= this.#segmentMaxBytes) {
      try {
        this.#writePending(); // a sealed segment ends with a head
      } catch (err) {
        this.#refuse(batch, err); // nothing was written; the next batch tries again
        return;
      }
      try {
        await this.#rotate();
      } catch (err) {
        this.#fail("rotate the segment", err);
        for (const w of batch) w.reject(this.#failure as AuditError);
        return;
      }
    }
    const pending = this.#pending;
    const base = pending?.frontier ?? this.#frontier;
    const first = base.size;
    const lines = batch.map((w, i) => w.prefix + String(first + i) + w.suffix);
    const text = lines.join("\n") + "\n";
    const lineBytes = encoder.encode(text); // canonical lines are ASCII: chars = bytes
    const bytes = pending ? concatBytes(pending.line, lineBytes) : lineBytes;
    const segment = this.#segment;
    const before = segment.size;
    let sync: Promise<void>;
    try {
      // The previous head's stored hashes first (proofs need them before that head is
      // published; recovery cuts tree.bin back to the segments after a crash), then the
      // lines, then the fsync.
      if (pending) writeAllSync(this.#tree, concatHashes(pending.stored));
      writeAllSync(segment.file, bytes);
      sync = segment.file.sync();
    } catch (err) {
      // A full disk: nothing of the batch or the pending head stays; it is refused, and the
      // head goes out with the next batch.
      await this.#undo(before, err, batch);
      if (pending) await this.#rewindTree(storedCount(this.#frontier.size));
      return;
    }
    // While the fsync is in flight: hash the batch into a copy of the tree and sign its head.
    const frontier = base.clone();
    const stored: Uint8Array[] = [];
    let at = bytes.length - lineBytes.length;
    for (const line of lines) {
      stored.push(...frontier.push(leafHash(bytes.subarray(at, at + line.length))));
      at += line.length + 1;
    }
    const signed = signHead({
      v: 1,
      size: frontier.size,
      root: toHex(frontier.root()),
      prev: pending ? headHash(pending.signed) : this.#headHash,
      ts: this.#now().toISOString(),
      key: this.#key.publicKey.id,
    }, this.#key);
    try {
      await sync;
    } catch (err) {
      await this.#undo(before, err, batch);
      // The pending head's hashes are in tree.bin already; they are written again later.
      if (pending) await this.#rewindTree(storedCount(this.#frontier.size));
      return;
    }
    segment.size += bytes.length;
    this.#acked = frontier.size;
    batch.forEach((w, i) => w.resolve(first + i));
    if (pending) this.#publish(pending);
    this.#pending = {
      signed,
      line: encoder.encode(canonicalJson(signed) + "\n"),
      stored,
      frontier,
    };
    if (!this.#failure && frontier.size - this.#checkpointSize >= this.#checkpointEvery) {
      let isHeadWritten = true;
      try {
        this.#writePending();
      } catch {
        isHeadWritten = false; // left pending; the checkpoint waits for a later batch
      }
      if (isHeadWritten) {
        await this.#checkpoint().catch((err) => this.#fail("checkpoint the tree", err));
      }
    }
  }

  /**
   * Writes the head signed for the last batch and its stored hashes, then publishes it. On a
   * failed write both files are cut back to where they were, so the head stays pending and
   * goes out again later; only when that cut fails is the log failed.
   * @throws the write's error, once nothing of the head is left in either file
   */
  #writePending(): void {
    const pending = this.#pending;
    if (!pending) return;
    const segment = this.#segment;
    const before = segment.size;
    try {
      writeAllSync(segment.file, pending.line);
      writeAllSync(this.#tree, concatHashes(pending.stored));
    } catch (err) {
      try {
        segment.file.truncateSync(before);
        this.#tree.truncateSync(storedCount(this.#frontier.size) * HASH_BYTES);
      } catch (cutErr) {
        this.#fail("undo a failed head write", cutErr);
      }
      throw err;
    }
    segment.size += pending.line.length;
    this.#publish(pending);
  }

  /** A head whose line is in the segment and whose stored hashes are written. */
  #publish(pending: PendingHead): void {
    if (this.#pending === pending) this.#pending = null;
    this.#headError = null;
    this.#frontier = pending.frontier;
    this.#head = pending.signed;
    this.#headHash = headHash(pending.signed);
    this.#wakeHeadWaiters();
  }

  /** Cuts stored hashes written for a head that was not made durable (a failed batch). */
  async #rewindTree(hashes: number): Promise<void> {
    try {
      await this.#tree.truncate(hashes * HASH_BYTES);
    } catch (err) {
      this.#fail("undo a failed batch", err);
    }
  }

  #wakeHeadWaiters(): void {
    const size = this.#head?.head.size ?? 0;
    const ready = this.#headWaiters.filter((w) =>
      w.size <= size || this.#failure || this.#headError !== null
    );
    this.#headWaiters = this.#headWaiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }

  /** A batch failed before it was durable: cut what reached the file and reject it. */
  async #undo(before: number, cause: unknown, batch: Waiting[]): Promise<void> {
    try {
      await this.#segment.file.truncate(before);
      this.#segment.size = before;
    } catch (err) {
      this.#fail("undo a failed batch", err);
    }
    this.#refuse(batch, cause);
  }

  /** Rejects a batch that was not written (none of its entries took a seq). */
  #refuse(batch: Waiting[], cause: unknown): void {
    const error = new AuditError(
      "AUDIT_UNAVAILABLE",
      `Cannot write the audit log: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    for (const w of batch) w.reject(error);
  }

  #fail(what: string, cause: unknown): void {
    queueMicrotask(() => this.#wakeHeadWaiters());
    // Fail closed: with the file in an unknown state, no further append is acknowledged.
    this.#failure ??= new AuditError(
      "AUDIT_UNAVAILABLE",
      `The audit log stopped accepting entries: cannot ${what}: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
  }

  /** Seals the segment (its last line is a head) and starts the next one. */
  async #rotate(): Promise<void> {
    const old = this.#segment;
    await old.file.sync();
    old.file.close();
    await Deno.chmod(old.path, 0o400);
    this.#segment = await createSegment(this.#dir, this.#frontier.size);
    await this.#checkpoint();
    queueMicrotask(this.#onRotate);
  }

  /** Signs and durably writes a head for the current tree (used at open). */
  async #sealNow(): Promise<void> {
    const signed = signHead({
      v: 1,
      size: this.#frontier.size,
      root: toHex(this.#frontier.root()),
      prev: this.#headHash,
      ts: this.#now().toISOString(),
      key: this.#key.publicKey.id,
    }, this.#key);
    const bytes = encoder.encode(canonicalJson(signed) + "\n");
    await writeAll(this.#segment.file, bytes);
    await this.#segment.file.sync();
    this.#segment.size += bytes.length;
    this.#head = signed;
    this.#headHash = headHash(signed);
  }

  /** Makes `tree.bin` durable up to the current size and records that in `tree.json`. */
  async #checkpoint(): Promise<void> {
    await this.#tree.sync();
    const checkpoint: Checkpoint = {
      v: 1,
      size: this.#frontier.size,
      root: toHex(this.#frontier.root()),
      segment: this.#segment.name,
      offset: this.#segment.size,
      head: this.#head,
    };
    await writeFileAtomic(`${this.#dir}/tree.json`, JSON.stringify(checkpoint) + "\n");
    this.#checkpointSize = this.#frontier.size;
  }

  /**
   * Retention: deletes the oldest sealed segments until all of them take at most
   * `maxBytes`, leaving a signed anchor in their place (see `retention.ts`). Records an
   * `audit.pruned` entry first. Callers keep verification from running at the same time.
   * @returns what was deleted, or null when the log is within the budget
   * @throws {AuditError} AUDIT_MALFORMED when the files do not allow it (a damaged segment
   *   end or stored tree: nothing is deleted); AUDIT_UNAVAILABLE when the log is closed
   */
  async prune(
    maxBytes: number,
  ): Promise<{ from: number; before: number; segments: number; bytes: number } | null> {
    if (this.#isClosed || this.#failure) {
      throw this.#failure ?? new AuditError("AUDIT_UNAVAILABLE", "The audit log is closed");
    }
    const plan = await planRetention(this.#dir, {
      maxBytes,
      activeSegment: this.#segment.name,
    });
    if (!plan) return null;
    const anchor = await anchorFor(this.#dir, plan, {
      publicKey: this.#key.publicKey,
      now: this.#now(),
    });
    const result = {
      from: plan.from,
      before: plan.boundary,
      segments: plan.segments.length,
      bytes: plan.bytes,
    };
    await this.append({
      control: "audit",
      type: "audit.pruned",
      actor: "audit",
      subject: `entries ${plan.from}..${plan.boundary - 1}`,
      evidence: {
        ...result,
        maxBytes,
        files: plan.segments.map((s) => s.name),
        anchorRoot: anchor.head.head.root,
      },
      data: {},
    });
    await writeFileAtomic(
      `${this.#dir}/${ANCHOR_FILE}`,
      canonicalJson(signAnchor(anchor, this.#key)) + "\n",
    );
    await deleteBefore(this.#dir, plan.boundary);
    return result;
  }

  /** Resolves once every append queued so far is settled. */
  async flush(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  /**
   * Runs `fn` with no batch in progress and none starting until it returns, for readers that
   * need the files to match {@link head} exactly (verification).
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    // Check and take the gate in one synchronous step, so two callers cannot both pass.
    while (this.#draining) await this.#draining;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    this.#draining = gate;
    try {
      return await fn();
    } finally {
      this.#draining = null;
      release();
      if (this.#queue.length > 0) this.#draining = this.#drain();
    }
  }

  /** Waits for queued appends, checkpoints the tree and closes the files. */
  async close(): Promise<void> {
    if (this.#isClosed) return;
    this.#isClosed = true; // refuse new appends; those queued still drain
    await this.flush();
    try {
      if (!this.#failure) await this.#checkpoint();
    } finally {
      this.#segment.file.close();
      this.#tree.close();
    }
  }
}

/**
 * Canonical text of an entry around its seq: keys sort as actor, control, data, decision,
 * evidence, seq, subject, ts, type, so everything but the seq is encoded (and checked) when
 * the append arrives, and a batch only concatenates.
 */
function encodeParts(entry: AppendEntry, ts: string): { prefix: string; suffix: string } {
  const head: Record<string, unknown> = {
    actor: entry.actor,
    control: entry.control,
    data: entry.data,
    evidence: entry.evidence,
  };
  if (entry.decision !== undefined) head.decision = entry.decision;
  const tail = canonicalJson({ subject: entry.subject, ts, type: entry.type });
  const prefix = canonicalJson(head).slice(0, -1) + ',"seq":';
  const suffix = "," + tail.slice(1);
  if (prefix.length + suffix.length + 20 > MAX_CANONICAL_LENGTH) {
    throw new AuditError(
      "AUDIT_ENTRY_INVALID",
      `Cannot append: the entry is longer than ${MAX_CANONICAL_LENGTH} bytes`,
    );
  }
  return { prefix, suffix };
}

async function createSegment(dir: string, firstSeq: number): Promise<OpenSegment> {
  const name = segmentName(firstSeq);
  const path = `${dir}/segments/${name}`;
  const file = await Deno.open(path, { read: true, append: true, createNew: true, mode: 0o600 });
  // The new name must survive power loss before anything in it is acknowledged.
  await syncDir(`${dir}/segments`);
  return { name, path, file, size: 0 };
}

interface Snapshot {
  segment: number;
  end: number;
  frontier: MerkleFrontier;
  head: SignedHead | null;
}

interface Recovered {
  segment: OpenSegment;
  frontier: MerkleFrontier;
  head: SignedHead | null;
}

/** Brings the stored tree up to the segments and repairs a torn tail (module comment). */
async function recover(
  dir: string,
  ctx: { key: SigningKey; tree: Deno.FsFile; recovery: Recovery },
): Promise<Recovered> {
  const { tree, recovery } = ctx;
  const publicKey = ctx.key.publicKey;
  // Finish a retention run that a crash interrupted (its anchor is durable).
  const anchored = await readAnchor(dir, publicKey);
  if (anchored.anchor) {
    recovery.prunedSegments = await deleteBefore(dir, anchored.anchor.anchor.size);
  }
  let { segments } = await listSegments(dir);
  if (segments.length === 0) {
    await tree.truncate(0);
    const segment = await createSegment(dir, 0);
    return { segment, frontier: new MerkleFrontier(), head: null };
  }
  const start = await startingPoint(dir, segments, { tree, publicKey });
  recovery.isTreeRebuilt = start.isRebuilt;
  let frontier = start.frontier;
  let head = start.head;
  let lastHash = head ? headHash(head) : "";
  let seal: Snapshot = {
    segment: start.segment,
    end: start.offset,
    frontier: frontier.clone(),
    head,
  };
  let pending: Uint8Array[] = [];
  const flush = async () => {
    if (pending.length === 0) return;
    await tree.seek(0, Deno.SeekMode.End);
    await writeAll(tree, concatHashes(pending));
    pending = [];
  };
  for (let si = start.segment; si < segments.length; si++) {
    const seg = segments[si] as SegmentInfo;
    await scanLines(seg.path, (line, offset) => {
      if (isHeadLine(line)) {
        const signed = readHeadLine(decoder.decode(line));
        if (typeof signed === "string" || !isHeadSigned(signed, publicKey)) return true;
        if (
          signed.head.size !== frontier.size || signed.head.root !== toHex(frontier.root()) ||
          signed.head.prev !== lastHash
        ) recovery.mismatchedHeads++;
        head = signed;
        lastHash = headHash(signed);
        seal = { segment: si, end: offset + line.length + 1, frontier: frontier.clone(), head };
        return true;
      }
      pending.push(...frontier.push(leafHash(line)));
      recovery.rehashed++;
      return true;
    }, { start: si === start.segment ? start.offset : 0 });
    await flush();
  }
  // The tail: after the last head of ours, in the last segment (rotation always starts a
  // segment right after a head, so a crash leaves unsealed lines only there).
  const lastIndex = segments.length - 1;
  const last = segments[lastIndex] as SegmentInfo;
  const tailStart = seal.segment === lastIndex
    ? seal.end
    : seal.segment === lastIndex - 1 && seal.end === (segments[seal.segment] as SegmentInfo).size
    ? 0
    : null;
  if (tailStart !== null) {
    frontier = seal.frontier.clone();
    head = seal.head;
    await tree.truncate(storedCount(frontier.size) * HASH_BYTES);
    let cut: number | null = null;
    let kept = 0;
    const scan = await scanLines(last.path, (line, offset) => {
      const entry = isHeadLine(line)
        ? "a head that is not ours"
        : readEntryLine(decoder.decode(line));
      if (typeof entry === "string" || entry.seq !== frontier.size) {
        cut = offset;
        return false;
      }
      pending.push(...frontier.push(leafHash(line)));
      kept++;
      return true;
    }, { start: tailStart });
    await flush();
    cut ??= scan.overlong ?? scan.torn?.offset ?? null;
    recovery.sealedEntries = kept;
    if (cut !== null) await cutTail(dir, { segment: last, offset: cut, recovery });
  }
  segments = (await listSegments(dir)).segments;
  const tail = segments[lastIndex] as SegmentInfo;
  // O_APPEND: every write lands at the end, also after a failed batch was cut off.
  const file = await Deno.open(tail.path, { read: true, append: true });
  return {
    segment: { name: tail.name, path: tail.path, file, size: tail.size },
    frontier,
    head,
  };
}

/** Where rehashing starts: the checkpoint when it matches `tree.bin`, else the beginning. */
async function startingPoint(
  dir: string,
  segments: SegmentInfo[],
  at: { tree: Deno.FsFile; publicKey: PublicKeyInfo },
): Promise<{
  segment: number;
  offset: number;
  frontier: MerkleFrontier;
  head: SignedHead | null;
  isRebuilt: boolean;
}> {
  const { tree } = at;
  const treeBytes = (await tree.stat()).size;
  let checkpoint: Checkpoint | null = null;
  try {
    const text = await Deno.readTextFile(`${dir}/tree.json`);
    const parsed = CheckpointSchema.safeParse(parseJsonLine(text.slice(0, 64 * 1024)));
    if (parsed.success) checkpoint = parsed.data;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (checkpoint) {
    const index = segments.findIndex((s) => s.name === checkpoint.segment);
    const seg = segments[index];
    const bytes = storedCount(checkpoint.size) * HASH_BYTES;
    if (seg && checkpoint.offset <= seg.size && treeBytes >= bytes) {
      await tree.truncate(bytes);
      const frontier = await MerkleFrontier.fromStored(checkpoint.size, new HandleSource(tree));
      const root = toHex(frontier.root());
      const head = checkpoint.head;
      const isHeadConsistent = head === null
        ? checkpoint.size === 0
        : head.head.size === checkpoint.size && head.head.root === root;
      if (root === checkpoint.root && isHeadConsistent) {
        return { segment: index, offset: checkpoint.offset, frontier, head, isRebuilt: false };
      }
    }
  }
  const firstSeq = (segments[0] as SegmentInfo).firstSeq;
  if (firstSeq === 0) {
    await tree.truncate(0);
    return {
      segment: 0,
      offset: 0,
      frontier: new MerkleFrontier(),
      head: null,
      isRebuilt: treeBytes > 0 || checkpoint !== null,
    };
  }
  // Retention deleted the start: rehash from the anchor, over the stored hashes before it.
  const anchored = await requireAnchor(dir, at.publicKey);
  const size = anchored?.anchor.anchor.size;
  if (!anchored || size !== firstSeq) {
    throw new AuditError(
      "AUDIT_MALFORMED",
      `The log starts at entry ${firstSeq} without a retention anchor for it: entries were ` +
        `deleted outside the runtime (run "secai audit verify")`,
    );
  }
  const bytes = storedCount(size) * HASH_BYTES;
  const stored = treeBytes >= bytes
    ? toHex((await MerkleFrontier.fromStored(size, new HandleSource(tree))).root())
    : null;
  if (stored !== anchored.anchor.anchor.head.head.root) {
    throw new AuditError(
      "AUDIT_MALFORMED",
      `tree.bin is damaged and entries before ${size} were deleted by retention, so it cannot ` +
        `be rebuilt from the segments: restore it from a backup`,
    );
  }
  await tree.truncate(bytes);
  return {
    segment: 0,
    offset: 0,
    frontier: anchored.frontier,
    head: anchored.anchor.anchor.head,
    isRebuilt: true,
  };
}

/** Keeps the torn bytes under `recovered/`, then cuts them from the segment durably. */
async function cutTail(
  dir: string,
  at: { segment: SegmentInfo; offset: number; recovery: Recovery },
): Promise<void> {
  const { segment, offset, recovery } = at;
  const file = await Deno.open(segment.path, { read: true, write: true });
  try {
    const length = segment.size - offset;
    const bytes = new Uint8Array(length);
    await file.seek(offset, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < length) {
      const n = await file.read(bytes.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    await Deno.mkdir(`${dir}/recovered`, { recursive: true, mode: 0o700 });
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const name = `${segment.name.replace(".jsonl", "")}-${offset}-${stamp}.torn`;
    await writeFileAtomic(`${dir}/recovered/${name}`, bytes.subarray(0, filled));
    await file.truncate(offset);
    await file.sync();
    recovery.truncatedBytes = length;
    recovery.droppedLines = bytes.subarray(0, filled).reduce((n, b) =>
      n + (b === 0x0a ? 1 : 0), 0) +
      (filled > 0 && bytes[filled - 1] !== 0x0a ? 1 : 0);
    recovery.quarantined = `recovered/${name}`;
  } finally {
    file.close();
  }
}
