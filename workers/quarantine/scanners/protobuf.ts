/**
 * A strict protobuf wire-format reader (https://protobuf.dev/programming-guides/encoding/)
 * and, on top of it, the validation of a sentencepiece tokenizer model (`*.model`, the
 * `ModelProto` of sentencepiece's `sentencepiece_model.proto`) for directory artifacts
 * (spec 13 §4 stage 2: "sentencepiece `.model` protobuf-validated").
 *
 * Strict on purpose: varints of at most 10 bytes without overflow or redundant trailing
 * bytes, field numbers 1…2^29−1 outside the reserved 19000–19999, no groups (wire types 3
 * and 4) or undefined wire types, lengths inside the enclosing message, no unknown fields, no
 * repeated non-repeated field, strings in UTF-8, finite floats, enums and booleans in range,
 * nesting and counts bounded. A file that breaks any rule is refused with the byte offset.
 * @module
 */
import { FormatError } from "./errors.ts";

/** Limits of {@link checkSentencepieceModel}. */
export const SENTENCEPIECE_LIMITS = Object.freeze({
  /** Largest model file (real ones are ≤ a few MiB). */
  maxBytes: 64 << 20,
  /** Most pieces. */
  maxPieces: 2_000_000,
  /** Longest piece in UTF-8 bytes. */
  maxPieceBytes: 1 << 16,
  /** Most fields in the whole file. */
  maxFields: 20_000_000,
});

/** Protobuf wire types that exist (3 and 4 are the deprecated groups, refused). */
export type WireType = 0 | 1 | 2 | 5;

/** One field as it is on the wire. */
export interface ProtoField {
  number: number;
  wireType: WireType;
  /** Offset of the field's tag in the buffer. */
  offset: number;
  /** VARINT: the value as an unsigned 64-bit integer. */
  varint?: bigint;
  /** I64: the 8 bytes, I32: the 4 bytes, LEN: the payload (views into the buffer). */
  bytes?: Uint8Array;
  /** LEN: offset of the payload. */
  payloadOffset?: number;
}

function malformed(message: string, offset: number): FormatError {
  return new FormatError("MALFORMED", `Invalid protobuf: ${message}`, offset);
}

/**
 * Reads a varint at `at`.
 * @returns the value and the offset after it
 * @throws {FormatError} truncated, longer than 10 bytes, over 64 bits or with redundant bytes
 */
export function readVarint(bytes: Uint8Array, at: number, end: number): [bigint, number] {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    if (at + i >= end) {
      throw new FormatError("TRUNCATED", "Invalid protobuf: varint runs past the end", at);
    }
    const byte = bytes[at + i] as number;
    if (i === 9 && byte > 1) throw malformed("varint is larger than 64 bits", at);
    value |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) {
      // 0x80 0x00 spells 0 in two bytes: a second encoding of the same value.
      if (i > 0 && byte === 0) throw malformed("varint has redundant trailing bytes", at);
      return [value, at + i + 1];
    }
  }
  throw malformed("varint is longer than 10 bytes", at);
}

/**
 * The fields of one message, in wire order.
 * @param bytes the buffer
 * @param start offset of the message
 * @param end offset just past it
 * @throws {FormatError} for any wire-format rule the bytes break
 */
export function* readFields(bytes: Uint8Array, start: number, end: number): Generator<ProtoField> {
  let at = start;
  while (at < end) {
    const offset = at;
    const [tag, afterTag] = readVarint(bytes, at, end);
    at = afterTag;
    if (tag > 0xffff_ffffn) throw malformed(`tag ${tag} is larger than 32 bits`, offset);
    const number = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (number === 0) throw malformed("field number 0", offset);
    if (number >= 19000 && number <= 19999) {
      throw malformed(`field number ${number} is reserved`, offset);
    }
    switch (wireType) {
      case 0: {
        const [varint, next] = readVarint(bytes, at, end);
        at = next;
        yield { number, wireType, offset, varint };
        break;
      }
      case 1:
      case 5: {
        const size = wireType === 1 ? 8 : 4;
        if (at + size > end) {
          throw new FormatError(
            "TRUNCATED",
            `Invalid protobuf: field ${number} runs past the end`,
            offset,
          );
        }
        yield { number, wireType, offset, bytes: bytes.subarray(at, at + size) };
        at += size;
        break;
      }
      case 2: {
        const [length, next] = readVarint(bytes, at, end);
        if (length > BigInt(end - next)) {
          throw new FormatError(
            "TRUNCATED",
            `Invalid protobuf: field ${number} of ${length} bytes runs past its message`,
            offset,
          );
        }
        const payloadOffset = next;
        at = next + Number(length);
        yield { number, wireType, offset, bytes: bytes.subarray(payloadOffset, at), payloadOffset };
        break;
      }
      case 3:
      case 4:
        throw malformed(
          `field ${number} is a group (wire type ${wireType}), not supported`,
          offset,
        );
      default:
        throw malformed(`field ${number} has undefined wire type ${wireType}`, offset);
    }
  }
}

