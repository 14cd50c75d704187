import { deepEqual, equal, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import { type ByteRegion, digestRegions } from "./region_digest.ts";

function sha(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** 10 MiB + 123 bytes of a pattern, so that regions cross the 4 MiB read chunks. */
const CONTENT = Uint8Array.from(
  { length: (10 << 20) + 123 },
  (_, i) => (i * 31 + (i >> 12)) & 0xff,
);

async function withFile<T>(bytes: Uint8Array, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "secai-regions-" });
  try {
    await Deno.writeFile(`${dir}/f`, bytes);
    return await fn(`${dir}/f`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** What the digests must be, computed from slices. */
function expected(bytes: Uint8Array, regions: ByteRegion[]) {
  const rest = createHash("sha256");
  let restSize = 0;
  let cursor = 0;
  for (const r of [...regions].sort((a, b) => a.offset - b.offset)) {
    const start = Math.min(r.offset, bytes.length);
    rest.update(bytes.subarray(cursor, start));
    restSize += start - cursor;
    cursor = Math.min(bytes.length, r.offset + r.size);
  }
  rest.update(bytes.subarray(cursor));
  restSize += bytes.length - cursor;
  return {
    size: bytes.length,
    sha256: sha(bytes),
    regions: regions.map((r) =>
      r.offset + r.size > bytes.length ? null : sha(bytes.subarray(r.offset, r.offset + r.size))
    ),
    rest: { size: restSize, sha256: rest.digest("hex") },
  };
}

const cases: { name: string; regions: ByteRegion[] }[] = [
  { name: "no regions: everything is rest", regions: [] },
  {
    name: "regions given out of order, across read chunks, with gaps",
    regions: [
      { offset: (4 << 20) - 10, size: 20 },
      { offset: 0, size: 100 },
      { offset: 5 << 20, size: 3 << 20 },
    ],
  },
  {
    name: "adjacent regions covering the whole file leave an empty rest",
    regions: [{ offset: 0, size: 4 << 20 }, { offset: 4 << 20, size: CONTENT.length - (4 << 20) }],
  },
  {
    name: "an empty region inside and one at the very end",
    regions: [{ offset: 100, size: 0 }, { offset: CONTENT.length, size: 0 }],
  },
  {
    name: "a region cut off by the end of the file is null",
    regions: [{ offset: 10, size: 10 }, { offset: CONTENT.length - 5, size: 10 }],
  },
];

for (const c of cases) {
  Deno.test(`digestRegions() hashes ${c.name}`, async () => {
    await withFile(CONTENT, async (path) => {
      deepEqual(await digestRegions(path, c.regions), expected(CONTENT, c.regions));
    });
  });
}

Deno.test("digestRegions() hashes an empty file", async () => {
  await withFile(new Uint8Array(0), async (path) => {
    const regions = [{ offset: 0, size: 0 }, { offset: 0, size: 1 }];
    deepEqual(await digestRegions(path, regions), expected(new Uint8Array(0), regions));
  });
});

const refused: { name: string; regions: ByteRegion[]; message: RegExp }[] = [
  {
    name: "overlapping regions",
    regions: [{ offset: 0, size: 10 }, { offset: 9, size: 5 }],
    message: /overlapping regions at offsets 0 and 9/,
  },
  { name: "a negative offset", regions: [{ offset: -1, size: 1 }], message: /region 0/ },
  { name: "a fractional size", regions: [{ offset: 0, size: 1.5 }], message: /region 0/ },
  {
    name: "a range past the largest safe integer",
    regions: [{ offset: Number.MAX_SAFE_INTEGER, size: 1 }],
    message: /region 0/,
  },
];

for (const c of refused) {
  Deno.test(`digestRegions() refuses ${c.name}`, async () => {
    await withFile(CONTENT.subarray(0, 100), async (path) => {
      await rejects(digestRegions(path, c.regions), (e: unknown) => {
        equal((e as Error).constructor, RangeError);
        return c.message.test((e as Error).message);
      });
    });
  });
}

Deno.test("digestRegions() refuses a file larger than maxBytes and stops when aborted", async () => {
  await withFile(CONTENT, async (path) => {
    await rejects(digestRegions(path, [], { maxBytes: 1 << 20 }), RangeError);
    await rejects(
      digestRegions(path, [], { signal: AbortSignal.abort(new Error("stop")) }),
      /stop/,
    );
  });
});
