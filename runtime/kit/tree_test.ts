import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  compareUtf8,
  digestTree,
  TREE_DIGEST_CONTEXT,
  TreeDigestError,
  treeIdentityOf,
  walkTree,
} from "./tree.ts";

const enc = new TextEncoder();

/**
 * The tree hash of spec 13 §6 written out the plain way, independently of tree.ts: collect
 * every regular file recursively, sort the relative paths as UTF-8 byte strings, and hash
 * the whole encoding built in memory.
 */
function referenceTreeHash(root: string): string {
  const files: { path: Uint8Array; data: Uint8Array }[] = [];
  const visit = (dir: string, prefix: string) => {
    for (const entry of Deno.readDirSync(dir)) {
      const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
      if (entry.isDirectory) visit(`${dir}/${entry.name}`, rel);
      else if (entry.isFile) {
        files.push({ path: enc.encode(rel), data: Deno.readFileSync(`${dir}/${entry.name}`) });
      } else throw new Error(`unexpected entry ${rel}`);
    }
  };
  visit(root, "");
  files.sort((a, b) => Buffer.compare(a.path, b.path));
  const parts: Uint8Array[] = [enc.encode("SecAI-Directory-Hash-v1\0")];
  for (const f of files) {
    const header = new Uint8Array(16 + f.path.length);
    const view = new DataView(header.buffer);
    view.setBigUint64(0, BigInt(f.path.length));
    header.set(f.path, 8);
    view.setBigUint64(8 + f.path.length, BigInt(f.data.length));
    parts.push(header, f.data);
  }
  return createHash("sha256").update(Buffer.concat(parts)).digest("hex");
}

