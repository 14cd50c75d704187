import { deepEqual, equal } from "node:assert/strict";
import { commonPrefixLength, PieceAssembler, StopMatcher } from "./text.ts";

/** A byte-level detokenizer: token = one byte; invalid UTF-8 decodes to U+FFFD. */
function bytes(tokens: readonly number[]): string {
  return new TextDecoder().decode(Uint8Array.from(tokens));
}

Deno.test("PieceAssembler() holds the bytes of a multi-byte character until it is whole", () => {
  const assembler = new PieceAssembler((t) => bytes(t));
  const euro = [...new TextEncoder().encode("€")];
  deepEqual(euro.map((b) => assembler.push(b)), ["", "", "€"]);
  equal(assembler.push(0x61), "a");
});

Deno.test("PieceAssembler() releases a replacement character the model really produced", () => {
  const assembler = new PieceAssembler((t) => bytes(t));
  // Four continuation bytes never make a character: released after the fourth.
  deepEqual([0xe2, 0xe2, 0xe2, 0xe2].map((b) => assembler.push(b)), [
    "",
    "",
    "",
    "\uFFFD".repeat(4),
  ]);
});

Deno.test("PieceAssembler() flushes pending bytes at the end of a generation", () => {
  const assembler = new PieceAssembler((t) => bytes(t));
  equal(assembler.push(0xe2), "");
  equal(assembler.flush(), "\uFFFD");
  equal(assembler.flush(), "");
});

Deno.test("PieceAssembler() gives the detokenizer the preceding tokens as context", () => {
  const seen: number[][] = [];
  const assembler = new PieceAssembler((t, previous) => {
    seen.push([...previous]);
    return String.fromCharCode(...t);
  });
  for (const t of [65, 66, 67]) assembler.push(t);
  deepEqual(seen, [[], [65], [65, 66]]);
});

const stopCases: {
  name: string;
  stops: string[];
  pieces: string[];
  out: string;
  isStopped: boolean;
}[] = [
  {
    name: "passes text through without stop strings",
    stops: [],
    pieces: ["ab", "cd"],
    out: "abcd",
    isStopped: false,
  },
  {
    name: "cuts at a stop string inside one piece",
    stops: ["END"],
    pieces: ["abENDcd"],
    out: "ab",
    isStopped: true,
  },
  {
    name: "cuts at a stop string split across pieces",
    stops: ["END"],
    pieces: ["abE", "N", "Dcd"],
    out: "ab",
    isStopped: true,
  },
  {
    name: "releases held text that turned out not to be a stop string",
    stops: ["END"],
    pieces: ["abE", "Nx"],
    out: "abENx",
    isStopped: false,
  },
  {
    name: "cuts at the earliest of several stop strings",
    stops: ["zz", "b"],
    pieces: ["abzz"],
    out: "a",
    isStopped: true,
  },
  { name: "ignores empty stop strings", stops: [""], pieces: ["ab"], out: "ab", isStopped: false },
];
for (const c of stopCases) {
  Deno.test(`StopMatcher() ${c.name}`, () => {
    const matcher = new StopMatcher(c.stops);
    let out = "";
    let isStopped = false;
    for (const piece of c.pieces) {
      const step = matcher.push(piece);
      out += step.text;
      isStopped ||= step.isStopped;
    }
    out += matcher.flush();
    equal(out, c.out);
    equal(isStopped, c.isStopped);
  });
}

Deno.test("StopMatcher() never releases part of a stop string before it is decided", () => {
  const matcher = new StopMatcher(["\n### "]);
  deepEqual(matcher.push("hello\n#"), { text: "hello", isStopped: false });
  deepEqual(matcher.push("## "), { text: "", isStopped: true });
});

Deno.test("commonPrefixLength() counts the shared leading tokens", () => {
  equal(commonPrefixLength([1, 2, 3], [1, 2, 4]), 2);
  equal(commonPrefixLength([], [1]), 0);
  equal(commonPrefixLength([1, 2], [1, 2, 3]), 2);
});
