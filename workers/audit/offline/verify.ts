/**
 * Offline verification of an audit directory, read-only: recomputes the Merkle tree from the
 * segment files, checks every signed head (signature by the log's key, the chain of `prev`
 * links, size and root), and names the first bad sequence number and what happened there.
 *
 * The fast path only hashes lines. When a head does not match, the failing batch is compared
 * with the stored leaf hashes of `tree.bin` (written by the control as it appended) and with
 * the entries' own `seq` fields to tell a modified entry from a deleted, inserted or moved
 * one. If `tree.bin` was rewritten as well, the report still names the first sequence number
 * the failing head covers.
 * @module
 */
import { AuditError } from "./errors.ts";
import {
  CheckpointSchema,
  isHeadLine,
  isHeadLineAt,
  MAX_LINE_BYTES,
  parseJsonLine,
  readHeadLine,
  type SignedHead,
} from "./format.ts";
import { headHash, isHeadSigned, type PublicKeyInfo, readPublicKey } from "./keys.ts";
import { readAnchor } from "./anchor.ts";
import { LeafTree } from "./leaf_tree.ts";
import { hashEquals, leafHash, toHex } from "./merkle.ts";
import {
  countWhollyBefore,
  listSegments,
  scanLineRanges,
  scanLines,
  type SegmentInfo,
} from "./segments.ts";
import { TreeFileReader } from "./tree_file.ts";

/** What was found wrong. */
export type TamperKind =
  /** An entry's bytes changed. */
  | "modified"
  /** Entries are missing from the middle of the log. */
  | "deleted"
  /** Entries are out of order. */
  | "reordered"
  /** The log ends before entries it is known to have had (tree state, a trusted head). */
  | "truncated"
  /** Entries are present that the signed heads do not account for. */
  | "inserted"
  /** A head is malformed, not signed by the log's key, or breaks the chain of heads. */
  | "bad-signature"
  /** Entries (or a torn line) after the last signed head: a crash not yet recovered by a
   * start of the runtime, or lines added outside it. They cannot be vouched for. */
  | "unsealed"
  /** A file that does not belong to the log, or a line that cannot be one. */
  | "malformed";

/** The outcome of a verification. */
export interface VerifyReport {
  /** True only when every line is covered by a valid signed head and nothing is missing. */
  isIntact: boolean;
  /** Entry lines read. */
  entries: number;
  /** Signed heads verified. */
  heads: number;
  /** Segment files read. */
  segments: number;
  /** Entries deleted by retention before the first kept segment (0: none). */
  prunedBefore: number;
  /** Tree size of the last valid head. */
  size: number;
  /** Root of the last valid head (hex); null before the first head. */
  root: string | null;
  /** The key heads were checked against (hex SHA-256 of the raw public key). */
  keyId: string;
  /** First sequence number that cannot be trusted; null when intact or not tied to one. */
  firstBadSeq: number | null;
  /** What happened there; null when intact. */
  kind: TamperKind | null;
  /** One sentence for people. */
  detail: string;
  /** File and byte offset of the problem, when there is one. */
  location: { segment: string; offset: number } | null;
  /** Time taken. */
  durationMs: number;
}

/** Options of {@linkcode verifyLog}. */
export interface VerifyOptions {
  /** The key heads must be signed by. Default: `keys/signing.pub` of the directory. Pass a
   * copy kept elsewhere to detect a replaced key file. */
  publicKey?: PublicKeyInfo;
  /** Heads obtained earlier (e.g. `secai audit head`): the log must still contain them. */
  trustedHeads?: SignedHead[];
  /** Stop after the head of this size: the writer passes its current head, since lines after
   * it may be in flight. */
  untilSize?: number;
  /** Aborts between chunks. */
  signal?: AbortSignal;
}

interface Leaf {
  line: Uint8Array;
  hash: Uint8Array;
}

interface Problem {
  kind: TamperKind | "diagnose";
  seq: number | null;
  detail: string;
  location: { segment: string; offset: number } | null;
}

const decoder = new TextDecoder();
/** Read size of the fast path. */
const CHUNK_BYTES = 4 * 1024 * 1024;

