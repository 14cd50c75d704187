/**
 * Turns the text of `policy.yaml` and `agent.yaml` into a {@link CompiledPolicy}: parsed as
 * exactly one YAML document (no aliases, no duplicate keys), validated by the strict schemas,
 * cross-checked (tools exist in the registry, constraints name real arguments, patterns
 * compile, globs are of a supported form) and indexed for the evaluator. Pure: no I/O.
 * @module
 */
import { createHash } from "node:crypto";
import { parseDocument } from "yaml";
import { z } from "zod";
import { PolicyLoadError } from "./errors.ts";
import { type AgentFile, AgentFileSchema, type PolicyFile, PolicyFileSchema } from "./schema.ts";
import { compilePathPattern, type PathPattern } from "./path_gate.ts";
import type { DestinationRule, UrlLimits } from "./egress.ts";
import { TOOL_REGISTRY, type ToolSpec } from "./tools.ts";

/** Largest policy file read (spec 12 §3.3). */
export const MAX_POLICY_BYTES = 1024 * 1024;

/** One policy file's text and where it came from. */
export interface PolicySource {
  /** `policy.yaml` or `agent.yaml`. */
  name: string;
  /** `default` (shipped), `override` (state dir), or `candidate` (what-if, tests). */
  origin: "default" | "override" | "candidate";
  /** Where it was read from, for messages; "" when it was not a file. */
  path: string;
  text: string;
}

/** Compiled constraints on one argument. */
export interface CompiledArgRule {
  maxLength: number | null;
  pattern: RegExp | null;
  isRedacted: boolean;
}

/** A compiled `tools.allow` entry. */
export interface CompiledTool {
  spec: ToolSpec;
  decision: "allow" | "ask";
  allowPaths: PathPattern[];
  denyPaths: PathPattern[];
  /** Lower-cased. */
  blocklist: string[];
  args: Map<string, CompiledArgRule>;
  rateLimit: { requestsPerMinute: number; burstSize: number } | null;
}

/** What the evaluator reads: the parsed files plus indexes. */
export interface CompiledPolicy {
  /** `sha256:<hex>` of policy.yaml's bytes followed by agent.yaml's. */
  version: string;
  /** The hex digest alone (spec 12 §2.1 `policy_digest`). */
  digest: string;
  sources: { name: string; origin: PolicySource["origin"]; path: string; sha256: string }[];
  policy: PolicyFile;
  agent: AgentFile;
  egress: {
    isAirlockEnabled: boolean;
    methods: ReadonlySet<string>;
    destinations: DestinationRule[];
    limits: UrlLimits;
  };
  tools: {
    deny: ReadonlySet<string>;
    allow: ReadonlyMap<string, CompiledTool>;
    maxArgLength: number;
    rateLimit: { requestsPerMinute: number; burstSize: number };
  };
  workspace: { readable: PathPattern[]; writable: PathPattern[] };
  actions: {
    auto: ReadonlySet<string>;
    configurable: ReadonlySet<string>;
    online: ReadonlySet<string>;
    twoPhase: ReadonlySet<string>;
    alwaysDeny: ReadonlySet<string>;
    hardApproval: ReadonlySet<string>;
    allowedTools: ReadonlySet<string>;
  };
  models: { allowed: ReadonlySet<string>; deny: ReadonlySet<string> };
}

