/**
 * What-if: replays logged decision inputs under a candidate policy and reports every
 * decision that would come out differently, before the candidate is applied. The inputs come
 * from the audit log's `policy.decision` entries (`data.input`, redacted as `redact.ts`
 * describes); a replay of a redacted input is marked approximate. Path decisions are replayed
 * against the workspace as it is now.
 * @module
 */
import { z } from "zod";
import type { CompiledPolicy } from "./compile.ts";
import { type Effect, EffectSchema, type PolicyDomain, PolicyDomainSchema } from "./decision.ts";
import type { PolicyEngine } from "./engine.ts";
import { restoreForReplay } from "./redact.ts";

/** A decision as the audit log records it, reduced to what a replay needs. */
export const LoggedDecisionSchema = z.strictObject({
  seq: z.number().int().nonnegative(),
  domain: PolicyDomainSchema,
  input: z.record(z.string().max(64), z.unknown()),
  redacted: z.array(z.string().max(600)).max(1000).default([]),
  decision: EffectSchema,
  rule: z.string().max(200),
  policy_version: z.string().max(100).optional(),
});
/** A logged decision. */
export type LoggedDecision = z.infer<typeof LoggedDecisionSchema>;

/** Most entries one what-if replays. */
export const MAX_WHATIF_ENTRIES = 10_000;

/** The `data` the policy control writes into each `policy.decision` audit entry. */
export const DecisionDataSchema = z.object({
  rule: z.string().max(200),
  policy_version: z.string().max(100).optional(),
  input: z.record(z.string().max(64), z.unknown()),
  redacted: z.array(z.string().max(600)).max(1000).default([]),
});

/**
 * Reads a logged decision out of an audit entry (as the log stores it or the audit query
 * returns it). Entries of other controls or types, and malformed ones, give null.
 */
export function fromAuditEntry(entry: unknown): LoggedDecision | null {
  if (entry === null || typeof entry !== "object") return null;
  const e = entry as Record<string, unknown>;
  if (e.control !== "policy" || e.type !== "policy.decision") return null;
  const data = DecisionDataSchema.safeParse(e.data);
  if (!data.success) return null;
  const parsed = LoggedDecisionSchema.safeParse({
    seq: e.seq,
    domain: e.subject,
    input: data.data.input,
    redacted: data.data.redacted,
    decision: e.decision,
    rule: data.data.rule,
    ...(data.data.policy_version ? { policy_version: data.data.policy_version } : {}),
  });
  return parsed.success ? parsed.data : null;
}

/** One decision that would change. */
export interface WhatIfChange {
  seq: number;
  domain: PolicyDomain;
  /** The input as logged (redacted). */
  input: Record<string, unknown>;
  /** Whether redacted parts were replayed as stand-ins. */
  isApproximate: boolean;
  before: { decision: Effect; rule: string };
  after: { decision: Effect; rule: string; reasons: string[] };
}

/** The what-if report. */
export interface WhatIfReport {
  candidate_version: string;
  current_version: string;
  /** Entries replayed. */
  replayed: number;
  /** Decisions whose effect or rule differs from the logged one. */
  changed: WhatIfChange[];
  /** Of those, how many change the effect (allow/deny/ask), not only the rule. */
  effect_changes: number;
  unchanged: number;
  /** Replays that used stand-ins for redacted values. */
  approximate: number;
}

/**
 * Replays logged decisions under a candidate.
 * @param engine supplies the workspace and the current version
 * @param replay the compiled candidate policy and the logged decisions (at most
 *   {@link MAX_WHATIF_ENTRIES})
 * @returns the changes, in log order
 * @example
 * ```ts
 * const report = whatIf(engine, { candidate, entries });
 * report.changed.length; // decisions the candidate would change
 * ```
 */
export function whatIf(
  engine: PolicyEngine,
  replay: { candidate: CompiledPolicy; entries: readonly LoggedDecision[] },
): WhatIfReport {
  const { candidate, entries } = replay;
  if (entries.length > MAX_WHATIF_ENTRIES) {
    throw new RangeError(`At most ${MAX_WHATIF_ENTRIES} entries can be replayed at once`);
  }
  const changed: WhatIfChange[] = [];
  let approximate = 0;
  let effectChanges = 0;
  for (const entry of entries) {
    const { input, isApproximate } = restoreForReplay(entry.input, entry.redacted);
    if (isApproximate) approximate++;
    const after = engine.decideUnder(candidate, { domain: entry.domain, input });
    if (after.decision === entry.decision && after.rule === entry.rule) continue;
    if (after.decision !== entry.decision) effectChanges++;
    changed.push({
      seq: entry.seq,
      domain: entry.domain,
      input: entry.input,
      isApproximate,
      before: { decision: entry.decision, rule: entry.rule },
      after: { decision: after.decision, rule: after.rule, reasons: after.reasons },
    });
  }
  return {
    candidate_version: candidate.version,
    current_version: engine.policy.version,
    replayed: entries.length,
    changed,
    effect_changes: effectChanges,
    unchanged: entries.length - changed.length,
    approximate,
  };
}
