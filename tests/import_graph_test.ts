/**
 * The graph reader's lexer: it must find every import and worker spawn of real code and none
 * hidden in comments, strings, templates, regular expressions or JSX text.
 */
import { deepEqual } from "node:assert/strict";
import {
  type ImportKind,
  resolveRelative,
  scanModule,
  type SpawnPermissions,
} from "./_import_graph.ts";

interface Case {
  name: string;
  source: string;
  isJsx?: boolean;
  /** `specifier@line` with ` dynamic`, ` reexport` and ` type` markers. */
  imports?: string[];
  spawns?: `${number} ${SpawnPermissions}`[];
  problems?: string[];
}

const cases: Case[] = [
  {
    name: "finds named, default, namespace, side-effect and combined imports",
    source: [
      'import { a, b as c } from "./a.ts";',
      "import d from './d.ts';",
      'import * as e from "./e.ts";',
      'import "./f.ts";',
      'import g, { h } from "./g.ts";',
      'import i, * as j from "./i.ts";',
    ].join("\n"),
    imports: ["./a.ts@1", "./d.ts@2", "./e.ts@3", "./f.ts@4", "./g.ts@5", "./i.ts@6"],
  },
  {
    name: "marks type-only imports and re-exports",
    source: [
      'import type { A } from "./a.ts";',
      'import type B from "./b.ts";',
      'import type from "./c.ts";',
      'import { type D } from "./d.ts";',
      'export type { E } from "./e.ts";',
    ].join("\n"),
    imports: ["./a.ts@1 type", "./b.ts@2 type", "./c.ts@3", "./d.ts@4", "./e.ts@5 reexport type"],
  },
  {
    name: "finds re-exports but not local exports",
    source: [
      'export * from "./a.ts";',
      'export * as b from "./b.ts";',
      'export { c, d as e } from "./c.ts";',
      "export { f };",
      "export const from = 1;",
      "export default function g() {}",
    ].join("\n"),
    imports: ["./a.ts@1 reexport", "./b.ts@2 reexport", "./c.ts@3 reexport"],
  },
  {
    name: "reads a multi-line import clause at the specifier's line",
    source: 'import {\n  a,\n  type b,\n} from "./a.ts";\nimport { z } from "zod";',
    imports: ["./a.ts@4", "zod@5"],
  },
  {
    name: "finds dynamic imports with literal specifiers and reports computed ones",
    source: [
      'const a = await import("./a.ts");',
      "const b = await import(`./b.ts`);",
      'const c = await import("./c.json", { with: { type: "json" } });',
      "const d = await import(`./${name}.ts`);",
      "const e = await import(name);",
    ].join("\n"),
    imports: ["./a.ts@1 dynamic", "./b.ts@2 dynamic", "./c.json@3 dynamic"],
    problems: [
      "4 a dynamic import with a computed specifier cannot be checked",
      "5 a dynamic import with a computed specifier cannot be checked",
    ],
  },
  {
    name: "ignores import.meta, member names and object keys named import",
    source: [
      'const u = new URL("./x.ts", import.meta.url);',
      "const p = { import: false, run: false };",
      "loader.import(name);",
    ].join("\n"),
    imports: [],
  },
  {
    name: "ignores imports inside comments",
    source: [
      '// import { a } from "./a.ts";',
      '/* import b from "./b.ts";',
      '   export * from "./c.ts"; */',
      '/** @example import("./d.ts") */',
      'import { e } from "./e.ts"; // import "./f.ts"',
    ].join("\n"),
    imports: ["./e.ts@5"],
  },
  {
    name: "ignores imports inside strings and templates",
    source: [
      "const a = 'import { x } from \"./a.ts\"';",
      'const b = "import(\\"./b.ts\\")";',
      "const c = `",
      'import { y } from "./c.ts";',
      "export * from '../d.ts';",
      "`;",
      'const d = `${"}"} import("./e.ts") ${`nested ${"`"}`}`;',
      'import { f } from "./f.ts";',
    ].join("\n"),
    imports: ["./f.ts@8"],
  },
  {
    name: "reads code inside template substitutions",
    source: 'const m = `${(await import("./a.ts")).name} and ${`${await import("./b.ts")}`}`;',
    imports: ["./a.ts@1 dynamic", "./b.ts@1 dynamic"],
  },
  {
    name: "ignores quotes and imports inside regular expressions",
    source: [
      "const a = /'/.test(s);",
      'const b = s.replace(/["`]/g, "");',
      'const c = /import("x")\\/[/]/u;',
      "const d = (x) / 2 / (y);",
      "const e = [1] / 3; const f = 'ok';",
      'import { g } from "./g.ts";',
    ].join("\n"),
    imports: ["./g.ts@6"],
  },
  {
    name: "skips JSX text with quotes and import-looking words",
    isJsx: true,
    source: [
      "export function A() {",
      "  return (",
      '    <p title="it\'s" data-x={"import(\\"./no.ts\\")"}>',
      "      Don't import x from 'y'; it's text {`${1}`} and a / slash",
      "      <>fragment's text</>",
      '      {ok && <b>{import("./lazy.tsx")}</b>}',
      "    </p>",
      "  );",
      "}",
      'import { h } from "./h.ts";',
    ].join("\n"),
    imports: ["./lazy.tsx@6 dynamic", "./h.ts@10"],
  },
  {
    name: "reads < as an operator where JSX cannot start",
    isJsx: true,
    source: [
      "const id = <T,>(x: T): T => x;",
      "const s = useSignal<string>('');",
      "if (a < b && c > d) f('x');",
      'import { i } from "./i.ts";',
    ].join("\n"),
    imports: ["./i.ts@4"],
  },
  {
    name: "classifies how a worker spawn passes permissions",
    source: [
      "new Worker(url, { type: 'module', deno: { permissions: toWorkerPermissions(c.granted) } });",
      'new Worker(url, { deno: { permissions: "inherit" } });',
      "new Worker(url, { type: 'module' });",
      "new Worker(url, { deno: { permissions } });",
      "new Worker(url, { deno: { permissions: granted } });",
      "new Worker(url, { ...options });",
      "// new Worker(url, { deno: { permissions: 'inherit' } })",
      "const text = 'new Worker(url)';",
    ].join("\n"),
    spawns: [
      "1 toWorkerPermissions",
      "2 inherit",
      "3 missing",
      "4 other",
      "5 other",
      "6 other",
    ],
  },
  {
    name: "reports a file that ends inside a template",
    source: 'import { a } from "./a.ts";\nconst t = `${x',
    imports: ["./a.ts@1"],
    problems: ["2 the file ends inside a template literal or a brace and cannot be read"],
  },
];

