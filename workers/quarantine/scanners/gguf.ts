/**
 * A strict GGUF reader (versions 2 and 3): magic, version, counts, every key/value with its
 * type, string and array lengths, alignment, and every tensor's name, dims, type, offset and
 * size, with limits. Tensors must lie inside the data section, aligned, without overlap;
 * bytes outside tensors (gaps, non-zero padding, trailing data) are hidden data. Metadata
 * strings are checked for hidden instructions and chat templates are collected for the
 * template analysis. Metadata is read in chunks; tensor data is never held in memory.
 * @module
 */
import { FileSource, readAt } from "./_source.ts";
import { FormatError } from "./errors.ts";
import { checkMetadataString, isChatTemplateKey, isTokenizerData } from "./metadata.ts";
import type { Finding } from "./types.ts";

/** GGUF limits (spec 13 §2 stage 2 where it names them). */
export const GGUF_LIMITS = Object.freeze({
  maxKv: 10_000,
  maxKey: 1024,
  maxTensors: 250_000,
  /** Chat templates. */
  maxTemplate: 1_000_000,
  /** Any other string. */
  maxString: 16 << 20,
  /** Elements of a string array. */
  maxStringArray: 2_000_000,
  /** Elements of a numeric array. */
  maxArray: 64_000_000,
  /** Tensor names (llama.cpp's GGML_MAX_NAME). */
  maxName: 63,
  maxDims: 4,
});

/** ggml types: block size (elements) and bytes per block. */
export const GGML_TYPES: ReadonlyMap<number, { name: string; block: number; bytes: number }> =
  new Map([
    [0, { name: "F32", block: 1, bytes: 4 }],
    [1, { name: "F16", block: 1, bytes: 2 }],
    [2, { name: "Q4_0", block: 32, bytes: 18 }],
    [3, { name: "Q4_1", block: 32, bytes: 20 }],
    [6, { name: "Q5_0", block: 32, bytes: 22 }],
    [7, { name: "Q5_1", block: 32, bytes: 24 }],
    [8, { name: "Q8_0", block: 32, bytes: 34 }],
    [9, { name: "Q8_1", block: 32, bytes: 36 }],
    [10, { name: "Q2_K", block: 256, bytes: 84 }],
    [11, { name: "Q3_K", block: 256, bytes: 110 }],
    [12, { name: "Q4_K", block: 256, bytes: 144 }],
    [13, { name: "Q5_K", block: 256, bytes: 176 }],
    [14, { name: "Q6_K", block: 256, bytes: 210 }],
    [15, { name: "Q8_K", block: 256, bytes: 292 }],
    [16, { name: "IQ2_XXS", block: 256, bytes: 66 }],
    [17, { name: "IQ2_XS", block: 256, bytes: 74 }],
    [18, { name: "IQ3_XXS", block: 256, bytes: 98 }],
    [19, { name: "IQ1_S", block: 256, bytes: 50 }],
    [20, { name: "IQ4_NL", block: 32, bytes: 18 }],
    [21, { name: "IQ3_S", block: 256, bytes: 110 }],
    [22, { name: "IQ2_S", block: 256, bytes: 82 }],
    [23, { name: "IQ4_XS", block: 256, bytes: 136 }],
    [24, { name: "I8", block: 1, bytes: 1 }],
    [25, { name: "I16", block: 1, bytes: 2 }],
    [26, { name: "I32", block: 1, bytes: 4 }],
    [27, { name: "I64", block: 1, bytes: 8 }],
    [28, { name: "F64", block: 1, bytes: 8 }],
    [29, { name: "IQ1_M", block: 256, bytes: 56 }],
    [30, { name: "BF16", block: 1, bytes: 2 }],
    [34, { name: "TQ1_0", block: 256, bytes: 54 }],
    [35, { name: "TQ2_0", block: 256, bytes: 66 }],
    [39, { name: "MXFP4", block: 32, bytes: 17 }],
  ]);

const VALUE_TYPES = [
  "UINT8",
  "INT8",
  "UINT16",
  "INT16",
  "UINT32",
  "INT32",
  "FLOAT32",
  "BOOL",
  "STRING",
  "ARRAY",
  "UINT64",
  "INT64",
  "FLOAT64",
];
const FIXED_SIZE: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};
const DEFAULT_ALIGNMENT = 32;

/** One tensor, with its data's absolute offset. */
export interface GgufTensor {
  name: string;
  dims: number[];
  type: string;
  /** Absolute offset of the data in the file. */
  offset: number;
  size: number;
}

