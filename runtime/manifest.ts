/**
 * The control manifest: every control declared once, with the Deno permissions it needs, the
 * contracts it serves and calls, the sandbox jobs it may run and its restart policy. The
 * supervisor derives every worker spawn and every port from this; the UI shows it as the
 * live capability matrix. There is no way to express `run`, `ffi` or "inherit" here: native
 * code and processes only run in sandboxed jobs (ARCHITECTURE.md, principle 4).
 * @module
 */
import { z } from "zod";

const Name = z.string().regex(/^[a-z][a-z0-9-]{0,39}$/);
/** Path references: `home:<rel>` (state dir) or `project:<rel>` (read-only code/assets). */
const PathRef = z.string().regex(
  /^(home|project):[A-Za-z0-9._/-]{0,200}$/,
  'expected "home:<relative path>" or "project:<relative path>"',
).refine((p) => !p.split(/[:/]/).includes(".."), 'must not contain ".."');
/**
 * Net references: `host:port`, `gateway:listen` (resolved from the gateway config), or
 * `inference:external` (the external inference backend's host, when one is configured).
 */
const NetRef = z.string().regex(/^([a-z0-9.-]{1,253}:\d{1,5}|gateway:listen|inference:external)$/);

/** Restart policy (spec 10 §1: back-off 2 s, ≤ 5 starts / 300 s, then failed). */
export const RestartPolicySchema = z.strictObject({
  /** First back-off; doubles with every restart in the window. */
  backoffMs: z.number().int().min(0).max(60_000).default(2_000),
  maxBackoffMs: z.number().int().min(0).max(600_000).default(30_000),
  /** More restarts than this within windowMs ⇒ the control is marked failed. */
  maxRestarts: z.number().int().min(0).max(100).default(5),
  windowMs: z.number().int().min(1).max(3_600_000).default(300_000),
});
/** Restart policy. */
export type RestartPolicy = z.infer<typeof RestartPolicySchema>;

/** One control. */
export const ControlSpecSchema = z.strictObject({
  name: Name,
  description: z.string().min(1).max(300),
  /** Worker module, relative to the project root. */
  entry: z.string().regex(/^[a-z0-9_/-]+\.tsx?$/),
  /** The system is ready only when every required control is. */
  required: z.boolean().default(true),
  permissions: z.strictObject({
    read: z.array(PathRef).max(32).default([]),
    write: z.array(PathRef).max(32).default([]),
    net: z.array(NetRef).max(32).default([]),
    env: z.array(z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/)).max(32).default([]),
    sys: z.array(z.enum(["hostname", "osRelease", "osUptime", "loadavg", "systemMemoryInfo"]))
      .max(8).default([]),
  }).default({}),
  /** Contracts served to callers that declare them in `uses`. */
  provides: z.array(Name).max(16).default([]),
  /** Contracts this control may call: one port each, nothing else is reachable. */
  uses: z.array(Name).max(16).default([]),
  /**
   * Sandbox job modules this control may run: name → module path under the project, always
   * in a `jobs/` folder (shipped controls: `workers/<control>/jobs/`, checked by the
   * architecture test; test fixtures: `tests/fixtures/jobs/`).
   */
  jobs: z.record(
    z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/),
    z.string().regex(/^(workers\/[a-z0-9-]+|tests\/fixtures)\/jobs\/[a-z0-9_]+\.ts$/),
  ).default({}),
  /**
   * Native libraries (sonames) a job of this control loads itself, e.g. libyara for the
   * static scan; the job gets them read-only under Landlock and seccomp (runtime/sandbox).
   */
  jobLibraries: z.record(
    z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/),
    z.array(z.string().regex(/^lib[A-Za-z0-9_+-]+\.so(\.\d+)*$/)).max(4),
  ).default({}),
  /**
   * The inference engine (runtime/engine): the control may start sandboxed engine processes
   * from `module`, each able to read one model file, which must lie in one of `models`. It
   * gets the `engine` port from this grant (do not list it in `uses`).
   */
  engine: z.strictObject({
    module: z.string().regex(/^(workers\/[a-z0-9-]+|tests\/fixtures)\/jobs\/[a-z0-9_]+\.ts$/),
    models: z.array(PathRef).min(1).max(4),
    maxEngines: z.number().int().min(1).max(4).default(1),
  }).optional(),
  restart: RestartPolicySchema.default({}),
  /** Time from spawn to `ready`; longer ⇒ treated as a crash. */
  readyTimeoutMs: z.number().int().min(100).max(300_000).default(10_000),
});
/** A control declaration (input form). */
export type ControlSpecInput = z.input<typeof ControlSpecSchema>;
/** A control declaration. */
export type ControlSpec = z.infer<typeof ControlSpecSchema>;

