/**
 * Cancelling quarantine jobs on the real path: in the worker's own hashing pass, inside a
 * sandboxed scan job (which the runner kills), while queued, and after the end.
 */
import assert, { equal, ok } from "node:assert/strict";
import { RpcError } from "../../runtime/kit/errors.ts";
import { eventually } from "../_system.ts";
import { quarantineApi } from "../../workers/quarantine/api.ts";
import { registryApi } from "../../workers/registry/api.ts";
import {
  benignSafetensors,
  settle,
  startPipeline,
  upload,
  uploadPath,
  waitForJob,
  writeBigSafetensors,
} from "./_system.ts";

Deno.test("cancel stops a running stage, kills its sandboxed job and deletes the artifact", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "secai-cancel-" });
  const big = `${dir}/big.safetensors`;
  await writeBigSafetensors(big, 512);
  const sys = await startPipeline();
  try {
    const q = sys.supervisor.client(quarantineApi);
    for (const stage of ["integrity_pin", "static_scan"] as const) {
      await t.step(`during ${stage}`, async () => {
        const before = sys.supervisor.events.last;
        const id = await uploadPath(q, `cancel-${stage}.safetensors`, big);
        await waitForJob(q, id, (j) =>
          j.state === "running" && j.stage === stage &&
          j.stages.some((s) => s.stage === stage && s.status === "running"));
        const cancelled = await q.call("cancel", { id });
        equal(cancelled.state, "cancelled");
        equal(cancelled.error?.code, "CANCELLED");
        const job = await q.call("get", { id });
        const record = job.stages.find((s) => s.stage === stage);
        equal(record?.status, "pending", "the interrupted stage has no verdict");
        ok(
          job.stages.filter((s) => s.status === "passed").every((s) =>
            ["source_policy", "format_gate", "integrity_pin", "provenance"].includes(s.stage)
          ),
        );
        await Deno.stat(`${sys.home}/quarantine/processing/${id}`).then(
          () => assert.fail("the artifact was kept"),
          (error) => ok(error instanceof Deno.errors.NotFound),
        );
        if (stage === "static_scan") {
          // The runner reports the kill once the process is gone, which may be just after
          // the cancellation's answer.
          const finished = async () => {
            const { events } = await sys.supervisor.events.since(before, {
              waitMs: 0,
              limit: 1000,
            });
            return events.find((e) => e.type === "job.finished" && e.data.job === "static_scan");
          };
          await eventually(async () => (await finished()) !== undefined, {
            what: "the static scan job to end",
          });
          const event = await finished();
          equal(event?.data.status, "killed", JSON.stringify(event));
        }
      });
    }
    await t.step("while queued, without touching the running job", async () => {
      const first = await uploadPath(q, "first.safetensors", big);
      const second = await upload(q, "second.safetensors", benignSafetensors());
      equal((await q.call("get", { id: second })).state, "queued");
      equal((await q.call("cancel", { id: second })).state, "cancelled");
      equal((await settle(q, first)).state, "promoted");
      equal((await q.call("get", { id: second })).state, "cancelled");
    });
    await t.step("not after the end", async () => {
      const { jobs } = await q.call("list", { state: "promoted" });
      const done = jobs[0]?.id as string;
      const error = await q.call("cancel", { id: done }).then(() => null, (e: unknown) => e);
      ok(error instanceof RpcError);
      equal(error.code, "INVALID_STATE");
      const missing = await q.call("cancel", { id: "q000000000000000000000000" }).then(
        () => null,
        (e: unknown) => e,
      );
      ok(missing instanceof RpcError);
      equal(missing.code, "JOB_NOT_FOUND");
    });
    const { models } = await sys.supervisor.client(registryApi).call("list", {});
    equal(models.length, 1, "only the uncancelled job was promoted");
  } finally {
    await sys.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