async function withTree(
  files: Record<string, string | Uint8Array>,
  fn: (root: string) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "secai-tree-test-" });
  try {
    for (const [path, content] of Object.entries(files)) {
      const at = `${root}/${path}`;
      await Deno.mkdir(at.slice(0, at.lastIndexOf("/")), { recursive: true });
      if (path.endsWith("/")) continue;
      await Deno.writeFile(at, typeof content === "string" ? enc.encode(content) : content);
    }
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const TREE = {
  "model_index.json": '{"_class_name":"P"}',
  "unet/config.json": "{}",
  "unet/diffusion_pytorch_model.safetensors": new Uint8Array(5000).map((_, i) => i % 251),
  "empty.txt": "",
  // UTF-16 order puts U+FF21 after U+1F600's surrogates; UTF-8 byte order puts it before.
  "names/\u{1F600}.txt": "emoji",
  "names/\uFF21.txt": "fullwidth",
  "names/a.txt": "a",
  "names/B.txt": "B",
  "deep/a/b/c/d/e.json": "[]",
  "empty-dir/": "",
};

Deno.test("digestTree() equals a plain implementation of the spec 13 §6 tree hash", async () => {
  await withTree(TREE, async (root) => {
    const digest = await digestTree(root);
    equal(digest.sha256, referenceTreeHash(root));
    equal(digest.files, 9);
    equal(digest.size, 5000 + 19 + 2 + 5 + 9 + 1 + 1 + 2);
    match(digest.identity, /^tree:[0-9a-f]{40}$/);
    equal(TREE_DIGEST_CONTEXT, "SecAI-Directory-Hash-v1\0");
  });
});

Deno.test("digestTree() changes with a byte, a name or a moved file, not with an empty directory", async () => {
  await withTree(TREE, async (root) => {
    const base = (await digestTree(root)).sha256;
    await Deno.mkdir(`${root}/another-empty-dir`);
    equal((await digestTree(root)).sha256, base);
    await Deno.rename(`${root}/names/a.txt`, `${root}/a.txt`);
    const moved = (await digestTree(root)).sha256;
    ok(moved !== base);
    equal(moved, referenceTreeHash(root));
    await Deno.writeTextFile(`${root}/a.txt`, "b");
    const changed = (await digestTree(root)).sha256;
    ok(changed !== moved);
    equal(changed, referenceTreeHash(root));
  });
});

Deno.test("compareUtf8() orders by UTF-8 bytes, not UTF-16 code units", () => {
  ok("\u{1F600}" < "\uFF21");
  ok(compareUtf8("\uFF21", "\u{1F600}") < 0);
  ok(compareUtf8("B", "a") < 0);
  ok(compareUtf8("a", "a/b") < 0);
  equal(compareUtf8("x", "x"), 0);
});

async function mkfifo(path: string): Promise<void> {
  const out = await new Deno.Command("mkfifo", { args: [path] }).output();
  if (!out.success) throw new Error(`mkfifo failed: ${new TextDecoder().decode(out.stderr)}`);
}

const REFUSED: {
  name: string;
  make: (root: string) => Promise<void>;
  code: string;
  /** null: any path (which entry comes past the limit depends on the listing order). */
  path: string | null;
  options?: { maxEntries?: number; maxDepth?: number; maxBytes?: number };
}[] = [
  {
    name: "a symbolic link",
    make: (root) => Deno.symlink("../config.json", `${root}/unet/link.json`),
    code: "LINK",
    path: "unet/link.json",
  },
  {
    name: "a symbolic link to a directory",
    make: (root) => Deno.symlink("/etc", `${root}/etc`),
    code: "LINK",
    path: "etc",
  },
  {
    name: "a hard link",
    make: (root) => Deno.link(`${root}/unet/config.json`, `${root}/hard.json`),
    code: "HARD_LINK",
    path: "hard.json",
  },
  {
    name: "a FIFO",
    make: (root) => mkfifo(`${root}/unet/pipe`),
    code: "SPECIAL_FILE",
    path: "unet/pipe",
  },
  {
    name: "more entries than the limit",
    make: async (root) => {
      for (let i = 0; i < 5; i++) await Deno.writeTextFile(`${root}/f${i}.txt`, "x");
    },
    code: "TOO_MANY_ENTRIES",
    path: null,
    options: { maxEntries: 6 },
  },
  {
    name: "a tree deeper than the limit",
    make: () => Promise.resolve(),
    code: "TOO_DEEP",
    path: "deep/a/b",
    options: { maxDepth: 2 },
  },
  {
    name: "files larger than the limit",
    make: () => Promise.resolve(),
    code: "TOO_LARGE",
    path: "unet/diffusion_pytorch_model.safetensors",
    options: { maxBytes: 4096 },
  },
];

for (const c of REFUSED) {
  Deno.test(`digestTree() refuses ${c.name} with code ${c.code} and the path`, async () => {
    await withTree(TREE, async (root) => {
      await c.make(root);
      const error = await digestTree(root, c.options ?? {}).then(
        () => null,
        (e: unknown) => e,
      );
      ok(error instanceof TreeDigestError, String(error));
      equal(error.code, c.code, error.message);
      if (c.path !== null) equal(error.path, c.path, error.message);
    });
  });
}

Deno.test("digestTree() refuses a root that is not a directory, a link to one included", async () => {
  await withTree(TREE, async (root) => {
    await Deno.symlink(`${root}/unet`, `${root}/link`);
    for (const path of [`${root}/model_index.json`, `${root}/link`]) {
      await rejects(
        digestTree(path),
        (e: unknown) => e instanceof TreeDigestError && e.code === "NOT_A_DIRECTORY",
      );
    }
  });
});

Deno.test("digestTree() fails with CHANGED when a file grows or is replaced while hashing", async () => {
  await withTree(TREE, async (root) => {
    // A file that grows while it is read.
    let grown = false;
    await rejects(
      digestTree(root, {
        onProgress: () => {
          if (grown) return;
          grown = true;
          // The first file in byte order, just read: one byte more than was listed.
          Deno.writeTextFileSync(`${root}/deep/a/b/c/d/e.json`, "[1]");
        },
      }),
      (e: unknown) => e instanceof TreeDigestError && e.code === "CHANGED",
    );
    // A file replaced after the listing: another inode where the listed one was.
    let replaced = false;
    await rejects(
      digestTree(root, {
        onProgress: () => {
          if (replaced) return;
          replaced = true;
          Deno.writeTextFileSync(`${root}/unet/config.json.new`, "{}");
          Deno.renameSync(`${root}/unet/config.json.new`, `${root}/unet/config.json`);
        },
      }),
      (e: unknown) => e instanceof TreeDigestError && e.code === "CHANGED",
    );
    // The tree is hashable again once it stops changing.
    equal((await digestTree(root)).sha256, referenceTreeHash(root));
  });
});

Deno.test("walkTree() lists links and special files without following them, with limits as problems", async () => {
  await withTree(TREE, async (root) => {
    await Deno.symlink("/etc", `${root}/etc`);
    await mkfifo(`${root}/pipe`);
    const walk = await walkTree(root, { maxDepth: 3 });
    const kinds = Object.fromEntries(walk.entries.map((e) => [e.path, e.kind]));
    equal(kinds["etc"], "symlink");
    equal(kinds["pipe"], "other");
    equal(kinds["unet"], "directory");
    equal(kinds["unet/config.json"], "file");
    ok(!walk.entries.some((e) => e.path.startsWith("etc/")), "a link is never followed");
    deepEqual(walk.problems.map((p) => [p.code, p.path]), [["TOO_DEEP", "deep/a/b/c"]]);
    deepEqual(
      walk.entries.map((e) => e.path),
      [...walk.entries.map((e) => e.path)].sort(compareUtf8),
    );
    equal(
      treeIdentityOf(walk.entries),
      treeIdentityOf((await walkTree(root, { maxDepth: 3 })).entries),
    );
    const long = await walkTree(root, { maxPathBytes: 12 });
    ok(long.problems.some((p) => p.code === "PATH_TOO_LONG" && p.path === "unet/config.json"));
  });
});
