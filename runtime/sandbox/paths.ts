/**
 * Resolving the two paths a caller names: the input file (relative to the state dir) and the
 * job module (inside a code root). Both are resolved with realpath so that `..` and symlinks
 * are judged by where they lead, not by how they are spelled.
 * @module
 */
import { SandboxError } from "./errors.ts";

/** Directory under the state dir that holds job directories; never an input. */
export const JOBS_DIR = "jobs";

/**
 * Characters refused in any path handed to the job: `,` separates entries of Deno's
 * `--allow-*` lists (a comma would widen a grant), NUL and control characters have no place
 * in a path and would corrupt argv or logs.
 */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const UNSAFE_PATH = /[,\u0000-\u001f\u007f]/;

/** Whether a path has no comma and no control character (see {@link UNSAFE_PATH}). */
export function isSafePath(path: string): boolean {
  return !UNSAFE_PATH.test(path);
}

/** Options of {@link resolveInputPath}. */
export interface ResolveInputOptions {
  /** Absolute realpath of the state dir. */
  home: string;
  /** What the input must be; default a regular file. */
  kind?: "file" | "directory";
}

/**
 * Resolves an input path given relative to the state dir.
 * Refuses (threats in brackets): absolute paths [naming any file], paths that resolve outside
 * the state dir through `..` or symlinks [escape], paths into job directories [reading
 * another job's output], and anything but a regular file [FIFOs block, devices read forever]
 * — or, when a directory is asked for, anything but a directory.
 * @param path the caller's path, relative to the state dir
 * @returns the absolute realpath of the file
 * @throws {SandboxError} `INPUT_REJECTED`
 */
export async function resolveInputPath(
  path: string,
  options: ResolveInputOptions,
): Promise<string> {
  const reject = (why: string, cause?: unknown): SandboxError =>
    new SandboxError(
      "INPUT_REJECTED",
      `Cannot use input "${path.slice(0, 200)}": ${why}`,
      cause === undefined ? undefined : { cause },
    );
  if (path.length === 0 || path.startsWith("/")) throw reject("not relative to the state dir");
  if (UNSAFE_PATH.test(path)) throw reject("contains a comma or control character");
  let real: string;
  try {
    real = await Deno.realPath(`${options.home}/${path}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw reject("it does not exist", error);
  }
  if (!isInside(real, options.home)) throw reject("it resolves outside the state dir");
  if (isInside(real, `${options.home}/${JOBS_DIR}`) || real === `${options.home}/${JOBS_DIR}`) {
    throw reject("it is inside a job directory");
  }
  if (UNSAFE_PATH.test(real)) throw reject("its real path contains a comma or control character");
  const info = await Deno.stat(real);
  if (options.kind === "directory") {
    if (!info.isDirectory) throw reject("not a directory");
    // The state dir itself would hand the job every control's files and the job dirs.
    if (real === options.home) throw reject("it is the state dir");
  } else if (!info.isFile) {
    throw reject("not a regular file");
  }
  return real;
}

/** Options of {@link resolveModulePath}. */
export interface ResolveModuleOptions {
  /** Absolute realpaths of the directories job modules may come from. */
  codeRoots: readonly string[];
}

/**
 * Resolves a job module path and checks that it lies in a code root (the job can read only
 * those, so a module elsewhere could not even load).
 * @param path absolute path of the module
 * @returns its realpath
 * @throws {SandboxError} `MODULE_REJECTED`
 */
export async function resolveModulePath(
  path: string,
  options: ResolveModuleOptions,
): Promise<string> {
  const reject = (why: string, cause?: unknown): SandboxError =>
    new SandboxError(
      "MODULE_REJECTED",
      `Cannot run module "${path.slice(0, 300)}": ${why}`,
      cause === undefined ? undefined : { cause },
    );
  if (!path.startsWith("/")) throw reject("not an absolute path");
  if (UNSAFE_PATH.test(path)) throw reject("contains a comma or control character");
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw reject("it does not exist", error);
  }
  if (!options.codeRoots.some((root) => isInside(real, root))) {
    throw reject("it is outside the code roots");
  }
  const info = await Deno.stat(real);
  if (!info.isFile) throw reject("not a regular file");
  return real;
}

/**
 * Resolves a directory or file the runner is configured with to its realpath.
 * @throws {RangeError} when it is relative or contains unsafe characters (programmer error)
 * @throws {SandboxError} `SANDBOX_UNAVAILABLE` when it does not exist
 */
export async function resolveConfiguredPath(path: string, what: string): Promise<string> {
  if (!path.startsWith("/")) throw new RangeError(`Invalid ${what} "${path}": not absolute`);
  if (UNSAFE_PATH.test(path)) {
    throw new RangeError(`Invalid ${what} "${path}": contains a comma or control character`);
  }
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new SandboxError("SANDBOX_UNAVAILABLE", `Cannot find ${what} "${path}"`, {
      cause: error,
    });
  }
  if (UNSAFE_PATH.test(real)) {
    throw new RangeError(`Invalid ${what} "${real}": contains a comma or control character`);
  }
  return real;
}

/** Whether `path` lies strictly below `dir` (both absolute, normalized). */
export function isInside(path: string, dir: string): boolean {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  return path.startsWith(prefix) && path.length > prefix.length;
}
