/**
 * Test helpers for the audit log (private to this folder; only tests import it).
 * @module
 */
import type { AppendEntry } from "./log.ts";

/** A plain entry numbered `i`. */
export function testEntry(i: number, overrides: Partial<AppendEntry> = {}): AppendEntry {
  return {
    control: "test",
    type: "test.entry",
    actor: "tester",
    subject: `subject ${i}`,
    evidence: { i },
    data: {},
    ...overrides,
  };
}

/** Runs `fn` with a temp dir, removed afterwards. */
export async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "secai-audit-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
