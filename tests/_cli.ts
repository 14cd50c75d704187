/**
 * Test helper: the `secai` command of this checkout, run as a user runs it.
 * @module
 */
import { PROJECT_ROOT } from "./_system.ts";

/** The `secai` launcher of this checkout. */
export const SECAI = `${PROJECT_ROOT}/secai`;

/** How a `secai` run ended and what it printed. */
export interface SecaiRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `secai` with `args` (colours off) and waits for it to exit.
 * @param args the command line after `secai`
 * @param env more environment variables
 * @returns the exit code and the decoded output
 */
export async function secai(args: string[], env: Record<string, string> = {}): Promise<SecaiRun> {
  const out = await new Deno.Command(SECAI, {
    args,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
