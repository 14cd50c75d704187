/**
 * The import and spawn rules of ARCHITECTURE.md as pure functions over an
 * {@linkcode ImportGraph}: they read nothing from disk, so tests can hand them a graph with a
 * forbidden edge and assert the exact message. Every message starts with `file:line`.
 *
 * Rules for product code (everything except `tests/`, `tools/`, `*_test.ts(x)`, `*_bench.ts`):
 * - `workers/<a>/` reaches another control only through its contract `workers/<b>/api.ts`;
 *   it may import `runtime/kit/` (never the rest of `runtime/`), `policy/`, and its own
 *   folder. The gateway worker also imports `routes/` and `islands/`: it mounts the routes
 *   and server-renders the islands.
 * - Nothing outside a worker imports its logic: workers are spawned by URL, never imported;
 *   only `workers/<b>/api.ts` is shared. One exception: a CLI module `runtime/cli_<area>.ts`
 *   may import a worker's `offline/` folder, the pure modules that let the CLI check that
 *   control's files without a running system (e.g. verifying the audit log offline).
 * - `workers/<c>/offline/` imports nothing of ours outside itself (packages and `node:` only),
 *   so importing it never drags a worker's runtime side into the CLI. `routes/` may also import `workers/gateway/`, which
 *   serves them (its routing types, error mapping, SSE and render helpers are the routes'
 *   framework, the way Fresh's are).
 * - A worker's own code outside `jobs/` does not import `workers/<c>/jobs/`: job modules run
 *   only in the sandboxed subprocess, referenced by path in the manifest.
 * - `ffi/` is imported only by `ffi/`, `runtime/sandbox/` and `workers/<c>/jobs/`: the code
 *   that runs in the sandboxed subprocess (principle 4).
 * - `islands/` import only `preact`, `preact/*`, `@preact/signals` and other islands: they
 *   run in the browser and must not pull server code into the bundle.
 * - `ffi/` and `policy/` import nothing of ours outside their own folder; `runtime/kit/`
 *   imports nothing of ours outside itself (workers import it, so it must not drag the
 *   supervisor side along).
 * - `routes/` import only `runtime/kit/`, `workers/*\/api.ts`, `workers/gateway/`, `routes/`
 *   and `islands/`.
 * - Product code never imports `tests/` or test files.
 * - Only `runtime/supervisor.ts` spawns workers, and only with
 *   `permissions: toWorkerPermissions(…)` (a worker without it inherits everything).
 *
 * Rules for every file, tests included: only relative, `node:` and import-map specifiers
 * (no `jsr:`, `https:`, `http:`, inline `npm:`, `file:`, `data:` or absolute paths, no
 * escape from the project), no computed dynamic import, and no import cycle.
 * @module
 */
import type { ImportEdge, ImportGraph } from "./_import_graph.ts";

/** One broken rule, with a message that names the file, the line and the import or spawn. */
export interface Violation {
  rule:
    | "specifier"
    | "worker-boundary"
    | "worker-import"
    | "jobs"
    | "ffi"
    | "islands"
    | "self-contained"
    | "kit"
    | "offline"
    | "routes"
    | "test-import"
    | "cycle"
    | "spawn"
    | "unreadable";
  message: string;
}

/** The one module allowed to spawn workers. */
export const SUPERVISOR_MODULE = "runtime/supervisor.ts";

const ISLAND_PACKAGES = /^(preact|preact\/.+|@preact\/signals)$/;

/** Tests, benchmarks and tools may reach anything; the layering rules are for product code. */
export function isProductFile(path: string): boolean {
  return !path.startsWith("tests/") && !path.startsWith("tools/") &&
    !/_(test|bench)\.tsx?$/.test(path);
}

function isTestFile(path: string): boolean {
  return path.startsWith("tests/") || /_(test|bench)\.tsx?$/.test(path);
}

/** `workers/<name>/…` → name. */
function workerOf(path: string): string | null {
  return /^workers\/([^/]+)\//.exec(path)?.[1] ?? null;
}

