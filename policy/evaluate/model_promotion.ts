/**
 * `model_promotion` (spec 12 §2.2, spec 13): a model leaves quarantine only in an allowed
 * format (the deny list wins; the allow list is never empty, so there is no "anything goes")
 * and, when the smoke test ran, within its score and critical-finding limits. A diffusion
 * directory (format `diffusion-directory`, spec 13 §4) is promoted only when
 * `models.allow_diffusion_directories` is on and it came from a remote source with a pin:
 * a local, trust-on-first-use directory never is (an absent origin or pin counts as local).
 * @module
 */
import type { z } from "zod";
import type { ModelPromotionInputSchema } from "../schema.ts";
import { type EvalContext, type Outcome, Trail } from "./outcome.ts";

/** Decides one promotion. */
export function evaluateModelPromotion(
  input: z.output<typeof ModelPromotionInputSchema>,
  ctx: EvalContext,
): Outcome {
  const policy = ctx.policy;
  const format = input.format.toLowerCase();
  const trail = new Trail({ model: input.model, format });
  if (policy.models.deny.has(format)) {
    return trail.deny("models.deny_formats", [`Format "${format}" is denied`]);
  }
  if (format === "diffusion-directory") {
    if (!policy.policy.models.allow_diffusion_directories) {
      return trail.deny("models.allow_diffusion_directories", [
        "Diffusion directories are not allowed (models.allow_diffusion_directories is false)",
      ]);
    }
    if (input.source_kind !== "remote" || input.pinned !== true) {
      return trail.deny("models.diffusion_directory_pin", [
        "A local diffusion directory is never promoted: only one from a remote source with a pin in diffusion-models.lock.yaml may be (spec 13 §4)",
      ]);
    }
    trail.checks.push("models.diffusion_directory_pin");
  }
  if (!policy.models.allowed.has(format)) {
    return trail.deny("models.allowed_formats_miss", [
      `Format "${format}" is not an allowed format`,
    ]);
  }
  trail.checks.push("models.formats");
  // Defence in depth: the pipeline already stops at a failing stage, but the decision must
  // not depend on the caller having done so (spec 12: require_scan, require_behavior_tests).
  if (input.scan_verdict !== undefined && input.scan_verdict !== "clean") {
    return trail.deny("models.require_scan", [
      `The static scan's verdict is "${input.scan_verdict}", not clean`,
    ]);
  }
  if (input.smoke_status === "failed") {
    return trail.deny("models.require_behavior_tests", ["The behavioural smoke test failed"]);
  }
  // The engine runs GGUF only: for GGUF a skipped smoke test means an untested model.
  if (input.smoke_status === "skipped" && format === "gguf") {
    return trail.deny("models.require_behavior_tests", [
      "The behavioural smoke test did not run for this GGUF model",
    ]);
  }
  if (input.scan_verdict !== undefined) trail.checks.push("models.require_scan");
  const q = policy.policy.quarantine;
  if (input.smoke_score !== undefined && input.smoke_score > q.smoke_test_max_score) {
    return trail.deny("quarantine.smoke_test_max_score", [
      `Smoke-test score ${input.smoke_score} is above ${q.smoke_test_max_score}`,
    ]);
  }
  if (input.smoke_critical !== undefined && input.smoke_critical > q.smoke_test_max_critical) {
    return trail.deny("quarantine.smoke_test_max_critical", [
      `${input.smoke_critical} critical smoke-test findings (at most ${q.smoke_test_max_critical})`,
    ]);
  }
  if (input.smoke_score !== undefined || input.smoke_critical !== undefined) {
    trail.checks.push("quarantine.smoke_test");
  }
  return trail.allow("models.allowed_formats", [`Format "${format}" is allowed`]);
}
