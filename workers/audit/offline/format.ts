/**
 * The on-disk format of the audit log, shared by the writer (the audit control) and the
 * offline tools (CLI, bundle checks). Everything lives under `<home>/audit/`:
 *
 * - `segments/<first seq, 20 digits>.jsonl`: lines of canonical JSON ({@link canonicalJson}).
 *   An entry line is an {@link AuditEntry}; a head line is a {@link SignedHead} for the tree
 *   of every entry line before it. Entry lines are the Merkle leaves, in order, across
 *   segments; a segment is rotated by size and always starts right after a head.
 * - `tree.bin`: the stored subtree hashes (`merkle.ts`), 32 bytes each, derivable from the
 *   segments; `tree.json`: a checkpoint saying how far `tree.bin` is durable.
 * - `keys/signing.key` (PKCS#8 PEM, 0600) and `keys/signing.pub` (SPKI PEM).
 * - `recovered/`: bytes cut from a torn tail, kept for forensics.
 * @module
 */
import { z } from "zod";
import { canonicalJson, MAX_CANONICAL_LENGTH } from "./canonical.ts";

const Text = z.string().max(1000);
const Json = z.record(z.string().max(64), z.unknown());

/** A decision recorded with an entry. */
export const DecisionSchema = z.enum(["allow", "deny", "ask"]);

/** Entry type: lowercase dotted name. */
export const EntryTypeSchema = z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/);

/** A stored entry. */
export const AuditEntrySchema = z.strictObject({
  seq: z.number().int().nonnegative(),
  ts: z.string().max(40),
  control: z.string().max(40),
  type: z.string().max(64),
  actor: Text,
  subject: Text,
  decision: DecisionSchema.optional(),
  evidence: Json,
  data: Json,
});
/** An audit entry. */
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

/** Lowercase hex SHA-256. */
export const Hash = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex digits");

/** The signed statement about the tree after a batch (a signed tree head). */
export const HeadSchema = z.strictObject({
  v: z.literal(1),
  /** Leaves (entries) in the tree. */
  size: z.number().int().min(0).max(2 ** 48),
  /** RFC 9162 root of those leaves. */
  root: Hash,
  /** {@link headHash} of the previous head; empty for the first head of the log. */
  prev: z.union([Hash, z.literal("")]),
  /** When it was signed (ISO 8601). */
  ts: z.string().max(40),
  /** SHA-256 of the raw 32-byte Ed25519 public key that signs it. */
  key: Hash,
});
/** A tree head. */
export type Head = z.infer<typeof HeadSchema>;

/** A head with its Ed25519 signature (base64) over {@link headMessage}. */
export const SignedHeadSchema = z.strictObject({
  head: HeadSchema,
  sig: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, "expected a base64 Ed25519 signature"),
});
/** A signed tree head. */
export type SignedHead = z.infer<typeof SignedHeadSchema>;

/** Checkpoint of `tree.bin`: every stored hash of a tree of `size` leaves is durable. */
export const CheckpointSchema = z.strictObject({
  v: z.literal(1),
  size: z.number().int().min(0).max(2 ** 48),
  root: Hash,
  /** Segment holding the head of that size, and the byte offset just after it. */
  segment: z.string().regex(/^\d{20}\.jsonl$/),
  offset: z.number().int().min(0),
  /** That head (the chain continues from it). Null only for the empty log. */
  head: SignedHeadSchema.nullable(),
});
/** A tree checkpoint. */
export type Checkpoint = z.infer<typeof CheckpointSchema>;

/** File of the retention anchor in the audit directory. */
export const ANCHOR_FILE = "anchor.json";
/** Largest anchor file read. */
export const MAX_ANCHOR_BYTES = 64 * 1024;

/**
 * What retention leaves in place of the segments it deleted: the signed head that ended the
 * last deleted segment and the tree's frontier at that size (its complete subtree hashes,
 * largest first), from which the kept segments verify. Signed by the log's key, so nobody
 * without it can move the boundary.
 */
export const AnchorSchema = z.strictObject({
  v: z.literal(1),
  /** Entries deleted (the first kept entry's seq); equals `head.head.size`. */
  size: z.number().int().min(1).max(2 ** 48),
  head: SignedHeadSchema,
  frontier: z.array(Hash).min(1).max(48),
  /** Segment files deleted so far, and their bytes. */
  segments: z.number().int().min(1),
  bytes: z.number().int().min(0),
  ts: z.string().max(40),
  key: Hash,
});
/** A retention anchor. */
export type Anchor = z.infer<typeof AnchorSchema>;

