/**
 * Stage 7 — diffusion-model checks (spec 13 §4). They apply to directory artifacts
 * (`model_index.json`, components, tokenizer files), which are admitted only from a remote
 * source with a pin in the diffusion lock. This pipeline admits single files only (the
 * format gate refuses anything but one `.gguf`/`.safetensors` file), so for every admitted
 * artifact the stage is `skipped` with the reason recorded.
 * @module
 */
import { skipped, type Stage, type StageOutcome } from "./stage.ts";

/** Stage 7. */
export const diffusionChecksStage: Stage = {
  name: "diffusion_checks",
  describeInput: (ctx) => ({ format: ctx.facts.format ?? null, directory: false }),
  run(ctx): Promise<StageOutcome> {
    return Promise.resolve(skipped(
      {},
      `Single-file ${
        ctx.facts.format ?? "model"
      } artifact: the directory checks of diffusion models do not apply`,
    ));
  },
};
