import { equal } from "node:assert/strict";
import { checkArgsShape, SHAPE_LIMITS } from "./shape.ts";

function nest(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

const cases: { name: string; args: Record<string, unknown>; rule: string | null }[] = [
  {
    name: "accepts plain JSON",
    args: { path: "a", n: 1, b: true, z: null, o: { a: [1, "x"] } },
    rule: null,
  },
  {
    name: "accepts nesting at the depth limit",
    args: { v: nest(SHAPE_LIMITS.maxDepth - 1) },
    rule: null,
  },
  {
    name: "refuses nesting over the depth limit",
    args: { v: nest(SHAPE_LIMITS.maxDepth + 1) },
    rule: "tools.shape.depth",
  },
  {
    name: "refuses more arguments than the limit",
    args: Object.fromEntries(
      Array.from({ length: SHAPE_LIMITS.maxArgs + 1 }, (_, i) => [`a${i}`, i]),
    ),
    rule: "tools.shape.args",
  },
  {
    name: "refuses an object with too many members",
    args: {
      o: Object.fromEntries(
        Array.from({ length: SHAPE_LIMITS.maxMembers + 1 }, (_, i) => [`k${i}`, i]),
      ),
    },
    rule: "tools.shape.members",
  },
  {
    name: "refuses an array with too many items",
    args: { a: Array(SHAPE_LIMITS.maxItems + 1).fill(0) },
    rule: "tools.shape.items",
  },
  {
    name: "refuses more values than the node limit",
    args: { a: Array(3000).fill([1, 2, 3]) },
    rule: "tools.shape.nodes",
  },
  {
    name: "refuses arguments over the byte limit",
    args: { s: "x".repeat(SHAPE_LIMITS.maxBytes) },
    rule: "tools.shape.size",
  },
  { name: "refuses NaN", args: { n: NaN }, rule: "tools.shape.type" },
  { name: "refuses Infinity", args: { n: Infinity }, rule: "tools.shape.type" },
  { name: "refuses a Date", args: { d: new Date(0) }, rule: "tools.shape.type" },
  { name: "refuses a Map", args: { m: new Map() }, rule: "tools.shape.type" },
  { name: "refuses a BigInt", args: { b: 1n }, rule: "tools.shape.type" },
  { name: "refuses undefined", args: { u: undefined }, rule: "tools.shape.type" },
  { name: "refuses an array with holes", args: { a: [1, , 3] }, rule: "tools.shape.type" },
];
for (const c of cases) {
  Deno.test(`checkArgsShape() ${c.name}`, () =>
    equal(checkArgsShape(c.args)?.rule ?? null, c.rule));
}
