/**
 * Read-only look-ups in an audit directory for the CLI and the control: the latest signed
 * head, one entry by sequence number, and inclusion or consistency proofs checked against a
 * head before they are handed out.
 * @module
 */
import { AuditError } from "./errors.ts";
import {
  type AuditEntry,
  isHeadLine,
  readEntryLine,
  readHeadLine,
  type SignedHead,
} from "./format.ts";
import {
  consistencyProof,
  fromHex,
  type HashSource,
  inclusionProof,
  leafHash,
  MerkleFrontier,
  toHex,
  verifyConsistency,
  verifyInclusion,
} from "./merkle.ts";
import { listSegments, scanLines, type SegmentInfo } from "./segments.ts";
import { TreeFileReader } from "./tree_file.ts";
import { readAnchor } from "./anchor.ts";
import { isHeadSigned, type PublicKeyInfo } from "./keys.ts";

const decoder = new TextDecoder();

/** A head and where it is. */
export interface LocatedHead {
  signed: SignedHead;
  segment: string;
  /** Offset just after its line. */
  end: number;
}

/**
 * The last head line of the log (not verified: check it with `isHeadSigned`).
 * @returns null when the log has no head yet
 */
export async function readLatestHead(auditDir: string): Promise<LocatedHead | null> {
  const { segments } = await listSegments(auditDir);
  for (let i = segments.length - 1; i >= 0; i--) {
    const seg = segments[i] as SegmentInfo;
    let found: LocatedHead | null = null;
    await scanLines(seg.path, (line, offset) => {
      if (!isHeadLine(line)) return;
      const signed = readHeadLine(decoder.decode(line));
      if (typeof signed !== "string") {
        found = { signed, segment: seg.name, end: offset + line.length + 1 };
      }
    });
    if (found) return found;
  }
  return null;
}

/**
 * The signed head of one tree size (heads are written after every batch, so not every size
 * has one), checked against the key. The retention anchor's head counts.
 * @throws {AuditError} AUDIT_NOT_FOUND when the log has no valid head of that size
 */
export async function readHeadOfSize(
  auditDir: string,
  at: { size: number; publicKey: PublicKeyInfo },
): Promise<SignedHead> {
  const { size, publicKey } = at;
  const anchored = await readAnchor(auditDir, publicKey);
  if (anchored.anchor?.anchor.size === size) return anchored.anchor.anchor.head;
  const { segments } = await listSegments(auditDir);
  // The head of size n follows entry n - 1: it is in the segment holding that entry.
  const seg = segments.findLast((s) => s.firstSeq <= size - 1);
  let found: SignedHead | null = null;
  if (seg && size > 0) {
    await scanLines(seg.path, (line) => {
      if (!isHeadLine(line)) return true;
      const signed = readHeadLine(decoder.decode(line));
      if (typeof signed === "string" || signed.head.size !== size) return true;
      if (isHeadSigned(signed, publicKey)) found = signed;
      return found === null;
    });
  }
  if (!found) {
    throw new AuditError(
      "AUDIT_NOT_FOUND",
      `The log has no signed head of size ${size} (a head is signed after each batch; ` +
        `"secai audit head" shows the latest)`,
    );
  }
  return found;
}

/** One entry with its exact line. */
export interface LocatedEntry {
  entry: AuditEntry;
  /** The canonical line (its bytes are the Merkle leaf). */
  line: string;
  segment: string;
  offset: number;
}

/**
 * Reads entries `from..to` (inclusive) in order.
 * @throws {AuditError} AUDIT_NOT_FOUND when one is missing, AUDIT_MALFORMED when a line in
 *   the range is not a valid entry or carries the wrong seq
 */
export async function readEntries(
  auditDir: string,
  range: { from: number; to: number },
): Promise<LocatedEntry[]> {
  const { segments } = await listSegments(auditDir);
  const firstKept = segments[0]?.firstSeq ?? 0;
  if (range.from < firstKept) {
    throw new AuditError(
      "AUDIT_NOT_FOUND",
      `Entries before ${firstKept} were deleted by retention; entry ${range.from} is gone ` +
        `(the signed anchor and tree.bin still cover it)`,
    );
  }
  const out: LocatedEntry[] = [];
  let start = 0;
  for (let i = 0; i < segments.length; i++) {
    if ((segments[i] as SegmentInfo).firstSeq <= range.from) start = i;
  }
  let problem: AuditError | null = null;
  for (let i = start; i < segments.length && out.length <= range.to - range.from; i++) {
    const seg = segments[i] as SegmentInfo;
    let seq = seg.firstSeq;
    await scanLines(seg.path, (line, offset) => {
      if (isHeadLine(line)) return true;
      if (seq >= range.from) {
        const text = decoder.decode(line);
        const entry = readEntryLine(text);
        if (typeof entry === "string" || entry.seq !== seq) {
          problem = new AuditError(
            "AUDIT_MALFORMED",
            `Entry ${seq} in "${seg.name}" at byte ${offset} is unusable: ${
              typeof entry === "string" ? entry : `it says seq ${entry.seq}`
            } (run "secai audit verify")`,
          );
          return false;
        }
        out.push({ entry, line: text, segment: seg.name, offset });
      }
      seq++;
      return seq <= range.to;
    });
    if (problem) throw problem;
  }
  if (out.length !== range.to - range.from + 1) {
    throw new AuditError(
      "AUDIT_NOT_FOUND",
      `Entries ${range.from}..${range.to} are not all in the log (found ${out.length})`,
    );
  }
  return out;
}

/** Stored hashes held in memory, for when `tree.bin` is behind the segments. */
class MemoryTree implements HashSource {
  readonly #levels: Uint8Array[][] = [];