function isContract(path: string): boolean {
  return /^workers\/[^/]+\/api\.ts$/.test(path);
}

/** `workers/<c>/offline/` of a path inside one, else null. */
function offlineFolderOf(path: string): string | null {
  return /^(workers\/[^/]+\/offline\/)/.exec(path)?.[1] ?? null;
}

/** CLI modules, which may reach a worker's offline folder. */
function isCliModule(path: string): boolean {
  return /^runtime\/cli_[a-z0-9_]+\.ts$/.test(path);
}

function isJob(path: string): boolean {
  return /^workers\/[^/]+\/jobs\//.test(path);
}

function under(path: string, folder: string): boolean {
  return path.startsWith(folder);
}

function where(edge: ImportEdge): string {
  const target = edge.to !== null && edge.to !== edge.specifier ? ` (${edge.to})` : "";
  return `${edge.from}:${edge.line} imports "${edge.specifier}"${target}`;
}

/** Whether a bare specifier is named by the import map (exactly or under a `x/` prefix). */
function isMapped(specifier: string, keys: readonly string[]): boolean {
  return keys.some((key) => key.endsWith("/") ? specifier.startsWith(key) : specifier === key);
}

function checkSpecifier(edge: ImportEdge, keys: readonly string[]): string | null {
  const spec = edge.specifier;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(spec)?.[1]?.toLowerCase();
  if (edge.to !== null) {
    return edge.to.startsWith("../") ? "it lies outside the project" : null;
  }
  if (scheme === "node") return null;
  if (scheme === "npm") {
    return "inline npm: specifiers are not allowed; map the package in import_map.json";
  }
  if (scheme !== undefined) {
    return `${scheme}: specifiers are not allowed (only npm packages mapped in import_map.json)`;
  }
  if (spec.startsWith("/")) return "absolute paths are not allowed; use a relative specifier";
  if (!isMapped(spec, keys)) return "import_map.json does not map it";
  return null;
}

/** The layering rules for one edge of product code; null when it is allowed. */
function checkLayering(edge: ImportEdge): Violation | null {
  const from = edge.from;
  const to = edge.to;
  const fromWorker = workerOf(from);
  if (to === null) {
    if (under(from, "islands/") && !ISLAND_PACKAGES.test(edge.specifier)) {
      return {
        rule: "islands",
        message: `${
          where(edge)
        }: islands may import only preact, preact/*, @preact/signals and other islands`,
      };
    }
    return null;
  }
  if (isTestFile(to)) {
    return { rule: "test-import", message: `${where(edge)}: product code must not import tests` };
  }
  if (under(from, "islands/")) {
    if (under(to, "islands/")) return null;
    return {
      rule: "islands",
      message: `${
        where(edge)
      }: islands may import only preact, preact/*, @preact/signals and other islands`,
    };
  }
  for (const folder of ["ffi/", "policy/"]) {
    if (under(from, folder) && !under(to, folder)) {
      return {
        rule: "self-contained",
        message: `${where(edge)}: ${folder} must not import our code outside ${folder}`,
      };
    }
  }
  const offline = offlineFolderOf(from);
  if (offline !== null && !under(to, offline)) {
    return {
      rule: "offline",
      message: `${where(edge)}: ${offline} must not import our code outside ${offline}`,
    };
  }
  if (under(from, "runtime/kit/") && !under(to, "runtime/kit/")) {
    return {
      rule: "kit",
      message: `${where(edge)}: runtime/kit/ must not import our code outside runtime/kit/`,
    };
  }
  if (under(to, "ffi/") && !under(from, "ffi/")) {
    if (under(from, "runtime/sandbox/") || isJob(from)) return null;
    return {
      rule: "ffi",
      message: `${
        where(edge)
      }: ffi/ may be imported only from ffi/, runtime/sandbox/ and workers/*/jobs/`,
    };
  }
  const toWorker = workerOf(to);
  if (toWorker !== null && isJob(to) && !isJob(from)) {
    return {
      rule: "jobs",
      message: `${
        where(edge)
      }: job modules run only in the sandbox; name them in the manifest instead of importing them`,
    };
  }
  if (fromWorker !== null) {
    if (toWorker === fromWorker) return null;
    if (toWorker !== null) {
      if (isContract(to)) return null;
      return {
        rule: "worker-boundary",
        message: `${
          where(edge)
        }: a worker may import another worker only through its contract workers/${toWorker}/api.ts`,
      };
    }
    if (under(to, "runtime/kit/") || under(to, "policy/")) return null;
    if (fromWorker === "gateway" && (under(to, "routes/") || under(to, "islands/"))) return null;
    if (under(to, "runtime/")) {
      return {
        rule: "worker-import",
        message: `${where(edge)}: workers may import runtime/ only through runtime/kit/`,
      };
    }
    return {
      rule: "worker-import",
      message: `${
        where(edge)
      }: workers may import only their own folder, runtime/kit/, policy/ and workers/*/api.ts`,
    };
  }
  if (under(from, "routes/")) {
    if (
      under(to, "routes/") || under(to, "islands/") || under(to, "runtime/kit/") ||
      under(to, "workers/gateway/") || isContract(to)
    ) return null;
    return {
      rule: "routes",
      message: `${
        where(edge)
      }: routes may import only runtime/kit/, workers/*/api.ts, workers/gateway/, routes/ and islands/`,
    };
  }
  if (toWorker !== null && offlineFolderOf(to) !== null && isCliModule(from)) return null;
  if (toWorker !== null && !isContract(to)) {
    return {
      rule: "worker-boundary",
      message: `${
        where(edge)
      }: workers are spawned by URL, never imported; import only workers/${toWorker}/api.ts`,
    };
  }
  return null;
}

