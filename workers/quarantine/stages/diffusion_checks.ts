/**
 * Stage 7 — diffusion-model deep scan (spec 13 §4). Directory artifacts only, in the
 * sandboxed `diffusion_checks` job (`deep`): every component named in `model_index.json`
 * exists as a directory; no top-level directory but the components, `tokenizer`,
 * `feature_extractor` and `image_processor`; every JSON file decoded again and checked for
 * URLs and code markers. Findings name the relative path. A single-file artifact skips the
 * stage with the reason recorded.
 * @module
 */
import { refuseBlocking, runDirectoryChecks } from "./format_gate.ts";
import { pass, skipped, type Stage, type StageOutcome } from "./stage.ts";

/** Stage 7. */
export const diffusionChecksStage: Stage = {
  name: "diffusion_checks",
  describeInput: (ctx) => ({
    format: ctx.facts.format ?? null,
    directory: ctx.artifact.kind === "directory",
  }),
  async run(ctx): Promise<StageOutcome> {
    if (ctx.artifact.kind !== "directory") {
      return skipped(
        {},
        `Single-file ${
          ctx.facts.format ?? "model"
        } artifact: the directory checks of diffusion models do not apply`,
      );
    }
    const report = await runDirectoryChecks(ctx, "deep");
    const refused = refuseBlocking(report, {
      stage: "diffusion_checks",
      code: "DIFFUSION_CHECK_FAILED",
      refused: "The deep scan refused the directory",
    });
    if (refused !== null) return refused;
    return pass(
      {},
      `Every component of model_index.json is a directory (${
        report.components.join(", ")
      }); no other top-level directory; ${report.files} files, JSON clean`.slice(0, 1000),
      report.findings,
    );
  },
};
