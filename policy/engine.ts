/**
 * The decision function every caller shares (the policy control, the CLI, what-if, the
 * policy tests): evaluates one request under a compiled policy and wraps the outcome as a
 * {@link Decision} with its evidence (spec 12 §2.1: timestamp, domain, policy digest, rule
 * id, input hash, evaluation time) plus the rules that passed and the facts it rests on.
 * Anything that goes wrong inside an evaluation is a deny.
 * @module
 */
import { createHash } from "node:crypto";
import type { CompiledPolicy } from "./compile.ts";
import type { Decision, PolicyDomain } from "./decision.ts";
import { evaluate, type Outcome } from "./evaluate/mod.ts";
import { WorkspaceResolver } from "./resolve.ts";

/** One decision request. */
export interface DecisionRequest {
  domain: PolicyDomain;
  input: unknown;
}

/** Options of a {@link PolicyEngine}. */
export interface PolicyEngineOptions {
  /** Absolute workspace root for path decisions; null or absent: every path is denied. */
  workspace?: string | null;
}

/** First 16 hex digits of the SHA-256 of the JSON request (spec 12 §2.1 `input_hash`). */
export function inputHash(request: DecisionRequest): string {
  return createHash("sha256").update(JSON.stringify(request) ?? "").digest("hex").slice(0, 16);
}

let stampMs = 0;
let stamp = "";

/** The current time in RFC 3339 UTC, formatted once per millisecond. */
function timestamp(): string {
  const now = Date.now();
  if (now !== stampMs) {
    stampMs = now;
    stamp = new Date(now).toISOString();
  }
  return stamp;
}

function failed(err: unknown): Outcome {
  // A Deno permission the control lacks is a deployment error: let it surface.
  if (err instanceof Deno.errors.NotCapable) throw err;
  return {
    effect: "deny",
    rule: "policy.error",
    reasons: ["The policy could not evaluate this request"],
    checks: [],
    facts: { error: err instanceof Error ? err.name : typeof err },
  };
}

/** Holds the policy in force and decides. */
export class PolicyEngine {
  #policy: CompiledPolicy;
  readonly #resolver: WorkspaceResolver | null;

  /**
   * @param policy the compiled policy to start with
   * @param options the workspace root
   */
  constructor(policy: CompiledPolicy, options: PolicyEngineOptions = {}) {
    this.#policy = policy;
    this.#resolver = options.workspace ? new WorkspaceResolver(options.workspace) : null;
  }

  /** The policy in force. */
  get policy(): CompiledPolicy {
    return this.#policy;
  }

  /** The workspace root, or null. */
  get workspace(): string | null {
    return this.#resolver?.root ?? null;
  }

  /** Puts a new policy in force (hot reload); decisions in flight finish on the old one. */
  replace(policy: CompiledPolicy): void {
    this.#policy = policy;
  }

  /**
   * Decides one request under the policy in force.
   * @example
   * ```ts
   * engine.decide({ domain: "egress", input: { url: "https://huggingface.co/x" } }).decision;
   * ```
   */
  decide(request: DecisionRequest): Decision {
    return this.decideUnder(this.#policy, request);
  }

  /** Decides one request under another policy (what-if), with this engine's workspace. */
  decideUnder(policy: CompiledPolicy, request: DecisionRequest): Decision {
    const started = performance.now();
    let result: Outcome;
    try {
      result = evaluate(request, { policy, resolver: this.#resolver });
    } catch (err) {
      result = failed(err);
    }
    const micros = Math.round((performance.now() - started) * 1000);
    return {
      decision: result.effect,
      domain: request.domain,
      rule: result.rule,
      reasons: result.reasons,
      evidence: {
        timestamp: timestamp(),
        domain: request.domain,
        policy_digest: policy.digest,
        rule_id: result.rule,
        input_hash: inputHash(request),
        eval_time_us: micros,
        checks: result.checks,
        ...(Object.keys(result.facts).length ? { facts: result.facts } : {}),
      },
      policy_version: policy.version,
    };
  }
}
