/**
 * Seeded fuzzing of the egress and path gates and the tool firewall's policy half: thousands
 * of mutated URLs, paths and tool calls (encodings, Unicode look-alikes, separators, control
 * characters, links in a real tree). Every decision must be a valid {@link Decision}, no
 * evaluation may throw, and every *allow* is checked by an independent oracle: the WHATWG
 * parser and plain string rules for URLs, the kernel's own `realpath` and `lstat` for paths.
 * The seed is printed on failure; set POLICY_FUZZ_SEED to replay one.
 * @module
 */
import { equal, ok } from "node:assert/strict";
import { compilePolicy } from "../policy/compile.ts";
import { type Decision, DecisionSchema, POLICY_DOMAINS } from "../policy/decision.ts";
import { PolicyEngine } from "../policy/engine.ts";
import { DEFAULTS_DIR, readPolicySources } from "../policy/loader.ts";
import { TOOL_REGISTRY } from "../policy/tools.ts";
import { seededRandom } from "./_random.ts";

const SEED = Number(Deno.env.get("POLICY_FUZZ_SEED") ?? 20261126);
const CASES = 3000;

function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)] as T;
}

/** Characters that have broken allowlists and path checks elsewhere. */
const TRICKY = [
  "%",
  "%2e",
  "%2E",
  "%2f",
  "%5c",
  "%00",
  "%25",
  "%252e",
  "%c0%ae",
  "%u002e",
  "@",
  ":",
  "/",
  "\\",
  ".",
  "..",
  "#",
  "?",
  " ",
  "\t",
  "\n",
  "\0",
  "~",
  "\u3002",
  "\uff0e",
  "\uff0f",
  "\u2024",
  "\u2025",
  "\u200b",
  "\u0307",
  "\u00a0",
  "\ufeff",
  "ｈ",
  "İ",
  "0x7f",
  "127.0.0.1",
  "[::1]",
  "443",
  "8443",
  "huggingface.co",
  "evil.example",
];

/** Mutates `text` by one random edit. */
function mutate(rnd: () => number, text: string): string {
  const at = Math.floor(rnd() * (text.length + 1));
  switch (Math.floor(rnd() * 5)) {
    case 0:
      return text.slice(0, at) + pick(rnd, TRICKY) + text.slice(at);
    case 1:
      return text.slice(0, at) + text.slice(at + 1 + Math.floor(rnd() * 3));
    case 2: {
      const code = text.charCodeAt(at);
      if (Number.isNaN(code)) return text;
      const escaped = `%${code.toString(16).padStart(2, "0")}`;
      return text.slice(0, at) + escaped + text.slice(at + 1);
    }
    case 3:
      return text.slice(0, at) + text.slice(at).toUpperCase();
    default:
      return text + pick(rnd, TRICKY);
  }
}

function mutated(rnd: () => number, seeds: readonly string[]): string {
  let text = pick(rnd, seeds);
  const edits = 1 + Math.floor(rnd() * 3);
  for (let i = 0; i < edits; i++) text = mutate(rnd, text);
  return text;
}

/**
 * The oracle's own decoder, deliberately not the gate's: every `%XX` becomes the byte it names
 * (read as Latin-1), two-byte overlong forms (`C0 AE`) become the ASCII they spell, repeated
 * until nothing changes. It over-decodes: whatever a lenient server could see, it sees.
 */
function leniently(text: string): string {
  let layer = text;
  for (let i = 0; i < 16; i++) {
    const next = layer
      .replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
      .replace(/[\xc0\xc1]([\x80-\xbf])/g, (m) => String.fromCharCode(m.charCodeAt(1) & 0x3f));
    if (next === layer) return layer;
    layer = next;
  }
  return layer;
}

/** Whether a raw segment hides something once decoded: a dot segment, a separator, a control. */
function hidesSomething(segment: string): boolean {
  const decoded = leniently(segment).normalize("NFKC");
  // deno-lint-ignore no-control-regex -- control characters are what this looks for
  return decoded === "." || decoded === ".." || /[\/\\\x00-\x1f\x7f]/.test(decoded);
}

function valid(decision: Decision, context: string): Decision {
  const parsed = DecisionSchema.safeParse(decision);
  ok(parsed.success, `${context}: not a valid decision: ${JSON.stringify(decision)}`);
  return decision;
}

const [policySource, agentSource] = await readPolicySources({
  defaultsDir: DEFAULTS_DIR,
  overrideDir: null,
});
if (!policySource || !agentSource) throw new Error("shipped policy files missing");
const policy = compilePolicy(
  { ...policySource, text: policySource.text.replace("enabled: false", "enabled: true") },
  agentSource,
);
const ALLOWED_HOSTS = new Set(policy.policy.airlock.allowed_destinations.map((d) => d.host));

