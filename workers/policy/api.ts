/**
 * Contract of the policy control: every decision in the system is asked here.
 * A caller that gets an error instead of a decision must treat it as deny.
 * @module
 */
import { z } from "zod";
import { defineApi } from "../../runtime/kit/rpc.ts";

/** Decision domains (issue #5 adds rules for each). */
export const PolicyDomainSchema = z.enum([
  "tool_access",
  "path_access",
  "egress",
  "agent_risk",
  "sensitivity",
  "model_promotion",
]);
/** A policy domain. */
export type PolicyDomain = z.infer<typeof PolicyDomainSchema>;

/** A decision with the reasons a user can read. */
export const DecisionSchema = z.strictObject({
  decision: z.enum(["allow", "deny", "ask"]),
  domain: PolicyDomainSchema,
  rule: z.string().max(200),
  reasons: z.array(z.string().max(1000)).max(32),
  evidence: z.record(z.string().max(64), z.unknown()),
  policy_version: z.string().max(100),
});
/** A decision. */
export type Decision = z.infer<typeof DecisionSchema>;

/** Input of one decision request. */
export const DecideInputSchema = z.strictObject({
  domain: PolicyDomainSchema,
  input: z.record(z.string().max(64), z.unknown()),
});

/** The policy contract. */
export const policyApi = defineApi("policy", {
  decide: { input: DecideInputSchema, output: DecisionSchema },
});

/** Config section `policy`. */
export const PolicyConfigSchema = z.strictObject({}).default({});
