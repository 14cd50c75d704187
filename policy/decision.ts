/**
 * The shape of every policy decision, shared by the evaluator, the policy control's contract
 * and the CLI: `{decision, domain, rule, reasons, evidence, policy_version}`. `ask` means a
 * user approval is required before the action may proceed; anything but `allow` stops it.
 * @module
 */
import { z } from "zod";

/** Decision domains (spec 12 §2.2). */
export const POLICY_DOMAINS = [
  "tool_access",
  "path_access",
  "egress",
  "agent_risk",
  "sensitivity",
  "model_promotion",
] as const;

/** A decision domain, validated. */
export const PolicyDomainSchema = z.enum(POLICY_DOMAINS);
/** A policy domain. */
export type PolicyDomain = z.infer<typeof PolicyDomainSchema>;

/** The three answers. */
export const EffectSchema = z.enum(["allow", "deny", "ask"]);
/** An answer. */
export type Effect = z.infer<typeof EffectSchema>;

/** A decision with the reasons a user can read and the evidence the audit log keeps. */
export const DecisionSchema = z.strictObject({
  decision: EffectSchema,
  domain: PolicyDomainSchema,
  /** Identifier of the rule that decided (`egress.url.ip_literal`, `tools.allow.x`, …). */
  rule: z.string().max(200),
  reasons: z.array(z.string().max(1000)).max(32),
  evidence: z.record(z.string().max(64), z.unknown()),
  /** `sha256:<hex>` of the policy files in force (policy.yaml then agent.yaml). */
  policy_version: z.string().max(100),
});
/** A decision. */
export type Decision = z.infer<typeof DecisionSchema>;

/** Whether a string names a domain. */
export function isPolicyDomain(value: string): value is PolicyDomain {
  return (POLICY_DOMAINS as readonly string[]).includes(value);
}
