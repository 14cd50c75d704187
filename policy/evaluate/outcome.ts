/**
 * What a domain evaluator returns, before the engine adds evidence and version: the effect,
 * the deciding rule, readable reasons, the rules that passed on the way (for `explain`) and
 * the facts the decision rests on. A {@link Trail} collects the passed rules and facts and
 * ends an evaluation with `allow`, `deny` or `ask`.
 * @module
 */
import type { CompiledPolicy } from "../compile.ts";
import type { Effect } from "../decision.ts";
import type { WorkspaceResolver } from "../resolve.ts";

/** The result of one evaluation. */
export interface Outcome {
  effect: Effect;
  /** The deciding rule. */
  rule: string;
  reasons: string[];
  /** Rules that passed before the deciding one, in order. */
  checks: string[];
  /** Facts the decision rests on (host, resolved path, …); never secrets. */
  facts: Record<string, unknown>;
}

/** What an evaluator consults. */
export interface EvalContext {
  policy: CompiledPolicy;
  /** The workspace for path decisions; null: every path is denied. */
  resolver: WorkspaceResolver | null;
}

/** The rules passed and facts gathered during one evaluation. */
export class Trail {
  /** Rules that passed, in order. */
  readonly checks: string[] = [];
  /** Facts gathered so far. */
  readonly facts: Record<string, unknown>;

  /** @param facts facts known from the start (the action, the tool, …) */
  constructor(facts: Record<string, unknown> = {}) {
    this.facts = facts;
  }

  /** Ends with an allow by `rule`. */
  allow(rule: string, reasons: string[]): Outcome {
    return this.#end("allow", rule, reasons);
  }

  /** Ends with a deny by `rule`. */
  deny(rule: string, reasons: string[]): Outcome {
    return this.#end("deny", rule, reasons);
  }

  /** Ends with an ask (a user approval is required) by `rule`. */
  ask(rule: string, reasons: string[]): Outcome {
    return this.#end("ask", rule, reasons);
  }

  #end(effect: Effect, rule: string, reasons: string[]): Outcome {
    return { effect, rule, reasons, checks: this.checks, facts: this.facts };
  }
}
