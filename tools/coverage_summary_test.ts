import { deepEqual, equal, throws } from "node:assert/strict";
import { formatCoverage, summarizeLcov } from "./coverage_summary.ts";

const LCOV = [
  "SF:/p/runtime/a.ts",
  "FN:1,f",
  "DA:1,3",
  "BRF:4",
  "BRH:3",
  "LH:8",
  "LF:10",
  "end_of_record",
  "SF:file:///p/runtime/kit/b.ts",
  "LH:2",
  "LF:10",
  "end_of_record",
  "SF:/p/workers/audit/mod.ts",
  "LH:5",
  "LF:5",
  "end_of_record",
  "SF:/p/tests/_system.ts",
  "LH:1",
  "LF:100",
  "end_of_record",
  "",
].join("\n");

const SOURCES = [
  "runtime/a.ts",
  "runtime/kit/b.ts",
  "runtime/c.ts",
  "workers/audit/mod.ts",
  "ffi/libc.ts",
];

Deno.test("summarizeLcov() sums lines and branches per top-level folder and counts loaded files", () => {
  const rows = summarizeLcov(LCOV, { root: "/p", sourceFiles: SOURCES });
  deepEqual(
    rows.map((
      r,
    ) => [
      r.folder,
      r.linesHit,
      r.linesFound,
      r.branchesHit,
      r.branchesFound,
      r.filesLoaded,
      r.files,
    ]),
    [
      ["runtime/", 10, 20, 3, 4, 2, 3],
      ["workers/", 5, 5, 0, 0, 1, 1],
      ["routes/", 0, 0, 0, 0, 0, 0],
      ["islands/", 0, 0, 0, 0, 0, 0],
      ["ffi/", 0, 0, 0, 0, 0, 1],
      ["policy/", 0, 0, 0, 0, 0, 0],
      ["total", 15, 25, 3, 4, 3, 5],
    ],
  );
});

Deno.test("formatCoverage() prints one aligned row per folder", () => {
  const text = formatCoverage(summarizeLcov(LCOV, { root: "/p", sourceFiles: SOURCES }));
  const lines = text.split("\n");
  equal(lines[0], "coverage by folder (no threshold):");
  equal(lines[1], "  folder     lines  (hit/found)  branches  files loaded");
  equal(lines[2], "  runtime/   50.0%        10/20     75.0%           2/3");
  equal(lines[6], "  ffi/           -          0/0         -           0/1");
  equal(lines[8], "  total      60.0%        15/25     75.0%           3/5");
});

const broken: { name: string; lcov: string; message: string }[] = [
  {
    name: "a malformed count",
    lcov: "SF:/p/runtime/a.ts\nLH:x\nend_of_record\n",
    message: 'Invalid LCOV line "LH:x"',
  },
  {
    name: "a record without its end",
    lcov: "SF:/p/runtime/a.ts\nLH:1\n",
    message: 'LCOV record for "runtime/a.ts" has no end_of_record',
  },
];

for (const c of broken) {
  Deno.test(`summarizeLcov() refuses ${c.name}`, () => {
    throws(() => summarizeLcov(c.lcov, { root: "/p", sourceFiles: [] }), {
      name: "SyntaxError",
      message: c.message,
    });
  });
}
