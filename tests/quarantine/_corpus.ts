/**
 * The scanner corpus: benign real-shaped checkpoints (PyTorch zip with data.pkl and storages,
 * legacy stacked and tar torch files, numpy npy/npz and pickled arrays, GGUF with a real chat
 * template, safetensors), malicious cases that must be caught with the right callable, opcode
 * and offset, and malformed cases that must be `invalid` with a clear message.
 * @module
 */
import {
  concat,
  f16Weights,
  f32Weights,
  ggufString,
  le,
  PickleWriter,
  safetensorsOf,
  writeGguf,
  writeNpy,
  writeSafetensors,
  writeTar,
  writeZip,
  type ZipMember,
} from "./_writers.ts";

const enc = new TextEncoder();

/** A tensor of a generated checkpoint, with its bytes as written. */
export interface CorpusTensor {
  name: string;
  dtype: "F32" | "F16" | "I64";
  shape: number[];
  /** Row-major bytes of the tensor as torch would see it. */
  bytes: Uint8Array;
}

const STORAGE_TYPE = { F32: "FloatStorage", F16: "HalfStorage", I64: "LongStorage" } as const;
const ELEMENT = { F32: 4, F16: 2, I64: 8 } as const;

/** A storage and the views on it, as torch.save would pickle them. */
interface StorageSpec {
  key: string;
  dtype: CorpusTensor["dtype"];
  data: Uint8Array;
  views: { name: string; offset: number; shape: number[]; stride: number[]; parameter?: boolean }[];
}

/**
 * Benign tensors: a contiguous F32 matrix, an F16 matrix, an I64 vector, a transposed view
 * (non-contiguous strides) and a view with a storage offset into a shared storage.
 */
export function benignStorages(): { storages: StorageSpec[]; expected: CorpusTensor[] } {
  const a = f32Weights(16 * 8, 1);
  const b = f16Weights(12 * 4, 2);
  const ids = new Uint8Array(new BigInt64Array([3n, 1n, 4n, 1n, 5n, 9n]).buffer);
  const shared = f32Weights(40, 3);
  const storages: StorageSpec[] = [
    {
      key: "0",
      dtype: "F32",
      data: a,
      views: [{ name: "layer.weight", offset: 0, shape: [16, 8], stride: [8, 1], parameter: true }],
    },
    {
      key: "1",
      dtype: "F16",
      data: b,
      views: [{ name: "embed.weight", offset: 0, shape: [12, 4], stride: [4, 1] }],
    },
    {
      key: "2",
      dtype: "I64",
      data: ids,
      views: [{ name: "position_ids", offset: 0, shape: [6], stride: [1] }],
    },
    {
      key: "3",
      dtype: "F32",
      data: shared,
      views: [
        { name: "tied.transposed", offset: 0, shape: [4, 5], stride: [1, 4] },
        { name: "tied.tail", offset: 20, shape: [4, 5], stride: [5, 1] },
      ],
    },
  ];
  const expected: CorpusTensor[] = [];
  for (const s of storages) {
    const size = ELEMENT[s.dtype];
    for (const v of s.views) {
      const count = v.shape.reduce((x, y) => x * y, 1);
      const out = new Uint8Array(count * size);
      const index = v.shape.map(() => 0);
      for (let i = 0; i < count; i++) {
        let e = v.offset;
        for (let d = 0; d < v.shape.length; d++) e += (index[d] ?? 0) * (v.stride[d] ?? 0);
        out.set(s.data.subarray(e * size, e * size + size), i * size);
        for (let d = v.shape.length - 1; d >= 0; d--) {
          index[d] = (index[d] ?? 0) + 1;
          if ((index[d] ?? 0) < (v.shape[d] ?? 0)) break;
          index[d] = 0;
        }
      }
      expected.push({ name: v.name, dtype: s.dtype, shape: v.shape, bytes: out });
    }
  }
  return { storages, expected };
}

/**
 * The state-dict pickle torch.save writes (protocol 2): an OrderedDict of
 * `_rebuild_tensor_v2(persistent storage, offset, size, stride, requires_grad, hooks)`,
 * parameters wrapped in `_rebuild_parameter`, the storage type memoized and fetched again,
 * then a BUILD that sets `_metadata` as torch does.
 * @param legacy persistent ids in the legacy format (6 fields)
 */