Deno.test(`egress: ${CASES} mutated URLs; every allow passes an independent check`, () => {
  const rnd = seededRandom(SEED);
  const engine = new PolicyEngine(policy);
  const seeds = [
    "https://huggingface.co/meta-llama/Llama-3-8B/resolve/main/model.gguf",
    "https://registry.ollama.ai/v2/library/llama3/manifests/latest",
    "https://cdn-lfs.huggingface.co/repos/a/b?x=1&y=2",
    "https://huggingface.co/",
  ];
  let allowed = 0;
  for (let i = 0; i < CASES; i++) {
    const url = mutated(rnd, seeds);
    const context = `seed ${SEED} case ${i} ${JSON.stringify(url)}`;
    const d = valid(engine.decide({ domain: "egress", input: { url } }), context);
    if (d.decision !== "allow") continue;
    allowed++;
    ok(/^[\x21-\x7e]+$/.test(url), `${context}: allowed with a space, control or non-ASCII`);
    ok(!url.includes("\\") && !url.includes("#"), `${context}: allowed a backslash or fragment`);
    const parsed = new URL(url);
    equal(parsed.protocol, "https:", context);
    equal(parsed.username + parsed.password, "", context);
    equal(parsed.port, "", context);
    const rawHost = url.slice("https://".length).split(/[/?#]/)[0] ?? "";
    equal(rawHost.toLowerCase(), parsed.hostname, `${context}: raw and parsed host differ`);
    ok(ALLOWED_HOSTS.has(parsed.hostname), `${context}: host not on the allowlist`);
    const rawPath = url.slice("https://".length + rawHost.length).split(/[?#]/)[0] ?? "";
    for (const segment of rawPath.split("/")) {
      ok(!hidesSomething(segment), `${context}: the path hides ${JSON.stringify(segment)}`);
    }
  }
  ok(allowed > 0, "some mutations stay allowed (the oracle ran)");
});

/** A workspace with files, folders and every kind of link the gate must judge. */
async function fuzzWorkspace(): Promise<{ base: string; root: string }> {
  const base = await Deno.realPath(await Deno.makeTempDir({ prefix: "secai-gate-fuzz-" }));
  const root = `${base}/ws`;
  await Deno.mkdir(`${root}/user_docs/sub`, { recursive: true });
  await Deno.mkdir(`${root}/outputs`, { recursive: true });
  await Deno.mkdir(`${base}/outside`);
  await Deno.writeTextFile(`${base}/outside/secret.txt`, "s");
  await Deno.writeTextFile(`${base}/outside/plain.txt`, "p");
  await Deno.writeTextFile(`${root}/user_docs/a.txt`, "a");
  await Deno.writeTextFile(`${root}/user_docs/sub/b.md`, "b");
  await Deno.writeTextFile(`${root}/outputs/r.md`, "r");
  await Deno.link(`${base}/outside/secret.txt`, `${root}/user_docs/hard.txt`);
  await Deno.symlink("sub/b.md", `${root}/user_docs/inside`);
  await Deno.symlink("../outputs", `${root}/user_docs/out`);
  await Deno.symlink(`${base}/outside/secret.txt`, `${root}/user_docs/abs_out`);
  await Deno.symlink("../../outside", `${root}/user_docs/rel_out`);
  await Deno.symlink("nowhere", `${root}/user_docs/dangling`);
  await Deno.symlink("loop2", `${root}/user_docs/loop1`);
  await Deno.symlink("loop1", `${root}/user_docs/loop2`);
  await Deno.symlink("/proc/self/root", `${root}/user_docs/proc`);
  await Deno.symlink("../user_docs/a.txt", `${root}/outputs/back`);
  await Deno.symlink("../../outside/new.txt", `${root}/outputs/escape`);
  return { base, root };
}

/** What the kernel says about a path the gate allowed. */
function checkAllowedPath(root: string, path: string, op: string, real: unknown): string | null {
  const full = `${root}/${path}`;
  let info: Deno.FileInfo | null = null;
  try {
    info = Deno.lstatSync(full);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (info === null) {
    if (op !== "write") return "a missing path was allowed for read or list";
    const parent = Deno.realPathSync(full.slice(0, full.lastIndexOf("/")));
    if (!parent.startsWith(`${root}/outputs`)) return `a new file outside outputs/: ${parent}`;
    return null;
  }
  const resolved = Deno.realPathSync(full);
  if (!resolved.startsWith(`${root}/`)) return `resolves outside the workspace: ${resolved}`;
  if (resolved.slice(root.length + 1) !== real) return `real path ${String(real)} ≠ ${resolved}`;
  const target = Deno.statSync(resolved);
  if (op === "list" && !target.isDirectory) return "listed something that is not a folder";
  if (op !== "list" && !target.isFile) return "read or wrote something that is not a file";
  if (op !== "list" && (target.nlink ?? 1) > 1) return "a file with more than one hard link";
  const tree = `${root}/${op === "write" ? "outputs" : "user_docs"}`;
  if (resolved !== tree && !resolved.startsWith(`${tree}/`)) return `outside ${tree}: ${resolved}`;
  return null;
}

Deno.test(`path_access: ${CASES} mutated paths in a tree of links; every allow checked by realpath`, async () => {
  const rnd = seededRandom(SEED + 1);
  const { base, root } = await fuzzWorkspace();
  try {
    const engine = new PolicyEngine(policy, { workspace: root });
    const names = [
      "user_docs",
      "outputs",
      "sub",
      "a.txt",
      "b.md",
      "r.md",
      "hard.txt",
      "inside",
      "out",
      "abs_out",
      "rel_out",
      "plain.txt",
      "dangling",
      "loop1",
      "proc",
      "back",
      "escape",
      "new.txt",
      "..",
      ".",
      "",
    ];
    const seeds = [
      "user_docs/a.txt",
      "user_docs/sub/b.md",
      "outputs/r.md",
      "outputs/new.txt",
      "user_docs/inside",
      "user_docs/out/r.md",
      "user_docs/rel_out/secret.txt",
      "user_docs/rel_out/plain.txt",
    ];
    let allowed = 0;
    for (let i = 0; i < CASES; i++) {
      const path = rnd() < 0.5
        ? mutated(rnd, seeds)
        : Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => pick(rnd, names)).join("/");
      const op = pick(rnd, ["read", "write", "list"] as const);
      const context = `seed ${SEED} case ${i} ${op} ${JSON.stringify(path)}`;
      const d = valid(engine.decide({ domain: "path_access", input: { path, op } }), context);
      if (d.decision !== "allow") continue;
      allowed++;
      for (const segment of path.split("/")) {
        ok(!hidesSomething(segment), `${context}: hides ${JSON.stringify(segment)}`);
      }
      const facts = (d.evidence as { facts?: Record<string, unknown> }).facts ?? {};
      const problem = checkAllowedPath(root, path, op, facts.real);
      equal(problem, null, `${context}: ${problem}`);
    }
    ok(allowed > 0, "some paths stay allowed (the oracle ran)");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test(`tool_access: ${CASES} random calls; allowed calls carry only registered arguments`, async () => {
  const rnd = seededRandom(SEED + 2);
  const { base, root } = await fuzzWorkspace();
  try {
    const engine = new PolicyEngine(policy, { workspace: root });
    const tools = [...TOOL_REGISTRY.keys(), "unknown.tool", "Filesystem.Read", ""];
    const keys = [
      "path",
      "content",
      "overwrite",
      "url",
      "method",
      "command",
      "cwd",
      "args",
      "constructor",
      "toString",
      "extra",
      "",
      "p".repeat(300),
    ];
    const values: unknown[] = [
      "user_docs/a.txt",
      "outputs/new.txt",
      "outputs/r.md",
      "../x",
      "cat /etc/shadow",
      42,
      true,
      null,
      [],
      {},
      ["a"],
      { path: "user_docs/a.txt" },
      "x".repeat(5000),
      "https://huggingface.co/x",
      "https://evil.example/",
      "GET",
    ];
    for (let i = 0; i < CASES; i++) {
      const tool = pick(rnd, tools);
      const args: Record<string, unknown> = {};
      const count = Math.floor(rnd() * 4);
      for (let k = 0; k < count; k++) args[pick(rnd, keys)] = pick(rnd, values);
      const context = `seed ${SEED} case ${i} ${tool} ${JSON.stringify(args).slice(0, 200)}`;
      const d = valid(engine.decide({ domain: "tool_access", input: { tool, args } }), context);
      if (d.decision === "deny") continue;
      const spec = TOOL_REGISTRY.get(tool);
      ok(spec, `${context}: an unregistered tool was not denied`);
      for (const key of Object.keys(args)) {
        ok(Object.hasOwn(spec.kinds, key), `${context}: unregistered argument "${key}"`);
      }
      for (const [name, kind] of Object.entries(spec.kinds)) {
        if (kind.kind !== "path" || typeof args[name] !== "string") continue;
        const facts = (d.evidence as { facts?: Record<string, unknown> }).facts ?? {};
        const problem = checkAllowedPath(root, args[name], kind.op, facts[`${name}.real`]);
        equal(problem, null, `${context}: ${problem}`);
      }
    }
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test(`every domain: ${CASES} arbitrary JSON inputs give a valid decision, never a throw`, () => {
  const rnd = seededRandom(SEED + 3);
  const engine = new PolicyEngine(policy);
  const leaf = (): unknown =>
    pick(rnd, [null, true, 0, -1, 1e308, "", "x", "https://huggingface.co/", "../", "\0", [], {}]);
  const value = (depth: number): unknown => {
    if (depth > 3 || rnd() < 0.4) return leaf();
    if (rnd() < 0.5) return Array.from({ length: Math.floor(rnd() * 3) }, () => value(depth + 1));
    const out: Record<string, unknown> = {};
    const names = [
      "url",
      "path",
      "op",
      "tool",
      "args",
      "action",
      "level",
      "ceiling",
      "model",
      "format",
      "smoke_score",
      "__proto__",
      "constructor",
      "method",
      "session",
    ];
    for (let k = Math.floor(rnd() * 4); k > 0; k--) out[pick(rnd, names)] = value(depth + 1);
    return out;
  };
  for (let i = 0; i < CASES; i++) {
    const domain = pick(rnd, POLICY_DOMAINS);
    const input = value(0);
    const context = `seed ${SEED} case ${i} ${domain} ${JSON.stringify(input)}`;
    valid(engine.decide({ domain, input }), context);
  }
});
