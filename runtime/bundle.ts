/**
 * Builds the islands bundle (`static/build/islands.js`) with `deno bundle`. The supervisor
 * calls it before spawning the gateway: the gateway worker may not run processes, and it
 * reads only `static/`.
 * @module
 */
import { join } from "node:path";

/** Codes of {@link BundleError}. */
export type BundleErrorCode = "BUNDLE_FAILED" | "BUNDLE_ENTRY_MISSING";

/** The islands bundle could not be built. */
export class BundleError extends Error {
  /** Machine-readable code. */
  readonly code: BundleErrorCode;

  /**
   * @param code what failed
   * @param message sentence-case, no trailing period
   * @param options standard `cause`
   */
  constructor(code: BundleErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BundleError";
    this.code = code;
  }
}

/** Options of {@link ensureIslandBundle}. */
export interface EnsureIslandBundleOptions {
  /** Absolute project root (holds `deno.json`, `islands/`, `static/`). */
  projectRoot: string;
  /** The real Deno binary (`Deno.execPath()`), not the `tools/deno` wrapper. */
  denoPath: string;
}

/** What {@link ensureIslandBundle} produced. */
export interface IslandBundle {
  /** Absolute path of the bundle. */
  path: string;
  /** Its size in bytes. */
  bytes: number;
  /** Whether it was built now (false: it was newer than every input). */
  rebuilt: boolean;
}

/** Bundle path relative to the project root. */
export const ISLANDS_BUNDLE_PATH = "static/build/islands.js";
/** Entry module relative to the project root. */
export const ISLANDS_ENTRY_PATH = "islands/client.ts";
/** Project files besides `islands/` whose change can change the bundle (dependency versions). */
const CONFIG_INPUTS = ["deno.json", "import_map.json", "deno.lock"];

/**
 * Builds the islands bundle when it is missing or older than any file under `islands/` (or
 * the project's config, import map or lock). Writes to a temporary file and renames it, so a
 * reader never sees half a bundle.
 * @param options project root and Deno binary
 * @returns path, size and whether it was rebuilt
 * @throws {BundleError} BUNDLE_ENTRY_MISSING, BUNDLE_FAILED (with the tail of deno's stderr)
 * @example
 * ```ts
 * const { bytes, rebuilt } = await ensureIslandBundle({ projectRoot, denoPath: Deno.execPath() });
 * ```
 */
export async function ensureIslandBundle(
  options: EnsureIslandBundleOptions,
): Promise<IslandBundle> {
  const root = options.projectRoot;
  const path = join(root, ISLANDS_BUNDLE_PATH);
  const entry = join(root, ISLANDS_ENTRY_PATH);
  const built = await mtimeOf(path);
  if (built !== null) {
    const newest = await newestInput(root);
    if (newest < built) return { path, bytes: (await Deno.stat(path)).size, rebuilt: false };
  }
  if ((await mtimeOf(entry)) === null) {
    throw new BundleError(
      "BUNDLE_ENTRY_MISSING",
      `Cannot bundle islands: "${entry}" does not exist`,
    );
  }
  await Deno.mkdir(join(root, "static/build"), { recursive: true });
  const temp = `${path}.${crypto.randomUUID()}.tmp`;
  const output = await new Deno.Command(options.denoPath, {
    args: [
      "bundle",
      "--config",
      join(root, "deno.json"),
      "--platform=browser",
      "--minify",
      "-o",
      temp,
      entry,
    ],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    await Deno.remove(temp).catch((err: unknown) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    const stderr = new TextDecoder().decode(output.stderr).trim().slice(-2000);
    throw new BundleError(
      "BUNDLE_FAILED",
      `Cannot bundle islands: deno bundle exited with ${output.code}: ${stderr}`,
    );
  }
  await Deno.rename(temp, path);
  return { path, bytes: (await Deno.stat(path)).size, rebuilt: true };
}

async function mtimeOf(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).mtime?.getTime() ?? 0;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/** Latest modification time of any input (0 when there is none). */
async function newestInput(root: string): Promise<number> {
  let newest = 0;
  for (const file of CONFIG_INPUTS) {
    newest = Math.max(newest, (await mtimeOf(join(root, file))) ?? 0);
  }
  const dirs = [join(root, "islands")];
  for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
    newest = Math.max(newest, (await mtimeOf(dir)) ?? 0); // a deleted file changes the dir
    for await (const item of Deno.readDir(dir)) {
      const child = join(dir, item.name);
      if (item.isDirectory) dirs.push(child);
      else newest = Math.max(newest, (await mtimeOf(child)) ?? 0);
    }
  }
  return newest;
}

// `deno run runtime/bundle.ts`: tools/setup builds the bundle at install time, so the first
// `secai start` neither waits for it nor needs the network (deno bundle fetches esbuild once).
if (import.meta.main) {
  const projectRoot = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  await ensureIslandBundle({ projectRoot, denoPath: Deno.execPath() });
}
