import { equal, match, ok, throws } from "node:assert/strict";
import { compilePolicy, type PolicySource } from "./compile.ts";
import { PolicyLoadError } from "./errors.ts";
import { DEFAULTS_DIR } from "./loader.ts";

const POLICY = Deno.readTextFileSync(`${DEFAULTS_DIR}/policy.yaml`);
const AGENT = Deno.readTextFileSync(`${DEFAULTS_DIR}/agent.yaml`);

function source(name: string, text: string): PolicySource {
  return { name, origin: "candidate", path: "", text };
}

function compile(policy = POLICY, agent = AGENT) {
  return compilePolicy(source("policy.yaml", policy), source("agent.yaml", agent));
}

Deno.test("compilePolicy() loads the shipped defaults with a sha256 version", () => {
  const p = compile();
  match(p.version, /^sha256:[0-9a-f]{64}$/);
  equal(p.tools.allow.size, 3);
  equal(p.egress.isAirlockEnabled, false);
});

Deno.test("compilePolicy() gives the same version for the same bytes and another for others", () => {
  equal(compile().version, compile().version);
  ok(compile().version !== compile(`${POLICY}\n# edited\n`).version);
});

const refused: {
  name: string;
  file?: "policy" | "agent";
  edit: (t: string) => string;
  field: string;
  reason: RegExp;
}[] = [
  {
    name: "a tools.default other than deny",
    edit: (t) => t.replace("default: deny", "default: allow"),
    field: "tools.default",
    reason: /deny/,
  },
  {
    name: "runtime egress other than deny",
    edit: (t) => t.replace("runtime_egress: deny", "runtime_egress: allow"),
    field: "defaults.network.runtime_egress",
    reason: /deny/,
  },
  {
    name: "a missing runtime_egress (no key means allow)",
    edit: (t) =>
      t.replace("    runtime_egress: deny\n", "    {}\n").replace(
        "network:\n    {}",
        "network: {}",
      ),
    field: "defaults.network.runtime_egress",
    reason: /expected "deny"/,
  },
  {
    name: "an unknown key",
    edit: (t) =>
      t.replace("search:\n  enabled: false", "search:\n  enabled: false\n  engines: [ddg]"),
    field: "search",
    reason: /engines/,
  },
  {
    name: "a wrong version",
    edit: (t) => t.replace("version: 1", "version: 2"),
    field: "version",
    reason: /1/,
  },
  {
    name: "a duplicate key",
    edit: (t) =>
      t.replace("search:\n  enabled: false", "search:\n  enabled: false\n  enabled: true"),
    field: "(root)",
    reason: /unique|duplicate/i,
  },
  {
    name: "a YAML alias",
    edit: (t) =>
      t.replace("deny: [shell.exec", "deny: &d [shell.exec").replace(
        "allowed_methods: [GET, POST]",
        "allowed_methods: *d",
      ),
    field: "(root)",
    reason: /alias/i,
  },
  {
    name: "a second YAML document",
    edit: (t) => `${t}\n---\nversion: 1\n`,
    field: "(root)",
    reason: /YAML/,
  },
  {
    name: "an unknown allowed tool",
    edit: (t) => t.replace("- name: filesystem.list", "- name: filesystem.chmod"),
    field: "tools.allow.2.name",
    reason: /unknown tool "filesystem.chmod"/,
  },
  {
    name: "a tool allowed twice",
    edit: (t) => t.replace("- name: filesystem.list", "- name: filesystem.read"),
    field: "tools.allow.2.name",
    reason: /twice/,
  },
  {
    name: "a constraint on an argument the tool lacks",
    edit: (t) =>
      t.replace(
        "path: { max_length: 4096 }\n    - name: filesystem.write",
        "mode: { max_length: 4 }\n    - name: filesystem.write",
      ),
    field: "tools.allow.0.args.mode",
    reason: /no argument "mode"/,
  },
  {
    name: "a pattern that does not compile",
    edit: (t) =>
      t.replace(
        "path: { max_length: 4096 }\n    - name: filesystem.write",
        'path: { pattern: "([a-z" }\n    - name: filesystem.write',
      ),
    field: "tools.allow.0.args.path.pattern",
    reason: /compile/,
  },
  {
    name: "a glob with a mid-path wildcard",
    edit: (t) => t.replace("paths_allowlist: [user_docs/**]", "paths_allowlist: [user_docs/*/x]"),
    field: "tools.allow.0.paths_allowlist.0",
    reason: /workspace glob/,
  },
  {
    name: "an absolute glob",
    edit: (t) =>
      t.replace("paths_allowlist: [user_docs/**]", "paths_allowlist: [/vault/user_docs/**]"),
    field: "tools.allow.0.paths_allowlist.0",
    reason: /workspace glob/,
  },
  {
    name: "a path tool without an allowlist",
    edit: (t) => t.replace("paths_allowlist: [user_docs/**]", "paths_allowlist: []"),
    field: "tools.allow.0.paths_allowlist",
    reason: /needs an allowlist/,
  },
  {
    name: "an empty allowed_formats list",
    edit: (t) => t.replace("allowed_formats: [gguf, safetensors]", "allowed_formats: []"),
    field: "models.allowed_formats",
    reason: /at least 1/,
  },
  {
    name: "a smoke-test score above 0.3",
    edit: (t) => t.replace("smoke_test_max_score: 0.3", "smoke_test_max_score: 0.5"),
    field: "quarantine.smoke_test_max_score",
    reason: /0.3/,
  },
  {
    name: "a rate limit of 0",
    edit: (t) =>
      t.replace(
        "requests_per_minute: 120\n    burst_size: 20",
        "requests_per_minute: 0\n    burst_size: 20",
      ),
    field: "tools.rate_limit.requests_per_minute",
    reason: /1/,
  },
  {
    name: "an upper-case destination host",
    edit: (t) => t.replace("{ host: huggingface.co }", "{ host: HuggingFace.co }"),
    field: "airlock.allowed_destinations.0.host",
    reason: /lower-case/,
  },
  {
    name: "an agent tool the registry lacks",
    file: "agent",
    edit: (t) => t.replace("allowed_tools: [filesystem.read", "allowed_tools: [filesystem.chmod"),
    field: "allowed_tools.0",
    reason: /unknown tool/,
  },
  {
    name: "an agent glob above the workspace",
    file: "agent",
    edit: (t) => t.replace("readable: [user_docs/**]", "readable: [../**]"),
    field: "workspace.readable.0",
    reason: /workspace glob/,
  },
  {
    name: "an unknown agent mode",
    file: "agent",
    edit: (t) => t.replace("default_mode: standard", "default_mode: turbo"),
    field: "default_mode",
    reason: /turbo|Invalid enum/,
  },
];

for (const r of refused) {
  Deno.test(`compilePolicy() refuses ${r.name}, naming the field`, () => {
    const isAgent = r.file === "agent";
    const policy = isAgent ? POLICY : r.edit(POLICY);
    const agent = isAgent ? r.edit(AGENT) : AGENT;
    ok(isAgent ? agent !== AGENT : policy !== POLICY, "the edit applies");
    throws(() => compile(policy, agent), (err: unknown) => {
      ok(err instanceof PolicyLoadError);
      equal(err.code, "POLICY_INVALID");
      equal(err.file, isAgent ? "agent.yaml" : "policy.yaml");
      equal(err.field, r.field);
      match(err.reason, r.reason);
      match(err.message, new RegExp(`at "${r.field.replace(/[.()]/g, "\\$&")}"`));
      return true;
    });
  });
}
