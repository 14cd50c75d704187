/**
 * `tool_access` (spec 12 §2.2 and §3.2): the policy half of the tool firewall. In order,
 * first failure wins: `tools.deny` (deny beats allow); the tool must be in the registry and
 * on `tools.allow` (default deny); the arguments must satisfy the registry's strict schema
 * (unknown, extra, missing or mistyped arguments are refused); length limits, anchored
 * patterns and the blocklist; every path argument passes the path gate and the entry's path
 * lists; every URL argument passes the egress gate. Then the entry's `allow` or `ask`.
 * @module
 */
import type { z } from "zod";
import type { CompiledTool } from "../compile.ts";
import { firstMatch } from "../path_gate.ts";
import { MAX_TOOL_ARGS, type ToolAccessInputSchema } from "../schema.ts";
import { TOOL_REGISTRY } from "../tools.ts";
import { evaluateEgress } from "./egress.ts";
import { type EvalContext, type Outcome, Trail } from "./outcome.ts";
import { gatePath } from "./path_access.ts";

/** Longest JSON encoding examined for a non-string argument. */
function valueLength(value: unknown): number {
  return typeof value === "string" ? value.length : (JSON.stringify(value) ?? "").length;
}

/** Whether a blocked substring occurs in a value tree (keys included), case-insensitively. */
function containsBlocked(value: unknown, blocklist: readonly string[], depth = 0): boolean {
  if (depth > 64) return true; // deeper than any accepted request: refuse
  if (typeof value === "string") {
    const lower = value.toLowerCase();
    return blocklist.some((b) => lower.includes(b));
  }
  if (Array.isArray(value)) return value.some((v) => containsBlocked(v, blocklist, depth + 1));
  if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (containsBlocked(k, blocklist, depth + 1) || containsBlocked(v, blocklist, depth + 1)) {
        return true;
      }
    }
    return false;
  }
  const lower = String(value).toLowerCase();
  return blocklist.some((b) => lower.includes(b));
}

function describeUnknown(keys: readonly string[]): string {
  return `Unknown argument ${keys.map((k) => `"${k.slice(0, 64)}"`).join(", ")}`;
}

function describeArgsError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "The arguments are invalid";
  const at = issue.path.length ? `"${issue.path.join(".").slice(0, 64)}"` : "(arguments)";
  if (issue.code === "invalid_type" && issue.received === "undefined") {
    return `Missing argument ${at}`;
  }
  return `Argument ${at}: ${issue.message}`;
}

function checkArgs(
  entry: CompiledTool,
  call: { args: Record<string, unknown>; maxArgLength: number },
): { rule: string; reason: string } | null {
  const args = call.args;
  for (const [name, value] of Object.entries(args)) {
    const rule = entry.args.get(name);
    const max = rule?.maxLength ?? call.maxArgLength;
    if (valueLength(value) > max) {
      return { rule: "tools.args.length", reason: `Argument "${name}" is longer than ${max}` };
    }
    if (rule?.pattern && typeof value === "string" && !rule.pattern.test(value)) {
      return {
        rule: "tools.args.pattern",
        reason: `Argument "${name}" does not match its pattern`,
      };
    }
  }
  if (entry.blocklist.length > 0 && containsBlocked(args, entry.blocklist)) {
    return { rule: "tools.args.blocklist", reason: "An argument contains a blocked pattern" };
  }
  return null;
}

/** Decides one tool call. */
export function evaluateToolAccess(
  input: z.output<typeof ToolAccessInputSchema>,
  ctx: EvalContext,
): Outcome {
  const policy = ctx.policy;
  const trail = new Trail({ tool: input.tool });
  const tool = input.tool;
  if (policy.tools.deny.has(tool)) {
    return trail.deny(`tools.deny.${tool}`, [`Tool "${tool}" is explicitly denied`]);
  }
  trail.checks.push("tools.deny");
  const spec = TOOL_REGISTRY.get(tool);
  if (!spec) return trail.deny("tools.unknown", [`Tool "${tool}" is not known`]);
  const entry = policy.tools.allow.get(tool);
  if (!entry) {
    return trail.deny("tools.default_deny", [`Tool "${tool}" is not in the allowlist`]);
  }
  trail.checks.push("tools.allow");
  const argNames = Object.keys(input.args);
  if (argNames.length > MAX_TOOL_ARGS) {
    return trail.deny("tools.args.count", [`The call has more than ${MAX_TOOL_ARGS} arguments`]);
  }
  // Unknown arguments are refused before the schema runs: a zod error costs more than the
  // rest of the decision, and an agent probing for arguments would pay it on every call.
  const unknown = argNames.filter((key) => !Object.hasOwn(spec.kinds, key));
  if (unknown.length > 0) {
    return trail.deny("tools.args.invalid", [describeUnknown(unknown)]);
  }
  const parsed = spec.args.safeParse(input.args);
  if (!parsed.success) {
    return trail.deny("tools.args.invalid", [describeArgsError(parsed.error)]);
  }
  trail.checks.push("tools.args.schema");
  const bad = checkArgs(entry, { args: input.args, maxArgLength: policy.tools.maxArgLength });
  if (bad) return trail.deny(bad.rule, [bad.reason]);
  trail.checks.push("tools.args.limits");
  for (const [name, kind] of Object.entries(spec.kinds)) {
    const value = input.args[name];
    if (value === undefined) continue;
    if (kind.kind === "path") {
      const gated = gatePath({ path: value as string, op: kind.op }, ctx);
      if (!gated.ok) {
        return trail.deny(gated.rule, [`Argument "${name}": ${gated.reason}`]);
      }
      const real = gated.resolved.real;
      trail.facts[`${name}.real`] = real;
      if (firstMatch(gated.path, entry.denyPaths) || firstMatch(real, entry.denyPaths)) {
        return trail.deny("tools.paths_denylist", [
          `Argument "${name}" names a denied path`,
        ]);
      }
      if (!firstMatch(gated.path, entry.allowPaths) || !firstMatch(real, entry.allowPaths)) {
        return trail.deny("tools.paths_allowlist", [
          `Argument "${name}" is outside the tool's allowed paths`,
        ]);
      }
      trail.checks.push(`tools.path.${name}`);
    } else if (kind.kind === "url") {
      const method = typeof input.args.method === "string" ? input.args.method : "GET";
      const egress = evaluateEgress({
        url: value as string,
        method: method as "GET" | "POST" | "HEAD",
      }, ctx);
      if (egress.effect !== "allow") {
        return trail.deny(egress.rule, [`Argument "${name}": ${egress.reasons[0] ?? ""}`]);
      }
      trail.checks.push(`tools.url.${name}`);
    }
  }
  if (entry.decision === "ask") {
    return trail.ask(`tools.ask.${tool}`, [`Tool "${tool}" needs your approval`]);
  }
  return trail.allow(`tools.allow.${tool}`, [`Tool "${tool}" is allowed`]);
}
