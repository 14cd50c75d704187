/**
 * A strict safetensors reader (spec 13 §2 stage 2): u64 header length within limits, a UTF-8
 * JSON object parsed by our own strict parser (no duplicate keys, depth and token limits),
 * `__metadata__` string→string, known dtypes, rank and name limits, overflow-checked sizes,
 * and data offsets that tile the buffer exactly (no overlap, no gap, no trailing bytes).
 * @module
 */
import { readAt } from "./_source.ts";
import { FormatError } from "./errors.ts";
import { checkMetadataString } from "./metadata.ts";
import { type Json, parseStrictJson } from "./strict_json.ts";
import type { Finding } from "./types.ts";

/** Limits (spec 13 §2). */
export const SAFETENSORS_LIMITS = Object.freeze({
  maxHeader: 100 << 20,
  maxDepth: 64,
  maxTokens: 1_000_000,
  maxTensors: 250_000,
  maxRank: 32,
  maxName: 4096,
});

/** Bits per element of each dtype. */
export const SAFETENSORS_DTYPES: ReadonlyMap<string, number> = new Map([
  ["BOOL", 8],
  ["F4", 4],
  ["F6_E2M3", 6],
  ["F6_E3M2", 6],
  ["U8", 8],
  ["I8", 8],
  ["F8_E5M2", 8],
  ["F8_E4M3", 8],
  ["F8_E8M0", 8],
  ["I16", 16],
  ["U16", 16],
  ["F16", 16],
  ["BF16", 16],
  ["I32", 32],
  ["U32", 32],
  ["F32", 32],
  ["F64", 64],
  ["I64", 64],
  ["U64", 64],
]);

/** One tensor with its data's absolute offset. */
export interface SafetensorsTensor {
  name: string;
  dtype: string;
  shape: number[];
  offset: number;
  size: number;
}

/** Result of reading a safetensors file. */
export interface SafetensorsScan {
  headerLength: number;
  tensors: SafetensorsTensor[];
  metadata: Record<string, string>;
  dataOffset: number;
  findings: Finding[];
}

function invalid(
  message: string,
  offset: number,
  code: "MALFORMED" | "LIMIT_EXCEEDED" = "MALFORMED",
) {
  return new FormatError(code, `Invalid safetensors: ${message}`, offset);
}

/** Whether the head looks like a safetensors header (u64 length, then `{`). */
export function looksLikeSafetensors(head: Uint8Array, size: number): boolean {
  // A little-endian length (the high half zero) followed by what starts JSON text: the strict
  // reader then names whatever is wrong with the header.
  if (head.length < 9 || size < 9) return false;
  const high = (head[4] ?? 1) | (head[5] ?? 1) | (head[6] ?? 1) | (head[7] ?? 1);
  return high === 0 && [0x7b, 0x5b, 0x22, 0x20].includes(head[8] ?? 0);
}

/**
 * Reads and checks a safetensors file's header and layout.
 * @throws {FormatError} for any rule it breaks
 */
