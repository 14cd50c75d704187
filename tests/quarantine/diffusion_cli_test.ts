/**
 * `secai scan DIR` and `secai import DIR` as a user runs them: the real CLI process, the real
 * sandboxed jobs. A directory is one line of format `diffusion-directory` whose findings name
 * the relative file; an import runs the pipeline and is refused promotion as a local
 * directory; what cannot be sent (a link) is refused before anything is.
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import {
  copyDirectory,
  DirectoryImportError,
  planDirectoryImport,
} from "../../runtime/cli_import_dir.ts";
import { digestTree } from "../../runtime/kit/tree.ts";
import { secai } from "../_cli.ts";
import { removeDiffusion, writeBenignDiffusion } from "./_diffusion.ts";
import { benignSafetensors } from "./_system.ts";

Deno.test("secai scan prints one clean diffusion-directory line for a benign directory, in argument order", async () => {
  const root = await writeBenignDiffusion("cli-sd");
  const file = `${root}/../weights.safetensors`;
  await Deno.writeFile(file, benignSafetensors());
  try {
    const out = await secai(["scan", "--json", root, file]);
    equal(out.code, 0, out.stdout + out.stderr);
    const lines = out.stdout.trim().split("\n").map((l) => JSON.parse(l));
    deepEqual(lines.map((l) => [l.file, l.format, l.verdict]), [
      [root, "diffusion-directory", "clean"],
      [file, "safetensors", "clean"],
    ]);
  } finally {
    await removeDiffusion(root);
  }
});

Deno.test("secai scan names the relative file of every finding in a malformed directory", async () => {
  const root = await writeBenignDiffusion("bad-sd");
  try {
    await Deno.symlink("/etc/passwd", `${root}/vae/passwd.json`);
    await Deno.writeTextFile(`${root}/vae/config.json`, '{"weights": "https://evil.example/x"}');
    await Deno.writeTextFile(`${root}/unet.py`, "import os\n");
    await Deno.remove(`${root}/transformer`, { recursive: true });
    const out = await secai(["scan", "--json", root]);
    equal(out.code, 1, out.stderr);
    const line = JSON.parse(out.stdout.trim());
    equal(line.format, "diffusion-directory");
    equal(line.verdict, "threat");
    const found = new Set(
      line.findings.map((f: { rule: string; member?: string }) => `${f.rule} ${f.member}`),
    );
    for (
      const expected of [
        "diffusion.link vae/passwd.json",
        "diffusion.url vae/config.json",
        "diffusion.suffix_not_allowed unet.py",
        "diffusion.component_missing transformer",
      ]
    ) {
      ok(found.has(expected), `${expected} missing from ${[...found].join(", ")}`);
    }
    const text = await secai(["scan", root]);
    equal(text.code, 1);
    match(text.stdout, /: threat \(diffusion-directory, \d+ ms\)/);
    match(text.stdout, /\[critical\] diffusion\.link \(member vae\/passwd\.json\)/);
  } finally {
    await removeDiffusion(root);
  }
});

Deno.test("secai import DIR runs the pipeline and reports the local directory as not promoted", async () => {
  const home = await Deno.makeTempDir({ prefix: "secai-cli-diffusion-" });
  const root = await writeBenignDiffusion("import-sd");
  try {
    const out = await secai(["import", root, "--home", home, "--json"]);
    equal(out.code, 1, out.stderr);
    const result = JSON.parse(out.stdout);
    equal(result.format, "diffusion-directory");
    equal(result.state, "rejected");
    equal(result.error.code, "PROMOTION_DENIED");
    equal(result.decision.rule, "models.diffusion_directory_pin");
    match(result.sha256, /^[0-9a-f]{64}$/);

    await Deno.symlink("../model_index.json", `${root}/vae/index.json`);
    const refused = await secai(["import", root, "--home", home]);
    equal(refused.code, 1);
    match(refused.stderr, /cannot import ".*import-sd": "vae\/index\.json" is a symbolic link/);
    equal(refused.stdout, "");
  } finally {
    await removeDiffusion(root);
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("planDirectoryImport() and copyDirectory() copy a directory as the inbox takes it", async () => {
  const root = await writeBenignDiffusion("copy-sd");
  const copy = `${root}-copy`;
  try {
    await Deno.mkdir(`${root}/vae/empty`);
    const plan = await planDirectoryImport(root);
    equal(plan.files.length, 16);
    ok(plan.directories.includes("vae/empty"));
    await copyDirectory(plan, copy);
    equal((await digestTree(copy)).sha256, (await digestTree(root)).sha256);
    ok((await Deno.stat(`${copy}/vae/empty`)).isDirectory);
  } finally {
    await removeDiffusion(root);
  }
});

const UNSENDABLE: [string, (root: string) => Promise<void>, RegExp][] = [
  ["a link", (root) => Deno.symlink("/etc", `${root}/etc`), /"etc" is a symbolic link/],
  [
    "a name with a space",
    (root) => Deno.writeTextFile(`${root}/vae/a b.json`, "{}"),
    /"vae\/a b\.json" is not a path of bare names/,
  ],
  [
    "a hidden file",
    (root) => Deno.writeTextFile(`${root}/.gitattributes`, ""),
    /"\.gitattributes" is not a path of bare names/,
  ],
];

for (const [name, make, why] of UNSENDABLE) {
  Deno.test(`planDirectoryImport() refuses a directory with ${name}, naming the path`, async () => {
    const root = await writeBenignDiffusion("unsendable-sd");
    try {
      await make(root);
      await rejects(
        planDirectoryImport(root),
        (e: unknown) => e instanceof DirectoryImportError && why.test(e.message),
      );
    } finally {
      await removeDiffusion(root);
    }
  });
}
