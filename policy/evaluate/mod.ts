/**
 * The pure evaluator: validates a domain's input with its strict schema, then runs the
 * domain's rules in order (first match wins). No I/O except what the `EvalContext`'s
 * workspace resolver gathers for path decisions.
 * @module
 */
import { isPolicyDomain } from "../decision.ts";
import type { z } from "zod";
import {
  AgentRiskInputSchema,
  EgressInputSchema,
  ModelPromotionInputSchema,
  PathAccessInputSchema,
  SensitivityInputSchema,
  ToolAccessInputSchema,
} from "../schema.ts";
import { evaluateAgentRisk } from "./agent_risk.ts";
import { evaluateEgress } from "./egress.ts";
import { evaluateModelPromotion } from "./model_promotion.ts";
import { type EvalContext, type Outcome, Trail } from "./outcome.ts";
import { evaluatePathAccess } from "./path_access.ts";
import { evaluateSensitivity } from "./sensitivity.ts";
import { evaluateToolAccess } from "./tool_access.ts";

export type { EvalContext, Outcome } from "./outcome.ts";

/**
 * Evaluates one request.
 * @param request domain and raw input (validated here)
 * @param ctx the compiled policy and the workspace for path decisions
 * @returns the outcome; an unknown domain or an invalid input is a deny
 * @example
 * ```ts
 * evaluate({ domain: "egress", input: { url: "https://0x7f.1/" } }, { policy, resolver: null });
 * ```
 */
export function evaluate(request: { domain: string; input: unknown }, ctx: EvalContext): Outcome {
  const { domain, input } = request;
  if (!isPolicyDomain(domain)) {
    return new Trail().deny("unknown_domain", [`Unknown domain "${domain.slice(0, 64)}"`]);
  }
  switch (domain) {
    case "egress": {
      const p = EgressInputSchema.safeParse(input);
      return p.success ? evaluateEgress(p.data, ctx) : invalidInput(domain, p.error);
    }
    case "path_access": {
      const p = PathAccessInputSchema.safeParse(input);
      return p.success ? evaluatePathAccess(p.data, ctx) : invalidInput(domain, p.error);
    }
    case "tool_access": {
      const p = ToolAccessInputSchema.safeParse(input);
      return p.success ? evaluateToolAccess(p.data, ctx) : invalidInput(domain, p.error);
    }
    case "agent_risk": {
      const p = AgentRiskInputSchema.safeParse(input);
      return p.success ? evaluateAgentRisk(p.data, ctx) : invalidInput(domain, p.error);
    }
    case "sensitivity": {
      const p = SensitivityInputSchema.safeParse(input);
      return p.success ? evaluateSensitivity(p.data) : invalidInput(domain, p.error);
    }
    case "model_promotion": {
      const p = ModelPromotionInputSchema.safeParse(input);
      return p.success ? evaluateModelPromotion(p.data, ctx) : invalidInput(domain, p.error);
    }
  }
}

function invalidInput(domain: string, error: z.ZodError): Outcome {
  const issue = error.issues[0];
  const field = issue?.path.length ? issue.path.join(".") : "(input)";
  return new Trail().deny("input.invalid", [
    `Invalid ${domain} input at "${field.slice(0, 100)}": ${issue?.message ?? "invalid"}`,
  ]);
}
