/**
 * Stage 6 — behavioural smoke test (spec 13 §3). The candidate GGUF model, still in
 * quarantine, runs in the sandboxed inference engine against the prompt suite of
 * `policy/smoke_tests.yaml`; the scores and thresholds are policy. Other formats skip it (the
 * engine runs GGUF only) and the `model_promotion` policy decides. An engine or transport
 * error throws, so the stage fails closed: an untested model is never reported as tested.
 * @module
 */
import { fail, pass, skipped, type Stage, type StageOutcome } from "./stage.ts";
import { runSmokeTest, smokeFacts, smokeFindings } from "./smoke_runner.ts";

/** Stage 6. */
export const smokeTestStage: Stage = {
  name: "smoke_test",
  describeInput: (ctx) => ({ format: ctx.facts.format ?? null }),
  async run(ctx): Promise<StageOutcome> {
    if (ctx.facts.format !== "gguf") {
      const reason = ctx.facts.format === "diffusion-directory"
        ? "No behavioural test for diffusion models: a directory skips it (spec 13 §4), the model_promotion policy decides"
        : `Behavioural smoke test runs GGUF models only; ${
          ctx.facts.format ?? "this format"
        } skips it (spec 13 §3), the model_promotion policy decides`;
      return skipped({
        smokeTest: { status: "skipped", score: null, critical: null, reason },
      }, reason);
    }
    const { sha256, size } = ctx.facts;
    if (sha256 === undefined || size === undefined) {
      throw new Error("Stage 6 needs the integrity pin's hash and size");
    }
    const report = await runSmokeTest({
      engine: ctx.engine(),
      model: { path: ctx.artifact.abs, sha256, size },
      signal: ctx.signal,
    });
    const facts = smokeFacts(report);
    const findings = smokeFindings(report);
    return report.isPassed
      ? pass(facts, report.summary, findings)
      : fail("smoke_test", { code: "SMOKE_TEST_FAILED", message: report.summary }, {
        findings,
        facts,
      });
  },
};
