import { deepEqual, equal } from "node:assert/strict";
import { MAX_LINK_HOPS, type PathOp, WorkspaceResolver } from "./resolve.ts";

/** A workspace under a temp dir, with a sibling folder outside it. */
async function tree(): Promise<{ base: string; root: string; dispose(): Promise<void> }> {
  const base = await Deno.realPath(await Deno.makeTempDir({ prefix: "secai-resolve-" }));
  const root = `${base}/ws`;
  await Deno.mkdir(`${root}/docs`, { recursive: true });
  await Deno.mkdir(`${base}/outside`);
  await Deno.writeTextFile(`${root}/docs/a.txt`, "a");
  await Deno.writeTextFile(`${base}/outside/s.txt`, "s");
  return { base, root, dispose: () => Deno.remove(base, { recursive: true }) };
}

function ruleOf(resolver: WorkspaceResolver, path: string, op: PathOp): string {
  const r = resolver.resolve(path.split("/"), op);
  return r.ok ? `ok:${r.kind}:${r.real}` : r.rule;
}

const isRoot = Deno.uid() === 0;

async function run(cmd: string, args: string[]): Promise<void> {
  const { code } = await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
  if (code !== 0) throw new Error(`${cmd} failed`);
}

Deno.test("WorkspaceResolver refuses a FIFO without opening it", async () => {
  const t = await tree();
  try {
    await run("mkfifo", [`${t.root}/docs/pipe`]);
    equal(ruleOf(new WorkspaceResolver(t.root), "docs/pipe", "read"), "path.fs.special");
    equal(ruleOf(new WorkspaceResolver(t.root), "docs/pipe", "write"), "path.fs.special");
  } finally {
    await t.dispose();
  }
});

Deno.test("WorkspaceResolver refuses a unix socket", async () => {
  const t = await tree();
  const listener = Deno.listen({ transport: "unix", path: `${t.root}/docs/sock` });
  try {
    equal(ruleOf(new WorkspaceResolver(t.root), "docs/sock", "read"), "path.fs.special");
  } finally {
    listener.close();
    await t.dispose();
  }
});

Deno.test({
  name: "WorkspaceResolver refuses a character device inside the workspace",
  ignore: !isRoot, // mknod needs root; CI runs as root
  async fn() {
    const t = await tree();
    try {
      await run("mknod", [`${t.root}/docs/null`, "c", "1", "3"]);
      equal(ruleOf(new WorkspaceResolver(t.root), "docs/null", "read"), "path.fs.special");
    } finally {
      await t.dispose();
    }
  },
});

Deno.test({
  name: "WorkspaceResolver refuses a path that crosses into another filesystem",
  ignore: !isRoot, // mounting a tmpfs needs root; CI runs as root
  async fn() {
    const t = await tree();
    const mountPoint = `${t.root}/docs/mnt`;
    await Deno.mkdir(mountPoint);
    await run("mount", ["-t", "tmpfs", "-o", "size=1m", "none", mountPoint]);
    try {
      await Deno.writeTextFile(`${mountPoint}/x.txt`, "x");
      equal(ruleOf(new WorkspaceResolver(t.root), "docs/mnt/x.txt", "read"), "path.fs.mount");
      equal(ruleOf(new WorkspaceResolver(t.root), "docs/a.txt", "read"), "ok:file:docs/a.txt");
    } finally {
      await run("umount", [mountPoint]);
      await t.dispose();
    }
  },
});

Deno.test("WorkspaceResolver refuses a workspace inside /proc", () => {
  equal(ruleOf(new WorkspaceResolver("/proc/self"), "status", "read"), "path.fs.system");
});

Deno.test("WorkspaceResolver refuses every path while the workspace does not exist, then finds it", async () => {
  const t = await tree();
  try {
    const resolver = new WorkspaceResolver(`${t.base}/later`);
    equal(ruleOf(resolver, "docs/a.txt", "read"), "path.fs.no_workspace");
    await Deno.rename(t.root, `${t.base}/later`);
    equal(ruleOf(resolver, "docs/a.txt", "read"), "ok:file:docs/a.txt");
  } finally {
    await t.dispose();
  }
});

Deno.test("WorkspaceResolver resolves against the real path of a symlinked workspace root", async () => {
  const t = await tree();
  try {
    await Deno.symlink(t.root, `${t.base}/alias`);
    await Deno.symlink(`${t.root}/docs/a.txt`, `${t.root}/docs/abs`);
    const resolver = new WorkspaceResolver(`${t.base}/alias`);
    equal(ruleOf(resolver, "docs/abs", "read"), "ok:file:docs/a.txt");
  } finally {
    await t.dispose();
  }
});

Deno.test("WorkspaceResolver follows a chain of links up to the limit and refuses one more", async () => {
  const t = await tree();
  try {
    // l0 → l1 → … → l{n-1} → a.txt: n links followed.
    const chain = async (prefix: string, n: number) => {
      for (let i = 0; i < n; i++) {
        await Deno.symlink(
          i === n - 1 ? "a.txt" : `${prefix}${i + 1}`,
          `${t.root}/docs/${prefix}${i}`,
        );
      }
    };
    await chain("ok", MAX_LINK_HOPS);
    await chain("long", MAX_LINK_HOPS + 1);
    const resolver = new WorkspaceResolver(t.root);
    equal(ruleOf(resolver, "docs/ok0", "read"), "ok:file:docs/a.txt");
    equal(ruleOf(resolver, "docs/long0", "read"), "path.fs.symlink_loop");
  } finally {
    await t.dispose();
  }
});

Deno.test("WorkspaceResolver never looks at the target of an outside link", async () => {
  const t = await tree();
  try {
    // The target does not exist: if it were looked at, the rule would be "dangling".
    await Deno.symlink(`${t.base}/outside/missing.txt`, `${t.root}/docs/out`);
    equal(ruleOf(new WorkspaceResolver(t.root), "docs/out", "read"), "path.fs.symlink_outside");
  } finally {
    await t.dispose();
  }
});

Deno.test("WorkspaceResolver reports the links it followed", async () => {
  const t = await tree();
  try {
    await Deno.symlink("docs", `${t.root}/d`);
    deepEqual(new WorkspaceResolver(t.root).resolve(["d", "a.txt"], "read"), {
      ok: true,
      real: "docs/a.txt",
      kind: "file",
      links: 1,
    });
  } finally {
    await t.dispose();
  }
});
