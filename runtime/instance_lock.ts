/**
 * One process per state dir: `run/supervisor.pid` names the process that holds it. Used by
 * `secai start` and by CLI commands that run controls in-process (`secai import`).
 * @module
 */
import { writeFileAtomic } from "./kit/fs.ts";

/** A held lock. */
export interface InstanceLock {
  /** Removes the pid file (a missing file is fine). */
  release(): Promise<void>;
}

/**
 * Takes the lock unless a live process holds it.
 * @returns the lock, or null when another live process holds it
 */
export async function acquireInstanceLock(home: string): Promise<InstanceLock | null> {
  const path = `${home}/run/supervisor.pid`;
  try {
    const pid = Number((await Deno.readTextFile(path)).trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== Deno.pid && (await isAlive(pid))) return null;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await writeFileAtomic(path, `${Deno.pid}\n`);
  return {
    async release() {
      await Deno.remove(path).catch((err: unknown) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    },
  };
}

/** `kill -0`: whether a process with this pid exists (Deno reads /proc/<pid> only with all permissions). */
async function isAlive(pid: number): Promise<boolean> {
  const { code } = await new Deno.Command("/usr/bin/kill", {
    args: ["-0", String(pid)],
    stdout: "null",
    stderr: "null",
  }).output();
  return code === 0;
}
