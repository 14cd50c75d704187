import { equal, rejects, throws } from "node:assert/strict";
import { digestFile, IntegrityHasher } from "./digest.ts";

/** Byte i of every vector file is i % 251 (so blocks differ and a shifted block shows). */
function pattern(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = i % 251;
  return bytes;
}

/**
 * Known answers from fsverity-utils 1.5 (`fsverity digest --hash-alg=sha256
 * --block-size=4096`) and coreutils `sha256sum` over the pattern files. The sizes cover an
 * empty file, one partial block, exact block edges, one and two tree levels, and a file whose
 * last level is exactly full (128 × 128 blocks).
 */
const VECTORS: { size: number; fsverity: string; sha256: string }[] = [
  {
    size: 0,
    fsverity: "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95",
    sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  },
  {
    size: 1,
    fsverity: "b803429503d95915829b29fdbc8bbad142f3abfd11b1cadf5526582e685c0551",
    sha256: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  },
  {
    size: 4095,
    fsverity: "5f4953aad672b0188023d6cd6fbce9d09508eb7dad165b6298ce0086bc1e72db",
    sha256: "45de2924756389e3ccab98bdaacbef8a81cdeb651b59f916a6d6385b4f7b999d",
  },
  {
    size: 4096,
    fsverity: "13e9b8848ae484a36acb3f3cac0ceb2f7601e96633d15c92f9bd3dd44e492157",
    sha256: "d67c656e01756650d77717b0839985a056ec28ffe174601d690fc407a2ceffca",
  },
  {
    size: 4097,
    fsverity: "b0d074abef4d544404facfab6ba242f6a8ccbde90f1325cd286f3c8aa8d0f8aa",
    sha256: "a16560d668b843fb3be99ace41dbd18471f342bd3255a1d21204b35e43f74436",
  },
  {
    size: 8192,
    fsverity: "e48d50c56c4f0178a98a035cb91d66be328eeff78bbddaa35c5ec4cc0d8340c0",
    sha256: "25df2449b2e5a35fea14e02a7158e283801a1069c9f84631b9a9dacb2f809a7f",
  },
  {
    size: 128 * 4096,
    fsverity: "d82861203d50ae9b60948504a704f35f5118bd229aeb1a22d6dae47b1767c4c4",
    sha256: "61d1d9c5745bdaa4fab39240651bc242a5186b15393fd475082fcf6e84f400ab",
  },
  {
    size: 128 * 4096 + 1,
    fsverity: "4dc6905041c9c4ee73e13b53f63f5d289c46da359b664a965ead7f8cc4d799d4",
    sha256: "5584f83643017fcea9b7d65d3d3f890b5219eb1abfcb8896a2d4ef554d4612ec",
  },
  {
    size: 129 * 4096,
    fsverity: "dd56ffe5de24c1229fe22d25f91db9e735f6adc921510dcf480094624458c92a",
    sha256: "d67da6927c56de06f6b77cca678dbe18071a3283ec4e5ad3bac473c331b601f9",
  },
  {
    size: 128 * 128 * 4096,
    fsverity: "196650e8bd05f8516c0ede56deeb4d1ff2be9809dc2d827261db4a7773957567",
    sha256: "98dc891b284e4d84ac25b0c0a24fdbe39a7f0dbd643ad5e8aa06e02fc6258254",
  },
  {
    size: 128 * 128 * 4096 + 5,
    fsverity: "9dd5b05ed52fe1bb86fa899e3e1c06df348699182f0f5994b124d0fbf6a284ea",
    sha256: "2c9bfea9ef13a6824cf1ae5b73ba9f8ed4ce30574182c3f5b0862ef9ca7d8fa8",
  },
];

for (const v of VECTORS) {
  Deno.test(`IntegrityHasher matches fsverity-utils and sha256sum for ${v.size} bytes`, () => {
    const data = pattern(v.size);
    const whole = new IntegrityHasher();
    whole.update(data);
    const digests = whole.digest();
    equal(digests.fsverity, v.fsverity);
    equal(digests.sha256, v.sha256);
    equal(digests.size, v.size);

    // The same bytes in odd-sized pieces give the same answer (partial-block carry-over).
    const pieces = new IntegrityHasher();
    for (let offset = 0, step = 1; offset < data.length; offset += step, step = step * 3 + 1) {
      pieces.update(data.subarray(offset, Math.min(data.length, offset + (step % 10007))));
      step %= 10007;
    }
    equal(pieces.digest().fsverity, v.fsverity);
  });
}

Deno.test("IntegrityHasher changes its fs-verity digest when one byte of one block changes", () => {
  const data = pattern(129 * 4096);
  const before = new IntegrityHasher();
  before.update(data);
  data[70 * 4096 + 5] = (data[70 * 4096 + 5] as number) ^ 1;
  const after = new IntegrityHasher();
  after.update(data);
  const a = before.digest();
  const b = after.digest();
  equal(a.fsverity === b.fsverity, false);
  equal(a.merkleRoot === b.merkleRoot, false);
});

Deno.test("IntegrityHasher refuses updates and a second digest after finishing", () => {
  const hasher = new IntegrityHasher();
  hasher.digest();
  throws(() => hasher.update(new Uint8Array(1)), TypeError);
  throws(() => hasher.digest(), TypeError);
});

Deno.test("digestFile() streams a file to the same digests and reports progress", async () => {
  const path = await Deno.makeTempFile();
  try {
    const v = VECTORS.at(-1) as (typeof VECTORS)[number];
    await Deno.writeFile(path, pattern(v.size));
    const seen: number[] = [];
    const digests = await digestFile(path, { onProgress: (bytes) => seen.push(bytes) });
    equal(digests.fsverity, v.fsverity);
    equal(digests.sha256, v.sha256);
    equal(seen.at(-1), v.size);
    equal(seen.every((bytes, i) => i === 0 || bytes > (seen[i - 1] as number)), true);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("digestFile() stops when cancelled and refuses a file over maxBytes", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, pattern(9 << 20));
    const controller = new AbortController();
    await rejects(
      digestFile(path, { signal: controller.signal, onProgress: () => controller.abort() }),
      (error: unknown) => error instanceof DOMException && error.name === "AbortError",
    );
    await rejects(digestFile(path, { maxBytes: 1 << 20 }), RangeError);
  } finally {
    await Deno.remove(path);
  }
});

const hasFsverity = await Deno.stat("/usr/bin/fsverity").then(() => true, () => false);

Deno.test({
  name: "IntegrityHasher agrees with the fsverity tool on random content when it is installed",
  ignore: !hasFsverity,
  async fn() {
    const path = await Deno.makeTempFile();
    try {
      const data = new Uint8Array(3 * 128 * 4096 + 777);
      for (let i = 0; i < data.length; i += 65536) {
        crypto.getRandomValues(data.subarray(i, i + 65536));
      }
      await Deno.writeFile(path, data);
      const out = await new Deno.Command("/usr/bin/fsverity", {
        args: ["digest", "--hash-alg=sha256", "--block-size=4096", path],
        stdout: "piped",
      }).output();
      const expected = new TextDecoder().decode(out.stdout).split(" ")[0];
      equal(`sha256:${(await digestFile(path)).fsverity}`, expected);
    } finally {
      await Deno.remove(path);
    }
  },
});