/** How a schema field is encoded and checked. */
type FieldKind =
  | { type: "string" | "bytes" | "bool" | "float" | "int32" | "uint64" }
  | { type: "enum"; values: readonly number[] }
  | { type: "message"; schema: () => MessageSchema };

interface FieldSpec {
  name: string;
  kind: FieldKind;
  repeated?: boolean;
}

/** Field number → spec; anything not listed is an unknown field (refused). */
type MessageSchema = { name: string; fields: Readonly<Record<number, FieldSpec>> };

const str = (name: string, repeated = false): FieldSpec => ({
  name,
  kind: { type: "string" },
  repeated,
});
const scalar = (name: string, type: "bool" | "float" | "int32" | "uint64"): FieldSpec => ({
  name,
  kind: { type },
});

/** sentencepiece_model.proto `TrainerSpec` (every field of sentencepiece 0.2). */
const TRAINER_SPEC: MessageSchema = {
  name: "TrainerSpec",
  fields: {
    1: str("input", true),
    2: str("model_prefix"),
    3: { name: "model_type", kind: { type: "enum", values: [1, 2, 3, 4] } },
    4: scalar("vocab_size", "int32"),
    5: str("accept_language", true),
    6: scalar("self_test_sample_size", "int32"),
    7: str("input_format"),
    10: scalar("character_coverage", "float"),
    11: scalar("input_sentence_size", "uint64"),
    12: scalar("mining_sentence_size", "int32"),
    13: scalar("training_sentence_size", "int32"),
    14: scalar("seed_sentencepiece_size", "int32"),
    15: scalar("shrinking_factor", "float"),
    16: scalar("num_threads", "int32"),
    17: scalar("num_sub_iterations", "int32"),
    18: scalar("max_sentence_length", "int32"),
    19: scalar("shuffle_input_sentence", "bool"),
    20: scalar("max_sentencepiece_length", "int32"),
    21: scalar("split_by_unicode_script", "bool"),
    22: scalar("split_by_whitespace", "bool"),
    23: scalar("split_by_number", "bool"),
    24: scalar("treat_whitespace_as_suffix", "bool"),
    25: scalar("split_digits", "bool"),
    26: scalar("allow_whitespace_only_pieces", "bool"),
    30: str("control_symbols", true),
    31: str("user_defined_symbols", true),
    32: scalar("vocabulary_output_piece_score", "bool"),
    33: scalar("hard_vocab_limit", "bool"),
    34: scalar("use_all_vocab", "bool"),
    35: scalar("byte_fallback", "bool"),
    36: str("required_chars"),
    40: scalar("unk_id", "int32"),
    41: scalar("bos_id", "int32"),
    42: scalar("eos_id", "int32"),
    43: scalar("pad_id", "int32"),
    44: str("unk_surface"),
    45: str("unk_piece"),
    46: str("bos_piece"),
    47: str("eos_piece"),
    48: str("pad_piece"),
    49: scalar("train_extremely_large_corpus", "bool"),
    50: scalar("enable_differential_privacy", "bool"),
    51: scalar("differential_privacy_noise_level", "float"),
    52: scalar("differential_privacy_clipping_threshold", "uint64"),
    53: str("pretokenization_delimiter"),
    54: str("seed_sentencepieces_file"),
  },
};

const NORMALIZER_SPEC: MessageSchema = {
  name: "NormalizerSpec",
  fields: {
    1: str("name"),
    2: { name: "precompiled_charsmap", kind: { type: "bytes" } },
    3: scalar("add_dummy_prefix", "bool"),
    4: scalar("remove_extra_whitespaces", "bool"),
    5: scalar("escape_whitespaces", "bool"),
    6: str("normalization_rule_tsv"),
  },
};