/** The lines (and their leaf hashes) of a failing batch, read again for diagnosis. */
async function readBatch(
  segments: SegmentInfo[],
  at: { segment: number; start: number; end: number },
): Promise<Leaf[]> {
  const batch: Leaf[] = [];
  const seg = segments[at.segment] as SegmentInfo;
  await scanLines(seg.path, (line) => {
    batch.push({ line, hash: leafHash(line) });
  }, { start: at.start, end: at.end });
  return batch;
}

function seqField(line: Uint8Array): number | null {
  const value = parseJsonLine(decoder.decode(line)) as { seq?: unknown } | undefined;
  const seq = typeof value === "object" && value !== null ? value.seq : undefined;
  return typeof seq === "number" && Number.isSafeInteger(seq) && seq >= 0 ? seq : null;
}

/**
 * Verifies an audit directory (`<home>/audit`) without writing to it.
 * @param auditDir the directory holding `segments/`, `tree.bin` and `keys/`
 * @param options the key to trust, earlier heads, where to stop
 * @returns the report; tampering is reported, never thrown
 * @throws {AuditError} AUDIT_NOT_FOUND when there is no log or no public key there,
 *   AUDIT_KEY_INVALID when a key or a trusted head is unusable
 * @example
 * ```ts
 * const report = await verifyLog(`${home}/audit`);
 * if (!report.isIntact) console.error(report.firstBadSeq, report.kind, report.detail);
 * ```
 */
