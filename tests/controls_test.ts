/**
 * The shipped policy and audit controls under the real supervisor.
 */
import assert, { equal } from "node:assert/strict";
import { startSystem } from "./_system.ts";
import { policyApi } from "../workers/policy/api.ts";
import { auditQueryApi } from "../workers/audit/api.ts";

Deno.test("policy denies by default and every decision lands in the audit log", async () => {
  const sys = await startSystem();
  try {
    assert(sys.isReady);
    const policy = sys.supervisor.client(policyApi);
    const decision = await policy.call("decide", {
      domain: "egress",
      input: { url: "https://example.com/" },
    });
    equal(decision.decision, "deny");
    // The shipped policy: runtime egress is denied while the airlock is disabled.
    equal(decision.rule, "defaults.network.egress_deny");
    const audit = sys.supervisor.client(auditQueryApi);
    const { entries } = await audit.call("query", { type: "policy.decision", limit: 10 });
    equal(entries.length, 1);
    equal(entries[0]?.control, "policy");
    equal(entries[0]?.actor, "supervisor");
    equal(entries[0]?.decision, "deny");
  } finally {
    await sys.stop();
  }
});

Deno.test("supervisor lifecycle events are appended to the audit log by the supervisor", async () => {
  const sys = await startSystem();
  try {
    const audit = sys.supervisor.client(auditQueryApi);
    sys.supervisor.kill("policy");
    let types: string[] = [];
    for (let i = 0; i < 200 && !types.includes("control.restarting"); i++) {
      const { entries } = await audit.call("query", { control: "supervisor", limit: 100 });
      types = entries.map((e) => e.type);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert(types.includes("system.ready"), types.join(","));
    assert(types.includes("control.crashed"), types.join(","));
    assert(types.includes("control.restarting"), types.join(","));
  } finally {
    await sys.stop();
  }
});

Deno.test("policy unreachable means the caller gets an error, never an allow", async () => {
  const sys = await startSystem();
  try {
    const policy = sys.supervisor.client(policyApi);
    sys.supervisor.kill("policy");
    const outcome = await policy.call("decide", { domain: "egress", input: {} }).then(
      (d) => d.decision,
      (err: { code?: string }) => err.code,
    );
    equal(outcome, "UNAVAILABLE");
  } finally {
    await sys.stop();
  }
});
