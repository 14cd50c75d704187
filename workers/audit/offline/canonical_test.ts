import { equal, throws } from "node:assert/strict";
import { canonicalJson } from "./canonical.ts";
import { AuditError } from "./errors.ts";

// Expected texts are Python's json.dumps(v, sort_keys=True, separators=(",", ":"),
// ensure_ascii=True), generated with CPython 3.11: the cross-language vectors of spec 11 §2.
const vectors: { name: string; value: unknown; text: string }[] = [
  {
    name: "sorts keys and escapes non-ASCII",
    value: { b: 1, a: "é" },
    text: '{"a":"\\u00e9","b":1}',
  },
  {
    name: "sorts nested objects and keeps array order",
    value: { z: [1, 2, { y: null, x: true }], a: false },
    text: '{"a":false,"z":[1,2,{"x":true,"y":null}]}',
  },
  {
    name: "escapes astral characters, control characters, DEL and U+2028",
    value: { s: '😀 \u0001\n\t"\\ \u007f \u2028' },
    text: '{"s":"\\ud83d\\ude00 \\u0001\\n\\t\\"\\\\ \\u007f \\u2028"}',
  },
  {
    name: "orders index-like keys as strings, not numbers",
    value: { "10": 1, "2": 2, a: 3, B: 4, _: 5 },
    text: '{"10":1,"2":2,"B":4,"_":5,"a":3}',
  },
  {
    name: "writes numbers in shortest form",
    value: { n: [0, -1, 1.5, 123456789, 0.1] },
    text: '{"n":[0,-1,1.5,123456789,0.1]}',
  },
  {
    name: "escapes non-ASCII keys",
    value: { "ключ": "значение" },
    text:
      '{"\\u043a\\u043b\\u044e\\u0447":"\\u0437\\u043d\\u0430\\u0447\\u0435\\u043d\\u0438\\u0435"}',
  },
  {
    name: "drops undefined properties and writes -0 as 0",
    value: { a: undefined, b: -0 },
    text: '{"b":0}',
  },
];
for (const c of vectors) {
  Deno.test(`canonicalJson() ${c.name}`, () => {
    equal(canonicalJson(c.value), c.text);
    equal(canonicalJson(JSON.parse(c.text)), c.text, "canonical text is a fixed point");
  });
}

const refused: { name: string; value: unknown; message: RegExp }[] = [
  { name: "NaN", value: { a: NaN }, message: /"\(root\)\.a": NaN is not a JSON number/ },
  { name: "Infinity", value: [Infinity], message: /Infinity is not a JSON number/ },
  { name: "undefined in an array", value: [1, undefined], message: /"\(root\)\.1": undefined/ },
  { name: "a Date", value: { t: new Date(0) }, message: /a Date object is not JSON data/ },
  { name: "a Map", value: { m: new Map() }, message: /a Map object is not JSON data/ },
  { name: "a bigint", value: { n: 1n }, message: /a bigint is not JSON data/ },
  { name: "a function", value: { f: () => 1 }, message: /a function is not JSON data/ },
  {
    name: "nesting deeper than 16 levels",
    value: JSON.parse("[".repeat(20) + "]".repeat(20)),
    message: /nested deeper than 16 levels/,
  },
  {
    name: "a text longer than the limit",
    value: { s: "x".repeat(70_000) },
    message: /longer than 65536/,
  },
];
for (const c of refused) {
  Deno.test(`canonicalJson() refuses ${c.name} with AUDIT_ENTRY_INVALID`, () => {
    throws(() => canonicalJson(c.value), (err: unknown) => {
      return err instanceof AuditError && err.code === "AUDIT_ENTRY_INVALID" &&
        c.message.test(err.message);
    });
  });
}

Deno.test("canonicalJson() refuses a cycle instead of looping", () => {
  const a: Record<string, unknown> = {};
  a.self = a;
  throws(() => canonicalJson(a), AuditError);
});