export async function verifyLog(
  auditDir: string,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const started = performance.now();
  const publicKey = options.publicKey ?? await readPublicKey(`${auditDir}/keys/signing.pub`);
  const trusted = [...(options.trustedHeads ?? [])].sort((a, b) => a.head.size - b.head.size);
  for (const t of trusted) {
    if (!isHeadSigned(t, publicKey)) {
      throw new AuditError(
        "AUDIT_KEY_INVALID",
        `Trusted head of size ${t.head.size} is not signed by key ${publicKey.id.slice(0, 16)}`,
      );
    }
  }
  // The anchor first: a retention run writes it before it deletes segments.
  const anchorRead = await readAnchor(auditDir, publicKey);
  const { segments, strays } = await listSegments(auditDir);
  const anchor = anchorRead.anchor?.anchor ?? null;
  const frontier = new LeafTree(CHUNK_BYTES + MAX_LINE_BYTES + 1, anchorRead.frontier ?? undefined);
  let n = anchor?.size ?? 0;
  let heads = 0;
  let segmentsRead = 0;
  let lastHead: SignedHead | null = anchor?.head ?? null;
  let lastHeadHash = anchor ? headHash(anchor.head) : "";
  // The lines since the last head: how many, and where the first one starts.
  let batchCount = 0;
  let batchOffset = 0;
  let batchStart = n;
  let problem: Problem | null = null;
  let failedHeadSize = 0;
  let failedBatch = { segment: 0, start: 0, end: 0 };
  let resume: { segment: number; offset: number } = { segment: 0, offset: 0 };
  let isStoppedAtUntil = false;
  let torn: { segment: string; offset: number } | null = null;
  // Trusted heads inside the deleted range cannot be checked any more, except at its end.
  let trustedIndex = trusted.findIndex((t) => t.head.size >= n);
  if (trustedIndex === -1) trustedIndex = trusted.length;

  function report(p: Problem | null, isIntact: boolean, detail?: string): VerifyReport {
    return {
      isIntact,
      entries: n - (anchor?.size ?? 0),
      heads,
      segments: segmentsRead,
      size: lastHead?.head.size ?? 0,
      prunedBefore: anchor?.size ?? 0,
      root: lastHead?.head.root ?? null,
      keyId: publicKey.id,
      firstBadSeq: p?.seq ?? null,
      kind: p ? (p.kind === "diagnose" ? "modified" : p.kind) : null,
      detail: detail ?? p?.detail ?? "",
      location: p?.location ?? null,
      durationMs: Math.round(performance.now() - started),
    };
  }

  if (strays.length > 0) {
    return report({
      kind: "malformed",
      seq: null,
      detail: `"segments/${strays[0]}" is not a segment file; an audit log holds only ` +
        `<first seq>.jsonl files`,
      location: null,
    }, false);
  }

  if (anchorRead.problem !== null) {
    return report({
      kind: anchorRead.kind,
      seq: null,
      detail: `${anchorRead.problem}; the entries it stands for cannot be vouched for`,
      location: null,
    }, false);
  }
  const trustedAtAnchor = trusted.find((t) => t.head.size === anchor?.size);
  if (anchor && trustedAtAnchor && trustedAtAnchor.head.root !== anchor.head.head.root) {
    return report({
      kind: "modified",
      seq: null,
      detail: `The retention anchor does not match the trusted head of size ${anchor.size}`,
      location: null,
    }, false);
  }
  // Segments wholly before the anchor are left over from an interrupted retention run.
  let first = anchor ? countWhollyBefore(segments, anchor.size) : 0;
  if (anchor && segments[first] && (segments[first] as SegmentInfo).firstSeq < anchor.size) first++;

  for (let si = first; si < segments.length && !problem && !isStoppedAtUntil; si++) {
    const seg = segments[si] as SegmentInfo;
    if (torn) {
      problem = {
        kind: "malformed",
        seq: n,
        detail: `Segment "${torn.segment}" ends inside a line at byte ${torn.offset}, ` +
          `but later segments follow`,
        location: torn,
      };
      break;
    }
    if (seg.firstSeq !== n) {
      problem = seg.firstSeq > n
        ? {
          kind: "deleted",
          seq: n,
          detail: `Entries ${n}..${seg.firstSeq - 1} are missing: segment "${seg.name}" ` +
            `follows a log of ${n} entries`,
          location: { segment: seg.name, offset: 0 },
        }
        : {
          kind: "inserted",
          seq: seg.firstSeq,
          detail: `Segment "${seg.name}" starts at ${seg.firstSeq}, but the log before it ` +
            `already has ${n} entries`,
          location: { segment: seg.name, offset: 0 },
        };
      break;
    }
    if (batchCount > 0) {
      problem = {
        kind: "deleted",
        seq: batchStart,
        detail: `The segment before "${seg.name}" ends with ${batchCount} entries that no ` +
          `head covers (its last head was removed)`,
        location: { segment: seg.name, offset: 0 },
      };
      break;
    }
    segmentsRead++;
    batchOffset = 0;
    const window = frontier.window;
    const scan = await scanLineRanges(seg.path, (chunk, start, end, offset) => {
      if (isHeadLineAt(chunk, start, end)) {
        const line = chunk.subarray(start, end);
        const text = decoder.decode(line);
        const location = { segment: seg.name, offset };
        const signed = readHeadLine(text);
        if (typeof signed === "string") {
          problem = {
            kind: "bad-signature",
            seq: batchStart,
            detail: `The head line at "${seg.name}" byte ${offset} is unusable: ${signed}`,
            location,
          };
          return false;
        }
        const size = signed.head.size;
        if (!isHeadSigned(signed, publicKey)) {
          problem = {
            kind: "bad-signature",
            seq: batchStart,
            detail: signed.head.key === publicKey.id
              ? `The head of size ${size} at "${seg.name}" byte ${offset} has an invalid signature`
              : `The head of size ${size} at "${seg.name}" byte ${offset} is signed by key ` +
                `${signed.head.key.slice(0, 16)}, not the log's key ${publicKey.id.slice(0, 16)}`,
            location,
          };
          return false;
        }
        if (signed.head.prev !== lastHeadHash) {
          problem = {
            kind: "bad-signature",
            seq: batchStart,
            detail: `The chain of heads is broken at "${seg.name}" byte ${offset}: the head of ` +
              `size ${size} does not follow the head of size ${lastHead?.head.size ?? "(none)"}`,
            location,
          };
          return false;
        }
        if (size !== n || toHex(frontier.root()) !== signed.head.root) {
          problem = {
            kind: "diagnose",
            seq: batchStart,
            detail: "",
            location,
          };
          failedHeadSize = size;
          failedBatch = { segment: si, start: batchOffset, end: offset };
          resume = { segment: si, offset: offset + line.length + 1 };
          return false;
        }
        lastHead = signed;
        lastHeadHash = headHash(signed);
        heads++;
        batchCount = 0;
        batchOffset = offset + line.length + 1;
        batchStart = n;
        if (options.untilSize === n) {
          isStoppedAtUntil = true;
          return false;
        }
        return true;
      }
      frontier.pushWindow(start, end);
      batchCount++;
      n++;
      while (
        trustedIndex < trusted.length && (trusted[trustedIndex] as SignedHead).head.size <= n
      ) {
        const t = trusted[trustedIndex++] as SignedHead;
        if (t.head.size === n && toHex(frontier.root()) !== t.head.root) {
          problem = {
            kind: "modified",
            seq: null,
            detail: `The log no longer contains the trusted head of size ${t.head.size}: the ` +
              `entries before it were rewritten (with the log's own key)`,
            location: { segment: seg.name, offset },
          };
          return false;
        }
      }
      return true;
    }, {
      chunkBytes: CHUNK_BYTES,
      into: window,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (problem || isStoppedAtUntil) break;
    if (scan.overlong !== null) {
      problem = {
        kind: "malformed",
        seq: n,
        detail: `"${seg.name}" has a line longer than 1 MiB at byte ${scan.overlong}`,
        location: { segment: seg.name, offset: scan.overlong },
      };
      break;
    }
    if (scan.torn) torn = { segment: seg.name, offset: scan.torn.offset };
  }

  if (problem !== null) {
    const found: Problem = problem;
    if (found.kind !== "diagnose") return report(found, false);
    const diagnosed = await diagnose({
      auditDir,
      segments,
      batch: await readBatch(segments, failedBatch),
      batchStart,
      headSize: failedHeadSize,
      resume,
      location: found.location,
    });
    return report(diagnosed, false);
  }
  if (options.untilSize !== undefined) {
    if (isStoppedAtUntil) {
      return report(
        null,
        true,
        intactDetail(n - (anchor?.size ?? 0), heads, segmentsRead, anchor?.size ?? 0),
      );
    }
    return report({
      kind: "truncated",
      seq: n,
      detail: `The log ends at ${n} entries, before the current head of size ${options.untilSize}`,
      location: null,
    }, false);
  }
  const known = await knownSize(auditDir);
  const trustedMax = trusted.at(-1)?.head.size ?? 0;
  if (known.size > n || trustedMax > n) {
    const source = trustedMax > n ? `a trusted head of size ${trustedMax}` : known.source;
    return report({
      kind: "truncated",
      seq: n,
      detail: `The log ends after ${n} entries, but ${source} records more`,
      location: torn,
    }, false);
  }
  if (batchCount > 0 || torn) {
    const what = batchCount > 0
      ? `${batchCount} entries after the last signed head (size ${batchStart}) are not ` +
        `covered by a signature`
      : `the last segment ends inside a line`;
    return report({
      kind: "unsealed",
      seq: batchStart,
      detail: `${what[0]?.toUpperCase()}${what.slice(1)}: a crash not yet recovered (starting ` +
        `the runtime seals or cuts them) or lines added outside the runtime`,
      location: torn,
    }, false);
  }
  return report(
    null,
    true,
    intactDetail(n - (anchor?.size ?? 0), heads, segmentsRead, anchor?.size ?? 0),
  );
}

function intactDetail(n: number, heads: number, segments: number, pruned: number): string {
  const kept = pruned > 0
    ? ` (entries 0..${pruned - 1} were deleted by retention; the signed anchor stands for them)`
    : "";
  return `${n} entries in ${segments} segments, ${heads} signed heads: intact${kept}`;
}

/** The largest tree size the tree state (`tree.bin`, `tree.json`) records. */
async function knownSize(auditDir: string): Promise<{ size: number; source: string }> {
  let size = 0;
  let source = "";
  const tree = await TreeFileReader.open(`${auditDir}/tree.bin`);
  if (tree) {
    size = tree.size;
    source = "tree.bin";
    tree.close();
  }
  try {
    const text = await Deno.readTextFile(`${auditDir}/tree.json`);
    const parsed = CheckpointSchema.safeParse(parseJsonLine(text.slice(0, 64 * 1024)));
    if (parsed.success && parsed.data.size > size) {
      size = parsed.data.size;
      source = "tree.json";
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return { size, source };
}

interface DiagnoseInput {
  auditDir: string;
  segments: SegmentInfo[];
  batch: Leaf[];
  batchStart: number;
  headSize: number;
  resume: { segment: number; offset: number };
  location: { segment: string; offset: number } | null;
}

/**
 * Finds the first bad entry of a batch whose head does not match, and what happened to it.
 */
async function diagnose(input: DiagnoseInput): Promise<Problem> {
  const { batch, batchStart, headSize, location } = input;
  const tree = await TreeFileReader.open(`${input.auditDir}/tree.bin`);
  try {
    const stored = async (seq: number): Promise<Uint8Array | null> =>
      tree && seq >= 0 && seq < tree.size ? await tree.leaf(seq) : null;
    for (let j = 0; j <= batch.length; j++) {
      const p = batchStart + j;
      const leaf = batch[j];
      const expected = await stored(p);
      if (leaf && expected && hashEquals(leaf.hash, expected)) continue;
      if (!leaf) {
        if (p >= headSize) break;
        return {
          kind: "deleted",
          seq: p,
          detail: `Entry ${p} is missing: the head of size ${headSize} covers it`,
          location,
        };
      }
      if (!expected) break; // no stored hash to compare with: use the seq fields below
      const next = batch[j + 1];
      if (next && hashEquals(next.hash, expected)) {
        return {
          kind: "inserted",
          seq: p,
          detail: `A line that is not entry ${p} was inserted before it`,
          location,
        };
      }
      const claimed = seqField(leaf.line);
      const claimedHash = claimed === null || claimed === p ? null : await stored(claimed);
      if (claimed !== null && claimedHash && hashEquals(claimedHash, leaf.hash)) {
        if (claimed < p) {
          return {
            kind: "inserted",
            seq: p,
            detail: `A copy of entry ${claimed} was inserted at position ${p}`,
            location,
          };
        }
        const isLater = await appearsLater(input, expected);
        return isLater
          ? {
            kind: "reordered",
            seq: p,
            detail: `Entry ${claimed} stands where entry ${p} belongs; entry ${p} comes later`,
            location,
          }
          : {
            kind: "deleted",
            seq: p,
            detail: `Entries ${p}..${claimed - 1} are missing`,
            location,
          };
      }
      const after = await stored(p + 1);
      if (after && hashEquals(after, leaf.hash)) {
        return { kind: "deleted", seq: p, detail: `Entry ${p} is missing`, location };
      }
      return {
        kind: "modified",
        seq: p,
        detail: `Entry ${p} was modified (its hash differs from the one recorded when it was ` +
          `appended)`,
        location,
      };
    }
  } finally {
    tree?.close();
  }
  // The stored hashes agree with the altered lines (or are gone): use the seq fields.
  for (let j = 0; j < batch.length; j++) {
    const p = batchStart + j;
    const claimed = seqField((batch[j] as Leaf).line);
    if (claimed === p) continue;
    if (claimed === null) {
      return { kind: "modified", seq: p, detail: `Entry ${p} is not a valid entry`, location };
    }
    if (claimed > p) {
      const isLater = batch.slice(j + 1).some((l) => seqField(l.line) === p);
      return isLater
        ? {
          kind: "reordered",
          seq: p,
          detail: `Entry ${claimed} stands where ${p} belongs`,
          location,
        }
        : { kind: "deleted", seq: p, detail: `Entries ${p}..${claimed - 1} are missing`, location };
    }
    return {
      kind: "inserted",
      seq: p,
      detail: `A second entry ${claimed} appears at ${p}`,
      location,
    };
  }
  if (batch.length < headSize - batchStart) {
    return {
      kind: "deleted",
      seq: batchStart + batch.length,
      detail: `Entries from ${batchStart + batch.length} are missing: the head of size ` +
        `${headSize} covers them`,
      location,
    };
  }
  if (batch.length > headSize - batchStart) {
    return {
      kind: "inserted",
      seq: headSize,
      detail: `${batch.length - (headSize - batchStart)} lines more than the head of size ` +
        `${headSize} covers were inserted`,
      location,
    };
  }
  return {
    kind: "modified",
    seq: batchStart,
    detail: `Entries ${batchStart}..${headSize - 1} do not match their signed head (the stored ` +
      `tree was rewritten as well, so the entry cannot be narrowed down)`,
    location,
  };
}

/** Whether a leaf with this hash appears after the failing head. */
async function appearsLater(input: DiagnoseInput, hash: Uint8Array): Promise<boolean> {
  let isFound = false;
  for (let si = input.resume.segment; si < input.segments.length && !isFound; si++) {
    const seg = input.segments[si] as SegmentInfo;
    await scanLines(seg.path, (line) => {
      if (isHeadLine(line)) return true;
      if (hashEquals(leafHash(line), hash)) {
        isFound = true;
        return false;
      }
      return true;
    }, { start: si === input.resume.segment ? input.resume.offset : 0 });
  }
  return isFound;
}