const SAMPLE: MessageSchema = {
  name: "SelfTestData.Sample",
  fields: { 1: str("input"), 2: str("expected") },
};

const SELF_TEST_DATA: MessageSchema = {
  name: "SelfTestData",
  fields: {
    1: { name: "samples", kind: { type: "message", schema: () => SAMPLE }, repeated: true },
  },
};

/** `SentencePiece.Type`: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6. */
const PIECE_TYPE_UNKNOWN = 2;

const SENTENCE_PIECE: MessageSchema = {
  name: "SentencePiece",
  fields: {
    1: str("piece"),
    2: scalar("score", "float"),
    3: { name: "type", kind: { type: "enum", values: [1, 2, 3, 4, 5, 6] } },
  },
};

const MODEL_PROTO: MessageSchema = {
  name: "ModelProto",
  fields: {
    1: { name: "pieces", kind: { type: "message", schema: () => SENTENCE_PIECE }, repeated: true },
    2: { name: "trainer_spec", kind: { type: "message", schema: () => TRAINER_SPEC } },
    3: { name: "normalizer_spec", kind: { type: "message", schema: () => NORMALIZER_SPEC } },
    4: { name: "self_test_data", kind: { type: "message", schema: () => SELF_TEST_DATA } },
    5: { name: "denormalizer_spec", kind: { type: "message", schema: () => NORMALIZER_SPEC } },
  },
};

const WIRE_OF: Readonly<Record<string, WireType>> = {
  string: 2,
  bytes: 2,
  message: 2,
  bool: 0,
  int32: 0,
  uint64: 0,
  enum: 0,
  float: 5,
};

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** What the validator reports about one message, for the checks above the wire format. */
interface Visitor {
  fields: number;
  onField(schema: MessageSchema, spec: FieldSpec, field: ProtoField, value: unknown): void;
}

function validateMessage(
  bytes: Uint8Array,
  start: number,
  end: number,
  schema: MessageSchema,
  visitor: Visitor,
  depth: number,
): void {
  if (depth > 4) throw malformed(`${schema.name} nests deeper than the schema allows`, start);
  const seen = new Set<number>();
  for (const field of readFields(bytes, start, end)) {
    if (++visitor.fields > SENTENCEPIECE_LIMITS.maxFields) {
      throw new FormatError(
        "LIMIT_EXCEEDED",
        `Invalid sentencepiece model: more than ${SENTENCEPIECE_LIMITS.maxFields} fields`,
        field.offset,
      );
    }
    const spec = schema.fields[field.number];
    if (spec === undefined) {
      throw malformed(`unknown field ${field.number} in ${schema.name}`, field.offset);
    }
    const where = `${schema.name}.${spec.name}`;
    const wire = WIRE_OF[spec.kind.type];
    if (field.wireType !== wire) {
      throw malformed(`${where} has wire type ${field.wireType}, expected ${wire}`, field.offset);
    }
    if (!spec.repeated) {
      if (seen.has(field.number)) throw malformed(`${where} appears twice`, field.offset);
      seen.add(field.number);
    }
    let value: unknown = null;
    switch (spec.kind.type) {
      case "string":
        try {
          value = utf8.decode(field.bytes);
        } catch {
          throw malformed(`${where} is not UTF-8`, field.payloadOffset ?? field.offset);
        }
        break;
      case "bytes":
        value = field.bytes;
        break;
      case "bool":
        if (field.varint !== 0n && field.varint !== 1n) {
          throw malformed(`${where} is ${field.varint}, not a boolean`, field.offset);
        }
        value = field.varint === 1n;
        break;
      case "int32": {
        // Negative int32 values are sign-extended to 64 bits on the wire.
        const signed = BigInt.asIntN(64, field.varint ?? 0n);
        if (signed < -(2n ** 31n) || signed >= 2n ** 31n) {
          throw malformed(`${where} = ${signed} does not fit an int32`, field.offset);
        }
        value = Number(signed);
        break;
      }
      case "uint64":
        value = field.varint;
        break;
      case "enum": {
        const n = Number(BigInt.asIntN(64, field.varint ?? 0n));
        if (!spec.kind.values.includes(n)) {
          throw malformed(`${where} = ${n} is not a defined value`, field.offset);
        }
        value = n;
        break;
      }
      case "float": {
        const f = new DataView(
          (field.bytes as Uint8Array).buffer,
          (field.bytes as Uint8Array).byteOffset,
          4,
        ).getFloat32(0, true);
        if (!Number.isFinite(f)) throw malformed(`${where} is not a finite number`, field.offset);
        value = f;
        break;
      }
      case "message": {
        const payload = field.payloadOffset as number;
        validateMessage(
          bytes,
          payload,
          payload + (field.bytes as Uint8Array).length,
          spec.kind.schema(),
          visitor,
          depth + 1,
        );
        break;
      }
    }
    visitor.onField(schema, spec, field, value);
  }
}

