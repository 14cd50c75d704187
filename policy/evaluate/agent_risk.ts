/**
 * `agent_risk` (spec 12 §2.2, spec 20 §2): one planned agent step. First deny wins:
 * `always_deny`; unknown actions; the session mode's online rule for online actions; the
 * step's sensitivity against the mode's ceiling; a tool the mode or `allowed_tools` does not
 * name. Then `hard_approval` asks, online actions in an `ask` mode ask, `auto` allows,
 * `configurable` follows the user's preference, and two-phase actions turn allow into ask.
 * @module
 */
import type { z } from "zod";
import type { AgentRiskInputSchema } from "../schema.ts";
import { type EvalContext, type Outcome, Trail } from "./outcome.ts";
import { LEVEL_RANK } from "./sensitivity.ts";

/** Decides one agent step. */
export function evaluateAgentRisk(
  input: z.output<typeof AgentRiskInputSchema>,
  ctx: EvalContext,
): Outcome {
  const policy = ctx.policy;
  const a = policy.actions;
  const action = input.action;
  const modeName = input.mode ?? policy.agent.default_mode;
  const mode = policy.agent.modes[modeName];
  const trail = new Trail({ action, mode: modeName });
  if (a.alwaysDeny.has(action)) {
    return trail.deny("agent.always_deny", [`Action "${action}" is always denied`]);
  }
  trail.checks.push("agent.always_deny");
  const isTool = a.allowedTools.has(action);
  const isKnown = isTool || a.auto.has(action) || a.configurable.has(action) ||
    a.online.has(action) || a.hardApproval.has(action) || a.twoPhase.has(action);
  if (!isKnown) {
    return trail.deny("agent.default_deny", [`Action "${action}" is not known`]);
  }
  if (a.online.has(action)) {
    if (mode.online === "never") {
      return trail.deny("agent.mode.offline", [
        `Mode "${modeName}" never goes online`,
      ]);
    }
    if (mode.online === "token" && !input.allow_online) {
      return trail.deny("agent.mode.online_token", [
        `Mode "${modeName}" goes online only with a token that allows it`,
      ]);
    }
    trail.checks.push("agent.mode.online");
  }
  if (input.sensitivity !== undefined) {
    if (LEVEL_RANK[input.sensitivity] > LEVEL_RANK[mode.sensitivity_ceiling]) {
      return trail.deny("agent.sensitivity_exceeded", [
        `Sensitivity "${input.sensitivity}" exceeds the "${mode.sensitivity_ceiling}" ceiling of mode "${modeName}"`,
      ]);
    }
    trail.checks.push("agent.sensitivity");
  }
  const tool = isTool ? action : action === "tool_invoke" ? input.tool : undefined;
  if (action === "tool_invoke" || isTool) {
    if (!tool || !a.allowedTools.has(tool) || !mode.tools.includes(tool)) {
      return trail.deny("agent.tool_not_allowed", [
        `Tool "${(tool ?? "(none)").slice(0, 100)}" is not allowed in mode "${modeName}"`,
      ]);
    }
    trail.checks.push("agent.allowed_tools");
  }
  if (a.hardApproval.has(action)) {
    return trail.ask("agent.hard_approval", [`Action "${action}" needs your approval`]);
  }
  if (a.online.has(action) && mode.online === "ask") {
    return trail.ask("agent.mode.online_ask", [
      `Mode "${modeName}" asks before every online step`,
    ]);
  }
  let result: Outcome;
  if (isTool) {
    result = trail.allow("agent.allowed_tools", [`Tool "${action}" is allowed`]);
  } else if (a.auto.has(action)) {
    result = trail.allow("agent.auto", [`Action "${action}" runs without asking`]);
  } else if (a.configurable.has(action) || action === "tool_invoke") {
    const pref = input.preference ?? policy.agent.actions.preference_default;
    if (pref === "never") {
      return trail.deny("agent.preference.never", [
        `Your preference for "${action}" is never`,
      ]);
    }
    result = pref === "ask"
      ? trail.ask("agent.preference.ask", [`Your preference for "${action}" is ask`])
      : trail.allow("agent.preference.always", [`Your preference for "${action}" is always`]);
  } else {
    return trail.deny("agent.default_deny", [`No rule allows action "${action}"`]);
  }
  if (result.effect === "allow" && a.twoPhase.has(action)) {
    return trail.ask("agent.two_phase", [`Action "${action}" needs a second confirmation`]);
  }
  return result;
}
