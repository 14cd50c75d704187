/**
 * The seven stages in the order they run (spec 13 §3–§4).
 * @module
 */
import { diffusionChecksStage } from "./diffusion_checks.ts";
import { formatGateStage } from "./format_gate.ts";
import { integrityPinStage } from "./integrity_pin.ts";
import { provenanceStage } from "./provenance.ts";
import { smokeTestStage } from "./smoke.ts";
import type { Stage } from "./stage.ts";
import { sourcePolicyStage } from "./source_policy.ts";
import { staticScanStage } from "./static_scan.ts";

/** Every stage, in order; there is no switch to leave one out. */
export const STAGES: readonly Stage[] = [
  sourcePolicyStage,
  formatGateStage,
  integrityPinStage,
  provenanceStage,
  staticScanStage,
  smokeTestStage,
  diffusionChecksStage,
];
