/**
 * `sensitivity` (spec 12 §2.2): levels `low < medium < high`; an unknown level or ceiling is
 * denied, a level above the ceiling is denied.
 * @module
 */
import type { z } from "zod";
import type { SensitivityInputSchema } from "../schema.ts";
import { type Outcome, Trail } from "./outcome.ts";

/** Rank of each level. */
export const LEVEL_RANK: Readonly<Record<"low" | "medium" | "high", number>> = {
  low: 0,
  medium: 1,
  high: 2,
};

function rank(level: string): number | undefined {
  return Object.hasOwn(LEVEL_RANK, level)
    ? LEVEL_RANK[level as keyof typeof LEVEL_RANK]
    : undefined;
}

/** Decides a level against a ceiling. */
export function evaluateSensitivity(input: z.output<typeof SensitivityInputSchema>): Outcome {
  const trail = new Trail({ level: input.level, ceiling: input.ceiling });
  const level = rank(input.level);
  const ceiling = rank(input.ceiling);
  if (level === undefined || ceiling === undefined) {
    return trail.deny("sensitivity.invalid", [
      "The level and the ceiling must each be low, medium or high",
    ]);
  }
  if (level > ceiling) {
    return trail.deny("sensitivity.exceeded", [
      `Sensitivity "${input.level}" exceeds the ceiling "${input.ceiling}"`,
    ]);
  }
  return trail.allow("sensitivity.ok", [
    `Sensitivity "${input.level}" is within the ceiling "${input.ceiling}"`,
  ]);
}
