/**
 * Crash-safe file helpers shared by the supervisor and the controls.
 * @module
 */

/**
 * Writes a file so that a crash at any moment leaves either the old or the new content:
 * write a temp file beside it, fsync it, rename over the target, fsync the directory.
 * @param path absolute target path
 * @param data file content
 * @param options `mode` of the new file (default 0o600)
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const file = await Deno.open(tmp, {
    write: true,
    createNew: true,
    mode: options.mode ?? 0o600,
  });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } finally {
    file.close();
  }
  try {
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(dir);
}

/** fsyncs a directory so a rename or a new file in it survives power loss. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}

/**
 * A `.catch()` handler for removals that may find nothing: a missing file is what the caller
 * wanted anyway; any other error (permission, I/O) is rethrown.
 * @param error what the file operation threw
 * @throws {unknown} every error but `Deno.errors.NotFound`, unchanged
 */
export function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}
