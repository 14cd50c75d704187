/**
 * The policy control's logic: the engine with the policy in force, every decision audited
 * with its evidence and a redacted, replayable copy of its input (a decision that cannot be
 * audited is not given), what-if under a candidate, and hot reload: on a change of the policy
 * files the new policy is loaded and validated; an invalid one is refused with the file, the
 * field and the reason, the old one stays in force, and the refusal is audited and emitted.
 * A valid one is put in force only once its `policy.reloaded` entry is in the audit log.
 * @module
 */
import { type CompiledPolicy, compilePolicy, type PolicySource } from "../../policy/compile.ts";
import { type Decision, POLICY_DOMAINS } from "../../policy/decision.ts";
import { type DecisionRequest, PolicyEngine } from "../../policy/engine.ts";
import { PolicyLoadError } from "../../policy/errors.ts";
import { type PolicyDirs, readPolicySources } from "../../policy/loader.ts";
import { redactInput, type RedactionRules, redactionRules } from "../../policy/redact.ts";
import { TOOL_REGISTRY } from "../../policy/tools.ts";
import { type LoggedDecision, whatIf, type WhatIfReport } from "../../policy/whatif.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import type { CallOptions } from "../../runtime/kit/rpc.ts";
import type { DecisionCounts, PolicyView } from "./api.ts";

/** Who asks for a decision, and the deadline for its audit entry. */
export interface DecideOptions extends CallOptions {
  /** The control asking (from its port). */
  caller: string;
}

/** One audit entry as the audit-append contract takes it. */
export interface AuditEntryInput {
  type: string;
  actor: string;
  subject: string;
  decision?: "allow" | "deny" | "ask";
  evidence: Record<string, unknown>;
  data: Record<string, unknown>;
}

/** Appends to the audit log; rejects when the entry was not recorded. */
export type AuditSink = (entry: AuditEntryInput, options?: CallOptions) => Promise<void>;

/** Options of {@link PolicyService.start}. */
export interface PolicyServiceOptions {
  dirs: PolicyDirs;
  /** Absolute agent workspace root, or null. */
  workspace: string | null;
  audit: AuditSink;
  /** Sends an event to the supervisor's event stream. */
  emit: (type: string, data: Record<string, unknown>) => void;
  /** Quiet time after a file change before reloading. */
  debounceMs: number;
}

/** A refused reload. */
export interface ReloadError {
  at: string;
  file: string;
  field: string;
  reason: string;
}

/** Outcome of one reload attempt. */
export type ReloadOutcome = "reloaded" | "unchanged" | "refused" | "unaudited";

/** Redaction rules per compiled policy (computed once per policy version). */
const RULES = new WeakMap<CompiledPolicy, RedactionRules>();

function rulesOf(policy: CompiledPolicy): RedactionRules {
  let rules = RULES.get(policy);
  if (!rules) RULES.set(policy, rules = redactionRules(policy.policy));
  return rules;
}

/** Largest redacted input kept in a decision's audit entry (an entry is at most 64 KiB). */
const MAX_LOGGED_INPUT = 16 * 1024;

/** Delay before retrying a reload whose audit entry could not be written. */
const AUDIT_RETRY_MS = 1_000;

function sourceByName(sources: PolicySource[], name: string): PolicySource {
  const s = sources.find((x) => x.name === name);
  if (!s) throw new TypeError(`Missing policy source "${name}"`);
  return s;
}

