/**
 * The policy and tool-firewall controls under the real supervisor, with the real audit
 * control: decisions audited with redacted replayable inputs, fail-closed behaviour when a
 * dependency is killed, hot reload (a broken file refused, the old policy kept), rate
 * limits, and what-if on the recorded audit log (over RPC and through the CLI).
 */
import assert, { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { auditQueryApi } from "../workers/audit/api.ts";
import {
  fromAuditEntry,
  type LoggedDecision,
  policyApi,
  policyViewApi,
} from "../workers/policy/api.ts";
import { toolFirewallApi } from "../workers/tool-firewall/api.ts";
import { RpcError } from "../runtime/kit/errors.ts";
import { eventually, PROJECT_ROOT, startSystem, type TestSystem } from "./_system.ts";

const DEFAULT_POLICY = await Deno.readTextFile(`${PROJECT_ROOT}/policy/defaults/policy.yaml`);

/** Writes a policy override the way an editor saves: a complete file renamed into place. */
async function writeOverride(sys: TestSystem, name: string, text: string): Promise<void> {
  const tmp = `${sys.home}/run/${name}.tmp`;
  await Deno.writeTextFile(tmp, text, { mode: 0o600 });
  await Deno.chmod(tmp, 0o600);
  await Deno.rename(tmp, `${sys.home}/policy/${name}`);
}

async function auditEntries(sys: TestSystem, type: string) {
  const audit = sys.supervisor.client(auditQueryApi);
  return (await audit.call("query", { type, limit: 500 })).entries;
}

function nested(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

async function makeWorkspace(sys: TestSystem): Promise<void> {
  await Deno.mkdir(`${sys.home}/vault/user_docs`, { recursive: true });
  await Deno.mkdir(`${sys.home}/vault/outputs`, { recursive: true });
  await Deno.writeTextFile(`${sys.home}/vault/user_docs/a.txt`, "hello");
}

async function waitForVersionChange(sys: TestSystem, from: string): Promise<string> {
  const view = sys.supervisor.client(policyViewApi);
  let version = from;
  await eventually(async () => {
    version = (await view.call("current", {})).policy_version;
    return version !== from;
  }, { what: "the policy to reload" });
  return version;
}

Deno.test("the policy and tool-firewall controls run with exactly their granted permissions", async () => {
  const sys = await startSystem();
  try {
    assert(sys.isReady);
    const byName = new Map(sys.supervisor.status().map((c) => [c.name, c]));
    deepEqual(byName.get("policy")?.permissions, {
      read: [`${PROJECT_ROOT}/policy/defaults`, `${sys.home}/policy`, `${sys.home}/vault`],
      write: [],
      net: [],
      env: ["LOG_TOKENS", "LOG_STREAM"],
      sys: [],
      run: false,
      ffi: false,
      import: false,
    });
    deepEqual(byName.get("tool-firewall")?.permissions, {
      read: [],
      write: [],
      net: [],
      env: [],
      sys: [],
      run: false,
      ffi: false,
      import: false,
    });
    deepEqual(byName.get("tool-firewall")?.uses.map((u) => u.api), [
      "policy",
      "policy-view",
      "audit-append",
    ]);
  } finally {
    await sys.stop();
  }
});

Deno.test("every policy decision is audited with its evidence and a redacted, replayable input", async () => {
  const sys = await startSystem();
  try {
    const policy = sys.supervisor.client(policyApi);
    const decision = await policy.call("decide", {
      domain: "tool_access",
      input: {
        tool: "filesystem.write",
        args: { path: "outputs/x.txt", content: "top secret", token: "sk-live-1" },
      },
    });
    equal(decision.decision, "deny");
    equal(decision.rule, "tools.args.invalid", "token is not an argument of filesystem.write");
    const [entry] = await auditEntries(sys, "policy.decision");
    assert(entry);
    equal(entry.control, "policy");
    equal(entry.actor, "supervisor");
    equal(entry.subject, "tool_access");
    equal(entry.decision, "deny");
    equal(entry.evidence.rule_id, "tools.args.invalid");
    equal(entry.evidence.policy_digest, decision.policy_version.slice("sha256:".length));
    match(String(entry.evidence.input_hash), /^[0-9a-f]{16}$/);
    deepEqual(entry.data.input, {
      tool: "filesystem.write",
      args: {
        path: "outputs/x.txt",
        content: "[redacted len=10]",
        token: "[redacted credential]",
      },
    });
    ok(!JSON.stringify(entry).includes("top secret"));
    ok(!JSON.stringify(entry).includes("sk-live-1"));
    const logged = fromAuditEntry(entry);
    equal(logged?.rule, "tools.args.invalid");
    deepEqual(logged?.redacted.sort(), ["args.content", "args.token"]);
  } finally {
    await sys.stop();
  }
});

Deno.test("the policy control gives no decision when the audit control is down", async () => {
  const sys = await startSystem();
  try {
    const policy = sys.supervisor.client(policyApi);
    sys.supervisor.kill("audit");
    await rejects(
      policy.call("decide", { domain: "egress", input: { url: "https://huggingface.co/" } }),
      (err: unknown) => err instanceof RpcError && err.code === "UNAVAILABLE",
    );
  } finally {
    await sys.stop();
  }
});

Deno.test("the tool firewall allows a call the policy allows, and both controls audit it", async () => {
  const sys = await startSystem();
  try {
    await makeWorkspace(sys);
    const firewall = sys.supervisor.client(toolFirewallApi);
    const result = await firewall.call("check", {
      tool: "filesystem.read",
      args: { path: "user_docs/a.txt" },
      session: "task-1",
    });
    deepEqual({ ...result, policy_version: "" }, {
      allowed: true,
      decision: "allow",
      rule: "tools.allow.filesystem.read",
      reasons: ['Tool "filesystem.read" is allowed'],
      policy_version: "",
    });
    const [decided] = await auditEntries(sys, "policy.decision");
    equal(decided?.actor, "tool-firewall", "the firewall asked the policy control");
    const [checked] = await auditEntries(sys, "tool.check");
    equal(checked?.control, "tool-firewall");
    equal(checked?.actor, "supervisor");
    equal(checked?.decision, "allow");
    equal(checked?.evidence.session, "task-1");
  } finally {
    await sys.stop();
  }
});

Deno.test("the tool firewall denies unknown tools and extra arguments, and audits the denial", async () => {
  const sys = await startSystem();
  try {
    await makeWorkspace(sys);
    const firewall = sys.supervisor.client(toolFirewallApi);
    const cases: [string, Record<string, unknown>, string][] = [
      ["filesystem.chmod", { path: "user_docs/a.txt" }, "tools.unknown"],
      ["filesystem.read", { path: "user_docs/a.txt", follow: true }, "tools.args.invalid"],
      ["shell.exec", { command: "rm -rf /" }, "tools.deny.shell.exec"],
      ["filesystem.read", { path: "../../etc/passwd" }, "path.above_root"],
      ["filesystem.read", { v: nested(40) }, "tools.shape.depth"],
    ];
    for (const [tool, args, rule] of cases) {
      const r = await firewall.call("check", { tool, args, session: "s" });
      equal(r.allowed, false, tool);
      equal(r.rule, rule, tool);
    }
    const checks = await auditEntries(sys, "tool.check");
    equal(checks.length, cases.length);
    ok(checks.every((e) => e.decision === "deny"));
    ok(!JSON.stringify(checks).includes("rm -rf"), "sensitive arguments are redacted");
  } finally {
    await sys.stop();
  }
});

Deno.test("the tool firewall denies every call while the policy control is down", async () => {
  const sys = await startSystem();
  try {
    await makeWorkspace(sys);
    const firewall = sys.supervisor.client(toolFirewallApi);
    const call = { tool: "filesystem.read", args: { path: "user_docs/a.txt" }, session: "s" };
    equal((await firewall.call("check", call)).allowed, true, "allowed while policy is up");
    sys.supervisor.kill("policy");
    const r = await firewall.call("check", call);
    equal(r.allowed, false);
    equal(r.decision, "deny");
    equal(r.rule, "policy.unavailable");
    const [last] = await auditEntries(sys, "tool.check");
    equal(last?.decision, "deny");
    equal(last?.evidence.rule, "policy.unavailable");
  } finally {
    await sys.stop();
  }
});

Deno.test("the tool firewall gives no answer while the audit control is down", async () => {
  const sys = await startSystem();
  try {
    const firewall = sys.supervisor.client(toolFirewallApi);
    sys.supervisor.kill("audit");
    await rejects(
      firewall.call("check", {
        tool: "filesystem.read",
        args: { path: "user_docs/a.txt" },
        session: "s",
      }),
      (err: unknown) => err instanceof RpcError && err.code === "UNAVAILABLE",
    );
  } finally {
    await sys.stop();
  }
});

Deno.test("a broken policy file is refused with the field, the old policy stays, and the refusal is audited", async () => {
  const sys = await startSystem();
  try {
    const policy = sys.supervisor.client(policyApi);
    const view = sys.supervisor.client(policyViewApi);
    const before = (await view.call("current", {})).policy_version;
    await writeOverride(
      sys,
      "policy.yaml",
      DEFAULT_POLICY.replace("default: deny", "default: allow"),
    );
    await eventually(async () => (await auditEntries(sys, "policy.reload_failed")).length > 0, {
      what: "the refused reload in the audit log",
    });
    const [refused] = await auditEntries(sys, "policy.reload_failed");
    equal(refused?.decision, "deny");
    equal(refused?.evidence.field, "tools.default");
    equal(refused?.evidence.file, "policy.yaml");
    equal(refused?.evidence.policy_version, before, "names the policy kept in force");
    match(String(refused?.evidence.reason), /deny/);
    const current = await view.call("current", {});
    equal(current.policy_version, before);
    equal(current.last_reload_error?.field, "tools.default");
    const d = await policy.call("decide", {
      domain: "egress",
      input: { url: "https://huggingface.co/" },
    });
    equal(d.policy_version, before);
    equal(d.rule, "defaults.network.egress_deny");
    const events = await sys.supervisor.events.since(-1, { waitMs: 0, limit: 1000 });
    ok(events.events.some((e) => e.source === "policy" && e.type === "policy.reload_failed"));

    // A valid edit is applied, audited, and decides from then on.
    await writeOverride(
      sys,
      "policy.yaml",
      DEFAULT_POLICY.replace("enabled: false", "enabled: true"),
    );
    const after = await waitForVersionChange(sys, before);
    const [reloaded] = await auditEntries(sys, "policy.reloaded");
    equal(reloaded?.evidence.previous_version, before);
    equal(reloaded?.evidence.policy_version, after);
    const allowed = await policy.call("decide", {
      domain: "egress",
      input: { url: "https://huggingface.co/" },
    });
    equal(allowed.decision, "allow");
    equal(allowed.policy_version, after);
    equal((await view.call("current", {})).last_reload_error, null);
  } finally {
    await sys.stop();
  }
});

Deno.test("the tool firewall enforces per-session and per-tool rate limits of the policy in force", async () => {
  const sys = await startSystem();
  try {
    await makeWorkspace(sys);
    const before = (await sys.supervisor.client(policyViewApi).call("current", {})).policy_version;
    await writeOverride(
      sys,
      "policy.yaml",
      DEFAULT_POLICY.replace(
        "requests_per_minute: 120\n    burst_size: 20",
        "requests_per_minute: 1\n    burst_size: 3",
      )
        .replace(
          "- name: filesystem.list\n      decision: allow",
          "- name: filesystem.list\n      decision: allow\n      rate_limit: { requests_per_minute: 1, burst_size: 1 }",
        ),
    );
    await waitForVersionChange(sys, before);
    const firewall = sys.supervisor.client(toolFirewallApi);
    const read = (session: string) =>
      firewall.call("check", {
        tool: "filesystem.read",
        args: { path: "user_docs/a.txt" },
        session,
      });
    const list = (session: string) =>
      firewall.call("check", { tool: "filesystem.list", args: { path: "user_docs" }, session });
    equal((await read("a")).allowed, true);
    equal((await read("a")).allowed, true);
    equal((await read("a")).allowed, true);
    const limited = await read("a");
    equal(limited.rule, "tools.rate_limit.session");
    ok((limited.retry_after_ms ?? 0) > 0);
    equal((await read("b")).allowed, true, "another session has its own bucket");
    equal((await list("c")).allowed, true);
    equal((await list("d")).rule, "tools.rate_limit.tool", "the per-tool bucket spans sessions");
  } finally {
    await sys.stop();
  }
});

Deno.test("what-if replays the recorded audit log under a candidate policy, over RPC and in the CLI", async () => {
  const sys = await startSystem();
  try {
    await makeWorkspace(sys);
    const policy = sys.supervisor.client(policyApi);
    const requests = [
      { domain: "egress", input: { url: "https://huggingface.co/api/models?search=x" } },
      { domain: "egress", input: { url: "https://127.0.0.1/" } },
      { domain: "path_access", input: { path: "user_docs/a.txt", op: "read" } },
      { domain: "model_promotion", input: { model: "m", format: "safetensors" } },
    ] as const;
    for (const r of requests) await policy.call("decide", r);
    const entries = (await auditEntries(sys, "policy.decision")).map(fromAuditEntry)
      .filter((e): e is LoggedDecision => e !== null).reverse();
    equal(entries.length, requests.length);
    const candidate = DEFAULT_POLICY.replace("enabled: false", "enabled: true")
      .replace("allowed_formats: [gguf, safetensors]", "allowed_formats: [gguf]");
    const report = await sys.supervisor.client(policyViewApi).call("whatif", {
      candidate: { policy: candidate },
      entries,
    });
    equal(report.replayed, 4);
    deepEqual(
      report.changed.map((c) => [c.domain, c.before.decision, c.after.decision, c.after.rule]),
      [
        ["egress", "deny", "allow", "airlock.allowed_destinations.0"],
        ["model_promotion", "allow", "deny", "models.allowed_formats_miss"],
      ],
    );
    equal(report.changed[0]?.isApproximate, true, "the query was redacted in the log");
    await rejects(
      sys.supervisor.client(policyViewApi).call("whatif", {
        candidate: { policy: candidate.replace("default: deny", "default: allow") },
        entries,
      }),
      (err: unknown) =>
        err instanceof RpcError && err.code === "POLICY_INVALID" &&
        /tools\.default/.test(err.message),
    );

    // The CLI reads the same log from disk.
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/policy.yaml`, candidate, { mode: 0o600 });
      const out = await new Deno.Command(`${PROJECT_ROOT}/secai`, {
        args: ["policy", "whatif", "--candidate", dir, "--home", sys.home, "--json"],
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const cli = JSON.parse(new TextDecoder().decode(out.stdout));
      equal(cli.replayed, 4);
      deepEqual(cli.changed.map((c: { seq: number }) => c.seq), report.changed.map((c) => c.seq));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  } finally {
    await sys.stop();
  }
});