export function stateDictPickle(
  storages: StorageSpec[],
  options: { legacy?: boolean } = {},
): Uint8Array {
  const p = new PickleWriter().proto(2);
  p.global("collections", "OrderedDict").put(0).emptyTuple().reduce().put(1).mark();
  let memo = 2;
  const typeMemo = new Map<string, number>();
  for (const s of storages) {
    for (const v of s.views) {
      p.str(v.name);
      if (v.parameter) p.global("torch._utils", "_rebuild_parameter").mark();
      p.global("torch._utils", "_rebuild_tensor_v2").mark();
      // persistent id: ('storage', storage_type, key, location, numel[, view_metadata])
      p.mark().str("storage");
      const type = STORAGE_TYPE[s.dtype];
      const known = typeMemo.get(type);
      if (known === undefined) {
        p.global("torch", type).put(memo);
        typeMemo.set(type, memo++);
      } else {
        p.get(known);
      }
      p.str(s.key).str("cpu").int(s.data.length / ELEMENT[s.dtype]);
      if (options.legacy) p.none();
      p.tupleMark().binpersid();
      p.int(v.offset);
      p.mark();
      for (const d of v.shape) p.int(d);
      p.tupleMark().mark();
      for (const d of v.stride) p.int(d);
      p.tupleMark().bool(false);
      p.global("collections", "OrderedDict").emptyTuple().reduce();
      p.tupleMark().reduce();
      if (v.parameter) {
        p.bool(true).global("collections", "OrderedDict").emptyTuple().reduce().tupleMark()
          .reduce();
      }
    }
  }
  p.setitems();
  // state: {'_metadata': OrderedDict({'': {'version': 1}})}
  p.emptyDict().str("_metadata").get(0).emptyTuple().reduce().str("").emptyDict().str("version")
    .int(1).setitem().setitem().setitem().build();
  return p.stop().done();
}