function invalid(file: string, field: string, reason: string, cause?: unknown): PolicyLoadError {
  return new PolicyLoadError("POLICY_INVALID", {
    file,
    field,
    reason,
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Parses one YAML document strictly and validates it.
 * @throws {PolicyLoadError} POLICY_INVALID naming the field and reason
 */
export function parsePolicyYaml<S extends z.ZodTypeAny>(
  source: { file: string; text: string },
  schema: S,
): z.output<S> {
  const { file, text } = source;
  if (text.length > MAX_POLICY_BYTES) {
    throw invalid(file, "(root)", `the file is larger than ${MAX_POLICY_BYTES} bytes`);
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  const yamlError = doc.errors[0];
  if (yamlError) {
    const line = yamlError.linePos?.[0]?.line;
    throw invalid(
      file,
      "(root)",
      `not valid YAML${line ? ` (line ${line})` : ""}: ${yamlError.message.split("\n")[0]}`,
    );
  }
  let value: unknown;
  try {
    // Aliases add nothing a policy needs and enable "billion laughs" expansion.
    value = doc.toJS({ maxAliasCount: 0 });
  } catch (err) {
    throw invalid(file, "(root)", "YAML aliases are not allowed", err);
  }
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.length ? issue.path.join(".") : "(root)";
    throw invalid(file, field, issue?.message ?? "invalid");
  }
  return parsed.data;
}

function patterns(file: string, field: string, globs: readonly string[]): PathPattern[] {
  return globs.map((glob, i) => {
    const p = compilePathPattern(glob);
    if (!p) {
      throw invalid(
        file,
        `${field}.${i}`,
        `"${glob.slice(0, 100)}" is not a workspace glob ("dir/**", "**" or a plain relative path)`,
      );
    }
    return p;
  });
}

function isStringArg(spec: ToolSpec, arg: string): boolean {
  let t = spec.args.shape[arg] as z.ZodTypeAny | undefined;
  while (t instanceof z.ZodOptional || t instanceof z.ZodDefault) {
    t = t instanceof z.ZodOptional ? t.unwrap() : t.removeDefault();
  }
  return t instanceof z.ZodString;
}

function compileTools(file: string, tools: PolicyFile["tools"]): Map<string, CompiledTool> {
  const allow = new Map<string, CompiledTool>();
  tools.allow.forEach((entry, i) => {
    const at = `tools.allow.${i}`;
    const spec = TOOL_REGISTRY.get(entry.name);
    if (!spec) throw invalid(file, `${at}.name`, `unknown tool "${entry.name}"`);
    if (allow.has(entry.name)) {
      throw invalid(file, `${at}.name`, `tool "${entry.name}" is listed twice`);
    }
    const hasPathArg = Object.values(spec.kinds).some((k) => k.kind === "path");
    if (!hasPathArg && (entry.paths_allowlist.length || entry.paths_denylist.length)) {
      throw invalid(file, `${at}.paths_allowlist`, `tool "${entry.name}" has no path argument`);
    }
    if (hasPathArg && entry.paths_allowlist.length === 0) {
      // Default deny: a path tool without an allowlist could touch the whole workspace.
      throw invalid(
        file,
        `${at}.paths_allowlist`,
        "a tool with a path argument needs an allowlist",
      );
    }
    const args = new Map<string, CompiledArgRule>();
    for (const [name, rule] of Object.entries(entry.args)) {
      if (!spec.kinds[name]) {
        throw invalid(file, `${at}.args.${name}`, `tool "${entry.name}" has no argument "${name}"`);
      }
      let pattern: RegExp | null = null;
      if (rule.pattern !== undefined) {
        if (!isStringArg(spec, name)) {
          throw invalid(file, `${at}.args.${name}.pattern`, "a pattern applies to strings only");
        }
        try {
          // Anchored: an unanchored pattern matches any value that merely contains it.
          pattern = new RegExp(`^(?:${rule.pattern})$`, "u");
        } catch (err) {
          throw invalid(file, `${at}.args.${name}.pattern`, "the pattern does not compile", err);
        }
      }
      args.set(name, { maxLength: rule.max_length ?? null, pattern, isRedacted: rule.redact });
    }
    allow.set(entry.name, {
      spec,
      decision: entry.decision,
      allowPaths: patterns(file, `${at}.paths_allowlist`, entry.paths_allowlist),
      denyPaths: patterns(file, `${at}.paths_denylist`, entry.paths_denylist),
      blocklist: entry.args_blocklist.map((s) => s.toLowerCase()),
      args,
      rateLimit: entry.rate_limit
        ? {
          requestsPerMinute: entry.rate_limit.requests_per_minute,
          burstSize: entry.rate_limit.burst_size,
        }
        : null,
    });
  });
  return allow;
}

function checkToolNames(file: string, field: string, names: readonly string[]): void {
  names.forEach((name, i) => {
    if (!TOOL_REGISTRY.has(name)) throw invalid(file, `${field}.${i}`, `unknown tool "${name}"`);
  });
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * Compiles the two policy files.
 * @param policySource `policy.yaml`
 * @param agentSource `agent.yaml`
 * @returns the compiled policy with its version
 * @throws {PolicyLoadError} POLICY_INVALID naming the file, field and reason
 * @example
 * ```ts
 * const compiled = compilePolicy(
 *   { name: "policy.yaml", origin: "candidate", path: "", text: policyText },
 *   { name: "agent.yaml", origin: "candidate", path: "", text: agentText },
 * );
 * ```
 */
export function compilePolicy(
  policySource: PolicySource,
  agentSource: PolicySource,
): CompiledPolicy {
  const pf = policySource.name;
  const af = agentSource.name;
  const policy = parsePolicyYaml({ file: pf, text: policySource.text }, PolicyFileSchema);
  const agent = parsePolicyYaml({ file: af, text: agentSource.text }, AgentFileSchema);
  const allow = compileTools(pf, policy.tools);
  checkToolNames(af, "allowed_tools", agent.allowed_tools);
  for (const mode of ["offline_only", "standard", "online_assisted", "sensitive"] as const) {
    checkToolNames(af, `modes.${mode}.tools`, agent.modes[mode].tools);
  }
  const digest = createHash("sha256").update(policySource.text).update(agentSource.text)
    .digest("hex");
  const set = (xs: readonly string[]) => new Set(xs);
  return {
    version: `sha256:${digest}`,
    digest,
    sources: [policySource, agentSource].map((s) => ({
      name: s.name,
      origin: s.origin,
      path: s.path,
      sha256: sha256(s.text),
    })),
    policy,
    agent,
    egress: {
      isAirlockEnabled: policy.airlock.enabled,
      methods: set(
        policy.airlock.allowed_methods.length ? policy.airlock.allowed_methods : ["GET", "POST"],
      ),
      destinations: policy.airlock.allowed_destinations.map((d) => ({
        host: d.host,
        includeSubdomains: d.include_subdomains,
        pathPrefix: d.path_prefix.length > 1 ? d.path_prefix.replace(/\/+$/, "") : "/",
      })),
      limits: {
        maxUrlLength: policy.airlock.max_url_length,
        maxQueryLength: policy.airlock.max_query_length,
      },
    },
    tools: {
      deny: set(policy.tools.deny),
      allow,
      maxArgLength: policy.tools.max_arg_length,
      rateLimit: {
        requestsPerMinute: policy.tools.rate_limit.requests_per_minute,
        burstSize: policy.tools.rate_limit.burst_size,
      },
    },
    workspace: {
      readable: patterns(af, "workspace.readable", agent.workspace.readable),
      writable: patterns(af, "workspace.writable", agent.workspace.writable),
    },
    actions: {
      auto: set(agent.actions.auto),
      configurable: set(agent.actions.configurable),
      online: set(agent.actions.online),
      twoPhase: set(agent.actions.two_phase),
      alwaysDeny: set(agent.always_deny),
      hardApproval: set(agent.hard_approval),
      allowedTools: set(agent.allowed_tools),
    },
    models: {
      allowed: set(policy.models.allowed_formats.map((f) => f.toLowerCase())),
      deny: set(policy.models.deny_formats.map((f) => f.toLowerCase())),
    },
  };
}
