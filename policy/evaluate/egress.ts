/**
 * `egress` (spec 12 §2.2, spec 22 §1.2): every lexical URL rule first, then runtime egress is
 * denied unless the airlock is enabled and the destination is on its allowlist (exact host
 * unless an entry includes sub-domains; path prefix on a `/` boundary) with an allowed method.
 * @module
 */
import type { z } from "zod";
import { checkUrl, matchesDestination } from "../egress.ts";
import type { EgressInputSchema } from "../schema.ts";
import { type EvalContext, type Outcome, Trail } from "./outcome.ts";

/** Decides one egress request. */
export function evaluateEgress(
  input: z.output<typeof EgressInputSchema>,
  ctx: EvalContext,
): Outcome {
  const policy = ctx.policy;
  const trail = new Trail({});
  const checked = checkUrl(input.url, policy.egress.limits);
  if (!checked.ok) return trail.deny(checked.failure.rule, [checked.failure.reason]);
  const url = checked.url;
  trail.checks.push("egress.url");
  trail.facts.host = url.host;
  trail.facts.path = url.path;
  // defaults.network.runtime_egress is "deny" by schema: the airlock is the only way out.
  if (!policy.egress.isAirlockEnabled) {
    return trail.deny("defaults.network.egress_deny", [
      "Runtime egress is denied and the airlock is disabled",
    ]);
  }
  trail.checks.push("airlock.enabled");
  if (!policy.egress.methods.has(input.method)) {
    return trail.deny("airlock.method", [
      `The method ${input.method} is not allowed by the airlock`,
    ]);
  }
  trail.checks.push("airlock.method");
  const destinations = policy.egress.destinations;
  for (let i = 0; i < destinations.length; i++) {
    const d = destinations[i];
    if (d && matchesDestination(url, d)) {
      return trail.allow(`airlock.allowed_destinations.${i}`, [
        `Host "${url.host}" is on the airlock allowlist`,
      ]);
    }
  }
  return trail.deny("airlock.destination_miss", [
    `Destination "${url.host}${url.path}" is not on the airlock allowlist`,
  ]);
}
