/**
 * The one strict schema of each policy file (spec 12 §1) and of each domain's input. Unknown
 * keys, wrong types and out-of-range values are refused with the field path; there is no key
 * that silently means "allow" when it is missing (spec 12 §4 weaknesses 2 and 3).
 * Defaults are documented in `defaults/policy.yaml` and `defaults/agent.yaml`.
 * @module
 */
import { z } from "zod";

const Name = z.string().min(1).max(256).regex(
  /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
  "expected a name of letters, digits, dots, underscores and hyphens",
);
const Glob = z.string().min(1).max(4096);
const HostName = z.string().min(1).max(253).regex(
  /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/,
  "expected a lower-case DNS host name",
);
const Level = z.enum(["low", "medium", "high"]);

/** A token bucket. */
const RateLimitSchema = z.strictObject({
  requests_per_minute: z.number().int().min(1).max(1_000_000),
  burst_size: z.number().int().min(1).max(1_000_000),
});

/** Constraints on one argument of an allowed tool. */
const ArgRuleSchema = z.strictObject({
  /** Longest value: characters of a string, else the length of its JSON encoding. */
  max_length: z.number().int().min(0).max(1024 * 1024).optional(),
  /** Anchored regular expression a string value must match in full. */
  pattern: z.string().min(1).max(1000).optional(),
  /** Replace the value by `[redacted len=N]` in logs (on top of the registry's own list). */
  redact: z.boolean().default(false),
});

/** One allowed tool. */
const ToolAllowSchema = z.strictObject({
  name: Name,
  /** `ask`: the call needs a user approval each time. */
  decision: z.enum(["allow", "ask"]).default("allow"),
  /** Workspace-relative globs (`dir/**`, `**`, exact); a path argument must match one. */
  paths_allowlist: z.array(Glob).max(256).default([]),
  /** Workspace-relative globs a path argument must not match (checked first). */
  paths_denylist: z.array(Glob).max(256).default([]),
  /** Case-insensitive substrings refused anywhere in the arguments (keys included). */
  args_blocklist: z.array(z.string().min(1).max(1000)).max(256).default([]),
  args: z.record(Name, ArgRuleSchema).default({}),
  /** Per-tool bucket (per caller), on top of the per-session one. */
  rate_limit: RateLimitSchema.optional(),
});

/** One airlock destination. */
const DestinationSchema = z.strictObject({
  host: HostName,
  /** Whether sub-domains match too; off by default (exact host). */
  include_subdomains: z.boolean().default(false),
  /** Path prefix on a `/` boundary; `/` allows every path. */
  path_prefix: z.string().min(1).max(1024).regex(/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/)
    .default("/"),
});

/** `policy.yaml`. */
export const PolicyFileSchema = z.strictObject({
  version: z.literal(1),
  defaults: z.strictObject({
    network: z.strictObject({
      /**
       * The only value is `deny`: runtime egress goes through the airlock's allowlist or
       * nowhere. (The original allowed everything for any other value, a missing key included.)
       */
      runtime_egress: z.literal("deny"),
    }),
    logging: z.strictObject({
      store_raw_prompts: z.boolean(),
      store_raw_responses: z.boolean(),
    }),
  }),
  models: z.strictObject({
    allowed_formats: z.array(Name).min(1).max(64),
    deny_formats: z.array(Name).max(64),
    require_scan: z.literal(true),
    require_yara: z.literal(true),
    require_modelaudit: z.literal(true),
    require_behavior_tests: z.literal(true),
    allow_diffusion_directories: z.boolean(),
  }),
  quarantine: z.strictObject({
    smoke_test_max_score: z.number().min(0).max(0.3),
    smoke_test_max_critical: z.number().int().min(0).max(0),
  }),
  gguf_guard: z.strictObject({
    required: z.literal(true),
    generate_manifest: z.literal(true),
    generate_fingerprint: z.literal(true),
    verify_on_integrity_check: z.literal(true),
  }),
  tools: z.strictObject({
    /** The tool firewall refuses to load anything but `deny` (spec 12 §1). */
    default: z.literal("deny"),
    rate_limit: RateLimitSchema,
    max_arg_length: z.number().int().min(0).max(65_536),
    allow: z.array(ToolAllowSchema).max(256),
    deny: z.array(Name).max(256),
  }),
  airlock: z.strictObject({
    enabled: z.boolean(),
    allowed_destinations: z.array(DestinationSchema).max(2048),
    allowed_methods: z.array(z.enum(["GET", "POST", "HEAD"])).max(3),
    max_url_length: z.number().int().min(16).max(8192),
    max_query_length: z.number().int().min(0).max(4096),
    max_body_size: z.number().int().min(0).max(64 * 1024 * 1024),
    rate_limit: z.strictObject({
      requests_per_minute: z.number().int().min(1).max(10_000),
    }),
  }),
  search: z.strictObject({
    enabled: z.boolean(),
  }),
});
/** Parsed `policy.yaml`. */
export type PolicyFile = z.infer<typeof PolicyFileSchema>;

const ModeName = z.enum(["offline_only", "standard", "online_assisted", "sensitive"]);
/** An agent session mode. */
export type ModeName = z.infer<typeof ModeName>;

const BudgetSchema = z.strictObject({
  max_steps: z.number().int().min(1).max(1000),
  max_tool_calls: z.number().int().min(0).max(10_000),
  max_tokens: z.number().int().min(0).max(10_000_000),
  max_wall_clock_seconds: z.number().int().min(1).max(86_400),
  max_files_touched: z.number().int().min(0).max(10_000),
  max_output_bytes: z.number().int().min(0).max(1024 * 1024 * 1024),
});

