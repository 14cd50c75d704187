/**
 * The architecture rules fed deliberately broken graphs: each rule must fail with the exact
 * message naming the file, line and import (or spawn), and its allowed neighbours must pass.
 */
import { deepEqual } from "node:assert/strict";
import {
  type ImportEdge,
  type ImportGraph,
  resolveRelative,
  type SpawnPermissions,
} from "./_import_graph.ts";
import { checkArchitecture, checkWorkerPermissions } from "./_architecture_rules.ts";

const IMPORT_MAP_KEYS = ["@preact/signals", "preact", "preact/", "yaml", "zod"];

/** `[from, specifier, line]`, optionally type-only. */
type EdgeSpec = [from: string, specifier: string, line: number, isTypeOnly?: boolean];

function graphOf(
  edges: EdgeSpec[],
  spawns: [file: string, line: number, permissions: SpawnPermissions][] = [],
): ImportGraph {
  const list: ImportEdge[] = edges.map(([from, specifier, line, isTypeOnly = false]) => ({
    from,
    specifier,
    to: resolveRelative(from, specifier),
    line,
    kind: "static",
    isTypeOnly,
  }));
  const files = new Set<string>();
  for (const e of list) {
    files.add(e.from);
    if (e.to !== null) files.add(e.to);
  }
  return {
    files: [...files].sort(),
    edges: list,
    spawns: spawns.map(([file, line, permissions]) => ({ file, line, permissions })),
    problems: [],
    importMapKeys: IMPORT_MAP_KEYS,
  };
}

interface Case {
  name: string;
  edges?: EdgeSpec[];
  spawns?: [string, number, SpawnPermissions][];
  expected: string[];
}

