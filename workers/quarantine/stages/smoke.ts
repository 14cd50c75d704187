/**
 * Stage 6 — behavioural smoke test (spec 13 §3). It needs a local inference engine, which
 * arrives with issue #7; until then it reports `skipped` with the reason, the result goes to
 * the registry and the `model_promotion` policy decides whether an untested model may be
 * promoted. It never reports `passed` without having run.
 * @module
 */
import { skipped, type Stage, type StageOutcome } from "./stage.ts";

/** Why the test did not run. */
export const SMOKE_TEST_SKIP_REASON =
  "Behavioural smoke test needs local inference (issue #7), which is not built yet; " +
  "the model_promotion policy decides";

/** Stage 6. */
export const smokeTestStage: Stage = {
  name: "smoke_test",
  describeInput: (ctx) => ({ format: ctx.facts.format ?? null }),
  run(): Promise<StageOutcome> {
    // TODO(#7): start the model in the sandboxed inference job and run the prompt suite.
    return Promise.resolve(skipped({
      smokeTest: { status: "skipped", score: null, critical: null, reason: SMOKE_TEST_SKIP_REASON },
    }, SMOKE_TEST_SKIP_REASON));
  },
};
