import { deepEqual, equal, match, ok } from "node:assert/strict";
import { PolicyEngine } from "./engine.ts";
import { DEFAULTS_DIR, loadPolicy } from "./loader.ts";
import { POLICY_DOMAINS } from "./decision.ts";

const policy = await loadPolicy({ defaultsDir: DEFAULTS_DIR, overrideDir: null });

Deno.test("PolicyEngine.decide() attaches the evidence spec 12 names", () => {
  const d = new PolicyEngine(policy).decide({
    domain: "egress",
    input: { url: "https://huggingface.co/" },
  });
  const ev = d.evidence as Record<string, unknown>;
  equal(ev.domain, "egress");
  equal(ev.rule_id, d.rule);
  equal(ev.policy_digest, policy.digest);
  match(String(ev.input_hash), /^[0-9a-f]{16}$/);
  equal(typeof ev.eval_time_us, "number");
  ok(!Number.isNaN(Date.parse(String(ev.timestamp))));
  deepEqual(ev.checks, ["egress.url"]);
  equal(d.policy_version, policy.version);
});

for (const domain of POLICY_DOMAINS) {
  Deno.test(`PolicyEngine.decide() denies an empty ${domain} input`, () => {
    const d = new PolicyEngine(policy).decide({ domain, input: {} });
    equal(d.decision, "deny");
    equal(d.rule, "input.invalid");
  });
}

Deno.test("PolicyEngine.decide() denies path decisions when no workspace is configured", () => {
  const d = new PolicyEngine(policy).decide({
    domain: "path_access",
    input: { path: "user_docs/a", op: "read" },
  });
  equal(d.rule, "path.fs.no_workspace");
});

Deno.test("PolicyEngine.decide() refuses a tool call with more than 128 arguments before its schema", () => {
  const engine = new PolicyEngine(policy);
  const call = (count: number) =>
    engine.decide({
      domain: "tool_access",
      input: {
        tool: "filesystem.read",
        args: Object.fromEntries(Array.from({ length: count }, (_, i) => [`a${i}`, i])),
      },
    }).rule;
  equal(call(129), "tools.args.count");
  equal(call(128), "tools.args.invalid", "128 unknown arguments reach the tool's schema");
});

Deno.test("PolicyEngine.decide() names every unknown argument, inherited names included", () => {
  const engine = new PolicyEngine(policy);
  const decide = (args: string) =>
    engine.decide({
      domain: "tool_access",
      input: JSON.parse(`{"tool":"filesystem.read","args":{"path":"user_docs/a.txt",${args}}}`),
    });
  const d = decide('"constructor":1,"toString":2');
  equal(d.rule, "tools.args.invalid");
  deepEqual(d.reasons, ['Unknown argument "constructor", "toString"']);
  const proto = decide('"__proto__":{"path":"outputs/x"}');
  equal(proto.rule, "input.invalid", "not dropped on the way in");
  match(proto.reasons[0] ?? "", /"__proto__"/);
});

Deno.test("PolicyEngine.replace() puts a new policy in force", async () => {
  const engine = new PolicyEngine(policy);
  const dir = await Deno.makeTempDir();
  try {
    const text = (await Deno.readTextFile(`${DEFAULTS_DIR}/policy.yaml`)).replace(
      "enabled: false",
      "enabled: true",
    );
    await Deno.writeTextFile(`${dir}/policy.yaml`, text);
    engine.replace(await loadPolicy({ defaultsDir: DEFAULTS_DIR, overrideDir: dir }));
    equal(
      engine.decide({ domain: "egress", input: { url: "https://huggingface.co/" } }).decision,
      "allow",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
