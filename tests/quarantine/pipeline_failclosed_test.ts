/**
 * Fail closed: without the sandbox nothing is parsed and the job is rejected; without the
 * policy or the registry nothing is promoted (the artifact waits for a retry); a policy
 * deny rejects, and the registry never holds a model the policy did not allow.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { auditQueryApi } from "../../workers/audit/api.ts";
import { quarantineApi } from "../../workers/quarantine/api.ts";
import { registryApi } from "../../workers/registry/api.ts";
import { eventually, PROJECT_ROOT } from "../_system.ts";
import { benignSafetensors, safetensorsFile, settle, startPipeline, upload } from "./_system.ts";

Deno.test("without the sandbox no stage parses the file and the job is rejected", async () => {
  const sys = await startPipeline({ withoutSandbox: true });
  try {
    const q = sys.supervisor.client(quarantineApi);
    const job = await settle(q, await upload(q, "nosandbox.safetensors", benignSafetensors()));
    equal(job.state, "rejected");
    equal(job.stage, "format_gate");
    equal(job.error?.code, "STAGE_ERROR");
    match(job.error?.message ?? "", /fails closed: UNAVAILABLE/);
    equal(job.stages.find((s) => s.stage === "format_gate")?.findings[0]?.severity, "critical");
    deepEqual((await sys.supervisor.client(registryApi).call("list", {})).models, []);
  } finally {
    await sys.stop();
  }
});

Deno.test("with the policy control down nothing is promoted; a retry once it is back promotes", async () => {
  const sys = await startPipeline({
    overrides: { policy: { restart: { backoffMs: 6_000, maxRestarts: 2 } } },
  });
  try {
    sys.supervisor.kill("policy");
    const q = sys.supervisor.client(quarantineApi);
    const job = await settle(q, await upload(q, "nopolicy.safetensors", benignSafetensors()));
    equal(job.state, "promotion_failed");
    equal(job.error?.code, "POLICY_UNAVAILABLE");
    deepEqual((await sys.supervisor.client(registryApi).call("list", {})).models, []);
    // The artifact is kept for the retry (spec 13 §1: a failed registry transaction).
    deepEqual([...Deno.readDirSync(`${sys.home}/promotion-staging`)].map((e) => e.name), [
      `${job.id}.safetensors`,
    ]);
    await eventually(
      () => sys.supervisor.status().find((c) => c.name === "policy")?.state === "ready",
      { timeoutMs: 20_000, what: "the policy control to come back" },
    );
    equal((await q.call("promote", { id: job.id })).state, "promoting");
    const retried = await settle(q, job.id);
    equal(retried.state, "promoted", JSON.stringify(retried.error));
    equal(retried.decision?.decision, "allow");
  } finally {
    await sys.stop();
  }
});

Deno.test("with the registry down the job waits as promotion_failed and nothing is stored", async () => {
  const sys = await startPipeline({ overrides: { registry: { restart: { maxRestarts: 0 } } } });
  try {
    sys.supervisor.kill("registry");
    const q = sys.supervisor.client(quarantineApi);
    const job = await settle(q, await upload(q, "noregistry.safetensors", benignSafetensors()));
    equal(job.state, "promotion_failed");
    equal(job.error?.code, "UNAVAILABLE");
    equal(job.modelId, null);
    deepEqual([...Deno.readDirSync(`${sys.home}/registry/models`)], []);
  } finally {
    await sys.stop();
  }
});

Deno.test("a policy deny rejects the job and the registry never holds the model", async () => {
  const sys = await startPipeline({
    // The operator's policy admits GGUF only (the shipped policy with one list changed).
    async prepare(home) {
      const shipped = await Deno.readTextFile(`${PROJECT_ROOT}/policy/defaults/policy.yaml`);
      const ggufOnly = shipped.replace(
        /allowed_formats: \[gguf, safetensors\]/,
        "allowed_formats: [gguf]",
      );
      ok(ggufOnly !== shipped);
      await Deno.mkdir(`${home}/policy`, { recursive: true, mode: 0o700 });
      await Deno.writeTextFile(`${home}/policy/policy.yaml`, ggufOnly, { mode: 0o600 });
    },
  });
  try {
    const q = sys.supervisor.client(quarantineApi);
    for (const name of ["denied-a.safetensors", "denied-b.safetensors"]) {
      const job = await settle(q, await upload(q, name, safetensorsFile({ [name]: [32] })));
      equal(job.state, "rejected");
      equal(job.error?.code, "PROMOTION_DENIED");
      equal(job.decision?.decision, "deny");
      equal(job.decision?.rule, "models.allowed_formats_miss");
      // Every stage passed: only the policy said no.
      ok(job.stages.every((s) => s.verdict === "pass" || s.verdict === "skipped"));
    }
    deepEqual(
      (await sys.supervisor.client(registryApi).call("list", { includeRevoked: true })).models,
      [],
    );
    deepEqual([...Deno.readDirSync(`${sys.home}/registry/models`)], []);
    deepEqual([...Deno.readDirSync(`${sys.home}/promotion-staging`)], []);
    const denied = await sys.supervisor.client(auditQueryApi).call("query", {
      type: "registry.promotion_denied",
    });
    equal(denied.entries.length, 2);
    equal(denied.entries[0]?.decision, "deny");
  } finally {
    await sys.stop();
  }
});

Deno.test("approving is refused unless the policy asked for a person's approval", async () => {
  const sys = await startPipeline();
  try {
    const q = sys.supervisor.client(quarantineApi);
    const job = await settle(q, await upload(q, "approve.safetensors", benignSafetensors()));
    equal(job.state, "promoted");
    const error = await q.call("promote", { id: job.id }).then(() => null, (e: unknown) => e);
    ok(error instanceof Error && "code" in error);
    equal((error as { code: string }).code, "INVALID_STATE");
  } finally {
    await sys.stop();
  }
});
