/**
 * Safe conversion, planning half (issue #6): reads a PyTorch checkpoint's pickle with the
 * symbolic VM — nothing is executed — and interprets the allowlisted rebuild calls
 * (`_rebuild_tensor(_v2)`, `_rebuild_parameter`, `_rebuild_from_type_v2`, `Parameter`,
 * `OrderedDict`) to find each tensor's storage, offset, shape and strides. The result is a
 * plain {@link ConvertPlan}; the trusted writer (runtime/kit/safetensors.ts) copies the bytes.
 * @module
 */
import { readAt } from "./_source.ts";
import { FormatError } from "./errors.ts";
import type { PValue } from "./pickle.ts";
import { type CheckpointScan, scanPickleFile, scanTorchZip, storageRef, zipKind } from "./torch.ts";
import { readZip } from "./zip.ts";

/** One tensor to write: where its storage lies in the source file and how to view it. */
export interface PlannedTensor {
  name: string;
  /** safetensors dtype. */
  dtype: string;
  shape: number[];
  /** Strides in elements. */
  stride: number[];
  /** Absolute offset of the storage's first byte in the source file. */
  storageOffsetBytes: number;
  /** Elements in the storage. */
  storageNumel: number;
  elementSize: number;
  /** First element of the view, in elements from the storage start. */
  offset: number;
}

/** Everything the writer needs. */
export interface ConvertPlan {
  format: "pytorch-zip" | "torch-legacy";
  tensors: PlannedTensor[];
}

function fail(message: string): FormatError {
  return new FormatError("UNSUPPORTED", `Cannot convert: ${message}`);
}

const REBUILD_TENSOR = new Set([
  "torch._utils._rebuild_tensor",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_tensor_v3",
]);

/**
 * Plans the conversion of a checkpoint that has already scanned clean.
 * @param path the .pt/.bin file
 * @throws {FormatError} when it is not a PyTorch checkpoint, or holds something other than
 * tensors we can place (compressed storages, big-endian data, sparse/quantized tensors)
 */
export function planConversion(path: string): ConvertPlan {
  const file = Deno.openSync(path, { read: true });
  try {
    const size = file.statSync().size;
    const head = readAt(file, 0, Math.min(size, 4));
    let scan: CheckpointScan;
    let format: ConvertPlan["format"];
    if (head[0] === 0x50 && head[1] === 0x4b) {
      const archive = readZip(file, size);
      if (zipKind(archive) !== "pytorch-zip") {
        throw fail("the zip archive is not a PyTorch checkpoint");
      }
      scan = scanTorchZip(file, archive);
      format = "pytorch-zip";
    } else {
      const result = scanPickleFile(file, size);
      if (result.format !== "torch-legacy") {
        throw fail("the file is a plain pickle, not a PyTorch checkpoint");
      }
      scan = result.scan;
      format = "torch-legacy";
    }
    if (scan.byteorder !== "little") throw fail(`byte order "${scan.byteorder}" is not supported`);
    if (scan.main === null) throw fail("no main pickle");
    const tensors: PlannedTensor[] = [];
    collect(scan.main.value, "", tensors, scan, 0);
    if (tensors.length === 0) throw fail("the checkpoint holds no tensors");
    const names = new Set<string>();
    for (const t of tensors) {
      if (names.has(t.name)) throw fail(`two tensors are named "${t.name}"`);
      names.add(t.name);
    }
    return { format, tensors };
  } finally {
    file.close();
  }
}

function entriesOf(value: PValue): [PValue, PValue][] | null {
  if (value.t === "dict") return value.entries;
  if (
    value.t === "call" && value.fn.t === "global" && value.fn.name === "collections.OrderedDict"
  ) return value.entries;
  return null;
}

function collect(
  value: PValue,
  prefix: string,
  out: PlannedTensor[],
  scan: CheckpointScan,
  depth: number,
): void {
  if (depth > 64) throw fail("the checkpoint nests too deeply");
  const tensor = asTensor(value, prefix, scan, 0);
  if (tensor !== null) {
    out.push(tensor);
    return;
  }
  const entries = entriesOf(value);
  if (entries !== null) {
    for (const [key, item] of entries) {
      const name = key.t === "str" ? key.v : key.t === "int" ? String(key.v) : null;
      if (name === null) continue;
      collect(item, prefix === "" ? name : `${prefix}.${name}`, out, scan, depth + 1);
    }
    return;
  }
  if (value.t === "list" || value.t === "tuple") {
    value.items.forEach((item, i) =>
      collect(item, prefix === "" ? String(i) : `${prefix}.${i}`, out, scan, depth + 1)
    );
  }
}

function ints(value: PValue | undefined, what: string): number[] {
  let tuple = value;
  if (
    tuple?.t === "call" && tuple.fn.t === "global" && tuple.fn.name === "torch.Size" &&
    tuple.args.t === "tuple"
  ) {
    tuple = tuple.args.items[0];
  }
  if (tuple?.t !== "tuple") throw fail(`${what} is not a tuple`);
  return tuple.items.map((item) => {
    if (item.t !== "int" || item.v < 0n || item.v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw fail(`${what} has a bad value`);
    }
    return Number(item.v);
  });
}

/** The tensor a value rebuilds, or null when it is not a tensor. */
function asTensor(
  value: PValue,
  name: string,
  scan: CheckpointScan,
  depth: number,
): PlannedTensor | null {
  if (value.t !== "call" || value.fn.t !== "global" || value.args.t !== "tuple" || depth > 8) {
    return null;
  }
  const fn = value.fn.name;
  const args = value.args.items;
  if (
    fn === "torch._utils._rebuild_parameter" ||
    fn === "torch._utils._rebuild_parameter_with_state" || fn === "torch.nn.parameter.Parameter"
  ) {
    return args[0] === undefined ? null : asTensor(args[0], name, scan, depth + 1);
  }
  if (fn === "torch._tensor._rebuild_from_type_v2") {
    const [inner, , innerArgs] = args;
    if (inner === undefined || innerArgs === undefined) return null;
    return asTensor({ ...value, fn: inner, args: innerArgs }, name, scan, depth + 1);
  }
  if (!REBUILD_TENSOR.has(fn)) {
    if (fn.startsWith("torch._utils._rebuild")) {
      throw fail(`tensor "${name}" is rebuilt by "${fn}", which is not a dense tensor`);
    }
    return null;
  }
  const [storage, offset, size, stride] = args;
  if (storage?.t !== "persid") throw fail(`tensor "${name}" has no storage reference`);
  const ref = storageRef(storage.id);
  if (ref === null) throw fail(`tensor "${name}" has a bad storage reference`);
  const location = scan.storages.get(ref.key);
  if (location === undefined) {
    throw fail(`storage "${ref.key}" of tensor "${name}" is compressed or missing`);
  }
  if (offset?.t !== "int" || offset.v < 0n) throw fail(`tensor "${name}" has a bad storage offset`);
  const shape = ints(size, `shape of "${name}"`);
  const strides = ints(stride, `stride of "${name}"`);
  if (shape.length !== strides.length) {
    throw fail(`tensor "${name}" has ${shape.length} dims and ${strides.length} strides`);
  }
  return {
    name,
    dtype: location.dtype,
    shape,
    stride: strides,
    storageOffsetBytes: location.offset,
    storageNumel: location.numel,
    elementSize: location.elementSize,
    offset: Number(offset.v),
  };
}
