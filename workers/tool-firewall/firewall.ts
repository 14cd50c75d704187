/**
 * The tool firewall's logic (spec 12 §3.2). In order, first refusal wins: the call's shape
 * and size; the per-session and per-tool rate limits (a token is taken even for a call that
 * is denied later); then the policy engine decides (`tool_access`: deny list, registry,
 * allowlist, argument schema and limits, path gate, egress gate). Every answer, allow or
 * deny, is audited with the arguments redacted; an answer that cannot be audited is not
 * given. When the policy control cannot be asked the answer is deny.
 * @module
 */
import type { Decision } from "../../policy/decision.ts";
import {
  redactInput,
  type RedactionRules,
  redactionRules,
  STRICT_REDACTION,
} from "../../policy/redact.ts";
import { PolicyFileSchema } from "../../policy/schema.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import type { CallOptions } from "../../runtime/kit/rpc.ts";
import type { PolicyView } from "../policy/api.ts";
import type { ToolCall, ToolCheckResult } from "./api.ts";
import { type BucketLimit, RateLimiter } from "./limiter.ts";
import { checkArgsShape } from "./shape.ts";

/** One audit entry (the audit-append contract's input). */
export interface FirewallAuditEntry {
  type: string;
  actor: string;
  subject: string;
  decision: "allow" | "deny" | "ask";
  evidence: Record<string, unknown>;
  data: Record<string, unknown>;
}

/** What the firewall calls. */
export interface FirewallDeps {
  /** `policy.decide` for `tool_access`. */
  decide(input: Record<string, unknown>, options: CallOptions): Promise<Decision>;
  /** `policy-view.current`. */
  view(options: CallOptions): Promise<PolicyView>;
  /** `audit-append.append`; rejects when not recorded. */
  audit(entry: FirewallAuditEntry, options: CallOptions): Promise<void>;
  /** Monotonic milliseconds. */
  now(): number;
}

/** Who asks, and the deadline for the calls the firewall makes. */
export interface CheckOptions extends CallOptions {
  /** The control asking (from its port). */
  caller: string;
}

/** The limits and redaction rules of one policy version. */
interface PolicyLimits {
  version: string;
  session: BucketLimit;
  perTool: Map<string, BucketLimit>;
  redaction: RedactionRules;
}

function deny(
  rule: string,
  reason: string,
  version: string,
  retryAfterMs?: number,
): ToolCheckResult {
  return {
    allowed: false,
    decision: "deny",
    rule,
    reasons: [reason],
    policy_version: version,
    ...(retryAfterMs === undefined ? {} : { retry_after_ms: retryAfterMs }),
  };
}

function codeOf(err: unknown): string {
  return err instanceof RpcError ? err.code : "UNKNOWN";
}

/** The firewall. */
export class ToolFirewall {
  readonly #deps: FirewallDeps;
  readonly #limiter = new RateLimiter();
  #limits: PolicyLimits | null = null;

  /** @param deps the ports it calls */
  constructor(deps: FirewallDeps) {
    this.#deps = deps;
  }

  async #currentLimits(options: CallOptions): Promise<PolicyLimits> {
    if (this.#limits) return this.#limits;
    const view = await this.#deps.view(options);
    // Validated again here: limits that are not what the schema allows mean deny.
    const policy = PolicyFileSchema.parse(view.policy);
    const perTool = new Map<string, BucketLimit>();
    for (const entry of policy.tools.allow) {
      if (entry.rate_limit) {
        perTool.set(entry.name, {
          requestsPerMinute: entry.rate_limit.requests_per_minute,
          burstSize: entry.rate_limit.burst_size,
        });
      }
    }
    this.#limits = {
      version: view.policy_version,
      session: {
        requestsPerMinute: policy.tools.rate_limit.requests_per_minute,
        burstSize: policy.tools.rate_limit.burst_size,
      },
      perTool,
      redaction: redactionRules(policy),
    };
    return this.#limits;
  }

  async #decide(call: ToolCall, options: CheckOptions): Promise<{
    result: ToolCheckResult;
    redaction: RedactionRules;
  }> {
    const caller = options.caller;
    const shape = checkArgsShape(call.args);
    if (shape) return { result: deny(shape.rule, shape.reason, ""), redaction: STRICT_REDACTION };
    let limits: PolicyLimits;
    try {
      limits = await this.#currentLimits(options);
    } catch (err) {
      return {
        result: deny(
          "policy.unavailable",
          `The policy control could not be asked (${codeOf(err)})`,
          "",
        ),
        redaction: STRICT_REDACTION,
      };
    }
    const now = this.#deps.now();
    const bySession = this.#limiter.take(`s\0${caller}\0${call.session}`, {
      limit: limits.session,
      now,
    });
    if (!bySession.ok) {
      return {
        result: deny(
          "tools.rate_limit.session",
          "Rate limit exceeded for this session",
          limits.version,
          bySession.retryAfterMs,
        ),
        redaction: limits.redaction,
      };
    }
    const toolLimit = limits.perTool.get(call.tool);
    if (toolLimit) {
      const byTool = this.#limiter.take(`t\0${caller}\0${call.tool}`, { limit: toolLimit, now });
      if (!byTool.ok) {
        return {
          result: deny(
            "tools.rate_limit.tool",
            `Rate limit exceeded for tool "${call.tool}"`,
            limits.version,
            byTool.retryAfterMs,
          ),
          redaction: limits.redaction,
        };
      }
    }
    let decision: Decision;
    try {
      decision = await this.#deps.decide(
        { tool: call.tool, args: call.args, session: call.session },
        options,
      );
    } catch (err) {
      return {
        result: deny(
          "policy.unavailable",
          `The policy control did not decide (${codeOf(err)})`,
          limits.version,
        ),
        redaction: limits.redaction,
      };
    }
    // A reloaded policy may carry other limits: fetch them for the next call.
    if (decision.policy_version !== limits.version) this.#limits = null;
    return {
      result: {
        allowed: decision.decision === "allow",
        decision: decision.decision,
        rule: decision.rule,
        reasons: decision.reasons,
        policy_version: decision.policy_version,
      },
      redaction: limits.redaction,
    };
  }

  /**
   * Checks one call.
   * @param call the proposed call
   * @param options the control asking (from its port: cannot be forged) and the deadline
   *   for the calls this makes
   * @returns the decision (deny whenever the policy cannot be asked)
   * @throws {RpcError} the audit control's error when the answer could not be recorded
   */
  async check(call: ToolCall, options: CheckOptions): Promise<ToolCheckResult> {
    const caller = options.caller;
    const { result, redaction } = await this.#decide(call, options);
    const logged = redactInput(
      { domain: "tool_access", input: { tool: call.tool, args: call.args } },
      redaction,
    );
    await this.#deps.audit({
      type: "tool.check",
      actor: caller,
      subject: call.tool,
      decision: result.decision,
      evidence: {
        rule: result.rule,
        policy_version: result.policy_version,
        session: call.session,
        ...(result.retry_after_ms === undefined ? {} : { retry_after_ms: result.retry_after_ms }),
      },
      data: { args: logged.input.args, redacted: logged.redacted },
    }, options);
    return result;
  }
}
