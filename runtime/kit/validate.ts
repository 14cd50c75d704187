/**
 * One way to turn a zod failure into a readable, bounded message that names the field.
 * @module
 */
import type { z } from "zod";

/**
 * Formats the first issues of a zod error as `at "a.b": reason; …`.
 * @param error the zod error
 * @returns a single line that names each failing field path and why
 */
export function describeZodError(error: z.ZodError): string {
  return error.issues.slice(0, 5).map((issue) => {
    const path = issue.path.length ? issue.path.join(".") : "(root)";
    return `at "${path}": ${issue.message}`;
  }).join("; ").slice(0, 1000);
}
