import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BundleError, ensureIslandBundle } from "../runtime/bundle.ts";

const PROJECT = fileURLToPath(new URL("../", import.meta.url));
const MAX_BUNDLE_BYTES = 50 * 1024;
const PERMISSIONS: Deno.PermissionOptions = { read: true, write: true, run: [Deno.execPath()] };

/**
 * A throwaway copy of what the bundle depends on (config, map, lock, islands/) with the
 * project's node_modules linked in, so tests can edit and break islands freely.
 */
async function projectCopy(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "secai-bundle-" });
  for (const file of ["deno.json", "import_map.json", "deno.lock"]) {
    await Deno.copyFile(join(PROJECT, file), join(root, file));
  }
  await Deno.mkdir(join(root, "islands"));
  for await (const item of Deno.readDir(join(PROJECT, "islands"))) {
    if (item.isFile) {
      await Deno.copyFile(join(PROJECT, "islands", item.name), join(root, "islands", item.name));
    }
  }
  await Deno.symlink(join(PROJECT, "node_modules"), join(root, "node_modules"));
  return root;
}

function bundle(projectRoot: string) {
  return ensureIslandBundle({ projectRoot, denoPath: Deno.execPath() });
}

Deno.test({
  name: "ensureIslandBundle() builds a small bundle without eval, then reuses it",
  permissions: PERMISSIONS,
  async fn() {
    const root = await projectCopy();
    try {
      const first = await bundle(root);
      equal(first.rebuilt, true);
      equal(first.path, join(root, "static/build/islands.js"));
      const code = await Deno.readTextFile(first.path);
      equal(first.bytes, new TextEncoder().encode(code).byteLength);
      ok(first.bytes <= MAX_BUNDLE_BYTES, `bundle is ${first.bytes} bytes`);
      ok(!/\beval\s*\(/.test(code), "no eval");
      ok(!/\bnew\s+Function\s*\(|\bFunction\s*\(\s*["'`]/.test(code), "no Function constructor");
      ok(code.includes("__secai_islands"), "reads the islands' props element");
      ok(code.includes("/api/v1/events"), "holds the LiveControls island");
      // Every dashboard island is in the one bundle, within the 50 KB budget (issue #8).
      for (
        const marker of [
          "/api/v1/auth/",
          "x-csrf-token",
          "/api/v1/policy/whatif",
          "/api/v1/audit/verify",
          "/api/v1/quarantine",
        ]
      ) {
        ok(code.includes(marker), `the bundle holds "${marker}"`);
      }
      const second = await bundle(root);
      deepEqual(second, { ...first, rebuilt: false });
      const leftovers = [...Deno.readDirSync(join(root, "static/build"))].map((e) => e.name);
      deepEqual(leftovers, ["islands.js"]);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "ensureIslandBundle() rebuilds when a file under islands/ is newer than the bundle",
  permissions: PERMISSIONS,
  async fn() {
    const root = await projectCopy();
    try {
      const first = await bundle(root);
      // As if the island was edited after the last build.
      const earlier = new Date(Date.now() - 60_000);
      await Deno.utime(first.path, earlier, earlier);
      equal((await bundle(root)).rebuilt, true);
      equal((await bundle(root)).rebuilt, false);
      await Deno.utime(first.path, earlier, earlier);
      await Deno.utime(join(root, "islands"), earlier, earlier);
      await Deno.remove(join(root, "islands/hydration.ts"));
      await rejects(bundle(root), BundleError, "a deleted island counts as a change");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "ensureIslandBundle() throws BUNDLE_FAILED for an island that does not compile",
  permissions: PERMISSIONS,
  async fn() {
    const root = await projectCopy();
    try {
      await Deno.writeTextFile(join(root, "islands/client.ts"), "export const = ;\n");
      await rejects(bundle(root), (err: unknown) => {
        ok(err instanceof BundleError);
        equal(err.code, "BUNDLE_FAILED");
        return true;
      });
      const left = [...Deno.readDirSync(join(root, "static/build"))];
      deepEqual(left, [], "no bundle and no temporary file is left behind");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "ensureIslandBundle() throws BUNDLE_ENTRY_MISSING without islands/client.ts",
  permissions: PERMISSIONS,
  async fn() {
    const root = await projectCopy();
    try {
      await Deno.remove(join(root, "islands/client.ts"));
      await rejects(bundle(root), (err: unknown) => {
        ok(err instanceof BundleError);
        equal(err.code, "BUNDLE_ENTRY_MISSING");
        return true;
      });
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "islands/ imports only preact, @preact/signals and other islands",
  permissions: { read: [join(PROJECT, "islands")] },
  async fn() {
    const allowed = /^(?:preact|preact\/[a-z/-]+|@preact\/signals|\.\/[A-Za-z0-9_]+\.tsx?)$/;
    for await (const item of Deno.readDir(join(PROJECT, "islands"))) {
      const source = await Deno.readTextFile(join(PROJECT, "islands", item.name));
      for (
        const [, specifier] of source.matchAll(
          /(?:^|\n)\s*(?:import|export)[^;]*?from\s+"([^"]+)"/g,
        )
      ) {
        ok(allowed.test(specifier ?? ""), `${item.name} imports "${specifier}"`);
      }
      ok(!/\bimport\s*\(/.test(source), `${item.name} has no dynamic import`);
    }
  },
});
