/**
 * The decision function while no policy rules exist: deny by default, with evidence that
 * identifies the input without copying it (inputs can hold secrets).
 * @module
 */
import { createHash } from "node:crypto";
import type { Decision, PolicyDomain } from "./api.ts";

/** Version tag of the built-in default policy. */
export const DEFAULT_POLICY_VERSION = "builtin-default-deny-1";

/** Decides with no rules loaded: always deny, and say so. */
export function decideDefault(request: {
  domain: PolicyDomain;
  input: Record<string, unknown>;
}): Decision {
  const digest = createHash("sha256").update(JSON.stringify(request.input)).digest("hex");
  return {
    decision: "deny",
    domain: request.domain,
    rule: "default-deny",
    reasons: [`No rule allows this ${request.domain} request; everything is denied by default`],
    evidence: { input_sha256: digest },
    policy_version: DEFAULT_POLICY_VERSION,
  };
}
