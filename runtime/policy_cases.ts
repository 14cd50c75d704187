/**
 * Policy tests as data (like OPA's): each `policy/tests/*.yaml` names a suite of cases —
 * domain, input, expected decision and rule — evaluated under the shipped policy, optionally
 * changed by a merge patch, with an optional workspace tree (folders, files, symlinks, hard
 * links) built in a temp dir for path cases. Run by `secai policy test` and by the test suite
 * (`tests/policy_cases_test.ts`), so a rule change that breaks a case fails CI.
 * @module
 */
import { z } from "zod";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { type CompiledPolicy, compilePolicy, parsePolicyYaml } from "../policy/compile.ts";
import { EffectSchema, PolicyDomainSchema } from "../policy/decision.ts";
import { PolicyEngine } from "../policy/engine.ts";
import { PolicyLoadError } from "../policy/errors.ts";
import { type PolicyDirs, readPolicySources } from "../policy/loader.ts";
import { checkPathLexical } from "../policy/path_gate.ts";

/** The shipped suites. */
export const POLICY_TESTS_DIR: string = new URL("../policy/tests", import.meta.url).pathname;

const TreePath = z.string().min(1).max(1024).refine(
  (p) => checkPathLexical(p).ok,
  "expected a plain relative path inside the workspace",
);
/** A link target; `{root}` is the workspace, `{outside}` a sibling folder outside it. */
const Target = z.string().min(1).max(1024);

/** One test file. */
export const PolicyTestFileSchema = z.strictObject({
  name: z.string().min(1).max(200),
  description: z.string().max(2000).optional(),
  /** Merge patch applied to the parsed `policy.yaml` (objects merge, the rest replaces). */
  policy: z.record(z.string().max(64), z.unknown()).optional(),
  /** Merge patch applied to the parsed `agent.yaml`. */
  agent: z.record(z.string().max(64), z.unknown()).optional(),
  workspace: z.strictObject({
    dirs: z.array(TreePath).max(256).default([]),
    files: z.record(TreePath, z.string().max(65_536)).default({}),
    symlinks: z.record(TreePath, Target).default({}),
    hardlinks: z.record(TreePath, Target).default({}),
  }).optional(),
  cases: z.array(z.strictObject({
    name: z.string().min(1).max(300),
    domain: PolicyDomainSchema,
    input: z.record(z.string().max(64), z.unknown()),
    expect: z.strictObject({
      decision: EffectSchema,
      rule: z.string().max(200).optional(),
    }),
  })).min(1).max(2000),
});
/** A parsed test file. */
export type PolicyTestFile = z.infer<typeof PolicyTestFileSchema>;

/** A suite and the file it came from. */
export interface PolicySuite {
  file: string;
  suite: PolicyTestFile;
}

/** One case's outcome. */
export interface CaseResult {
  file: string;
  suite: string;
  name: string;
  isPassed: boolean;
  expected: { decision: string; rule?: string | undefined };
  actual: { decision: string; rule: string; reasons: string[] };
}

/**
 * Reads and validates every `*.yaml` in a folder, sorted by name.
 * @throws {PolicyLoadError} naming the file and field of an invalid suite
 */
export async function loadPolicySuites(dir: string): Promise<PolicySuite[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".yaml")) names.push(entry.name);
  }
  names.sort();
  const suites: PolicySuite[] = [];
  for (const name of names) {
    const file = `${dir}/${name}`;
    const text = await Deno.readTextFile(file);
    suites.push({ file, suite: parsePolicyYaml({ file: name, text }, PolicyTestFileSchema) });
  }
  return suites;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** RFC 7386-style merge: objects merge key by key, everything else replaces. */
export function mergePatch(base: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch) || !isPlainObject(base)) return structuredClone(patch);
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) out[k] = mergePatch(base[k], v);
  return out;
}

/**
 * Compiles the policy a suite runs under: the effective files of `dirs`, patched.
 * @throws {PolicyLoadError} when the patched policy does not load
 */
export async function suitePolicy(
  suite: PolicyTestFile,
  dirs: PolicyDirs,
): Promise<CompiledPolicy> {
  const sources = await readPolicySources(dirs);
  const patched = sources.map((s) => {
    const patch = s.name === "policy.yaml" ? suite.policy : suite.agent;
    if (!patch) return s;
    const text = stringifyYaml(mergePatch(parseYaml(s.text), patch));
    return { ...s, origin: "candidate" as const, text };
  });
  const [policy, agent] = patched;
  if (!policy || !agent) throw new TypeError("Both policy files are required");
  return compilePolicy(policy, agent);
}

function placeholders(target: string, root: string, outside: string): string {
  return target.replaceAll("{root}", root).replaceAll("{outside}", outside);
}

/** Builds a suite's workspace under a temp dir; returns the root and a cleanup. */
async function buildWorkspace(
  tree: NonNullable<PolicyTestFile["workspace"]>,
): Promise<{ root: string; dispose(): Promise<void> }> {
  const base = await Deno.realPath(await Deno.makeTempDir({ prefix: "secai-policy-test-" }));
  const root = `${base}/workspace`;
  const outside = `${base}/outside`;
  await Deno.mkdir(root);
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/secret.txt`, "outside the workspace\n");
  const parentOf = (p: string) => p.split("/").slice(0, -1).join("/");
  const ensureParent = async (p: string) => {
    const parent = parentOf(p);
    if (parent) await Deno.mkdir(`${root}/${parent}`, { recursive: true });
  };
  for (const dir of tree.dirs) await Deno.mkdir(`${root}/${dir}`, { recursive: true });
  for (const [path, text] of Object.entries(tree.files)) {
    await ensureParent(path);
    await Deno.writeTextFile(`${root}/${path}`, text);
  }
  for (const [path, target] of Object.entries(tree.hardlinks)) {
    await ensureParent(path);
    const resolved = placeholders(target, root, outside);
    await Deno.link(resolved.startsWith("/") ? resolved : `${root}/${resolved}`, `${root}/${path}`);
  }
  for (const [path, target] of Object.entries(tree.symlinks)) {
    await ensureParent(path);
    await Deno.symlink(placeholders(target, root, outside), `${root}/${path}`);
  }
  return { root, dispose: () => Deno.remove(base, { recursive: true }) };
}

/**
 * Runs every case of a suite.
 * @param entry the suite
 * @param dirs the policy folders the suite's patch applies to
 * @returns one result per case, in order
 * @throws {PolicyLoadError} when the suite's policy does not load
 */
export async function runPolicySuite(entry: PolicySuite, dirs: PolicyDirs): Promise<CaseResult[]> {
  const { suite, file } = entry;
  let policy: CompiledPolicy;
  try {
    policy = await suitePolicy(suite, dirs);
  } catch (err) {
    if (err instanceof PolicyLoadError) {
      throw new PolicyLoadError(err.code, {
        file: `${file} (patched ${err.file})`,
        field: err.field,
        reason: err.reason,
        cause: err,
      });
    }
    throw err;
  }
  const workspace = suite.workspace ? await buildWorkspace(suite.workspace) : null;
  try {
    const engine = new PolicyEngine(policy, { workspace: workspace?.root ?? null });
    return suite.cases.map((c) => {
      const d = engine.decide({ domain: c.domain, input: c.input });
      const isPassed = d.decision === c.expect.decision &&
        (c.expect.rule === undefined || d.rule === c.expect.rule);
      return {
        file,
        suite: suite.name,
        name: c.name,
        isPassed,
        expected: c.expect,
        actual: { decision: d.decision, rule: d.rule, reasons: d.reasons },
      };
    });
  } finally {
    await workspace?.dispose();
  }
}