/** What a valid sentencepiece model holds. */
export interface SentencepieceSummary {
  pieces: number;
  /** `TrainerSpec.model_type` (1 unigram, 2 BPE, 3 word, 4 char), or null when absent. */
  modelType: number | null;
}

/**
 * Validates a sentencepiece `ModelProto`: the strict wire format, the schema of
 * `sentencepiece_model.proto`, and what sentencepiece itself requires to load a model — at
 * least one piece, every piece a non-empty string without NUL, no piece twice, and exactly
 * one piece of type UNKNOWN.
 * @param bytes the whole `.model` file
 * @returns piece count and model type
 * @throws {FormatError} naming the field and offset of the first rule broken
 */
export function checkSentencepieceModel(bytes: Uint8Array): SentencepieceSummary {
  if (bytes.length > SENTENCEPIECE_LIMITS.maxBytes) {
    throw new FormatError(
      "LIMIT_EXCEEDED",
      `Invalid sentencepiece model: ${bytes.length} bytes (at most ${SENTENCEPIECE_LIMITS.maxBytes})`,
      0,
    );
  }
  const pieces = new Set<string>();
  let unknown = 0;
  let current: { piece: string | null; type: number; offset: number } | null = null;
  let modelType: number | null = null;
  const finishPiece = () => {
    if (current === null) return;
    const { piece, type, offset } = current;
    current = null;
    if (piece === null || piece.length === 0) {
      throw malformed("a SentencePiece has no piece text", offset);
    }
    if (pieces.has(piece)) {
      throw malformed(`piece ${JSON.stringify(piece.slice(0, 40))} is defined twice`, offset);
    }
    pieces.add(piece);
    if (type === PIECE_TYPE_UNKNOWN) unknown++;
  };
  const visitor: Visitor = {
    fields: 0,
    onField(schema, spec, field, value) {
      if (schema === SENTENCE_PIECE) {
        current ??= { piece: null, type: 1, offset: field.offset };
        if (spec.name === "piece") {
          const piece = value as string;
          if (new TextEncoder().encode(piece).length > SENTENCEPIECE_LIMITS.maxPieceBytes) {
            throw new FormatError(
              "LIMIT_EXCEEDED",
              `Invalid sentencepiece model: a piece is longer than ${SENTENCEPIECE_LIMITS.maxPieceBytes} bytes`,
              field.offset,
            );
          }
          if (piece.includes("\0")) throw malformed("a piece contains NUL", field.offset);
          current.piece = piece;
        } else if (spec.name === "type") {
          current.type = value as number;
        }
      } else if (schema === MODEL_PROTO && spec.name === "pieces") {
        // Fields of a piece are reported before the piece itself: it is complete now.
        current ??= { piece: null, type: 1, offset: field.offset };
        finishPiece();
        if (pieces.size > SENTENCEPIECE_LIMITS.maxPieces) {
          throw new FormatError(
            "LIMIT_EXCEEDED",
            `Invalid sentencepiece model: more than ${SENTENCEPIECE_LIMITS.maxPieces} pieces`,
            field.offset,
          );
        }
      } else if (schema === TRAINER_SPEC && spec.name === "model_type") {
        modelType = value as number;
      }
    },
  };
  try {
    validateMessage(bytes, 0, bytes.length, MODEL_PROTO, visitor, 0);
    if (pieces.size === 0) throw malformed("the model has no pieces", 0);
    if (unknown !== 1) {
      throw malformed(`${unknown} pieces of type UNKNOWN (exactly one is required)`, 0);
    }
  } catch (error) {
    if (error instanceof FormatError) {
      throw new FormatError(
        error.code,
        error.message.replace(/^Invalid protobuf: /, "Invalid sentencepiece model: "),
        error.offset,
      );
    }
    throw error;
  }
  return { pieces: pieces.size, modelType };
}
