/**
 * numpy `.npy` reader (format versions 1.0, 2.0 and 3.0): the header is a Python dict
 * literal, parsed here by a strict literal parser (never `eval`). Plain arrays must have
 * exactly shape × itemsize data bytes; object arrays are pickles and go through the pickle VM.
 * @module
 */
import type { ByteSource } from "./_source.ts";
import { FormatError } from "./errors.ts";
import { runPickle } from "./pickle.ts";
import type { Finding } from "./types.ts";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
const MAX_HEADER = 1 << 20;
const MAX_DIMS = 64;

/** Python literal values that can appear in an npy header. */
type Literal = string | number | boolean | null | Literal[] | { [key: string]: Literal } | {
  tuple: Literal[];
};

/** Parsed header. */
export interface NpyHeader {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  /** Bytes per element, or null for object arrays. */
  itemSize: number | null;
  /** Offset of the data, relative to the start of the .npy. */
  dataOffset: number;
}

/** Result of scanning one .npy. */
export interface NpyScan {
  header: NpyHeader;
  findings: Finding[];
}

/** Whether bytes start with the npy magic. */
export function isNpy(head: Uint8Array): boolean {
  return MAGIC.every((byte, i) => head[i] === byte);
}

function invalid(message: string, offset?: number): FormatError {
  return new FormatError("MALFORMED", `Invalid npy: ${message}`, offset);
}

/**
 * Scans one .npy from the source's start to its end.
 * @param source the .npy bytes (a file or an archive member)
 * @param options finding stage and member
 * @throws {FormatError} for a bad header or a data size that does not match the shape
 */
export function scanNpy(
  source: ByteSource,
  options: { member?: string; findings?: Finding[] } = {},
): NpyScan {
  const findings: Finding[] = options.findings ?? [];
  const head = source.readBytes(8);
  if (!isNpy(head)) throw invalid("missing magic", source.base);
  const major = head[6] ?? 0;
  const minor = head[7] ?? 0;
  if (![1, 2, 3].includes(major) || minor !== 0) {
    throw invalid(`unknown version ${major}.${minor}`, source.base + 6);
  }
  const lengthBytes = source.readBytes(major === 1 ? 2 : 4);
  let headerLength = 0;
  for (let i = lengthBytes.length - 1; i >= 0; i--) {
    headerLength = headerLength * 256 + (lengthBytes[i] ?? 0);
  }
  if (headerLength > MAX_HEADER) {
    throw new FormatError(
      "LIMIT_EXCEEDED",
      `Invalid npy: header of ${headerLength} bytes`,
      source.base + 8,
    );
  }
  const headerAt = source.base + source.position;
  const headerBytes = source.readBytes(headerLength);
  let text: string;
  try {
    text = new TextDecoder(major === 3 ? "utf-8" : "latin1", { fatal: true }).decode(headerBytes);
  } catch {
    throw invalid("header is not valid text", headerAt);
  }
  if (!text.endsWith("\n")) throw invalid("header does not end with a newline", headerAt);
  const literal = new LiteralParser(text.trimEnd(), headerAt).parseAll();
  const header = checkHeader(literal, headerAt, source.position);
  const member = options.member === undefined ? {} : { member: options.member };
  const remaining = source.length - source.position;
  if (header.itemSize === null) {
    findings.push({
      stage: "npy",
      rule: "npy.object_array",
      severity: "low",
      message:
        `Object array (descr "${header.descr}") is stored as a pickle and needs allow_pickle to load`,
      offset: source.base + source.position,
      ...member,
    });
    runPickle(source, { stage: "pickle", ...member, sink: findings });
    if (!source.atEnd()) {
      findings.push({
        stage: "npy",
        rule: "npy.trailing_data",
        severity: "medium",
        message: `${source.length - source.position} bytes follow the object array's pickle`,
        offset: source.base + source.position,
        ...member,
      });
    }
    return { header, findings };
  }
  let expected = header.itemSize;
  for (const dim of header.shape) expected *= dim;
  if (!Number.isSafeInteger(expected) || expected !== remaining) {
    throw invalid(
      `shape (${
        header.shape.join(", ")
      }) of "${header.descr}" needs ${expected} data bytes, the file has ${remaining}`,
      source.base + source.position,
    );
  }
  source.skip(remaining);
  return { header, findings };
}

function checkHeader(literal: Literal, at: number, dataOffset: number): NpyHeader {
  if (
    literal === null || typeof literal !== "object" || Array.isArray(literal) || "tuple" in literal
  ) {
    throw invalid("header is not a dict", at);
  }
  const keys = Object.keys(literal).sort();
  if (keys.join(",") !== "descr,fortran_order,shape") {
    throw invalid(
      `header keys are ${JSON.stringify(keys)}, expected descr, fortran_order and shape`,
      at,
    );
  }
  const { descr, fortran_order: fortran, shape } = literal as Record<string, Literal>;
  if (typeof fortran !== "boolean") throw invalid("fortran_order is not a bool", at);
  if (shape === null || typeof shape !== "object" || !("tuple" in shape)) {
    throw invalid("shape is not a tuple", at);
  }
  const dims = (shape as { tuple: Literal[] }).tuple;
  if (dims.length > MAX_DIMS) throw invalid(`shape has ${dims.length} dimensions`, at);
  const numbers = dims.map((dim) => {
    if (typeof dim !== "number" || !Number.isSafeInteger(dim) || dim < 0) {
      throw invalid("shape has a bad dimension", at);
    }
    return dim;
  });
  let itemSize: number | null;
  let descrText: string;
  if (typeof descr === "string") {
    descrText = descr;
    itemSize = itemSizeOf(descr, at);
  } else if (Array.isArray(descr)) {
    // Structured dtype: object fields make the whole array a pickle.
    descrText = JSON.stringify(descr);
    itemSize = structuredSize(descr, at);
  } else {
    throw invalid("descr is neither a string nor a list", at);
  }
  return { descr: descrText, fortranOrder: fortran, shape: numbers, itemSize, dataOffset };
}