/** A chat template found in the metadata. */
export interface ChatTemplate {
  key: string;
  text: string;
  offset: number;
}

/** Result of reading a GGUF file. */
export interface GgufScan {
  version: number;
  alignment: number;
  tensors: GgufTensor[];
  templates: ChatTemplate[];
  /** Scalar metadata (numbers, bools and short strings) for the report. */
  metadata: Map<string, string | number | boolean>;
  /** Element count of each array value (e.g. the vocabulary size of `tokenizer.ggml.tokens`). */
  arrayLengths: Map<string, number>;
  dataOffset: number;
  findings: Finding[];
}

function invalid(
  message: string,
  offset: number,
  code: "MALFORMED" | "LIMIT_EXCEEDED" | "UNSUPPORTED" = "MALFORMED",
) {
  return new FormatError(code, `Invalid GGUF: ${message}`, offset);
}

/**
 * Reads and checks a GGUF file.
 * @throws {FormatError} for anything that breaks the format or a limit
 */
export function scanGguf(
  file: Deno.FsFile,
  size: number,
  options: { onRead?: (bytes: number) => void; findings?: Finding[]; templates?: ChatTemplate[] } =
    {},
): GgufScan {
  const findings: Finding[] = options.findings ?? [];
  const src = new FileSource(file, {
    start: 0,
    length: size,
    ...(options.onRead ? { onRead: options.onRead } : {}),
  });
  const view = (bytes: Uint8Array) =>
    new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = () => view(src.readBytes(4)).getUint32(0, true);
  const u64 = (what: string) => {
    const at = src.position;
    const value = view(src.readBytes(8)).getBigUint64(0, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw invalid(`${what} ${value} at offset ${at} is too large`, at, "LIMIT_EXCEEDED");
    }
    return Number(value);
  };
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const string = (what: string, max: number): { text: string; at: number } => {
    const at = src.position;
    const length = u64(`${what} length`);
    if (length > max) {
      throw invalid(
        `${what} at offset ${at} is ${length} bytes (limit ${max})`,
        at,
        "LIMIT_EXCEEDED",
      );
    }
    if (length > size - src.position) {
      throw invalid(`${what} at offset ${at} runs past the end of the file`, at);
    }
    try {
      return { text: utf8.decode(src.readBytes(length)), at };
    } catch (error) {
      if (error instanceof FormatError) throw error;
      throw invalid(`${what} at offset ${at} is not valid UTF-8`, at);
    }
  };

  if (size < 24) throw invalid(`file of ${size} bytes is shorter than a header`, 0);
  const magic = new TextDecoder("latin1").decode(src.readBytes(4));
  if (magic !== "GGUF") throw invalid(`magic is "${magic}", not "GGUF"`, 0);
  const version = u32();
  if (version !== 2 && version !== 3) {
    throw invalid(`version ${version} is not 2 or 3`, 4, "UNSUPPORTED");
  }
  const tensorCount = u64("tensor count");
  const kvCount = u64("key/value count");
  if (tensorCount > GGUF_LIMITS.maxTensors) {
    throw invalid(`${tensorCount} tensors (limit ${GGUF_LIMITS.maxTensors})`, 8, "LIMIT_EXCEEDED");
  }
  if (kvCount > GGUF_LIMITS.maxKv) {
    throw invalid(`${kvCount} key/values (limit ${GGUF_LIMITS.maxKv})`, 16, "LIMIT_EXCEEDED");
  }

  const keys = new Set<string>();
  const templates: ChatTemplate[] = options.templates ?? [];
  const metadata = new Map<string, string | number | boolean>();
  const arrayLengths = new Map<string, number>();
  let alignment = DEFAULT_ALIGNMENT;

  const checkString = (key: string, text: string, at: number) => {
    findings.push(...checkMetadataString(text, { stage: "gguf", key, offset: at }));
  };

  const scalar = (type: number, key: string, at: number): string | number | boolean | bigint => {
    switch (type) {
      case 0:
        return src.readByte();
      case 1:
        return view(src.readBytes(1)).getInt8(0);
      case 2:
        return view(src.readBytes(2)).getUint16(0, true);
      case 3:
        return view(src.readBytes(2)).getInt16(0, true);
      case 4:
        return u32();
      case 5:
        return view(src.readBytes(4)).getInt32(0, true);
      case 6:
        return view(src.readBytes(4)).getFloat32(0, true);
      case 7: {
        const byte = src.readByte();
        if (byte > 1) throw invalid(`bool value ${byte} of "${key}" at offset ${at}`, at);
        return byte === 1;
      }
      case 10:
        return view(src.readBytes(8)).getBigUint64(0, true);
      case 11:
        return view(src.readBytes(8)).getBigInt64(0, true);
      case 12:
        return view(src.readBytes(8)).getFloat64(0, true);
      default:
        throw invalid(`unknown value type ${type} of "${key}" at offset ${at}`, at);
    }
  };

  for (let i = 0; i < kvCount; i++) {
    const { text: key, at: keyAt } = string("key", GGUF_LIMITS.maxKey);
    if (key.length === 0) throw invalid(`empty key at offset ${keyAt}`, keyAt);
    if (keys.has(key)) throw invalid(`duplicate key "${key}" at offset ${keyAt}`, keyAt);
    keys.add(key);
    // Keys are plain ASCII; anything else can hide text.
    if (/[^\x21-\x7e]/.test(key)) {
      findings.push({
        stage: "gguf",
        rule: "metadata.odd_key",
        severity: "high",
        message: `Metadata key ${JSON.stringify(key)} has characters other than printable ASCII`,
        offset: keyAt,
      });
    }
    const typeAt = src.position;
    const type = u32();
    if (type === 8) {
      const max = isChatTemplateKey(key) ? GGUF_LIMITS.maxTemplate : GGUF_LIMITS.maxString;
      const { text, at } = string(`value of "${key}"`, max);
      if (isChatTemplateKey(key)) templates.push({ key, text, offset: at });
      checkString(key, text, at);
      if (text.length <= 256) metadata.set(key, text);
    } else if (type === 9) {
      const elementType = u32();
      const count = u64(`array length of "${key}"`);
      if (elementType === 9) {
        throw invalid(`nested array "${key}" at offset ${typeAt}`, typeAt, "UNSUPPORTED");
      }
      arrayLengths.set(key, count);
      if (elementType === 8) {
        if (count > GGUF_LIMITS.maxStringArray) {
          throw invalid(
            `string array "${key}" has ${count} elements (limit ${GGUF_LIMITS.maxStringArray})`,
            typeAt,
            "LIMIT_EXCEEDED",
          );
        }
        const tokenizer = isTokenizerData(key);
        for (let j = 0; j < count; j++) {
          const { text, at } = string(`element ${j} of "${key}"`, GGUF_LIMITS.maxString);
          if (isChatTemplateKey(key)) templates.push({ key: `${key}[${j}]`, text, offset: at });
          if (!tokenizer) checkString(key, text, at);
        }
      } else {
        const elementSize = FIXED_SIZE[elementType];
        if (elementSize === undefined) {
          throw invalid(
            `unknown array type ${elementType} of "${key}" at offset ${typeAt}`,
            typeAt,
          );
        }
        if (count > GGUF_LIMITS.maxArray) {
          throw invalid(
            `array "${key}" has ${count} elements (limit ${GGUF_LIMITS.maxArray})`,
            typeAt,
            "LIMIT_EXCEEDED",
          );
        }
        if (count * elementSize > size - src.position) {
          throw invalid(`array "${key}" runs past the end of the file`, typeAt);
        }
        if (elementType === 7) {
          for (let j = 0; j < count; j++) scalar(7, key, src.position);
        } else {
          src.skip(count * elementSize);
        }
      }
    } else {
      if (type >= VALUE_TYPES.length) {
        throw invalid(`unknown value type ${type} of "${key}" at offset ${typeAt}`, typeAt);
      }
      const value = scalar(type, key, typeAt);
      if (key === "general.alignment") {
        if (type !== 4) {
          throw invalid(`general.alignment has type ${VALUE_TYPES[type]}, not UINT32`, typeAt);
        }
        const n = value as number;
        if (n === 0 || (n & (n - 1)) !== 0) {
          throw invalid(`general.alignment ${n} is not a power of two`, typeAt);
        }
        alignment = n;
      }
      metadata.set(key, typeof value === "bigint" ? Number(value) : value);
    }
  }

  // ---- tensor infos -----------------------------------------------------------------
  const infos: {
    name: string;
    dims: number[];
    type: string;
    rel: number;
    size: number;
    at: number;
  }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const { text: name, at } = string("tensor name", 1 << 16);
    if (name.length === 0 || new TextEncoder().encode(name).length > GGUF_LIMITS.maxName) {
      throw invalid(
        `tensor name "${
          name.slice(0, 80)
        }" at offset ${at} is empty or longer than ${GGUF_LIMITS.maxName} bytes`,
        at,
      );
    }
    if (names.has(name)) throw invalid(`duplicate tensor "${name}" at offset ${at}`, at);
    names.add(name);
    const nDims = u32();
    if (nDims > GGUF_LIMITS.maxDims) {
      throw invalid(`tensor "${name}" has ${nDims} dimensions (limit ${GGUF_LIMITS.maxDims})`, at);
    }
    const dims: number[] = [];
    let elements = 1;
    for (let d = 0; d < nDims; d++) {
      const dim = u64(`dimension ${d} of "${name}"`);
      dims.push(dim);
      elements *= dim;
      if (!Number.isSafeInteger(elements)) {
        throw invalid(`tensor "${name}" has too many elements`, at, "LIMIT_EXCEEDED");
      }
    }
    const typeId = u32();
    const type = GGML_TYPES.get(typeId);
    if (type === undefined) throw invalid(`tensor "${name}" has unknown type ${typeId}`, at);
    if ((dims[0] ?? 1) % type.block !== 0) {
      throw invalid(
        `tensor "${name}": first dimension ${
          dims[0]
        } is not a multiple of the ${type.name} block size ${type.block}`,
        at,
      );
    }
    const rel = u64(`offset of "${name}"`);
    if (rel % alignment !== 0) {
      throw invalid(`tensor "${name}" offset ${rel} is not aligned to ${alignment}`, at);
    }
    const tensorSize = (elements / type.block) * type.bytes;
    if (!Number.isSafeInteger(tensorSize)) {
      throw invalid(`tensor "${name}" is too large`, at, "LIMIT_EXCEEDED");
    }
    infos.push({ name, dims, type: type.name, rel, size: tensorSize, at });
  }

  const headerEnd = src.position;
  const dataOffset = Math.ceil(headerEnd / alignment) * alignment;
  if (dataOffset > size) {
    throw invalid(`data section at offset ${dataOffset} is past the end of the file`, headerEnd);
  }
  const padding = readAt(file, headerEnd, dataOffset - headerEnd);
  if (padding.some((b) => b !== 0)) {
    findings.push({
      stage: "gguf",
      rule: "gguf.hidden_data",
      severity: "medium",
      message: `Padding before the data section (offset ${headerEnd}) is not zero`,
      offset: headerEnd,
    });
  }
  const dataSize = size - dataOffset;
  const tensors: GgufTensor[] = infos.map((t) => ({
    name: t.name,
    dims: t.dims,
    type: t.type,
    offset: dataOffset + t.rel,
    size: t.size,
  }));
  const ordered = [...infos].sort((a, b) => a.rel - b.rel);
  let cursor = 0;
  for (const t of ordered) {
    if (t.rel + t.size > dataSize) {
      throw invalid(
        `tensor "${t.name}" (offset ${t.rel}, ${t.size} bytes) runs past the end of the file`,
        t.at,
      );
    }
    if (t.rel < cursor) {
      throw invalid(
        `tensor "${t.name}" at data offset ${t.rel} overlaps the tensor before it (ends at ${cursor})`,
        t.at,
      );
    }
    const gapStart = cursor;
    const alignedCursor = Math.ceil(cursor / alignment) * alignment;
    if (t.rel > alignedCursor) {
      findings.push({
        stage: "gguf",
        rule: "gguf.tensor_gap",
        severity: "medium",
        message: `${
          t.rel - gapStart
        } bytes before tensor "${t.name}" belong to no tensor (hidden data)`,
        offset: dataOffset + gapStart,
      });
    } else if (
      t.rel > gapStart && readAt(file, dataOffset + gapStart, t.rel - gapStart).some((b) => b !== 0)
    ) {
      findings.push({
        stage: "gguf",
        rule: "gguf.hidden_data",
        severity: "medium",
        message: `Padding before tensor "${t.name}" is not zero`,
        offset: dataOffset + gapStart,
      });
    }
    cursor = t.rel + t.size;
  }
  const end = Math.ceil(cursor / alignment) * alignment;
  if (
    dataSize > end ||
    (dataSize > cursor && readAt(file, dataOffset + cursor, dataSize - cursor).some((b) => b !== 0))
  ) {
    findings.push({
      stage: "gguf",
      rule: "gguf.trailing_data",
      severity: "medium",
      message: `${dataSize - cursor} bytes follow the last tensor (hidden data)`,
      offset: dataOffset + cursor,
    });
  }
  if (tensorCount === 0) {
    findings.push({
      stage: "gguf",
      rule: "gguf.no_tensors",
      severity: "low",
      message: "GGUF file has no tensors",
    });
  }
  return { version, alignment, tensors, templates, metadata, arrayLengths, dataOffset, findings };
}
