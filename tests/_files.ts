/**
 * Test helper: files written to a fresh temp dir for the length of a callback.
 * @module
 */

/**
 * Writes `files` (name → bytes) into a fresh temp dir, runs `fn` on the dir, then removes it.
 * @param files bare file names and their bytes, written in this order
 * @param fn what to do with the dir
 * @returns what `fn` returns
 */
export async function withFiles<T>(
  files: Record<string, Uint8Array>,
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "secai-test-files-" });
  try {
    for (const [name, bytes] of Object.entries(files)) {
      await Deno.writeFile(`${dir}/${name}`, bytes);
    }
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