/** A PyTorch zip checkpoint as torch.save writes it (archive root `archive`). */
export function torchZip(
  options: { zip64?: boolean; extra?: ZipMember[]; pickle?: Uint8Array } = {},
): { file: Uint8Array; expected: CorpusTensor[] } {
  const { storages, expected } = benignStorages();
  const members: ZipMember[] = [
    { name: "archive/data.pkl", data: options.pickle ?? stateDictPickle(storages) },
    { name: "archive/.format_version", data: enc.encode("1") },
    { name: "archive/.storage_alignment", data: enc.encode("64") },
    { name: "archive/byteorder", data: enc.encode("little") },
    ...storages.map((s) => ({ name: `archive/data/${s.key}`, data: s.data })),
    { name: "archive/version", data: enc.encode("3\n") },
    {
      name: "archive/.data/serialization_id",
      data: enc.encode("1234567890123456789012345678901234567890"),
    },
    ...(options.extra ?? []),
  ];
  return { file: writeZip(members, { ...(options.zip64 ? { zip64: true } : {}) }), expected };
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

function small(build: (p: PickleWriter) => void): Uint8Array {
  const p = new PickleWriter().proto(2);
  build(p);
  return p.stop().done();
}

/** The legacy (torch < 1.6) stacked format: magic, protocol, sys_info, main pickle, keys, storages. */
export function torchLegacy(
  options: { main?: Uint8Array; trailing?: Uint8Array; numelDelta?: number } = {},
): { file: Uint8Array; expected: CorpusTensor[] } {
  const { storages, expected } = benignStorages();
  const parts = [
    small((p) => p.long1(LEGACY_MAGIC)),
    small((p) => p.int(1001)),
    small((p) =>
      p.emptyDict().mark().str("protocol_version").int(1001).str("little_endian").bool(true)
        .setitems()
    ),
    options.main ?? stateDictPickle(storages, { legacy: true }),
    small((p) => {
      p.emptyList().mark();
      for (const s of storages) p.str(s.key);
      p.appends();
    }),
  ];
  for (const s of storages) {
    parts.push(le(s.data.length / ELEMENT[s.dtype] + (options.numelDelta ?? 0), 8), s.data);
  }
  if (options.trailing) parts.push(options.trailing);
  return { file: concat(...parts), expected };
}

/** The legacy tar format (torch < 0.4): sys_info, pickle, storages, tensors. */
export function torchTar(
  options: { pickle?: Uint8Array; extra?: { name: string; data: Uint8Array }[] } = {},
): Uint8Array {
  const data = f32Weights(8, 9);
  const storagesMember = concat(
    small((p) => p.int(1)),
    small((p) => p.str("0").str("cpu").global("torch", "FloatStorage").tuple(3)),
    le(8, 8),
    data,
    small((p) => p.emptyList()),
  );
  const tensorsMember = concat(
    small((p) => p.int(1)),
    small((p) => p.str("t0").str("0").global("torch", "FloatTensor").tuple(3)),
    le(1, 4),
    le(0, 4),
    le(8, 8),
    le(1, 8),
    le(0, 8),
  );
  return writeTar([
    {
      name: "sys_info",
      data: small((p) => p.emptyDict().str("protocol_version").int(1001).setitem()),
    },
    {
      name: "pickle",
      data: options.pickle ?? small((p) => p.emptyDict().str("weight").persid("t0").setitem()),
    },
    { name: "storages", data: storagesMember },
    { name: "tensors", data: tensorsMember },
    ...(options.extra ?? []),
  ]);
}

/** A numpy array pickled the way numpy < 2 does (protocol 2, `_reconstruct` + BUILD). */
export function numpyPickle(): Uint8Array {
  const p = new PickleWriter().proto(2);
  p.global("numpy.core.multiarray", "_reconstruct").put(0);
  p.global("numpy", "ndarray").put(1).int(0).tuple(1).str("b").tuple(3).reduce().put(2);
  p.mark().int(1).int(4).tuple(1);
  p.global("numpy", "dtype").str("f4").bool(false).bool(true).tuple(3).reduce();
  p.mark().int(3).str("<").none().none().none().int(-1).int(-1).int(0).tupleMark().build();
  p.bool(false);
  // Data as py2 unicode through _codecs.encode, as protocol-2 numpy pickles do.
  p.global("_codecs", "encode").str(
    "\u0000\u0000\u0080?\u0000\u0000\u0000@\u0000\u0000@@\u0000\u0000\u0080@",
  ).str("latin1").tuple(2).reduce();
  p.tupleMark().build();
  return p.stop().done();
}

/** A realistic ChatML template (namespace, loop, filters): must be accepted. */
export const CHATML_TEMPLATE =
  "{%- set ns = namespace(system=false) -%}{%- for message in messages -%}{%- if message['role'] == 'system' -%}{%- set ns.system = true -%}{%- endif -%}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] | trim + '<|im_end|>\\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}";

/** GGUF key/values of a small llama model. */
export function llamaKv(template = CHATML_TEMPLATE): [string, [number, unknown]][] {
  return [
    ["general.architecture", [8, "llama"]],
    ["general.name", [8, "tiny"]],
    ["general.alignment", [4, 32]],
    ["llama.context_length", [4, 512]],
    ["llama.embedding_length", [4, 64]],
    ["tokenizer.ggml.model", [8, "gpt2"]],
    ["tokenizer.ggml.tokens", [9, [8, ["<|im_start|>", "<|im_end|>", "hello", "\u200b", "world"]]]],
    ["tokenizer.ggml.scores", [9, [6, [0, 0, -1, -2, -3]]]],
    ["tokenizer.chat_template", [8, template]],
  ];
}

/** GGUF tensors: F32, F16 and Q8_0. */
export function llamaTensors(): { name: string; dims: number[]; type: number; data: Uint8Array }[] {
  const q8 = new Uint8Array(34 * 8);
  for (let b = 0; b < 8; b++) {
    q8.set(le(0x2000, 2), b * 34); // scale 0.0078
    for (let i = 0; i < 32; i++) q8[b * 34 + 2 + i] = (i * 37 + b * 11) % 200 - 100 & 0xff;
  }
  return [
    { name: "token_embd.weight", dims: [64, 64], type: 1, data: f16Weights(64 * 64, 4) },
    { name: "output_norm.weight", dims: [64], type: 0, data: f32Weights(64, 5, 1) },
    { name: "blk.0.attn_q.weight", dims: [64, 64], type: 0, data: f32Weights(64 * 64, 6) },
    { name: "blk.0.ffn_down.weight", dims: [64, 4], type: 8, data: q8 },
  ];
}

/** A benign GGUF file. */
export function benignGguf(): Uint8Array {
  return writeGguf({ kv: llamaKv(), tensors: llamaTensors() });
}

/** A GGUF string key/value pair as raw bytes (for malformed values). */
export function rawKv(key: string, type: number, body: Uint8Array): Uint8Array {
  return concat(ggufString(key), le(type, 4), body);
}

/** Benign safetensors with metadata. */
export function benignSafetensors(): Uint8Array {
  return safetensorsOf([
    { name: "a.weight", dtype: "F32", shape: [32, 32], data: f32Weights(32 * 32, 7) },
    { name: "b.weight", dtype: "F16", shape: [16, 8], data: f16Weights(16 * 8, 8) },
    { name: "c.bias", dtype: "F32", shape: [16], data: new Uint8Array(64) },
  ], { format: "pt" });
}

export {
  concat,
  le,
  PickleWriter,
  safetensorsOf,
  writeGguf,
  writeNpy,
  writeSafetensors,
  writeTar,
  writeZip,
};
