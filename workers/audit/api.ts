/**
 * Contracts of the audit control. Two capabilities: `audit-append` (write-only, given to
 * every control; the entry's `control` is the caller's identity from the port, so it cannot
 * be forged) and `audit-query` (read, given to the gateway only).
 * @module
 */
import { z } from "zod";
import { defineApi } from "../../runtime/kit/rpc.ts";

const Text = z.string().max(1000);

/** What a control appends. */
export const AppendInputSchema = z.strictObject({
  type: z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/),
  actor: Text,
  subject: Text,
  decision: z.enum(["allow", "deny", "ask"]).optional(),
  evidence: z.record(z.string().max(64), z.unknown()).default({}),
  data: z.record(z.string().max(64), z.unknown()).default({}),
});

/** A stored entry. */
export const AuditEntrySchema = z.strictObject({
  seq: z.number().int().nonnegative(),
  ts: z.string().max(40),
  control: z.string().max(40),
  type: z.string().max(64),
  actor: Text,
  subject: Text,
  decision: z.enum(["allow", "deny", "ask"]).optional(),
  evidence: z.record(z.string().max(64), z.unknown()),
  data: z.record(z.string().max(64), z.unknown()),
});
/** An audit entry. */
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

/** Append-only capability. */
export const auditAppendApi = defineApi("audit-append", {
  append: {
    input: AppendInputSchema,
    output: z.strictObject({ seq: z.number().int().nonnegative() }),
  },
});

/** Read capability. */
export const auditQueryApi = defineApi("audit-query", {
  query: {
    input: z.strictObject({
      /** Return entries with seq < before (newest first); omit for the newest. */
      before: z.number().int().positive().optional(),
      limit: z.number().int().min(1).max(500).default(50),
      control: z.string().max(40).optional(),
      type: z.string().max(64).optional(),
    }),
    output: z.strictObject({
      entries: z.array(AuditEntrySchema).max(500),
      /** Pass as `before` for the next page; null at the end. */
      next: z.number().int().nullable(),
      total: z.number().int().nonnegative(),
    }),
  },
});

/** Config section `audit`. */
export const AuditConfigSchema = z.strictObject({}).default({});