function itemSizeOf(descr: string, at: number): number | null {
  const match = /^([<>|=]?)([?bBhHiIlLqQpPefdgFDGSaUVOMm]|[biufcSaUVMm])(\d*)(\[[a-zA-Z0-9]+\])?$/
    .exec(descr);
  if (match === null) throw invalid(`unknown descr "${descr}"`, at);
  const [, , kind = "", digits = ""] = match;
  if (kind === "O") return null;
  const n = digits === "" ? NaN : Number(digits);
  const fixed: Record<string, number> = {
    "?": 1,
    b: 1,
    B: 1,
    h: 2,
    H: 2,
    e: 2,
    f: 4,
    d: 8,
    g: 16,
    F: 8,
    D: 16,
    G: 32,
  };
  if (digits === "" && fixed[kind] !== undefined) return fixed[kind];
  if (!Number.isSafeInteger(n) || n <= 0 || n > 1 << 20) {
    throw invalid(`bad item size in descr "${descr}"`, at);
  }
  if (kind === "U") return 4 * n;
  if (kind === "b" && n !== 1) throw invalid(`bad bool size in descr "${descr}"`, at);
  return n;
}

function structuredSize(fields: Literal[], at: number): number | null {
  let total = 0;
  for (const field of fields) {
    const items: Literal[] | null =
      field !== null && typeof field === "object" && !Array.isArray(field) && "tuple" in field
        ? (field as { tuple: Literal[] }).tuple
        : null;
    if (items === null || items.length < 2 || typeof items[0] !== "string") {
      throw invalid("bad structured descr", at);
    }
    const type = items[1];
    let size: number | null;
    if (typeof type === "string") size = itemSizeOf(type, at);
    else if (Array.isArray(type)) size = structuredSize(type, at);
    else throw invalid("bad structured descr", at);
    if (size === null) return null;
    let count = 1;
    const shape = items[2];
    if (shape !== undefined) {
      const dims: Literal[] =
        shape !== null && typeof shape === "object" && !Array.isArray(shape) && "tuple" in shape
          ? (shape as { tuple: Literal[] }).tuple
          : [shape];
      for (const dim of dims) {
        if (typeof dim !== "number" || !Number.isSafeInteger(dim) || dim < 0) {
          throw invalid("bad field shape", at);
        }
        count *= dim;
      }
    }
    total += size * count;
  }
  return total;
}

/** Parses the Python literal subset numpy writes: dict, tuple, list, str, int, bool, None. */
class LiteralParser {
  #text: string;
  #p = 0;
  #at: number;
  #depth = 0;

  constructor(text: string, at: number) {
    this.#text = text;
    this.#at = at;
  }

  parseAll(): Literal {
    const value = this.#value();
    this.#space();
    if (this.#p !== this.#text.length) {
      throw invalid(`unexpected text at header position ${this.#p}`, this.#at);
    }
    return value;
  }

  #space(): void {
    while (/\s/.test(this.#text[this.#p] ?? "")) this.#p++;
  }

  #value(): Literal {
    this.#space();
    if (++this.#depth > 32) throw invalid("header nests too deeply", this.#at);
    try {
      const c = this.#text[this.#p];
      if (c === "{") return this.#dict();
      if (c === "(") return { tuple: this.#sequence("(", ")") };
      if (c === "[") return this.#sequence("[", "]");
      if (c === "'" || c === '"') return this.#string();
      const word = /^(True|False|None|-?\d+)/.exec(this.#text.slice(this.#p))?.[0];
      if (word === undefined) {
        throw invalid(`unexpected "${c}" at header position ${this.#p}`, this.#at);
      }
      this.#p += word.length;
      if (word === "True") return true;
      if (word === "False") return false;
      if (word === "None") return null;
      const n = Number(word);
      if (!Number.isSafeInteger(n)) throw invalid(`integer "${word}" is too large`, this.#at);
      return n;
    } finally {
      this.#depth--;
    }
  }

  #string(): string {
    const quote = this.#text[this.#p++];
    let out = "";
    for (;;) {
      const c = this.#text[this.#p++];
      if (c === undefined) throw invalid("unterminated string", this.#at);
      if (c === quote) return out;
      if (c === "\\") throw invalid("escapes in header strings are not supported", this.#at);
      out += c;
    }
  }

  #sequence(open: string, close: string): Literal[] {
    this.#p++; // open
    const items: Literal[] = [];
    for (;;) {
      this.#space();
      if (this.#text[this.#p] === close) {
        this.#p++;
        return items;
      }
      items.push(this.#value());
      this.#space();
      const c = this.#text[this.#p];
      if (c === ",") this.#p++;
      else if (c !== close) throw invalid(`expected "," or "${close}" after ${open}…`, this.#at);
    }
  }

  #dict(): Literal {
    this.#p++;
    const out: Record<string, Literal> = Object.create(null);
    for (;;) {
      this.#space();
      if (this.#text[this.#p] === "}") {
        this.#p++;
        return out;
      }
      const key = this.#value();
      if (typeof key !== "string") throw invalid("dict key is not a string", this.#at);
      if (Object.hasOwn(out, key)) throw invalid(`duplicate key "${key}"`, this.#at);
      this.#space();
      if (this.#text[this.#p++] !== ":") throw invalid("expected ':'", this.#at);
      out[key] = this.#value();
      this.#space();
      const c = this.#text[this.#p];
      if (c === ",") this.#p++;
      else if (c !== "}") throw invalid("expected ',' or '}'", this.#at);
    }
  }
}
