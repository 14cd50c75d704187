/**
 * Promotion that needs a person: when the policy answers `ask` for `model_promotion`, the
 * job waits (awaiting_approval, artifact kept, nothing in the registry) until someone
 * approves it; the registry then asks the policy again with the approval and promotes.
 * The shipped policy has no `ask` rule for model_promotion yet, so a test control stands in
 * for the policy control (tests/fixtures/controls/policy_ask.ts) behind the same contract.
 */
import { deepEqual, equal } from "node:assert/strict";
import { auditQueryApi } from "../../workers/audit/api.ts";
import { quarantineApi } from "../../workers/quarantine/api.ts";
import { registryApi } from "../../workers/registry/api.ts";
import { benignSafetensors, settle, shippedControls, startPipeline, upload } from "./_system.ts";

Deno.test("a promotion the policy answers ask waits for a person, and approving it promotes", async () => {
  const sys = await startPipeline({
    controls: [
      ...shippedControls(["audit", "registry", "quarantine"]),
      {
        name: "policy",
        description: "test policy that asks a person about every promotion",
        entry: "tests/fixtures/controls/policy_ask.ts",
        provides: ["policy"],
        uses: ["audit-append"],
      },
    ],
  });
  try {
    const q = sys.supervisor.client(quarantineApi);
    const registry = sys.supervisor.client(registryApi);
    const job = await settle(q, await upload(q, "ask-me.safetensors", benignSafetensors()));
    equal(job.state, "awaiting_approval");
    equal(job.decision?.decision, "ask");
    equal(job.decision?.rule, "test.ask_a_person");
    deepEqual((await registry.call("list", {})).models, []);
    deepEqual([...Deno.readDirSync(`${sys.home}/promotion-staging`)].map((e) => e.name), [
      `${job.id}.safetensors`,
    ]);

    equal((await q.call("promote", { id: job.id })).state, "promoting");
    const approved = await settle(q, job.id);
    equal(approved.state, "promoted", JSON.stringify(approved.error));
    const model = await registry.call("get", { id: approved.modelId as string });
    equal(model.decision.decision, "ask");
    equal(model.decision.approvedBy, "supervisor");
    const promoted = await sys.supervisor.client(auditQueryApi).call("query", {
      type: "registry.promoted",
    });
    equal(promoted.entries[0]?.evidence.approvedBy, "supervisor");
  } finally {
    await sys.stop();
  }
});