const cases: Case[] = [
  {
    name: "refuses a worker importing another worker's logic",
    edges: [["workers/gateway/app.ts", "../policy/decide.ts", 3]],
    expected: [
      'workers/gateway/app.ts:3 imports "../policy/decide.ts" (workers/policy/decide.ts): a worker may import another worker only through its contract workers/policy/api.ts',
    ],
  },
  {
    name: "allows a worker importing another worker's contract, the kit and policy/",
    edges: [
      ["workers/gateway/mod.ts", "../policy/api.ts", 1],
      ["workers/gateway/mod.ts", "../../runtime/kit/rpc.ts", 2],
      ["workers/registry/mod.ts", "../../policy/evaluate.ts", 3],
      ["workers/gateway/mod.ts", "./app.ts", 4],
    ],
    expected: [],
  },
  {
    name: "refuses a worker importing the supervisor side of runtime/",
    edges: [["workers/policy/mod.ts", "../../runtime/supervisor.ts", 9]],
    expected: [
      'workers/policy/mod.ts:9 imports "../../runtime/supervisor.ts" (runtime/supervisor.ts): workers may import runtime/ only through runtime/kit/',
    ],
  },
  {
    name: "refuses a worker other than the gateway importing routes/",
    edges: [["workers/policy/mod.ts", "../../routes/index.tsx", 4]],
    expected: [
      'workers/policy/mod.ts:4 imports "../../routes/index.tsx" (routes/index.tsx): workers may import only their own folder, runtime/kit/, policy/ and workers/*/api.ts',
    ],
  },
  {
    name: "allows the gateway worker importing the routes and islands it serves",
    edges: [
      ["workers/gateway/app.ts", "../../routes/_manifest.ts", 35],
      ["workers/gateway/render.tsx", "../../islands/hydration.ts", 12],
    ],
    expected: [],
  },
  {
    name: "refuses ffi/ imported by a worker outside jobs/",
    edges: [["workers/registry/scan.ts", "../../ffi/libc.ts", 7]],
    expected: [
      'workers/registry/scan.ts:7 imports "../../ffi/libc.ts" (ffi/libc.ts): ffi/ may be imported only from ffi/, runtime/sandbox/ and workers/*/jobs/',
    ],
  },
  {
    name: "refuses ffi/ imported by the supervisor side of runtime/",
    edges: [["runtime/cli.ts", "../ffi/seccomp.ts", 2]],
    expected: [
      'runtime/cli.ts:2 imports "../ffi/seccomp.ts" (ffi/seccomp.ts): ffi/ may be imported only from ffi/, runtime/sandbox/ and workers/*/jobs/',
    ],
  },
  {
    name: "allows ffi/ imported by jobs, the sandbox launcher and ffi/ itself",
    edges: [
      ["workers/registry/jobs/scan.ts", "../../../ffi/libc.ts", 1],
      ["runtime/sandbox/launcher.ts", "../../ffi/landlock.ts", 2],
      ["ffi/landlock.ts", "./libc.ts", 3],
    ],
    expected: [],
  },
  {
    name: "refuses a worker importing its own job module",
    edges: [["workers/registry/mod.ts", "./jobs/scan.ts", 5]],
    expected: [
      'workers/registry/mod.ts:5 imports "./jobs/scan.ts" (workers/registry/jobs/scan.ts): job modules run only in the sandbox; name them in the manifest instead of importing them',
    ],
  },
  {
    name: "refuses an island importing server code",
    edges: [["islands/LiveControls.tsx", "../workers/gateway/state.ts", 6, true]],
    expected: [
      'islands/LiveControls.tsx:6 imports "../workers/gateway/state.ts" (workers/gateway/state.ts): islands may import only preact, preact/*, @preact/signals and other islands',
    ],
  },
  {
    name: "refuses an island importing a package other than preact",
    edges: [
      ["islands/client.ts", "zod", 2],
      ["islands/client.ts", "node:fs", 3],
    ],
    expected: [
      'islands/client.ts:2 imports "zod": islands may import only preact, preact/*, @preact/signals and other islands',
      'islands/client.ts:3 imports "node:fs": islands may import only preact, preact/*, @preact/signals and other islands',
    ],
  },
  {
    name: "allows an island importing preact, preact/hooks, signals and islands",
    edges: [
      ["islands/client.ts", "preact", 1],
      ["islands/client.ts", "preact/hooks", 2],
      ["islands/client.ts", "@preact/signals", 3],
      ["islands/client.ts", "./hydration.ts", 4],
    ],
    expected: [],
  },
  {
    name: "refuses ffi/ and policy/ importing our code outside their folder",
    edges: [
      ["ffi/libc.ts", "../runtime/kit/errors.ts", 4],
      ["policy/evaluate.ts", "../workers/policy/api.ts", 5],
    ],
    expected: [
      'ffi/libc.ts:4 imports "../runtime/kit/errors.ts" (runtime/kit/errors.ts): ffi/ must not import our code outside ffi/',
      'policy/evaluate.ts:5 imports "../workers/policy/api.ts" (workers/policy/api.ts): policy/ must not import our code outside policy/',
    ],
  },
  {
    name: "refuses the worker kit importing the supervisor side",
    edges: [["runtime/kit/rpc.ts", "../log.ts", 8]],
    expected: [
      'runtime/kit/rpc.ts:8 imports "../log.ts" (runtime/log.ts): runtime/kit/ must not import our code outside runtime/kit/',
    ],
  },
  {
    name: "refuses a route importing the supervisor or a worker's logic",
    edges: [
      ["routes/index.tsx", "../runtime/supervisor.ts", 3],
      ["routes/api/v1/decide.ts", "../../../workers/policy/decide.ts", 4],
    ],
    expected: [
      'routes/api/v1/decide.ts:4 imports "../../../workers/policy/decide.ts" (workers/policy/decide.ts): routes may import only runtime/kit/, workers/*/api.ts, workers/gateway/, routes/ and islands/',
      'routes/index.tsx:3 imports "../runtime/supervisor.ts" (runtime/supervisor.ts): routes may import only runtime/kit/, workers/*/api.ts, workers/gateway/, routes/ and islands/',
    ],
  },
  {
    name: "allows a route importing the kit, contracts, the gateway, routes and islands",
    edges: [
      ["routes/index.tsx", "../runtime/kit/errors.ts", 1],
      ["routes/index.tsx", "../workers/policy/api.ts", 2],
      ["routes/index.tsx", "../workers/gateway/routing.ts", 3],
      ["routes/index.tsx", "./_layout.tsx", 4],
      ["routes/index.tsx", "../islands/LiveControls.tsx", 5],
    ],
    expected: [],
  },
  {
    name: "refuses the supervisor side importing a worker's logic",
    edges: [["runtime/supervisor.ts", "../workers/audit/store.ts", 12]],
    expected: [
      'runtime/supervisor.ts:12 imports "../workers/audit/store.ts" (workers/audit/store.ts): workers are spawned by URL, never imported; import only workers/audit/api.ts',
    ],
  },
  {
    name: "refuses product code importing tests",
    edges: [["runtime/cli.ts", "../tests/_system.ts", 6]],
    expected: [
      'runtime/cli.ts:6 imports "../tests/_system.ts" (tests/_system.ts): product code must not import tests',
    ],
  },
  {
    name: "exempts tests from the layering rules",
    edges: [
      ["tests/sandbox_test.ts", "../ffi/libc.ts", 1],
      ["workers/gateway/app_test.ts", "../policy/decide.ts", 2],
      ["tests/bench/runtime_bench.ts", "../../runtime/supervisor.ts", 3],
    ],
    expected: [],
  },
  {
    name: "refuses jsr:, https:, inline npm:, unmapped, absolute and escaping specifiers",
    edges: [
      ["tests/x_test.ts", "jsr:@std/assert", 1],
      ["tests/x_test.ts", "https://deno.land/std/assert/mod.ts", 2],
      ["runtime/a.ts", "npm:zod@3.25.76", 3],
      ["runtime/a.ts", "lodash", 4],
      ["runtime/a.ts", "/etc/secai.ts", 5],
      ["runtime/a.ts", "../../shared/examples/sandbox/boot.ts", 6],
    ],
    expected: [
      'runtime/a.ts:3 imports "npm:zod@3.25.76": inline npm: specifiers are not allowed; map the package in import_map.json',
      'runtime/a.ts:4 imports "lodash": import_map.json does not map it',
      'runtime/a.ts:5 imports "/etc/secai.ts": absolute paths are not allowed; use a relative specifier',
      'runtime/a.ts:6 imports "../../shared/examples/sandbox/boot.ts" (../shared/examples/sandbox/boot.ts): it lies outside the project',
      'tests/x_test.ts:1 imports "jsr:@std/assert": jsr: specifiers are not allowed (only npm packages mapped in import_map.json)',
      'tests/x_test.ts:2 imports "https://deno.land/std/assert/mod.ts": https: specifiers are not allowed (only npm packages mapped in import_map.json)',
    ],
  },
  {
    name: "reports an import cycle as its path",
    edges: [
      ["runtime/a.ts", "./b.ts", 1],
      ["runtime/b.ts", "./c.ts", 2],
      ["runtime/c.ts", "./a.ts", 3, true],
      ["runtime/c.ts", "./d.ts", 4],
    ],
    expected: [
      "Import cycle: runtime/a.ts:1 → runtime/b.ts:2 → runtime/c.ts:3 → runtime/a.ts",
    ],
  },
  {
    name: "reports a module importing itself as a cycle",
    edges: [["workers/audit/store.ts", "./store.ts", 8]],
    expected: ["Import cycle: workers/audit/store.ts:8 → workers/audit/store.ts"],
  },
  {
    name: "reports a cycle through tests too",
    edges: [
      ["tests/_system.ts", "./supervisor_test.ts", 2],
      ["tests/supervisor_test.ts", "./_system.ts", 6],
    ],
    expected: [
      "Import cycle: tests/_system.ts:2 → tests/supervisor_test.ts:6 → tests/_system.ts",
    ],
  },
  {
    name: "refuses a worker spawn with inherit",
    spawns: [["runtime/supervisor.ts", 332, "inherit"]],
    expected: [
      'runtime/supervisor.ts:332 spawns a Worker with permissions "inherit": pass permissions: toWorkerPermissions(grant)',
    ],
  },
  {
    name: "refuses a worker spawn without permissions or with unverifiable ones",
    spawns: [
      ["runtime/supervisor.ts", 10, "missing"],
      ["runtime/supervisor.ts", 20, "other"],
    ],
    expected: [
      "runtime/supervisor.ts:10 spawns a Worker without permissions (it inherits every permission): pass permissions: toWorkerPermissions(grant)",
      "runtime/supervisor.ts:20 spawns a Worker with permissions that do not come from toWorkerPermissions(): pass permissions: toWorkerPermissions(grant)",
    ],
  },
  {
    name: "refuses a worker spawn outside the supervisor",
    spawns: [["workers/agent/step.ts", 40, "toWorkerPermissions"]],
    expected: [
      "workers/agent/step.ts:40 spawns a Worker: only runtime/supervisor.ts may spawn workers",
    ],
  },
  {
    name: "allows a CLI module importing a worker's offline/ folder",
    edges: [
      ["runtime/cli_audit.ts", "../workers/audit/offline/verify.ts", 3],
      ["workers/audit/offline/verify.ts", "./merkle.ts", 4],
      ["workers/audit/offline/merkle.ts", "node:crypto", 5],
      ["workers/audit/api.ts", "./offline/format.ts", 6],
    ],
    expected: [],
  },
  {
    name: "refuses a worker's offline/ folder to anything in runtime/ but the CLI modules",
    edges: [
      ["runtime/supervisor.ts", "../workers/audit/offline/verify.ts", 7],
      ["runtime/cli.ts", "../workers/audit/log.ts", 8],
    ],
    expected: [
      'runtime/supervisor.ts:7 imports "../workers/audit/offline/verify.ts" (workers/audit/offline/verify.ts): workers are spawned by URL, never imported; import only workers/audit/api.ts',
      'runtime/cli.ts:8 imports "../workers/audit/log.ts" (workers/audit/log.ts): workers are spawned by URL, never imported; import only workers/audit/api.ts',
    ],
  },
  {
    name: "refuses an offline/ module importing code outside its folder",
    edges: [
      ["workers/audit/offline/read.ts", "../log.ts", 9],
      ["workers/audit/offline/read.ts", "../../../runtime/kit/fs.ts", 10],
    ],
    expected: [
      'workers/audit/offline/read.ts:9 imports "../log.ts" (workers/audit/log.ts): workers/audit/offline/ must not import our code outside workers/audit/offline/',
      'workers/audit/offline/read.ts:10 imports "../../../runtime/kit/fs.ts" (runtime/kit/fs.ts): workers/audit/offline/ must not import our code outside workers/audit/offline/',
    ],
  },
  {
    name: "allows the supervisor's spawn through toWorkerPermissions() and spawns in tests",
    spawns: [
      ["runtime/supervisor.ts", 332, "toWorkerPermissions"],
      ["tests/bench/runtime_bench.ts", 14, "missing"],
      ["runtime/kit/worker_test.ts", 5, "inherit"],
    ],
    expected: [],
  },
];