/** The running policy control. */
export class PolicyService {
  readonly #options: PolicyServiceOptions;
  readonly #engine: PolicyEngine;
  #sources: PolicySource[];
  #loadedAt = new Date().toISOString();
  #lastError: ReloadError | null = null;
  #watchers: Deno.FsWatcher[] = [];
  #debounce: ReturnType<typeof setTimeout> | undefined;
  #reloading: Promise<ReloadOutcome> | null = null;
  #isReloadPending = false;
  #isClosed = false;
  readonly #counts: DecisionCounts = {
    since: new Date().toISOString(),
    total: 0,
    by_domain: Object.fromEntries(
      POLICY_DOMAINS.map((d) => [d, { allow: 0, deny: 0, ask: 0 }]),
    ),
  };

  private constructor(
    options: PolicyServiceOptions,
    sources: PolicySource[],
    policy: CompiledPolicy,
  ) {
    this.#options = options;
    this.#sources = sources;
    this.#engine = new PolicyEngine(policy, { workspace: options.workspace });
  }

  /**
   * Loads the policy and builds the service; no watching yet ({@link watch}).
   * @throws {PolicyLoadError} when the policy in the folders does not load (no start)
   */
  static async start(options: PolicyServiceOptions): Promise<PolicyService> {
    const sources = await readPolicySources(options.dirs);
    const policy = compilePolicy(
      sourceByName(sources, "policy.yaml"),
      sourceByName(sources, "agent.yaml"),
    );
    return new PolicyService(options, sources, policy);
  }

  /** The engine (policy in force, workspace). */
  get engine(): PolicyEngine {
    return this.#engine;
  }

  /** The last refused reload, or null since the last successful one. */
  get lastReloadError(): ReloadError | null {
    return this.#lastError;
  }

  /**
   * Decides and audits. The audit entry carries the evidence and a redacted copy of the
   * input (what-if replays it); the decision is returned only once it is recorded.
   * @throws {RpcError} the audit control's error when the entry was not recorded
   */
  async decide(request: DecisionRequest, options: DecideOptions): Promise<Decision> {
    const { caller, ...callOptions } = options;
    const policy = this.#engine.policy;
    const decision = this.#engine.decideUnder(policy, request);
    const logged = redactInput(
      { domain: request.domain, input: request.input as Record<string, unknown> },
      rulesOf(policy),
    );
    await this.#options.audit({
      type: "policy.decision",
      actor: caller,
      subject: request.domain,
      decision: decision.decision,
      evidence: decision.evidence,
      data: JSON.stringify(logged.input).length <= MAX_LOGGED_INPUT
        ? {
          rule: decision.rule,
          policy_version: decision.policy_version,
          input: logged.input,
          redacted: logged.redacted,
        }
        // Too large to keep in an entry: recorded without it (what-if skips such entries).
        : {
          rule: decision.rule,
          policy_version: decision.policy_version,
          input_omitted: "too large",
        },
    }, callOptions);
    // Counted once given: a decision whose entry was not recorded was never an answer.
    const counts = this.#counts.by_domain[request.domain];
    if (counts) counts[decision.decision]++;
    this.#counts.total++;
    return decision;
  }

  /** The policy in force, for `GET /api/v1/policy` and the tool firewall. */
  view(): PolicyView {
    const policy = this.#engine.policy;
    return {
      policy_version: policy.version,
      loaded_at: this.#loadedAt,
      workspace: this.#engine.workspace,
      sources: policy.sources,
      policy: policy.policy as unknown as Record<string, unknown>,
      agent: policy.agent as unknown as Record<string, unknown>,
      tools: [...TOOL_REGISTRY.values()].map((t) => ({
        name: t.name,
        description: t.description,
        args: Object.keys(t.kinds),
      })),
      last_reload_error: this.#lastError,
      decisions: structuredClone(this.#counts),
    };
  }

  /**
   * Replays logged decisions under a candidate (files absent from it are the ones in force).
   * @throws {RpcError} POLICY_INVALID naming the file, field and reason
   */
  whatif(
    candidate: { policy?: string | undefined; agent?: string | undefined },
    entries: LoggedDecision[],
  ): WhatIfReport {
    const current = (name: string) => sourceByName(this.#sources, name);
    const pick = (name: string, text: string | undefined): PolicySource =>
      text === undefined ? current(name) : { name, origin: "candidate", path: "", text };
    let compiled: CompiledPolicy;
    try {
      compiled = compilePolicy(
        pick("policy.yaml", candidate.policy),
        pick("agent.yaml", candidate.agent),
      );
    } catch (err) {
      if (err instanceof PolicyLoadError) throw new RpcError("POLICY_INVALID", err.message);
      throw err;
    }
    return whatIf(this.#engine, { candidate: compiled, entries });
  }

  /**
   * Reloads from the folders now. Concurrent calls share one reload; a change during a
   * reload triggers one more.
   */
  reload(): Promise<ReloadOutcome> {
    if (this.#reloading) {
      this.#isReloadPending = true;
      return this.#reloading;
    }
    this.#reloading = this.#reloadOnce().finally(() => {
      this.#reloading = null;
      if (this.#isReloadPending && !this.#isClosed) {
        this.#isReloadPending = false;
        void this.reload();
      }
    });
    return this.#reloading;
  }

  async #reloadOnce(): Promise<ReloadOutcome> {
    const previous = this.#engine.policy;
    let sources: PolicySource[];
    let next: CompiledPolicy;
    try {
      sources = await readPolicySources(this.#options.dirs);
      next = compilePolicy(
        sourceByName(sources, "policy.yaml"),
        sourceByName(sources, "agent.yaml"),
      );
    } catch (err) {
      if (!(err instanceof PolicyLoadError)) throw err;
      return await this.#refuse(err, previous);
    }
    if (next.version === previous.version) {
      this.#lastError = null;
      return "unchanged";
    }
    try {
      await this.#options.audit({
        type: "policy.reloaded",
        actor: "policy",
        subject: "policy",
        evidence: {
          previous_version: previous.version,
          policy_version: next.version,
          sources: next.sources.map((s) => ({ name: s.name, origin: s.origin, sha256: s.sha256 })),
        },
        data: {},
      });
    } catch (err) {
      // A policy change that cannot be recorded is not applied; try again shortly.
      this.#options.emit("policy.reload_unaudited", {
        policy_version: next.version,
        error: err instanceof RpcError ? err.code : "UNKNOWN",
      });
      this.#schedule(AUDIT_RETRY_MS);
      return "unaudited";
    }
    this.#engine.replace(next);
    this.#sources = sources;
    this.#loadedAt = new Date().toISOString();
    this.#lastError = null;
    this.#options.emit("policy.reloaded", {
      previous_version: previous.version,
      policy_version: next.version,
    });
    return "reloaded";
  }

  async #refuse(err: PolicyLoadError, kept: CompiledPolicy): Promise<ReloadOutcome> {
    this.#lastError = {
      at: new Date().toISOString(),
      file: err.file,
      field: err.field,
      reason: err.reason.slice(0, 2000),
    };
    const details = {
      file: err.file,
      field: err.field,
      reason: err.reason.slice(0, 1000),
      code: err.code,
      policy_version: kept.version,
    };
    this.#options.emit("policy.reload_failed", details);
    try {
      await this.#options.audit({
        type: "policy.reload_failed",
        actor: "policy",
        subject: "policy",
        decision: "deny",
        evidence: details,
        data: {},
      });
    } catch (auditErr) {
      // The refusal itself stands (the old policy stays); only its record is missing.
      this.#options.emit("policy.reload_unaudited", {
        error: auditErr instanceof RpcError ? auditErr.code : "UNKNOWN",
      });
    }
    return "refused";
  }

  #schedule(ms: number): void {
    if (this.#isClosed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      this.reload().catch((err) => {
        this.#options.emit("policy.reload_error", {
          error: err instanceof Error ? err.name : typeof err,
        });
      });
    }, ms);
  }

  /**
   * Watches the defaults and override folders; a change reloads after the debounce. A folder
   * that does not exist is skipped (and reported): it cannot hold a policy file.
   */
  watch(): void {
    const dirs = [this.#options.dirs.defaultsDir, this.#options.dirs.overrideDir].filter(
      (d): d is string => d !== null,
    );
    for (const dir of dirs) {
      let watcher: Deno.FsWatcher;
      try {
        watcher = Deno.watchFs(dir, { recursive: false });
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
        this.#options.emit("policy.watch_skipped", { dir, reason: "the folder does not exist" });
        continue;
      }
      this.#watchers.push(watcher);
      void (async () => {
        try {
          for await (const event of watcher) {
            if (event.kind === "access") continue;
            this.#schedule(this.#options.debounceMs);
          }
        } catch (err) {
          if (this.#isClosed) return;
          this.#options.emit("policy.watch_failed", {
            dir,
            error: err instanceof Error ? err.name : typeof err,
          });
        }
      })();
    }
  }

  /** Stops watching. */
  close(): void {
    this.#isClosed = true;
    clearTimeout(this.#debounce);
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
  }
}
