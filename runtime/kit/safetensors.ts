/**
 * Safe conversion, writing half (issue #6): turns a conversion plan — produced inside the
 * sandbox by the `convert_plan` job from a checkpoint's symbolic pickle — into a safetensors
 * file. The plan is untrusted data: it is validated here (zod, bounds), every view must lie
 * inside its storage and every storage inside the source file. Only bytes are copied; nothing
 * of the checkpoint is interpreted on this side. The output is written to a temporary file,
 * synced and renamed into place.
 * @module
 */
import { z } from "zod";

const MAX_TENSORS = 250_000;
const MAX_RANK = 32;
/** Bytes copied per read while gathering a strided view. */
const COPY_CHUNK = 8 << 20;

const Count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** A planned tensor, as the job returns it. */
export const PlannedTensorSchema = z.strictObject({
  name: z.string().min(1).max(4096),
  dtype: z.enum(["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"]),
  shape: z.array(Count).max(MAX_RANK),
  stride: z.array(Count).max(MAX_RANK),
  storageOffsetBytes: Count,
  storageNumel: Count,
  elementSize: z.number().int().refine(
    (n) => [1, 2, 4, 8].includes(n),
    "element size 1, 2, 4 or 8",
  ),
  offset: Count,
});

/** The conversion plan. */
export const ConvertPlanSchema = z.strictObject({
  format: z.enum(["pytorch-zip", "torch-legacy"]),
  tensors: z.array(PlannedTensorSchema).min(1).max(MAX_TENSORS),
});
/** A conversion plan. */
export type ConvertPlan = z.infer<typeof ConvertPlanSchema>;

const ELEMENT_SIZE: Readonly<Record<string, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Raised when a plan does not fit its source file. */
export class ConvertError extends Error {
  /** Always PLAN_INVALID. */
  readonly code = "PLAN_INVALID";
  /** @param message what is wrong, naming the tensor */
  constructor(message: string) {
    super(message);
    this.name = "ConvertError";
  }
}

/** Result of {@link writeSafetensors}. */
export interface WriteResult {
  tensors: number;
  bytes: number;
}

/**
 * Writes the tensors a plan describes from `source` into a new safetensors file `target`.
 * @param source the checkpoint the plan was made from
 * @param target the safetensors file to create (replaced atomically)
 * @param plan the plan (validated here)
 * @throws {ConvertError} when the plan is malformed or does not fit the source
 * @example
 * ```ts
 * await writeSafetensors("model.pt", "model.safetensors", plan);
 * ```
 */
export async function writeSafetensors(
  source: string,
  target: string,
  plan: unknown,
): Promise<WriteResult> {
  const parsed = ConvertPlanSchema.safeParse(plan);
  if (!parsed.success) {
    throw new ConvertError(
      `Cannot convert: the plan is malformed (${parsed.error.issues[0]?.message})`,
    );
  }
  const input = await Deno.open(source, { read: true });
  try {
    const size = (await input.stat()).size;
    const tensors = [...parsed.data.tensors].sort((
      a,
      b,
    ) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const header: Record<string, unknown> = {};
    let cursor = 0;
    const names = new Set<string>();
    for (const t of tensors) {
      checkTensor(t, size);
      if (names.has(t.name) || t.name === "__metadata__") {
        throw new ConvertError(`Cannot convert: duplicate tensor "${t.name}"`);
      }
      names.add(t.name);
      const bytes = t.shape.reduce((a, b) => a * b, 1) * t.elementSize;
      header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [cursor, cursor + bytes] };
      cursor += bytes;
    }
    let json = JSON.stringify(header);
    json += " ".repeat((8 - ((new TextEncoder().encode(json).length) % 8)) % 8);
    const headerBytes = new TextEncoder().encode(json);
    const dir = target.includes("/") ? target.slice(0, target.lastIndexOf("/")) : ".";
    const temp = `${dir}/.${target.slice(target.lastIndexOf("/") + 1)}.${crypto.randomUUID()}.tmp`;
    const out = await Deno.open(temp, { write: true, createNew: true, mode: 0o644 });
    try {
      const length = new Uint8Array(8);
      new DataView(length.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
      writeAll(out, length);
      writeAll(out, headerBytes);
      for (const t of tensors) copyTensor(input, out, t);
      await out.sync();
    } catch (error) {
      out.close();
      await Deno.remove(temp);
      throw error;
    }
    out.close();
    await Deno.rename(temp, target);
    return { tensors: tensors.length, bytes: 8 + headerBytes.length + cursor };
  } finally {
    input.close();
  }
}

type Tensor = z.infer<typeof PlannedTensorSchema>;

function checkTensor(t: Tensor, size: number): void {
  const fail = (why: string) => new ConvertError(`Cannot convert tensor "${t.name}": ${why}`);
  if (ELEMENT_SIZE[t.dtype] !== t.elementSize) {
    throw fail(`element size ${t.elementSize} does not match ${t.dtype}`);
  }
  if (t.shape.length !== t.stride.length) throw fail("shape and stride differ in rank");
  const storageBytes = t.storageNumel * t.elementSize;
  if (!Number.isSafeInteger(storageBytes) || t.storageOffsetBytes + storageBytes > size) {
    throw fail("its storage lies outside the source file");
  }
  let elements = 1;
  let last = t.offset;
  for (let i = 0; i < t.shape.length; i++) {
    const dim = t.shape[i] ?? 0;
    elements *= dim;
    last += (dim - 1) * (t.stride[i] ?? 0);
  }
  if (!Number.isSafeInteger(elements * t.elementSize)) throw fail("it is too large");
  if (elements > 0 && last >= t.storageNumel) {
    throw fail(`its view reaches element ${last} of a ${t.storageNumel}-element storage`);
  }
}

function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
}

function readExact(file: Deno.FsFile, offset: number, bytes: Uint8Array): void {
  file.seekSync(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < bytes.length) {
    const n = file.readSync(bytes.subarray(done));
    if (n === null || n === 0) {
      throw new ConvertError(`Cannot convert: the source ends at offset ${offset + done}`);
    }
    done += n;
  }
}

/** Copies a view in row-major order: contiguous runs of the innermost dims at once. */
function copyTensor(input: Deno.FsFile, out: Deno.FsFile, t: Tensor): void {
  const elements = t.shape.reduce((a, b) => a * b, 1);
  if (elements === 0) return;
  const size = t.elementSize;
  // Innermost dims that are contiguous form one run.
  let run = 1;
  let dims = t.shape.length;
  while (dims > 0 && (t.shape[dims - 1] === 1 || t.stride[dims - 1] === run)) {
    run *= t.shape[dims - 1] ?? 1;
    dims--;
  }
  const outer = t.shape.slice(0, dims);
  const outerStride = t.stride.slice(0, dims);
  const index = outer.map(() => 0);
  const base = t.storageOffsetBytes;
  for (;;) {
    let element = t.offset;
    for (let i = 0; i < dims; i++) element += (index[i] ?? 0) * (outerStride[i] ?? 0);
    for (let done = 0; done < run;) {
      const part = Math.min(run - done, Math.max(1, Math.floor(COPY_CHUNK / size)));
      const bytes = new Uint8Array(part * size);
      readExact(input, base + (element + done) * size, bytes);
      writeAll(out, bytes);
      done += part;
    }
    let d = dims - 1;
    while (d >= 0) {
      index[d] = (index[d] ?? 0) + 1;
      if ((index[d] ?? 0) < (outer[d] ?? 0)) break;
      index[d] = 0;
      d--;
    }
    if (d < 0) return;
  }
}