/** An anchor with its Ed25519 signature (base64) over {@link anchorMessage}. */
export const SignedAnchorSchema = z.strictObject({
  anchor: AnchorSchema,
  sig: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, "expected a base64 Ed25519 signature"),
});
/** A signed retention anchor. */
export type SignedAnchor = z.infer<typeof SignedAnchorSchema>;

/** Domain separation of anchor signatures (a head signature never verifies as one). */
export const ANCHOR_SIGNATURE_CONTEXT = "secai-audit-anchor-v1\n";

/** Bytes that are signed for an anchor. */
export function anchorMessage(anchor: Anchor): Uint8Array {
  return new TextEncoder().encode(ANCHOR_SIGNATURE_CONTEXT + canonicalJson(anchor));
}

/** Most entries in one bundle. */
export const MAX_BUNDLE_ENTRIES = 10_000;
/** Largest bundle file read. */
export const MAX_BUNDLE_BYTES = 64 * 1024 * 1024;
/** Format tag of a bundle. */
export const BUNDLE_FORMAT = "secai-audit-bundle/1";

/** An exported range. */
export const BundleSchema = z.strictObject({
  format: z.literal(BUNDLE_FORMAT),
  /** SPKI PEM of the signing key, for convenience only: checks use a key the reader trusts. */
  publicKey: z.string().max(1024),
  head: SignedHeadSchema,
  entries: z.array(z.strictObject({
    /** The canonical entry line, byte for byte as in the log. */
    line: z.string().max(MAX_CANONICAL_LENGTH),
    /** Hex inclusion proof of the line's leaf in `head`'s tree. */
    proof: z.array(Hash).max(64),
  })).min(1).max(MAX_BUNDLE_ENTRIES),
});
/** An export bundle. */
export type Bundle = z.infer<typeof BundleSchema>;

/** Domain separation of head signatures: a signature over anything else never verifies. */
export const HEAD_SIGNATURE_CONTEXT = "secai-audit-head-v1\n";

/** Longest line a reader accepts (an entry is at most 64 KiB; heads are ~400 bytes). */
export const MAX_LINE_BYTES = 1024 * 1024;

/** Segment file name for a first sequence number. */
export function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, "0")}.jsonl`;
}

/** First sequence number of a segment name; null when the name is not a segment's. */
export function segmentFirstSeq(name: string): number | null {
  const m = /^(\d{20})\.jsonl$/.exec(name);
  if (!m) return null;
  const seq = Number(m[1]);
  return Number.isSafeInteger(seq) ? seq : null;
}

/** Bytes that are signed for a head. */
export function headMessage(head: Head): Uint8Array {
  return new TextEncoder().encode(HEAD_SIGNATURE_CONTEXT + canonicalJson(head));
}

/** Canonical line of a signed head. */
export function headLine(signed: SignedHead): string {
  return canonicalJson(signed);
}

/** Canonical line of an entry. */
export function entryLine(entry: AuditEntry): string {
  return canonicalJson(entry);
}

/**
 * Whether a line is a head line. Entry lines start with `{"actor":` (canonical key order),
 * so bytes 2, 3, 6 and 7 of `{"head":` decide.
 */
export function isHeadLine(line: Uint8Array): boolean {
  return isHeadLineAt(line, 0, line.length);
}

/** {@linkcode isHeadLine} of `chunk[start..end)`, without making a view. */
export function isHeadLineAt(chunk: Uint8Array, start: number, end: number): boolean {
  return end - start > 8 && chunk[start + 2] === 0x68 && chunk[start + 3] === 0x65 &&
    chunk[start + 6] === 0x22 && chunk[start + 7] === 0x3a;
}

/** Parses JSON, returning undefined instead of throwing (callers report it). */
export function parseJsonLine(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/**
 * Reads a head line strictly: valid JSON, the exact schema, and canonical bytes (so the
 * line hashes and verifies the same way everywhere).
 * @returns the signed head, or a reason it is not one
 */
export function readHeadLine(text: string): SignedHead | string {
  const parsed = SignedHeadSchema.safeParse(parseJsonLine(text));
  if (!parsed.success) return "it is not a valid signed head";
  if (headLine(parsed.data) !== text) return "it is not in canonical form";
  return parsed.data;
}

/**
 * Reads an entry line strictly (valid JSON, the entry schema, canonical bytes).
 * @returns the entry, or a reason it is not one
 */
export function readEntryLine(text: string): AuditEntry | string {
  const parsed = AuditEntrySchema.safeParse(parseJsonLine(text));
  if (!parsed.success) return "it is not a valid audit entry";
  let canonical: string;
  try {
    canonical = entryLine(parsed.data);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  if (canonical !== text) return "it is not in canonical form";
  return parsed.data;
}
