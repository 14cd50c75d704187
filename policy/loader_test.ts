import { equal, match, ok, rejects } from "node:assert/strict";
import { PolicyLoadError } from "./errors.ts";
import { DEFAULTS_DIR, loadPolicy, readPolicyFile, readPolicySources } from "./loader.ts";

const POLICY = Deno.readTextFileSync(`${DEFAULTS_DIR}/policy.yaml`);

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "secai-policy-loader-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("readPolicySources() takes an override over the shipped default, file by file", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/policy.yaml`,
      POLICY.replace("enabled: false", "enabled: true"),
    );
    const sources = await readPolicySources({ defaultsDir: DEFAULTS_DIR, overrideDir: dir });
    equal(sources[0]?.origin, "override");
    equal(sources[0]?.path, `${dir}/policy.yaml`);
    equal(sources[1]?.origin, "default");
    equal(
      (await loadPolicy({ defaultsDir: DEFAULTS_DIR, overrideDir: dir })).egress.isAirlockEnabled,
      true,
    );
  });
});

Deno.test("readPolicyFile() returns null for a missing file", async () => {
  await withDir(async (dir) => equal(await readPolicyFile(`${dir}/policy.yaml`), null));
});

const unusable: { name: string; make: (path: string) => Promise<void>; reason: RegExp }[] = [
  {
    name: "a symbolic link",
    make: async (p) => await Deno.symlink(`${DEFAULTS_DIR}/policy.yaml`, p),
    reason: /symbolic link/,
  },
  {
    name: "a group-writable file",
    make: async (p) => {
      await Deno.writeTextFile(p, POLICY);
      await Deno.chmod(p, 0o664);
    },
    reason: /writable by group or others/,
  },
  {
    name: "a world-writable file",
    make: async (p) => {
      await Deno.writeTextFile(p, POLICY);
      await Deno.chmod(p, 0o646);
    },
    reason: /writable by group or others/,
  },
  {
    name: "a file over 1 MiB",
    make: async (p) => await Deno.writeTextFile(p, `# ${"x".repeat(1024 * 1024)}\n`),
    reason: /larger than/,
  },
  {
    name: "a file that is not UTF-8",
    make: async (p) => await Deno.writeFile(p, new Uint8Array([0x76, 0x3a, 0xff, 0xfe])),
    reason: /not UTF-8/,
  },
  {
    name: "a folder",
    make: async (p) => await Deno.mkdir(p),
    reason: /not a regular file/,
  },
];
for (const u of unusable) {
  Deno.test(`readPolicyFile() refuses ${u.name}`, async () => {
    await withDir(async (dir) => {
      const path = `${dir}/policy.yaml`;
      await u.make(path);
      await rejects(readPolicyFile(path), (err: unknown) => {
        ok(err instanceof PolicyLoadError);
        equal(err.code, "POLICY_UNREADABLE");
        match(err.reason, u.reason);
        return true;
      });
    });
  });
}

Deno.test("readPolicySources() refuses when a shipped default is missing", async () => {
  await withDir(async (dir) => {
    await rejects(readPolicySources({ defaultsDir: dir, overrideDir: null }), (err: unknown) => {
      ok(err instanceof PolicyLoadError);
      match(err.reason, /shipped default is missing/);
      return true;
    });
  });
});