/** Contracts the supervisor itself serves. */
export const SUPERVISOR_CONTRACTS: Readonly<Record<string, string>> = {
  /** Read-only system view; grant to the gateway only. */
  system: "supervisor",
  /** Sandboxed jobs; every control with `jobs` gets it implicitly. */
  sandbox: "supervisor",
  /** Sandboxed inference engines; every control with an `engine` grant gets it implicitly. */
  engine: "supervisor",
};

/** A validated manifest with its derived graph. */
export interface Manifest {
  controls: ControlSpec[];
  /** Contract name → serving control (or "supervisor"). */
  providers: Map<string, string>;
  /** Controls in start order: every provider before its callers. */
  startOrder: string[];
}

/** Raised when the manifest is inconsistent. */
export class ManifestError extends Error {
  /** Always MANIFEST_INVALID. */
  readonly code = "MANIFEST_INVALID";
  /** @param message what is wrong, naming the control */
  constructor(message: string) {
    super(message);
    this.name = "ManifestError";
  }
}

/**
 * Validates control declarations and derives providers and start order.
 * @throws {ManifestError} on unknown contracts, duplicate names/providers or dependency cycles
 */
export function buildManifest(input: ControlSpecInput[]): Manifest {
  const parsed = z.array(ControlSpecSchema).max(64).safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ManifestError(
      `Invalid manifest at "${issue?.path.join(".")}": ${issue?.message ?? "invalid"}`,
    );
  }
  const controls = parsed.data;
  const providers = new Map<string, string>(Object.entries(SUPERVISOR_CONTRACTS));
  const names = new Set<string>();
  for (const c of controls) {
    if (names.has(c.name)) throw new ManifestError(`Control "${c.name}" is declared twice`);
    names.add(c.name);
    for (const api of c.provides) {
      const other = providers.get(api);
      if (other) {
        throw new ManifestError(`Contract "${api}" is provided by both "${other}" and "${c.name}"`);
      }
      providers.set(api, c.name);
    }
  }
  for (const c of controls) {
    for (const api of c.uses) {
      const provider = providers.get(api);
      if (!provider) {
        throw new ManifestError(`Control "${c.name}" uses "${api}", which no control provides`);
      }
      if (provider === c.name) throw new ManifestError(`Control "${c.name}" uses itself`);
    }
    if (Object.keys(c.jobs).length > 0 && c.uses.includes("sandbox")) {
      throw new ManifestError(`Control "${c.name}" gets "sandbox" from its jobs; do not list it`);
    }
    if (c.uses.includes("engine")) {
      throw new ManifestError(
        `Control "${c.name}" gets "engine" from an engine grant; do not list it in uses`,
      );
    }
  }
  return { controls, providers, startOrder: topoOrder(controls, providers) };
}

function topoOrder(controls: ControlSpec[], providers: Map<string, string>): string[] {
  const byName = new Map(controls.map((c) => [c.name, c]));
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  function visit(name: string, path: string[]): void {
    if (state.get(name) === "done") return;
    if (state.get(name) === "visiting") {
      throw new ManifestError(`Dependency cycle: ${[...path, name].join(" → ")}`);
    }
    state.set(name, "visiting");
    for (const api of byName.get(name)?.uses ?? []) {
      const provider = providers.get(api);
      if (provider && byName.has(provider)) visit(provider, [...path, name]);
    }
    state.set(name, "done");
    order.push(name);
  }
  for (const c of controls) visit(c.name, []);
  return order;
}

