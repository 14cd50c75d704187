/**
 * The WebAssembly SHA-256 (emitted by `sha256_wasm.ts`) against the FIPS 180-4 examples and against node:crypto for every
 * length around the padding boundaries (where a hand-written SHA-256 goes wrong).
 */
import { equal } from "node:assert/strict";
import { createHash } from "node:crypto";
import { toHex } from "./merkle.ts";
import { sha256, sha256Pair, sha256Prefixed } from "./sha256.ts";

const encoder = new TextEncoder();

Deno.test("sha256 gives the FIPS 180-4 example digests", () => {
  const cases: [string, string][] = [
    ["", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
    ["abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
    [
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ],
  ];
  for (const [text, digest] of cases) equal(toHex(sha256(encoder.encode(text))), digest, text);
});

Deno.test("sha256 matches node:crypto for every length across block and padding edges", () => {
  // 0..300 covers 1 to 5 blocks and both sides of the 55/56-byte padding edge of each;
  // the long ones take the TypedArray.set() path and grow the module's memory.
  const lengths = [...Array.from({ length: 301 }, (_, i) => i), 1000, 4096, 70_000];
  for (const n of lengths) {
    const bytes = crypto.getRandomValues(new Uint8Array(Math.min(n, 65_536)));
    const message = n > 65_536 ? new Uint8Array(n).fill(0xa5) : bytes;
    equal(
      toHex(sha256(message)),
      createHash("sha256").update(message).digest("hex"),
      `length ${n}`,
    );
  }
});

Deno.test("sha256 leaves its input unchanged and returns a fresh digest each call", () => {
  const message = encoder.encode("the same input twice");
  const copy = message.slice();
  const first = sha256(message);
  const second = sha256(message);
  equal(toHex(message), toHex(copy));
  equal(toHex(first), toHex(second));
  first[0] = (first[0] as number) ^ 0xff;
  equal(toHex(second), createHash("sha256").update(message).digest("hex"));
});

Deno.test("sha256Prefixed and sha256Pair hash the prefix byte first, as RFC 9162 frames", () => {
  for (const n of [0, 54, 55, 63, 64, 300, 200_000]) {
    const bytes = new Uint8Array(n).map((_, i) => i * 31);
    equal(
      toHex(sha256Prefixed(0x00, bytes)),
      createHash("sha256").update(Uint8Array.of(0)).update(bytes).digest("hex"),
      `length ${n}`,
    );
  }
  const left = sha256(encoder.encode("left"));
  const right = sha256(encoder.encode("right"));
  equal(
    toHex(sha256Pair(0x01, left, right)),
    createHash("sha256").update(Uint8Array.of(1)).update(left).update(right).digest("hex"),
  );
});
