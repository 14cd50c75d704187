/**
 * Contracts of the policy control. `policy` (decide) is what every control asks; a caller
 * that gets an error instead of a decision must treat it as deny. `policy-view` (the policy
 * in force, and what-if replays under a candidate) is read-only and given to the gateway and
 * the tool firewall. Decision shapes come from the policy language (`policy/decision.ts`).
 * @module
 */
import { z } from "zod";
import { defineApi } from "../../runtime/kit/rpc.ts";
import {
  type Decision,
  DecisionSchema,
  EffectSchema,
  type PolicyDomain,
  PolicyDomainSchema,
} from "../../policy/decision.ts";
import {
  fromAuditEntry,
  type LoggedDecision,
  LoggedDecisionSchema,
  MAX_WHATIF_ENTRIES,
} from "../../policy/whatif.ts";
import { MAX_POLICY_BYTES } from "../../policy/compile.ts";
import { noProtoKey } from "../../policy/schema.ts";

export {
  type Decision,
  DecisionSchema,
  fromAuditEntry,
  type LoggedDecision,
  MAX_POLICY_BYTES,
  MAX_WHATIF_ENTRIES,
  type PolicyDomain,
  PolicyDomainSchema,
};

/** Input of one decision request. */
export const DecideInputSchema = z.strictObject({
  domain: PolicyDomainSchema,
  input: z.record(noProtoKey(z.string().max(64)), z.unknown()),
});

/** The decision contract. */
export const policyApi = defineApi("policy", {
  decide: { input: DecideInputSchema, output: DecisionSchema },
});

/** One policy file in force. */
const SourceSchema = z.strictObject({
  name: z.string().max(64),
  origin: z.enum(["default", "override", "candidate"]),
  path: z.string().max(4096),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

/** A refused reload (the previous policy stayed in force). */
export const ReloadErrorSchema = z.strictObject({
  at: z.string().max(40),
  file: z.string().max(4096),
  field: z.string().max(1000),
  reason: z.string().max(2000),
});

const Count = z.number().int().nonnegative();

/** Decisions of one domain given since the control started, by effect. */
const EffectCountsSchema = z.strictObject({ allow: Count, deny: Count, ask: Count });

/** Decisions given (that is, recorded in the audit log) since the control started. */
export const DecisionCountsSchema = z.strictObject({
  since: z.string().max(40),
  total: Count,
  by_domain: z.record(PolicyDomainSchema, EffectCountsSchema),
});
/** Decision counts. */
export type DecisionCounts = z.infer<typeof DecisionCountsSchema>;

/** The policy in force. */
export const PolicyViewSchema = z.strictObject({
  policy_version: z.string().max(100),
  loaded_at: z.string().max(40),
  /** The agent workspace path decisions resolve against. */
  workspace: z.string().max(4096).nullable(),
  sources: z.array(SourceSchema).max(8),
  /** `policy.yaml` and `agent.yaml` as validated (defaults filled in). */
  policy: z.record(z.string().max(64), z.unknown()),
  agent: z.record(z.string().max(64), z.unknown()),
  /** The tool registry: what a `tools.allow` entry may name. */
  tools: z.array(z.strictObject({
    name: z.string().max(256),
    description: z.string().max(300),
    args: z.array(z.string().max(256)).max(128),
  })).max(256),
  last_reload_error: ReloadErrorSchema.nullable(),
  decisions: DecisionCountsSchema,
});
/** The policy in force. */
export type PolicyView = z.infer<typeof PolicyViewSchema>;

/** A candidate policy: either file's text; an absent file is taken from the policy in force. */
export const CandidateSchema = z.strictObject({
  policy: z.string().max(MAX_POLICY_BYTES).optional(),
  agent: z.string().max(MAX_POLICY_BYTES).optional(),
});

/** What-if request: logged decisions to replay under a candidate. */
export const WhatIfInputSchema = z.strictObject({
  candidate: CandidateSchema,
  entries: z.array(LoggedDecisionSchema).max(MAX_WHATIF_ENTRIES),
});

/** What-if report. */
export const WhatIfReportSchema = z.strictObject({
  candidate_version: z.string().max(100),
  current_version: z.string().max(100),
  replayed: z.number().int().nonnegative(),
  changed: z.array(z.strictObject({
    seq: z.number().int().nonnegative(),
    domain: PolicyDomainSchema,
    input: z.record(z.string().max(64), z.unknown()),
    isApproximate: z.boolean(),
    before: z.strictObject({ decision: EffectSchema, rule: z.string().max(200) }),
    after: z.strictObject({
      decision: EffectSchema,
      rule: z.string().max(200),
      reasons: z.array(z.string().max(1000)).max(32),
    }),
  })).max(MAX_WHATIF_ENTRIES),
  effect_changes: z.number().int().nonnegative(),
  unchanged: z.number().int().nonnegative(),
  approximate: z.number().int().nonnegative(),
});
/** A what-if report. */
export type WhatIfReportView = z.infer<typeof WhatIfReportSchema>;

/**
 * The read-only view. `whatif` rejects with POLICY_INVALID (message names the file, field
 * and reason) when the candidate does not load.
 */
export const policyViewApi = defineApi("policy-view", {
  current: { input: z.strictObject({}), output: PolicyViewSchema },
  whatif: { input: WhatIfInputSchema, output: WhatIfReportSchema },
});

/** Config section `policy`. */
export const PolicyConfigSchema = z.strictObject({
  /** Milliseconds a burst of file changes settles before the policy is reloaded. */
  reloadDebounceMs: z.number().int().min(10).max(10_000).default(100),
}).default({});