/** The shipped controls. */
export const DEFAULT_CONTROLS: ControlSpecInput[] = [
  {
    name: "audit",
    description: "Tamper-evident record of every decision and state change",
    entry: "workers/audit/mod.ts",
    permissions: { read: ["home:audit"], write: ["home:audit"] },
    provides: ["audit-append", "audit-query"],
  },
  {
    name: "policy",
    description: "Every decision in one place; deny by default",
    entry: "workers/policy/mod.ts",
    // Shipped policy, operator overrides (watched), and the agent workspace the path gate
    // resolves against; never policy/controls.yaml or anything else of the project. The YAML
    // parser reads its two debug switches from the environment.
    permissions: {
      read: ["project:policy/defaults", "home:policy", "home:vault"],
      env: ["LOG_TOKENS", "LOG_STREAM"],
    },
    provides: ["policy", "policy-view"],
    uses: ["audit-append"],
  },
  {
    name: "tool-firewall",
    description: "The gate for every tool call: registry, limits, decided by policy, audited",
    entry: "workers/tool-firewall/mod.ts",
    provides: ["tool-firewall"],
    uses: ["policy", "policy-view", "audit-append"],
  },
  {
    name: "auth",
    description: "Local passphrase, sessions and login lockout; the only holder of auth secrets",
    entry: "workers/auth/mod.ts",
    permissions: { read: ["home:auth"], write: ["home:auth"] },
    // `auth` (everything) to the gateway; `auth-check` (validate only) to inference.
    provides: ["auth", "auth-check"],
    uses: ["audit-append"],
  },
  {
    name: "registry",
    description:
      "Trusted model store: promotion decided by policy, hashes re-verified, signed manifest",
    entry: "workers/registry/mod.ts",
    // Its own store and the staging folder it takes promoted artifacts from (spec 10 §6).
    permissions: {
      read: ["home:registry", "home:promotion-staging"],
      write: ["home:registry", "home:promotion-staging"],
    },
    provides: ["registry", "registry-promote", "registry-resolve"],
    uses: ["policy", "audit-append"],
    // The per-tensor manifest made in the promotion transaction (spec 13 §6): the job sits
    // beside the strict GGUF/safetensors readers it reuses, in the quarantine's jobs/.
    jobs: { tensor_manifest: "workers/quarantine/jobs/tensor_manifest.ts" },
  },
  {
    name: "quarantine",
    description: "Seven-stage model quarantine; every parser of a model file runs in the sandbox",
    entry: "workers/quarantine/mod.ts",
    // Inbox, private processing dirs and staging; it never reads the registry's store.
    permissions: {
      read: ["home:quarantine", "home:promotion-staging", "project:policy/smoke_tests.yaml"],
      write: ["home:quarantine", "home:promotion-staging"],
      // The yaml package reads these two when it parses the smoke-test suite.
      env: ["LOG_TOKENS", "LOG_STREAM"],
    },
    provides: ["quarantine"],
    // policy: the promotion decision of a directory artifact, which the registry does not take.
    uses: ["registry-promote", "policy", "audit-append"],
    jobs: {
      format_gate: "workers/quarantine/jobs/format_gate.ts",
      static_scan: "workers/quarantine/jobs/static_scan.ts",
      // Stages 2 and 7 of directory artifacts (diffusion models, spec 13 §4).
      diffusion_checks: "workers/quarantine/jobs/diffusion_checks.ts",
    },
    jobLibraries: { static_scan: ["libyara.so.9"] },
    // Stage 6 runs the candidate, still in quarantine, in the sandboxed inference engine.
    engine: { module: "workers/inference/jobs/engine.ts", models: ["home:quarantine/processing"] },
  },
  {
    name: "inference",
    description:
      "Local LLM inference: registry-verified models in the sandboxed engine, OpenAI-compatible API",
    entry: "workers/inference/mod.ts",
    // Token hashes and the local CLI token; memory info for the budget; the external
    // backend's host only when one is configured (and then only as the policy allows).
    permissions: {
      read: ["home:inference"],
      write: ["home:inference"],
      sys: ["systemMemoryInfo"],
      net: ["inference:external"],
    },
    provides: ["inference"],
    // auth: checks the session of a dashboard user chatting on the Chat page.
    uses: ["registry-resolve", "policy", "audit-append", "auth-check"],
    // Engines read only promoted blobs of the registry's store (resolved and re-hashed first).
    engine: { module: "workers/inference/jobs/engine.ts", models: ["home:registry/models"] },
  },
  {
    name: "gateway",
    description: "The one way in: HTTP API, dashboard and event stream on loopback",
    entry: "workers/gateway/mod.ts",
    permissions: { read: ["project:static"], net: ["gateway:listen"] },
    uses: [
      "system",
      "policy",
      "policy-view",
      "tool-firewall",
      "audit-query",
      "audit-append",
      "auth",
      "quarantine",
      "registry",
      "inference",
    ],
  },
];
