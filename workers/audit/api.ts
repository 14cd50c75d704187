/**
 * Contracts of the audit control. Two capabilities: `audit-append` (write-only, given to
 * every control; the entry's `control` is the caller's identity from the port, so it cannot
 * be forged) and `audit-query` (read: query, signed head, proofs, verification, export;
 * given to the gateway only).
 * @module
 */
import { z } from "zod";
import { defineApi } from "../../runtime/kit/rpc.ts";
import {
  type AuditEntry,
  AuditEntrySchema,
  BundleSchema,
  DecisionSchema,
  EntryTypeSchema,
  Hash,
  SignedHeadSchema,
} from "./offline/format.ts";

export { type AuditEntry, AuditEntrySchema };

const Text = z.string().max(1000);
const Seq = z.number().int().nonnegative().max(2 ** 48);

/** What a control appends. */
export const AppendInputSchema = z.strictObject({
  type: EntryTypeSchema,
  actor: Text,
  subject: Text,
  decision: DecisionSchema.optional(),
  evidence: z.record(z.string().max(64), z.unknown()).default({}),
  data: z.record(z.string().max(64), z.unknown()).default({}),
});

/** Append-only capability. */
export const auditAppendApi = defineApi("audit-append", {
  append: {
    input: AppendInputSchema,
    output: z.strictObject({ seq: Seq }),
  },
});

/** A query of the log. */
export const AuditQueryInputSchema = z.strictObject({
  /** Return entries with seq < before (newest first); omit for the newest. */
  before: z.number().int().positive().optional(),
  limit: z.number().int().min(1).max(500).default(50),
  control: z.string().max(40).optional(),
  type: z.string().max(64).optional(),
  decision: DecisionSchema.optional(),
  /** Entries at or after this time (ISO 8601). */
  from: z.string().datetime({ offset: true }).optional(),
  /** Entries before this time (ISO 8601). */
  to: z.string().datetime({ offset: true }).optional(),
  /** Case-insensitive text the subject contains. */
  text: z.string().min(1).max(200).optional(),
});

/** The outcome of a verification (`offline/verify.ts`). */
export const VerifyReportSchema = z.strictObject({
  isIntact: z.boolean(),
  entries: Seq,
  heads: Seq,
  segments: z.number().int().nonnegative(),
  prunedBefore: Seq,
  size: Seq,
  root: Hash.nullable(),
  keyId: Hash,
  firstBadSeq: Seq.nullable(),
  kind: z.enum([
    "modified",
    "deleted",
    "reordered",
    "truncated",
    "inserted",
    "bad-signature",
    "unsealed",
    "malformed",
  ]).nullable(),
  detail: z.string().max(2000),
  location: z.strictObject({ segment: z.string().max(40), offset: z.number().int().min(0) })
    .nullable(),
  durationMs: z.number().int().nonnegative(),
});
/** A verification report. */
export type VerifyReportView = z.infer<typeof VerifyReportSchema>;

const Proof = z.array(Hash).max(64);

/** Read capability. */
export const auditQueryApi = defineApi("audit-query", {
  /** A page of entries, newest first. */
  query: {
    input: AuditQueryInputSchema,
    output: z.strictObject({
      entries: z.array(AuditEntrySchema).max(500),
      /** Pass as `before` for the next page; null at the end. */
      next: z.number().int().nullable(),
      total: z.number().int().nonnegative(),
    }),
  },
  /** The latest signed tree head and the public key that signs heads. */
  head: {
    input: z.strictObject({}),
    output: z.strictObject({
      head: SignedHeadSchema.nullable(),
      /** SPKI PEM. */
      publicKey: z.string().max(1024),
      keyId: Hash,
    }),
  },
  /** Inclusion proof of one entry in the tree of the latest head. */
  proof: {
    /** `size`: prove into the signed head of that size instead of the latest. */
    input: z.strictObject({ seq: Seq, size: Seq.optional() }),
    output: z.strictObject({
      seq: Seq,
      line: z.string().max(64 * 1024),
      leafHash: Hash,
      size: Seq,
      proof: Proof,
      head: SignedHeadSchema,
    }),
  },
  /** Consistency proof from an earlier tree size to the latest head. */
  consistency: {
    /** `to`: the signed head of that size instead of the latest. */
    input: z.strictObject({ from: Seq, to: Seq.optional() }),
    output: z.strictObject({
      from: Seq,
      to: Seq,
      fromRoot: Hash,
      proof: Proof,
      head: SignedHeadSchema,
    }),
  },
  /** Verifies the whole log up to the latest head (also recorded as `audit.verified`). */
  verify: {
    input: z.strictObject({}),
    output: VerifyReportSchema,
  },
  /** Entries `from..to` (inclusive) as a self-verifying bundle. */
  export: {
    input: z.strictObject({ from: Seq, to: Seq }),
    output: BundleSchema,
  },
});

/** Config section `audit`. */
export const AuditConfigSchema = z.strictObject({
  /** A segment file is rotated (and made read-only) once it holds this many bytes. */
  segmentMaxBytes: z.number().int().min(4096).max(1024 * 1024 * 1024).default(32 * 1024 * 1024),
  /** Full verification every this many minutes; 0 turns the timer off. */
  verifyIntervalMinutes: z.number().int().min(0).max(7 * 24 * 60).default(30),
  /** Full verification shortly after start. */
  verifyOnStart: z.boolean().default(true),
  /**
   * Retention: once the segments take more than this many bytes, the oldest are deleted
   * and a signed anchor stands for them (checked at start and after each rotation). 0 keeps every segment.
   */
  retainMaxBytes: z.number().int().min(0).max(2 ** 50).default(4 * 1024 * 1024 * 1024),
}).refine(
  (c) => c.retainMaxBytes === 0 || c.retainMaxBytes >= 2 * c.segmentMaxBytes,
  { message: "retainMaxBytes must be 0 (keep all) or at least twice segmentMaxBytes" },
).default({});
/** Audit config. */
export type AuditConfig = z.infer<typeof AuditConfigSchema>;
