/**
 * The architecture gate: the project's real import graph and worker spawns against the rules
 * of ARCHITECTURE.md (`_architecture_rules.ts`), and the shipped manifest's worker grants.
 * Each failure names the file and line of the offending import or spawn.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { fileURLToPath, pathToFileURL } from "node:url";
import { join } from "node:path";
import { type ImportGraph, readImportGraph } from "./_import_graph.ts";
import { checkArchitecture, checkWorkerPermissions, isProductFile } from "./_architecture_rules.ts";
import { buildManifest, DEFAULT_CONTROLS } from "../runtime/manifest.ts";
import { grantFor, toWorkerPermissions } from "../runtime/permissions.ts";
import { ConfigSchema } from "../runtime/config.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url)).replace(/\/$/, "");
/** The whole read-and-judge must stay well under the 5 s budget of the issue. */
const GRAPH_BUDGET_MS = 5_000;

let cached: Promise<ImportGraph> | undefined;
function projectGraph(): Promise<ImportGraph> {
  cached ??= readImportGraph(ROOT);
  return cached;
}

Deno.test({
  name: "the import graph breaks no rule of ARCHITECTURE.md",
  permissions: { read: [ROOT] },
  async fn() {
    const started = performance.now();
    const graph = await readImportGraph(ROOT);
    const violations = checkArchitecture(graph);
    const elapsed = performance.now() - started;
    deepEqual(
      violations.map((v) => v.message),
      [],
      `${violations.length} architecture violation(s):\n${
        violations.map((v) => `  ${v.message}`).join("\n")
      }`,
    );
    ok(elapsed < GRAPH_BUDGET_MS, `reading and judging the graph took ${elapsed.toFixed(0)} ms`);
  },
});

Deno.test({
  name: "the import graph covers the product folders and sees the supervisor's imports",
  permissions: { read: [ROOT] },
  async fn() {
    const graph = await projectGraph();
    for (const folder of ["runtime/", "workers/", "routes/", "islands/", "ffi/", "tests/"]) {
      ok(graph.files.some((f) => f.startsWith(folder)), `no file under ${folder}`);
    }
    ok(!graph.files.some((f) => f.startsWith("node_modules/") || f.startsWith("tools/deno-npm/")));
    ok(
      graph.edges.some((e) =>
        e.from === "runtime/supervisor.ts" && e.to === "runtime/permissions.ts"
      ),
      "runtime/supervisor.ts → runtime/permissions.ts is missing",
    );
  },
});

Deno.test({
  name: "only runtime/supervisor.ts spawns workers, and only through toWorkerPermissions()",
  permissions: { read: [ROOT] },
  async fn() {
    const graph = await projectGraph();
    const spawns = graph.spawns.filter((s) => isProductFile(s.file));
    equal(spawns.length > 0, true, "no worker spawn found in product code");
    deepEqual(
      [...new Set(spawns.map((s) => `${s.file} ${s.permissions}`))],
      ["runtime/supervisor.ts toWorkerPermissions"],
    );
  },
});

Deno.test({
  name: "the shipped manifest grants no worker inherit, all, run or ffi",
  permissions: { read: true },
  fn() {
    const manifest = buildManifest(DEFAULT_CONTROLS);
    const config = ConfigSchema.parse({});
    const roots = { home: "/var/lib/secai", projectRoot: ROOT };
    ok(manifest.controls.length > 0);
    const problems = manifest.controls.flatMap((spec) =>
      checkWorkerPermissions(spec.name, toWorkerPermissions(grantFor(spec, config, roots)))
    );
    deepEqual(problems, []);
  },
});

interface DenoInfoModule {
  specifier: string;
  error?: string;
  dependencies?: {
    specifier: string;
    code?: { span: { start: { line: number; character: number } } };
    type?: { span: { start: { line: number; character: number } } };
  }[];
}

Deno.test({
  name: "the graph reader finds exactly the imports deno info finds in every file",
  permissions: { read: true, write: true, run: [Deno.execPath()] },
  async fn() {
    const graph = await projectGraph();
    const dir = await Deno.makeTempDir({ prefix: "secai-arch-" });
    try {
      const entry = join(dir, "all.ts");
      const lines = graph.files.map((f) => `import "${pathToFileURL(join(ROOT, f)).href}";`);
      await Deno.writeTextFile(entry, lines.join("\n"));
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "info",
          "--json",
          "--config",
          join(ROOT, "deno.json"),
          "--no-remote",
          "--no-npm",
          "--no-lock",
          entry,
        ],
        cwd: ROOT,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      equal(output.code, 0, new TextDecoder().decode(output.stderr));
      const info = JSON.parse(new TextDecoder().decode(output.stdout)) as {
        modules: DenoInfoModule[];
      };
      const byFile = new Map(info.modules.map((m) => [m.specifier, m]));
      const mismatches: string[] = [];
      for (const file of graph.files) {
        const module = byFile.get(pathToFileURL(join(ROOT, file)).href);
        if (!module) {
          mismatches.push(`${file}: deno info did not read it`);
          continue;
        }
        if (module.error) {
          mismatches.push(`${file}: deno info cannot read it: ${module.error.split("\n")[0]}`);
          continue;
        }
        const theirs = new Set(
          (module.dependencies ?? []).filter((d) => {
            const at = (d.code ?? d.type)?.span.start;
            // The JSX runtime import that the compiler adds to .tsx files is not in the text.
            return !(d.specifier.endsWith("/jsx-runtime") && at?.line === 0 && at.character === 0);
          }).map((d) => d.specifier),
        );
        const ours = new Set(graph.edges.filter((e) => e.from === file).map((e) => e.specifier));
        for (const s of theirs) if (!ours.has(s)) mismatches.push(`${file}: missed "${s}"`);
        for (const s of ours) if (!theirs.has(s)) mismatches.push(`${file}: invented "${s}"`);
      }
      deepEqual(mismatches, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
