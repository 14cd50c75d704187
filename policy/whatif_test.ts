import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { compilePolicy } from "./compile.ts";
import type { PolicyDomain } from "./decision.ts";
import { PolicyEngine } from "./engine.ts";
import { DEFAULTS_DIR, loadPolicy } from "./loader.ts";
import { redactInput, redactionRules } from "./redact.ts";
import { fromAuditEntry, type LoggedDecision, MAX_WHATIF_ENTRIES, whatIf } from "./whatif.ts";

const current = await loadPolicy({ defaultsDir: DEFAULTS_DIR, overrideDir: null });
const POLICY = Deno.readTextFileSync(`${DEFAULTS_DIR}/policy.yaml`);
const AGENT = Deno.readTextFileSync(`${DEFAULTS_DIR}/agent.yaml`);

/** Decides under the current policy and records entries the way the policy control does. */
function record(
  engine: PolicyEngine,
  requests: [PolicyDomain, Record<string, unknown>][],
): unknown[] {
  return requests.map(([domain, input], seq) => {
    const d = engine.decide({ domain, input });
    const logged = redactInput(
      { domain: domain, input: input },
      redactionRules(engine.policy.policy),
    );
    return {
      seq,
      ts: new Date().toISOString(),
      control: "policy",
      type: "policy.decision",
      actor: "gateway",
      subject: domain,
      decision: d.decision,
      evidence: d.evidence,
      data: {
        rule: d.rule,
        policy_version: d.policy_version,
        input: logged.input,
        redacted: logged.redacted,
      },
    };
  });
}

Deno.test("whatIf() reports exactly the logged decisions a candidate changes", () => {
  const engine = new PolicyEngine(current, { workspace: null });
  const log = record(engine, [
    ["egress", { url: "https://huggingface.co/api?token=secret" }],
    ["egress", { url: "https://127.0.0.1/" }],
    ["model_promotion", { model: "m", format: "gguf" }],
    ["agent_risk", { action: "summarize" }],
  ]);
  const entries = log.map(fromAuditEntry).filter((e): e is LoggedDecision => e !== null);
  equal(entries.length, 4);
  const candidate = compilePolicy(
    {
      name: "policy.yaml",
      origin: "candidate",
      path: "",
      text: POLICY.replace("enabled: false", "enabled: true").replace(
        "allowed_formats: [gguf, safetensors]",
        "allowed_formats: [safetensors]",
      ),
    },
    { name: "agent.yaml", origin: "candidate", path: "", text: AGENT },
  );
  const report = whatIf(engine, { candidate: candidate, entries: entries });
  equal(report.replayed, 4);
  equal(report.unchanged, 2);
  equal(report.effect_changes, 2);
  equal(report.approximate, 1, "the redacted query was replayed with a stand-in");
  deepEqual(report.changed.map((c) => [c.seq, c.before.decision, c.after.decision, c.after.rule]), [
    [0, "deny", "allow", "airlock.allowed_destinations.0"],
    [2, "allow", "deny", "models.allowed_formats_miss"],
  ]);
  equal(report.changed[0]?.isApproximate, true);
  ok(
    !JSON.stringify(report).includes("secret"),
    "the report shows only the logged (redacted) input",
  );
  equal(report.current_version, current.version);
  equal(report.candidate_version, candidate.version);
});

Deno.test("whatIf() under the policy in force changes nothing", () => {
  const engine = new PolicyEngine(current, { workspace: null });
  const entries = record(engine, [["sensitivity", { level: "low", ceiling: "high" }]])
    .map(fromAuditEntry).filter((e): e is LoggedDecision => e !== null);
  deepEqual(whatIf(engine, { candidate: current, entries: entries }).changed, []);
});

Deno.test("fromAuditEntry() ignores other controls, other types and malformed entries", () => {
  const base = {
    seq: 1,
    control: "policy",
    type: "policy.decision",
    subject: "egress",
    decision: "deny",
    data: { rule: "r", input: { url: "x" } },
  };
  ok(fromAuditEntry(base) !== null);
  equal(fromAuditEntry({ ...base, control: "gateway" }), null, "only the policy control's entries");
  equal(fromAuditEntry({ ...base, type: "policy.reloaded" }), null);
  equal(fromAuditEntry({ ...base, subject: "teleport" }), null);
  equal(fromAuditEntry({ ...base, data: { rule: "r", input_omitted: "too large" } }), null);
  equal(fromAuditEntry({ head: { v: 1 } }), null);
  equal(fromAuditEntry(null), null);
});

Deno.test("whatIf() refuses more entries than it replays at once", () => {
  const engine = new PolicyEngine(current, { workspace: null });
  const one: LoggedDecision = {
    seq: 0,
    domain: "egress",
    input: {},
    redacted: [],
    decision: "deny",
    rule: "x",
  };
  throws(
    () => whatIf(engine, { candidate: current, entries: Array(MAX_WHATIF_ENTRIES + 1).fill(one) }),
    RangeError,
  );
});