  push(stored: Uint8Array[]): void {
    // stored[k] is the hash completed at level k by this leaf.
    stored.forEach((hash, level) => {
      (this.#levels[level] ??= []).push(hash);
    });
  }

  get(level: number, index: number): Promise<Uint8Array> {
    const hash = this.#levels[level]?.[index];
    if (!hash) {
      return Promise.reject(
        new AuditError("AUDIT_RANGE_INVALID", `Subtree ${level}/${index} is not in the log`),
      );
    }
    return Promise.resolve(hash);
  }
}

/**
 * A source of subtree hashes covering at least `size` leaves: `tree.bin` when it is far
 * enough, else a tree rebuilt in memory from the segments.
 */
export async function openHashSource(
  auditDir: string,
  size: number,
): Promise<{ source: HashSource; close(): void }> {
  const file = await TreeFileReader.open(`${auditDir}/tree.bin`);
  if (file && file.size >= size) return { source: file, close: () => file.close() };
  file?.close();
  const memory = new MemoryTree();
  const frontier = new MerkleFrontier();
  const { segments } = await listSegments(auditDir);
  if ((segments[0]?.firstSeq ?? 0) > 0) {
    throw new AuditError(
      "AUDIT_MALFORMED",
      `tree.bin is behind the log and its start was deleted by retention, so the tree cannot ` +
        `be rebuilt here (run "secai audit verify")`,
    );
  }
  for (const seg of segments) {
    if (frontier.size >= size) break;
    await scanLines(seg.path, (line) => {
      if (isHeadLine(line)) return true;
      memory.push(frontier.push(leafHash(line)));
      return frontier.size < size;
    });
  }
  if (frontier.size < size) {
    throw new AuditError(
      "AUDIT_RANGE_INVALID",
      `The log has ${frontier.size} entries, not ${size}`,
    );
  }
  return { source: memory, close: () => undefined };
}

/** An inclusion proof of one entry in a signed tree. */
export interface InclusionProof {
  seq: number;
  /** The entry's canonical line. */
  line: string;
  /** Hex leaf hash of the line. */
  leafHash: string;
  /** Tree size the proof is for (the head's). */
  size: number;
  /** Hex audit path, leaf side first. */
  proof: string[];
  head: SignedHead;
}

/**
 * Builds an inclusion proof for entry `seq` in the tree of `head` and checks it.
 * @throws {AuditError} AUDIT_RANGE_INVALID when seq is not below head.size; AUDIT_MALFORMED
 *   when the stored tree does not produce the head's root (the log needs verifying)
 */
export async function proveInclusion(
  auditDir: string,
  at: { seq: number; head: SignedHead },
): Promise<InclusionProof> {
  const { seq, head } = at;
  if (!Number.isSafeInteger(seq) || seq < 0 || seq >= head.head.size) {
    throw new AuditError(
      "AUDIT_RANGE_INVALID",
      `Entry ${seq} is not in the signed tree of ${head.head.size} entries`,
    );
  }
  const [entry] = await readEntries(auditDir, { from: seq, to: seq });
  const line = (entry as LocatedEntry).line;
  const leaf = leafHash(new TextEncoder().encode(line));
  const hashes = await openHashSource(auditDir, head.head.size);
  let proof: Uint8Array[];
  try {
    proof = await inclusionProof(hashes.source, { index: seq, size: head.head.size });
  } finally {
    hashes.close();
  }
  if (
    !verifyInclusion(
      { index: seq, size: head.head.size, hash: leaf },
      proof,
      fromHex(head.head.root),
    )
  ) {
    throw new AuditError(
      "AUDIT_MALFORMED",
      `Entry ${seq} does not prove into the head of size ${head.head.size}: the log or its ` +
        `stored tree was altered (run "secai audit verify")`,
    );
  }
  return { seq, line, leafHash: toHex(leaf), size: head.head.size, proof: proof.map(toHex), head };
}

/** A consistency proof between two tree sizes. */
export interface ConsistencyProof {
  from: number;
  to: number;
  /** Hex root of the tree of `from` leaves. */
  fromRoot: string;
  proof: string[];
  head: SignedHead;
}

/**
 * Builds a consistency proof from the tree of `from` leaves to the tree of `head`, and checks
 * it.
 * @throws {AuditError} AUDIT_RANGE_INVALID when from exceeds head.size
 */
export async function proveConsistency(
  auditDir: string,
  at: { from: number; head: SignedHead },
): Promise<ConsistencyProof> {
  const { from, head } = at;
  const to = head.head.size;
  if (!Number.isSafeInteger(from) || from < 0 || from > to) {
    throw new AuditError("AUDIT_RANGE_INVALID", `Tree size ${from} is not within 0..${to}`);
  }
  const hashes = await openHashSource(auditDir, to);
  let proof: Uint8Array[];
  let fromRoot: Uint8Array;
  try {
    proof = await consistencyProof(hashes.source, { from, to });
    fromRoot = await rootOf(hashes.source, from);
  } finally {
    hashes.close();
  }
  if (!verifyConsistency({ from, to }, { from: fromRoot, to: fromHex(head.head.root) }, proof)) {
    throw new AuditError(
      "AUDIT_MALFORMED",
      `The stored tree does not prove size ${from} into the head of size ${to} (run ` +
        `"secai audit verify")`,
    );
  }
  return { from, to, fromRoot: toHex(fromRoot), proof: proof.map(toHex), head };
}

async function rootOf(source: HashSource, size: number): Promise<Uint8Array> {
  return (await MerkleFrontier.fromStored(size, source)).root();
}