/** Import cycles among the graph's files, each reported once as a path. */
function findCycles(graph: ImportGraph): Violation[] {
  const next = new Map<string, ImportEdge[]>();
  const files = new Set(graph.files);
  for (const edge of graph.edges) {
    if (edge.to === null || !files.has(edge.to)) continue;
    const list = next.get(edge.from) ?? [];
    list.push(edge);
    next.set(edge.from, list);
  }
  // Tarjan's strongly connected components, iteratively, in file order for stable output.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;
  for (const root of graph.files) {
    if (index.has(root)) continue;
    const work: { node: string; edge: number }[] = [{ node: root, edge: 0 }];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1] as { node: string; edge: number };
      const edges = next.get(frame.node) ?? [];
      if (frame.edge < edges.length) {
        const to = (edges[frame.edge++] as ImportEdge).to as string;
        if (!index.has(to)) {
          index.set(to, counter);
          low.set(to, counter++);
          stack.push(to);
          onStack.add(to);
          work.push({ node: to, edge: 0 });
        } else if (onStack.has(to)) {
          low.set(frame.node, Math.min(low.get(frame.node) as number, index.get(to) as number));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) {
        low.set(
          parent.node,
          Math.min(low.get(parent.node) as number, low.get(frame.node) as number),
        );
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let node: string;
        do {
          node = stack.pop() as string;
          onStack.delete(node);
          component.push(node);
        } while (node !== frame.node);
        const isSelfLoop = (next.get(frame.node) ?? []).some((e) => e.to === frame.node);
        if (component.length > 1 || isSelfLoop) components.push(component);
      }
    }
  }
  return components.map((component) => {
    const members = new Set(component);
    const start = [...component].sort()[0] as string;
    // Shortest way back to the start inside the component (breadth first), for a short path.
    const previous = new Map<string, ImportEdge>();
    const queue = [start];
    let closing: ImportEdge | undefined;
    while (queue.length > 0 && !closing) {
      const node = queue.shift() as string;
      for (const edge of next.get(node) ?? []) {
        const to = edge.to as string;
        if (!members.has(to)) continue;
        if (to === start) {
          closing = edge;
          break;
        }
        if (!previous.has(to)) {
          previous.set(to, edge);
          queue.push(to);
        }
      }
    }
    const path: ImportEdge[] = [];
    for (let edge = closing; edge; edge = previous.get(edge.from)) {
      path.unshift(edge);
      if (edge.from === start) break;
    }
    const steps = path.map((e) => `${e.from}:${e.line}`).join(" → ");
    return { rule: "cycle", message: `Import cycle: ${steps} → ${start}` };
  });
}