for (const c of cases) {
  Deno.test(`checkArchitecture() ${c.name}`, () => {
    const graph = graphOf(c.edges ?? [], c.spawns ?? []);
    deepEqual(checkArchitecture(graph).map((v) => v.message).sort(), [...c.expected].sort());
  });
}

Deno.test("checkArchitecture() reports what the reader could not turn into edges", () => {
  const graph = graphOf([]);
  graph.problems.push({
    file: "runtime/load.ts",
    line: 4,
    message: "a dynamic import with a computed specifier cannot be checked",
  });
  deepEqual(checkArchitecture(graph).map((v) => v.message), [
    "runtime/load.ts:4 a dynamic import with a computed specifier cannot be checked",
  ]);
});

const COMPLETE: Record<string, unknown> = {
  env: false,
  ffi: false,
  import: false,
  net: ["127.0.0.1:8480"],
  read: ["/var/lib/secai/audit"],
  run: false,
  sys: false,
  write: false,
};

const permissionCases: { name: string; permissions: unknown; expected: string[] }[] = [
  { name: "accepts a complete scoped grant", permissions: COMPLETE, expected: [] },
  {
    name: 'refuses "inherit"',
    permissions: "inherit",
    expected: ['Control "policy" is granted "inherit"'],
  },
  {
    name: "refuses a grant that is not an object",
    permissions: "none",
    expected: ['Control "policy" is granted "none", not a permission object'],
  },
  {
    name: "refuses run",
    permissions: { ...COMPLETE, run: ["/usr/bin/curl"] },
    expected: ['Control "policy" is granted "run" ["/usr/bin/curl"]; it must be false'],
  },
  {
    name: "refuses all of ffi",
    permissions: { ...COMPLETE, ffi: true },
    expected: ['Control "policy" is granted all of "ffi"'],
  },
  {
    name: "refuses an unscoped read",
    permissions: { ...COMPLETE, read: true },
    expected: ['Control "policy" is granted all of "read"'],
  },
  {
    name: "refuses an inherited key",
    permissions: { ...COMPLETE, net: "inherit" },
    expected: ['Control "policy" inherits "net"'],
  },
  {
    name: "refuses an unset key",
    permissions: { ...COMPLETE, sys: undefined },
    expected: ['Control "policy" leaves "sys" unset (it would be inherited)'],
  },
  {
    name: 'refuses an "all" key',
    permissions: { ...COMPLETE, all: true },
    expected: ['Control "policy" is granted unknown permission "all"'],
  },
];

for (const c of permissionCases) {
  Deno.test(`checkWorkerPermissions() ${c.name}`, () => {
    deepEqual(checkWorkerPermissions("policy", c.permissions), c.expected);
  });
}