function describeImport(
  i: { specifier: string; line: number; kind: ImportKind; isTypeOnly: boolean },
) {
  return `${i.specifier}@${i.line}${i.kind === "static" ? "" : ` ${i.kind}`}${
    i.isTypeOnly ? " type" : ""
  }`;
}

for (const c of cases) {
  Deno.test(`scanModule() ${c.name}`, () => {
    const scan = scanModule(c.source, { isJsx: c.isJsx ?? false });
    deepEqual(scan.imports.map(describeImport), c.imports ?? []);
    deepEqual(scan.spawns.map((s) => `${s.line} ${s.permissions}`), c.spawns ?? []);
    deepEqual(scan.problems.map((p) => `${p.line} ${p.message}`), c.problems ?? []);
  });
}

const resolveCases: [from: string, specifier: string, expected: string | null][] = [
  ["routes/index.tsx", "../islands/LiveControls.tsx", "islands/LiveControls.tsx"],
  ["workers/gateway/app.ts", "./errors.ts", "workers/gateway/errors.ts"],
  ["runtime/kit/rpc.ts", "./x.ts?raw", "runtime/kit/x.ts"],
  ["tests/a_test.ts", "../../shared/x.ts", "../shared/x.ts"],
  ["runtime/cli.ts", "zod", null],
  ["runtime/cli.ts", "node:path", null],
];

for (const [from, specifier, expected] of resolveCases) {
  Deno.test(`resolveRelative() resolves "${specifier}" from ${from} to ${expected}`, () => {
    deepEqual(resolveRelative(from, specifier), expected);
  });
}
