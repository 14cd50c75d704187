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
/** Net references: `host:port`, or `gateway:listen` (resolved from the gateway config). */
const NetRef = z.string().regex(/^([a-z0-9.-]{1,253}:\d{1,5}|gateway:listen)$/);

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
    permissions: { read: ["project:policy"] },
    provides: ["policy"],
    uses: ["audit-append"],
  },
  {
    name: "gateway",
    description: "The one way in: HTTP API, dashboard and event stream on loopback",
    entry: "workers/gateway/mod.ts",
    permissions: { read: ["project:static"], net: ["gateway:listen"] },
    uses: ["system", "policy", "audit-query", "audit-append"],
  },
];
