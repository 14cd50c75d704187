/**
 * Idle unload: a loaded model is unloaded after the configured idle time, and the next
 * request loads it again (re-verified by the registry).
 */
import { equal } from "node:assert/strict";
import { inferenceApi } from "../../workers/inference/api.ts";
import { eventually } from "../_system.ts";
import { clientToken, postJson, promote, startInferenceSystem, tinyModel } from "./_system.ts";

Deno.test("an idle model is unloaded after idleUnloadMinutes and loaded again on the next request", async () => {
  // 0.01 min = 600 ms of idleness.
  const sys = await startInferenceSystem({ inference: { idleUnloadMinutes: 0.01 } });
  try {
    const modelId = await promote(sys, "tiny.gguf", tinyModel());
    const token = await clientToken(sys.home, "tests");
    const inference = sys.supervisor.client(inferenceApi);
    const complete = async () => {
      const res = await postJson(`${sys.base}/v1/completions`, token, {
        model: modelId,
        prompt: "hello",
        max_tokens: 2,
      });
      equal(res.status, 200);
      await res.body?.cancel();
    };
    await complete();
    // The unload event follows the engine's answer to the unload call.
    await eventually(async () => {
      const { events } = await sys.supervisor.events.since(-1, { waitMs: 0, limit: 500 });
      return events.some((e) => e.type === "inference.model_unloaded");
    }, { what: "the idle unload event" });
    equal((await inference.call("status", {})).loaded, null);
    await complete();
    equal((await inference.call("status", {})).loaded?.modelId, modelId);
  } finally {
    await sys.stop();
  }
});
