/**
 * Safe conversion through the real sandbox: the `convert_plan` job scans and plans, the
 * trusted writer copies bytes; the tensors in the safetensors file must equal, byte for byte,
 * the ones the generator wrote (transposed views and storage offsets included). Malicious
 * checkpoints are refused without writing anything; plans that do not fit are rejected.
 */
import assert from "node:assert/strict";
import { convertCheckpoint } from "../../runtime/cli_convert.ts";
import { ConvertError, writeSafetensors } from "../../runtime/kit/safetensors.ts";
import { type CorpusTensor, PickleWriter, torchLegacy, torchZip } from "./_corpus.ts";

async function readSafetensors(
  path: string,
): Promise<Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>> {
  const bytes = await Deno.readFile(path);
  const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>();
  for (const [name, t] of Object.entries(header)) {
    out.set(name, {
      dtype: t.dtype,
      shape: t.shape,
      bytes: bytes.subarray(8 + length + t.data_offsets[0], 8 + length + t.data_offsets[1]),
    });
  }
  return out;
}

const cases: { name: string; build: () => { file: Uint8Array; expected: CorpusTensor[] } }[] = [
  { name: "a PyTorch zip checkpoint", build: () => torchZip() },
  { name: "a ZIP64 PyTorch zip checkpoint", build: () => torchZip({ zip64: true }) },
  { name: "a legacy stacked checkpoint", build: () => torchLegacy() },
];

for (const c of cases) {
  Deno.test({
    name: `convertCheckpoint() writes the tensors of ${c.name} byte for byte`,
    sanitizeResources: false,
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "secai-convert-test-" });
      try {
        const { file, expected } = c.build();
        await Deno.writeFile(`${dir}/model.pt`, file);
        const outcome = await convertCheckpoint(`${dir}/model.pt`, `${dir}/model.safetensors`);
        assert.equal(outcome.error, null);
        assert.equal(outcome.ok, true);
        assert.equal(outcome.sourceVerdict, "clean");
        assert.equal(outcome.outputVerdict, "clean");
        const written = await readSafetensors(`${dir}/model.safetensors`);
        assert.deepEqual([...written.keys()].sort(), expected.map((t) => t.name).sort());
        for (const t of expected) {
          const got = written.get(t.name);
          assert.ok(got);
          assert.equal(got.dtype, t.dtype);
          assert.deepEqual(got.shape, t.shape);
          assert.deepEqual(got.bytes, t.bytes, `tensor "${t.name}" differs`);
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name:
    "convertCheckpoint() refuses a checkpoint whose pickle imports os.system and writes nothing",
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "secai-convert-test-" });
    try {
      const evil = new PickleWriter().proto(2).global("os", "system").str("id").tuple(1).reduce()
        .stop().done();
      await Deno.writeFile(`${dir}/evil.pt`, torchZip({ pickle: evil }).file);
      const outcome = await convertCheckpoint(`${dir}/evil.pt`, `${dir}/evil.safetensors`);
      assert.equal(outcome.ok, false);
      assert.equal(outcome.sourceVerdict, "threat");
      assert.match(outcome.error ?? "", /os\.system/);
      await assert.rejects(Deno.stat(`${dir}/evil.safetensors`), Deno.errors.NotFound);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const badPlans: [string, Record<string, unknown>, RegExp][] = [
  ["a view past its storage", { offset: 1 }, /reaches element 16 of a 16-element storage/],
  ["a storage outside the file", { storageOffsetBytes: 1 << 20 }, /outside the source file/],
  ["a dtype that does not match the element size", { elementSize: 2 }, /does not match F32/],
  ["mismatched shape and stride ranks", { stride: [1] }, /differ in rank/],
];

for (const [name, change, message] of badPlans) {
  Deno.test(`writeSafetensors() rejects a plan with ${name}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "secai-convert-test-" });
    try {
      await Deno.writeFile(`${dir}/src`, new Uint8Array(64));
      const tensor = {
        name: "t",
        dtype: "F32",
        shape: [4, 4],
        stride: [4, 1],
        storageOffsetBytes: 0,
        storageNumel: 16,
        elementSize: 4,
        offset: 0,
        ...change,
      };
      const error = await writeSafetensors(`${dir}/src`, `${dir}/out.safetensors`, {
        format: "pytorch-zip",
        tensors: [tensor],
      }).then(() => null, (e) => e);
      assert.ok(error instanceof ConvertError);
      assert.equal(error.code, "PLAN_INVALID");
      assert.match(error.message, message);
      await assert.rejects(Deno.stat(`${dir}/out.safetensors`), Deno.errors.NotFound);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