/**
 * Judges an import graph against the architecture rules.
 * @param graph the graph (from `readImportGraph()` or built by a test)
 * @returns every violation, in file order; empty when the graph is clean
 * @example
 * ```ts
 * const violations = checkArchitecture(await readImportGraph(root));
 * ```
 */
export function checkArchitecture(graph: ImportGraph): Violation[] {
  const violations: Violation[] = [];
  for (const problem of graph.problems) {
    violations.push({
      rule: "unreadable",
      message: `${problem.file}:${problem.line} ${problem.message}`,
    });
  }
  for (const edge of graph.edges) {
    const reason = checkSpecifier(edge, graph.importMapKeys);
    if (reason !== null) {
      violations.push({ rule: "specifier", message: `${where(edge)}: ${reason}` });
      continue;
    }
    if (!isProductFile(edge.from)) continue;
    const violation = checkLayering(edge);
    if (violation) violations.push(violation);
  }
  for (const spawn of graph.spawns) {
    if (!isProductFile(spawn.file)) continue;
    const at = `${spawn.file}:${spawn.line} spawns a Worker`;
    if (spawn.file !== SUPERVISOR_MODULE) {
      violations.push({
        rule: "spawn",
        message: `${at}: only ${SUPERVISOR_MODULE} may spawn workers`,
      });
    }
    if (spawn.permissions !== "toWorkerPermissions") {
      const how = spawn.permissions === "inherit"
        ? 'with permissions "inherit"'
        : spawn.permissions === "missing"
        ? "without permissions (it inherits every permission)"
        : "with permissions that do not come from toWorkerPermissions()";
      violations.push({
        rule: "spawn",
        message: `${at} ${how}: pass permissions: toWorkerPermissions(grant)`,
      });
    }
  }
  violations.push(...findCycles(graph));
  return violations;
}

/** Permission keys every worker spawn must set explicitly. */
export const PERMISSION_KEYS = [
  "env",
  "ffi",
  "import",
  "net",
  "read",
  "run",
  "sys",
  "write",
] as const;

/**
 * Checks the permission object one control's worker would be spawned with: never "inherit",
 * every key set, nothing unscoped (`true`), and `run`/`ffi` exactly `false` (principle 4).
 * @param control the control's name, for the message
 * @param permissions what the spawn passes as `deno.permissions`
 * @returns one message per problem; empty when the grant is acceptable
 */
export function checkWorkerPermissions(control: string, permissions: unknown): string[] {
  const at = `Control "${control}"`;
  if (permissions === "inherit") return [`${at} is granted "inherit"`];
  if (typeof permissions !== "object" || permissions === null || Array.isArray(permissions)) {
    return [`${at} is granted ${JSON.stringify(permissions)}, not a permission object`];
  }
  const record = permissions as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of Object.keys(record).sort()) {
    if (!(PERMISSION_KEYS as readonly string[]).includes(key)) {
      problems.push(`${at} is granted unknown permission "${key}"`);
    }
  }
  for (const key of PERMISSION_KEYS) {
    const value = record[key];
    if (value === undefined) {
      problems.push(`${at} leaves "${key}" unset (it would be inherited)`);
    } else if (value === "inherit") {
      problems.push(`${at} inherits "${key}"`);
    } else if (value === true) {
      problems.push(`${at} is granted all of "${key}"`);
    } else if ((key === "run" || key === "ffi") && value !== false) {
      problems.push(`${at} is granted "${key}" ${JSON.stringify(value)}; it must be false`);
    } else if (value !== false && !Array.isArray(value)) {
      problems.push(`${at} is granted "${key}" ${JSON.stringify(value)}`);
    }
  }
  return problems;
}
