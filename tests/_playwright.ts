/**
 * playwright-core for tests, loaded so that it runs under the test permissions (never
 * `--allow-all`). At load it probes whether it runs under WSL by checking
 * `/proc/sys/fs/binfmt_misc/WSLInterop`; Deno refuses any `/proc/sys` access without
 * `--allow-all` and throws instead of answering false. This module answers that one probe
 * "absent" (a test machine is not WSL) before playwright-core is evaluated: ES modules run
 * in import order, so import this before `playwright-core`.
 * @module
 */
import fs from "node:fs";

const existsSync = fs.existsSync;

/** `/proc/sys` paths playwright-core probes; they can only be answered with `--allow-all`. */
function isProbe(path: unknown): boolean {
  return typeof path === "string" && path.startsWith("/proc/sys/");
}

fs.existsSync = function (path: fs.PathLike): boolean {
  if (isProbe(path)) {
    try {
      return existsSync(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotCapable) return false;
      throw err;
    }
  }
  return existsSync(path);
};