export function scanSafetensors(
  file: Deno.FsFile,
  size: number,
  options: { findings?: Finding[] } = {},
): SafetensorsScan {
  if (size < 8) throw invalid(`file of ${size} bytes is shorter than the header length`, 0);
  const lengthBig = new DataView(readAt(file, 0, 8).buffer).getBigUint64(0, true);
  if (lengthBig < 2n || lengthBig > BigInt(SAFETENSORS_LIMITS.maxHeader)) {
    throw invalid(
      `header length ${lengthBig} is outside 2..${SAFETENSORS_LIMITS.maxHeader}`,
      0,
      "LIMIT_EXCEEDED",
    );
  }
  const headerLength = Number(lengthBig);
  if (8 + headerLength > size) {
    throw invalid(`header of ${headerLength} bytes runs past the end of the file`, 0);
  }
  const bytes = readAt(file, 8, headerLength);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw invalid("header is not valid UTF-8", 8);
  }
  // Trailing spaces (and only spaces) may pad the header for alignment.
  const trimmed = text.replace(/ +$/, "");
  if (!trimmed.startsWith("{") || !trimmed.endsWith("}")) {
    throw invalid("header must be a JSON object padded only with trailing spaces", 8);
  }
  const root = parseStrictJson(trimmed, {
    maxDepth: SAFETENSORS_LIMITS.maxDepth,
    maxTokens: SAFETENSORS_LIMITS.maxTokens,
    fail: (failure) =>
      failure.kind === "syntax"
        ? invalid(`header JSON at character ${failure.at}: ${failure.why}`, 8)
        : failure.kind === "tokens"
        ? invalid(`header has more than ${failure.limit} JSON tokens`, 8, "LIMIT_EXCEEDED")
        : invalid(`header nests deeper than ${failure.limit}`, 8, "LIMIT_EXCEEDED"),
  });
  if (root === null || typeof root !== "object" || Array.isArray(root)) {
    throw invalid("header is not an object", 8);
  }
  const findings: Finding[] = options.findings ?? [];
  const dataOffset = 8 + headerLength;
  const dataSize = size - dataOffset;
  const tensors: SafetensorsTensor[] = [];
  let metadata: Record<string, string> = {};
  const names = Object.keys(root);
  if (names.length > SAFETENSORS_LIMITS.maxTensors + 1) {
    throw invalid(
      `${names.length} entries (limit ${SAFETENSORS_LIMITS.maxTensors})`,
      8,
      "LIMIT_EXCEEDED",
    );
  }
  for (const name of names) {
    const entry = root[name];
    if (name === "__metadata__") {
      if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
        throw invalid("__metadata__ is not an object", 8);
      }
      for (const [key, value] of Object.entries(entry)) {
        if (typeof value !== "string") throw invalid(`__metadata__ "${key}" is not a string`, 8);
        findings.push(
          ...checkMetadataString(value, {
            stage: "safetensors",
            key: `__metadata__.${key}`,
            offset: 8,
          }),
        );
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    if (new TextEncoder().encode(name).length > SAFETENSORS_LIMITS.maxName) {
      throw invalid(`tensor name longer than ${SAFETENSORS_LIMITS.maxName} bytes`, 8);
    }
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      throw invalid(`tensor "${name}" is not an object`, 8);
    }
    const keys = Object.keys(entry).sort().join(",");
    if (keys !== "data_offsets,dtype,shape") {
      throw invalid(`tensor "${name}" has keys ${keys}, expected dtype, shape and data_offsets`, 8);
    }
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, Json>;
    if (typeof dtype !== "string" || !SAFETENSORS_DTYPES.has(dtype)) {
      throw invalid(`tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`, 8);
    }
    if (!Array.isArray(shape) || shape.length > SAFETENSORS_LIMITS.maxRank) {
      throw invalid(
        `tensor "${name}" shape is not an array of rank ≤ ${SAFETENSORS_LIMITS.maxRank}`,
        8,
      );
    }
    let bits = SAFETENSORS_DTYPES.get(dtype) ?? 8;
    for (const dim of shape) {
      if (typeof dim !== "number" || !Number.isSafeInteger(dim) || dim < 0) {
        throw invalid(`tensor "${name}" has a bad dimension ${JSON.stringify(dim)}`, 8);
      }
      bits *= dim;
      if (!Number.isSafeInteger(bits)) {
        throw invalid(`tensor "${name}" size overflows`, 8, "LIMIT_EXCEEDED");
      }
    }
    if (bits % 8 !== 0) throw invalid(`tensor "${name}" of ${dtype} does not fill whole bytes`, 8);
    if (!Array.isArray(offsets) || offsets.length !== 2) {
      throw invalid(`tensor "${name}" data_offsets is not [begin, end]`, 8);
    }
    const [begin, end] = offsets;
    if (
      typeof begin !== "number" || typeof end !== "number" || !Number.isSafeInteger(begin) ||
      !Number.isSafeInteger(end) || begin < 0 || end < begin
    ) {
      throw invalid(`tensor "${name}" has bad data_offsets`, 8);
    }
    if (end - begin !== bits / 8) {
      throw invalid(
        `tensor "${name}" spans ${end - begin} bytes, its dtype and shape need ${bits / 8}`,
        8,
      );
    }
    if (end > dataSize) {
      throw invalid(`tensor "${name}" ends at ${end}, past the ${dataSize}-byte buffer`, 8);
    }
    tensors.push({
      name,
      dtype,
      shape: shape as number[],
      offset: dataOffset + begin,
      size: end - begin,
    });
  }
  if (tensors.length === 0) throw invalid("no tensors", 8);
  if (dataSize === 0) throw invalid("empty data buffer", dataOffset);
  const ordered = [...tensors].sort((a, b) => a.offset - b.offset || a.size - b.size);
  let cursor = dataOffset;
  for (const t of ordered) {
    if (t.offset < cursor) {
      throw invalid(`tensor "${t.name}" overlaps the tensor before it`, t.offset);
    }
    if (t.offset > cursor) {
      throw invalid(`${t.offset - cursor} bytes at offset ${cursor} belong to no tensor`, cursor);
    }
    cursor = t.offset + t.size;
  }
  if (cursor !== size) {
    throw invalid(`${size - cursor} bytes after the last tensor belong to no tensor`, cursor);
  }
  return { headerLength, tensors, metadata, dataOffset, findings };
}