const ModeSchema = z.strictObject({
  /** never: online actions are denied; token: only with a token's `allow_online`; ask. */
  online: z.enum(["never", "token", "ask"]),
  sensitivity_ceiling: Level,
  /** Tools a task in this mode may invoke. */
  tools: z.array(Name).max(256),
  budgets: BudgetSchema,
});

/** `agent.yaml` (spec 20 §1–2). */
export const AgentFileSchema = z.strictObject({
  version: z.literal(1),
  default_mode: ModeName,
  modes: z.strictObject({
    offline_only: ModeSchema,
    standard: ModeSchema,
    online_assisted: ModeSchema,
    sensitive: ModeSchema,
  }),
  workspace: z.strictObject({
    /** Workspace-relative globs the agent may read (and list). */
    readable: z.array(Glob).max(256),
    /** Workspace-relative globs the agent may write. */
    writable: z.array(Glob).max(256),
  }),
  actions: z.strictObject({
    /** Allowed without asking. */
    auto: z.array(Name).max(256),
    /** Decided by the user's preference (`always`, `ask`, `never`). */
    configurable: z.array(Name).max(256),
    /** Preference when the request names none. */
    preference_default: z.enum(["always", "ask", "never"]),
    /** Actions that reach outside the machine (judged by the mode's `online`). */
    online: z.array(Name).max(256),
    /** Actions whose allow becomes ask (a second confirmation). */
    two_phase: z.array(Name).max(256),
  }),
  allowed_tools: z.array(Name).max(256),
  always_deny: z.array(Name).max(256),
  hard_approval: z.array(Name).max(256),
});
/** Parsed `agent.yaml`. */
export type AgentFile = z.infer<typeof AgentFileSchema>;

// ---------------------------------------------------------------------------------------
// Domain inputs

/**
 * A key schema that refuses "__proto__": zod drops such a key from a parsed record without a
 * word, so what was judged would not be what was sent.
 */
export function noProtoKey(key: z.ZodString): z.ZodString {
  return key.regex(/^(?!__proto__$)/, 'A key may not be "__proto__"');
}

/** Most arguments one tool call may carry (checked by the `tool_access` evaluator). */
export const MAX_TOOL_ARGS = 128;

/**
 * Argument values are judged by the tool registry's strict schema and the firewall's limits;
 * here: named JSON values. The count is bounded by the evaluator, not by a zod refinement
 * (a refinement triples the cost of parsing a tool call).
 */
const ArgsSchema = z.record(noProtoKey(z.string().min(1).max(256)), z.unknown());

/** `tool_access`: one proposed tool call. */
export const ToolAccessInputSchema = z.strictObject({
  tool: z.string().min(1).max(256),
  args: ArgsSchema.default({}),
  /** The session (agent task, chat) the call belongs to; for the record. */
  session: z.string().min(1).max(128).optional(),
});

/** `path_access`: a workspace path and what is done to it. */
export const PathAccessInputSchema = z.strictObject({
  path: z.string().max(8192),
  op: z.enum(["read", "write", "list"]),
});

/** `egress`: a destination URL (and the method, default GET). */
export const EgressInputSchema = z.strictObject({
  url: z.string().max(65_536),
  method: z.enum(["GET", "POST", "HEAD"]).default("GET"),
});

/** `agent_risk`: one planned agent step. */
export const AgentRiskInputSchema = z.strictObject({
  action: z.string().min(1).max(128),
  mode: ModeName.optional(),
  /** Set by a capability token that grants online access (mode `standard`). */
  allow_online: z.boolean().default(false),
  /** The step's declared data sensitivity. */
  sensitivity: Level.optional(),
  /** The user's preference for a configurable action. */
  preference: z.enum(["always", "ask", "never"]).optional(),
  /** The tool of a `tool_invoke` step. */
  tool: z.string().min(1).max(256).optional(),
});

/** `sensitivity`: a level against a ceiling. */
export const SensitivityInputSchema = z.strictObject({
  level: z.string().max(32),
  ceiling: z.string().max(32),
});

/** `model_promotion`: a model about to leave quarantine. */
export const ModelPromotionInputSchema = z.strictObject({
  model: z.string().min(1).max(512),
  format: z.string().min(1).max(64),
  /** Behavioural smoke-test score, 0 (clean) … 1. */
  smoke_score: z.number().min(0).max(1).optional(),
  /** Critical findings of the smoke test. */
  smoke_critical: z.number().int().min(0).max(1_000_000).optional(),
  /** Verdict of the static scan (stage 5); anything but clean is refused. */
  scan_verdict: z.enum(["clean", "threat", "invalid"]).optional(),
  /** Whether the behavioural smoke test (stage 6) passed, failed or was skipped. */
  smoke_status: z.enum(["passed", "failed", "skipped"]).optional(),
  /** Where the model came from (stage 1): a local import, or a remote origin. */
  source_kind: z.enum(["local", "remote"]).optional(),
  /** Whether its hash matched a pin of the lock (stage 3). */
  pinned: z.boolean().optional(),
});

/** Input schema of each domain. */
export const DOMAIN_INPUTS = {
  tool_access: ToolAccessInputSchema,
  path_access: PathAccessInputSchema,
  egress: EgressInputSchema,
  agent_risk: AgentRiskInputSchema,
  sensitivity: SensitivityInputSchema,
  model_promotion: ModelPromotionInputSchema,
} as const;
