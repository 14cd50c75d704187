/**
 * Contract of the tool firewall (spec 12 §3, M4): the gate for every tool call an agent (and
 * later an MCP client) proposes. It only decides; the caller executes an allowed call. An
 * error instead of a result means deny.
 * @module
 */
import { z } from "zod";
import { defineApi } from "../../runtime/kit/rpc.ts";
import { EffectSchema } from "../../policy/decision.ts";
import { noProtoKey } from "../../policy/schema.ts";

/** Names of tools and argument keys: no surrounding space, no NUL/CR/LF. */
const isCallName = (s: string) => s.trim() === s && !/[\0\r\n]/.test(s);
const CALL_NAME_RULE = "expected no leading or trailing space and no NUL, CR or LF";

/** A tool's name: 1–256 characters. */
const CallName = z.string().min(1).max(256).refine(isCallName, CALL_NAME_RULE);

/**
 * An argument's name: like a tool's, and never "__proto__" (the policy's own key rule: zod
 * would drop such a key without a word, so the call judged would not be the call executed).
 */
const ArgName = noProtoKey(z.string().min(1).max(256)).refine(isCallName, CALL_NAME_RULE);

/** One proposed tool call. */
export const ToolCallSchema = z.strictObject({
  tool: CallName,
  /** Arguments: JSON values, bounded by the firewall's shape limits. */
  args: z.record(ArgName, z.unknown()).default({}),
  /** The session (agent task, chat) making the call; rate limits are kept per session. */
  session: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, "expected 1-128 of A-Z a-z 0-9 . _ : -"),
});
/** A tool call. */
export type ToolCall = z.infer<typeof ToolCallSchema>;

/** The firewall's answer. */
export const ToolCheckResultSchema = z.strictObject({
  /** True only for `decision: "allow"`. */
  allowed: z.boolean(),
  decision: EffectSchema,
  rule: z.string().max(200),
  reasons: z.array(z.string().max(1000)).max(32),
  /** Version of the policy that decided; "" when no policy could be asked. */
  policy_version: z.string().max(100),
  /** Set when a rate limit refused the call: when a retry can succeed. */
  retry_after_ms: z.number().int().min(0).max(3_600_000).optional(),
});
/** The firewall's answer. */
export type ToolCheckResult = z.infer<typeof ToolCheckResultSchema>;

/** The tool firewall contract. */
export const toolFirewallApi = defineApi("tool-firewall", {
  check: { input: ToolCallSchema, output: ToolCheckResultSchema },
});
