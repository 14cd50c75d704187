/**
 * Retention of the audit log by size (issue #4): the oldest sealed segments are deleted once
 * the segments together exceed a budget, and a signed anchor (`anchor.json`) takes their
 * place — the head that ended the last deleted segment plus the tree's frontier at that size
 * — so the kept segments still verify and proofs for them still work (`tree.bin` keeps every
 * stored hash). The order makes a crash at any point safe: the `audit.pruned` entry is
 * durable first, then the anchor is written atomically, then the files are deleted (a later
 * open finishes an interrupted deletion).
 * @module
 */
import { syncDir } from "../../runtime/kit/fs.ts";
import { requireAnchor } from "./offline/anchor.ts";
import { AuditError } from "./offline/errors.ts";
import { type Anchor, readHeadLine, type SignedHead } from "./offline/format.ts";
import { isHeadSigned, type PublicKeyInfo } from "./offline/keys.ts";
import { MerkleFrontier, toHex } from "./offline/merkle.ts";
import {
  countWhollyBefore,
  listSegments,
  readLastLine,
  type SegmentInfo,
} from "./offline/segments.ts";
import { TreeFileReader } from "./offline/tree_file.ts";

/** What a retention run deletes. */
export interface RetentionPlan {
  /** The segments, oldest first. */
  segments: SegmentInfo[];
  /** Their bytes. */
  bytes: number;
  /** Seq of the first entry kept. */
  boundary: number;
  /** Seq of the first entry deleted (the previous anchor's size, or 0). */
  from: number;
}

/**
 * Chooses the oldest segments to delete so that the rest take at most `maxBytes`; the
 * segment being written is never deleted.
 * @returns null when nothing needs deleting
 */
export async function planRetention(
  dir: string,
  at: { maxBytes: number; activeSegment: string },
): Promise<RetentionPlan | null> {
  const { segments } = await listSegments(dir);
  let total = segments.reduce((n, s) => n + s.size, 0);
  const chosen: SegmentInfo[] = [];
  for (const seg of segments) {
    if (total <= at.maxBytes || seg.name === at.activeSegment) break;
    chosen.push(seg);
    total -= seg.size;
  }
  const kept = segments[chosen.length];
  if (chosen.length === 0 || !kept) return null;
  return {
    segments: chosen,
    bytes: chosen.reduce((n, s) => n + s.size, 0),
    boundary: kept.firstSeq,
    from: (chosen[0] as SegmentInfo).firstSeq,
  };
}

/**
 * The anchor (unsigned) for a plan: the signed head that ends the last segment deleted and
 * the frontier at its size, read from `tree.bin` and checked against that head.
 * @throws {AuditError} AUDIT_MALFORMED when the segment does not end with a valid head of
 *   the boundary's size or the stored tree does not produce its root
 */
export async function anchorFor(
  dir: string,
  plan: RetentionPlan,
  at: { publicKey: PublicKeyInfo; now: Date },
): Promise<Anchor> {
  const last = plan.segments.at(-1) as SegmentInfo;
  const line = await readLastLine(last.path);
  const head: SignedHead | string = line === null
    ? "it is empty"
    : readHeadLine(new TextDecoder().decode(line));
  if (
    typeof head === "string" || head.head.size !== plan.boundary ||
    !isHeadSigned(head, at.publicKey)
  ) {
    throw new AuditError(
      "AUDIT_MALFORMED",
      `Retention stopped: segment "${last.name}" does not end with the log's signed head of ` +
        `size ${plan.boundary} (run "secai audit verify")`,
    );
  }
  const tree = await TreeFileReader.open(`${dir}/tree.bin`);
  if (!tree || tree.size < plan.boundary) {
    tree?.close();
    throw new AuditError("AUDIT_MALFORMED", "Retention stopped: tree.bin is missing or short");
  }
  let frontier: MerkleFrontier;
  try {
    frontier = await MerkleFrontier.fromStored(plan.boundary, tree);
  } finally {
    tree.close();
  }
  if (toHex(frontier.root()) !== head.head.root) {
    throw new AuditError(
      "AUDIT_MALFORMED",
      `Retention stopped: tree.bin does not produce the root of the head of size ` +
        `${plan.boundary} (run "secai audit verify")`,
    );
  }
  const previous = await requireAnchor(dir, at.publicKey);
  return {
    v: 1,
    size: plan.boundary,
    head,
    frontier: frontier.hashes.map(toHex),
    segments: (previous?.anchor.anchor.segments ?? 0) + plan.segments.length,
    bytes: (previous?.anchor.anchor.bytes ?? 0) + plan.bytes,
    ts: at.now.toISOString(),
    key: at.publicKey.id,
  };
}

/**
 * Deletes the segments wholly before the anchor's size (after the anchor is durable, or to
 * finish a run that a crash interrupted).
 * @returns how many files were deleted
 */
export async function deleteBefore(dir: string, size: number): Promise<number> {
  const { segments } = await listSegments(dir);
  const deleted = countWhollyBefore(segments, size);
  for (const seg of segments.slice(0, deleted)) await Deno.remove(seg.path);
  if (deleted > 0) await syncDir(`${dir}/segments`);
  return deleted;
}
