import { deepEqual, equal } from "node:assert/strict";
import { checkPathLexical, compilePathPattern, matchesPattern, PATH_LIMITS } from "./path_gate.ts";

const ruleOf = (p: string) => {
  const r = checkPathLexical(p);
  return r.ok ? null : r.failure.rule;
};

const cases: { name: string; path: string; rule: string | null }[] = [
  { name: "accepts a plain relative path", path: "user_docs/notes/a.txt", rule: null },
  { name: "accepts non-ASCII letters", path: "user_docs/café/日本.txt", rule: null },
  { name: "accepts a literal percent sign", path: "user_docs/100%.txt", rule: null },
  { name: "accepts a dot inside a name", path: "user_docs/.hidden/a.tar.gz", rule: null },
  {
    name: "accepts a segment at the byte limit",
    path: `a/${"x".repeat(PATH_LIMITS.maxSegmentBytes)}`,
    rule: null,
  },
  {
    name: "refuses a segment over the byte limit",
    path: `a/${"x".repeat(PATH_LIMITS.maxSegmentBytes + 1)}`,
    rule: "path.segment_length",
  },
  {
    name: "counts a segment's bytes, not its characters",
    path: `a/${"é".repeat(128)}`,
    rule: "path.segment_length",
  },
  {
    name: "refuses a path over the byte limit",
    path: `${"abcdefg/".repeat(512)}x`,
    rule: "path.length",
  },
  {
    name: "refuses more segments than the limit",
    path: Array(PATH_LIMITS.maxSegments + 1).fill("a").join("/"),
    rule: "path.length",
  },
  { name: "refuses a bare dot-dot", path: "..", rule: "path.above_root" },
  { name: "refuses a bare dot", path: ".", rule: "path.dot_segment" },
  { name: "refuses a URL with a scheme", path: "http:x", rule: "path.url" },
  { name: "refuses a lower-case drive", path: "c:x", rule: "path.drive" },
  { name: "refuses a BOM", path: "\ufeffa", rule: "path.unicode" },
  { name: "refuses a soft hyphen", path: "a\u00adb", rule: "path.unicode" },
  { name: "refuses an encoded surrogate", path: "a%ud800", rule: "path.encoded" },
  {
    name: "refuses an encoded overlong four-byte dot",
    path: "a/%f0%80%80%ae",
    rule: "path.encoded",
  },
  { name: "refuses a truncated UTF-8 escape", path: "a/%e2%80", rule: "path.encoded" },
  { name: "refuses a DEL", path: "a\u007fb", rule: "path.control" },
];
for (const c of cases) {
  Deno.test(`checkPathLexical() ${c.name}`, () => equal(ruleOf(c.path), c.rule));
}

Deno.test("checkPathLexical() returns the segments of an accepted path", () => {
  deepEqual(checkPathLexical("a/b/c.txt"), { ok: true, segments: ["a", "b", "c.txt"] });
});

const patterns: { name: string; pattern: string; path: string; ok: boolean | null }[] = [
  { name: "a tree glob matches its folder", pattern: "docs/**", path: "docs", ok: true },
  { name: "a tree glob matches below its folder", pattern: "docs/**", path: "docs/a/b", ok: true },
  {
    name: "a tree glob does not match a sibling sharing the prefix",
    pattern: "docs/**",
    path: "docsx/a",
    ok: false,
  },
  { name: "** matches everything", pattern: "**", path: "x/y", ok: true },
  {
    name: "an exact pattern matches only itself",
    pattern: "docs/a.txt",
    path: "docs/a.txt/b",
    ok: false,
  },
  { name: "a mid-path wildcard is refused", pattern: "docs/*/a", path: "", ok: null },
  { name: "a question mark is refused", pattern: "doc?/**", path: "", ok: null },
  { name: "an absolute pattern is refused", pattern: "/vault/**", path: "", ok: null },
  { name: "a dot-dot pattern is refused", pattern: "../**", path: "", ok: null },
];
for (const p of patterns) {
  Deno.test(`compilePathPattern() ${p.name}`, () => {
    const compiled = compilePathPattern(p.pattern);
    equal(compiled === null ? null : matchesPattern(p.path, compiled), p.ok);
  });
}
