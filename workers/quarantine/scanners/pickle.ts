/**
 * A symbolic pickle VM (issue #6): walks every opcode of protocols 0–5 without executing
 * anything, keeps the stack, marks, memo and frames exactly as CPython's unpickler does, and
 * resolves every global the pickle would import — GLOBAL/INST lines, STACK_GLOBAL operands
 * however they were built (memo indirection included), EXT codes — and every call
 * (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST) and mutation (BUILD, SETITEM(S), APPEND(S)).
 * A global is allowed only when it is in the allowlist (pickle_allowlist.ts); anything else
 * is a finding naming the callable, the opcode and its byte offset. Anything the VM cannot
 * follow is a {@link FormatError} (the file is `invalid`, never clean).
 * @module
 */
import type { ByteSource } from "./_source.ts";
import { FormatError } from "./errors.ts";
import {
  ALLOWED_GLOBALS,
  HIGHER_ORDER,
  PY2_MODULES,
  severityOfDenied,
} from "./pickle_allowlist.ts";
import type { Finding } from "./types.ts";

/** A value on the symbolic stack. */
export type PValue =
  | { t: "none" }
  | { t: "bool"; v: boolean }
  | { t: "int"; v: bigint }
  | { t: "float"; v: number }
  | { t: "str"; v: string }
  /** Bytes; `v` is null when the payload was too large to keep (only its length is known). */
  | { t: "bytes"; v: Uint8Array | null; length: number; offset: number }
  | { t: "tuple"; items: PValue[] }
  | { t: "list"; items: PValue[] }
  | { t: "dict"; entries: [PValue, PValue][] }
  | { t: "set"; items: PValue[] }
  | { t: "global"; name: string; allowed: boolean; offset: number }
  | {
    t: "call";
    fn: PValue;
    args: PValue;
    kwargs: PValue | null;
    offset: number;
    /** BUILD state, SETITEM entries and APPEND items applied to the result. */
    state: PValue | null;
    entries: [PValue, PValue][];
    items: PValue[];
  }
  | { t: "persid"; id: PValue; offset: number }
  /** Out of reach of static analysis (an EXT code, a disallowed import's result). */
  | { t: "opaque"; why: string };

/** Limits of one pickle. */
export interface PickleLimits {
  /** Values created (stack items, containers, calls). */
  maxValues: number;
  /** Memo entries. */
  maxMemo: number;
  /** Bytes payloads kept in memory (larger ones keep only their length). */
  keepBytes: number;
  /** Line-based arguments (GLOBAL, INT, STRING…). */
  maxLine: number;
  /** Length of one string or bytes payload. */
  maxPayload: number;
}

/** Defaults: enough for a checkpoint with ~200 000 tensors. */
export const DEFAULT_PICKLE_LIMITS: Readonly<PickleLimits> = Object.freeze({
  maxValues: 8_000_000,
  maxMemo: 4_000_000,
  keepBytes: 1 << 16,
  maxLine: 1 << 16,
  maxPayload: 1 << 30,
});

/** One global the pickle imports. */
export interface ImportedGlobal {
  callable: string;
  opcode: string;
  offset: number;
  allowed: boolean;
}

/** Result of running one pickle. */
export interface PickleResult {
  /** The value STOP returned. */
  value: PValue;
  /** Highest PROTO seen (0 when none). */
  protocol: number;
  imports: ImportedGlobal[];
  /** Persistent ids (PERSID/BINPERSID) in order. */
  persistentIds: Extract<PValue, { t: "persid" }>[];
  findings: Finding[];
  /** Offset just past STOP, relative to the source. */
  end: number;
}

/** Options of {@link runPickle}. */
export interface RunPickleOptions {
  /** Finding `stage` field; default `pickle`. */
  stage?: string;
  /** Archive member the offsets are relative to. */
  member?: string;
  limits?: Partial<PickleLimits>;
  /**
   * Where findings go as they are found, so that a pickle that imports `os.system` and then
   * breaks is still reported as a threat; default a fresh array (`result.findings`).
   */
  sink?: Finding[];
}

const OPCODE_NAMES: Record<number, string> = {
  0x28: "MARK",
  0x2e: "STOP",
  0x30: "POP",
  0x31: "POP_MARK",
  0x32: "DUP",
  0x46: "FLOAT",
  0x49: "INT",
  0x4a: "BININT",
  0x4b: "BININT1",
  0x4c: "LONG",
  0x4d: "BININT2",
  0x4e: "NONE",
  0x50: "PERSID",
  0x51: "BINPERSID",
  0x52: "REDUCE",
  0x53: "STRING",
  0x54: "BINSTRING",
  0x55: "SHORT_BINSTRING",
  0x56: "UNICODE",
  0x58: "BINUNICODE",
  0x61: "APPEND",
  0x62: "BUILD",
  0x63: "GLOBAL",
  0x64: "DICT",
  0x7d: "EMPTY_DICT",
  0x65: "APPENDS",
  0x67: "GET",
  0x68: "BINGET",
  0x69: "INST",
  0x6a: "LONG_BINGET",
  0x6c: "LIST",
  0x5d: "EMPTY_LIST",
  0x6f: "OBJ",
  0x70: "PUT",
  0x71: "BINPUT",
  0x72: "LONG_BINPUT",
  0x73: "SETITEM",
  0x74: "TUPLE",
  0x29: "EMPTY_TUPLE",
  0x75: "SETITEMS",
  0x47: "BINFLOAT",
  0x80: "PROTO",
  0x81: "NEWOBJ",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
  0x85: "TUPLE1",
  0x86: "TUPLE2",
  0x87: "TUPLE3",
  0x88: "NEWTRUE",
  0x89: "NEWFALSE",
  0x8a: "LONG1",
  0x8b: "LONG4",
  0x42: "BINBYTES",
  0x43: "SHORT_BINBYTES",
  0x8c: "SHORT_BINUNICODE",
  0x8d: "BINUNICODE8",
  0x8e: "BINBYTES8",
  0x8f: "EMPTY_SET",
  0x90: "ADDITEMS",
  0x91: "FROZENSET",
  0x92: "NEWOBJ_EX",
  0x93: "STACK_GLOBAL",
  0x94: "MEMOIZE",
  0x95: "FRAME",
  0x96: "BYTEARRAY8",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
};

/** Name of a pickle opcode byte, or null when it is not one. */
export function opcodeName(byte: number): string | null {
  return OPCODE_NAMES[byte] ?? null;
}

/** Whether bytes look like the start of a pickle (PROTO 2–5, or a protocol-0/1 global). */
export function looksLikePickle(head: Uint8Array): boolean {
  if (head[0] === 0x80 && head[1] !== undefined && head[1] >= 2 && head[1] <= 5) return true;
  const text = new TextDecoder("latin1").decode(head.subarray(0, 16));
  return /^(\(|\}|\]|c[A-Za-z_][\w.]*\n)/.test(text) && OPCODE_NAMES[head[0] ?? 0] !== undefined;
}

const NONE: PValue = { t: "none" };
/** Longest string payload kept in memory. */
const MAX_STRING = 16 << 20;
const utf8 = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");

/**
 * Runs one pickle from the source's current position to its STOP.
 * @param source bytes positioned at the pickle's first opcode
 * @returns the symbolic result, the imports and the findings
 * @throws {FormatError} for anything CPython's unpickler would reject or we cannot follow
 */
export function runPickle(source: ByteSource, options: RunPickleOptions = {}): PickleResult {
  return new PickleVm(source, options).run();
}

class PickleVm {
  readonly #src: ByteSource;
  readonly #stage: string;
  readonly #member: string | undefined;
  readonly #limits: PickleLimits;
  #stack: PValue[] = [];
  readonly #marks: number[] = [];
  readonly #memo = new Map<number, PValue>();
  #values = 0;
  #protocol = 0;
  /** Source position where the current frame ends, or -1 outside frames. */
  #frameEnd = -1;
  #opOffset = 0;
  #opName = "";
  readonly #imports: ImportedGlobal[] = [];
  readonly #persids: Extract<PValue, { t: "persid" }>[] = [];
  readonly #findings: Finding[];

  constructor(source: ByteSource, options: RunPickleOptions) {
    this.#findings = options.sink ?? [];
    this.#src = source;
    this.#stage = options.stage ?? "pickle";
    this.#member = options.member;
    this.#limits = { ...DEFAULT_PICKLE_LIMITS, ...options.limits };
  }

  /** Absolute offset of the current opcode, for findings and errors. */
  get #at(): number {
    return this.#src.base + this.#opOffset;
  }

  #fail(code: "MALFORMED" | "LIMIT_EXCEEDED" | "UNSUPPORTED", why: string): FormatError {
    const where = this.#member ? ` in "${this.#member}"` : "";
    return new FormatError(
      code,
      `Invalid pickle${where}: ${this.#opName} at offset ${this.#at}: ${why}`,
      this.#at,
    );
  }

  #finding(rule: string, severity: Finding["severity"], message: string, extra: Partial<Finding>) {
    const finding: Finding = {
      stage: this.#stage,
      rule,
      severity,
      message,
      offset: this.#at,
      opcode: this.#opName,
      ...extra,
    };
    if (this.#member !== undefined) finding.member = this.#member;
    this.#findings.push(finding);
  }

  #count(n = 1): void {
    this.#values += n;
    if (this.#values > this.#limits.maxValues) {
      throw this.#fail("LIMIT_EXCEEDED", `more than ${this.#limits.maxValues} values`);
    }
  }

  #push(value: PValue): void {
    this.#count();
    this.#stack.push(value);
  }

  /** Items above the innermost MARK: CPython's current stack (the marks hold the rest). */
  #above(): number {
    return this.#stack.length - (this.#marks[this.#marks.length - 1] ?? 0);
  }

  #pop(): PValue {
    if (this.#above() <= 0) throw this.#fail("MALFORMED", "stack underflow");
    return this.#stack.pop() ?? NONE;
  }

  #top(): PValue {
    if (this.#above() <= 0) throw this.#fail("MALFORMED", "stack underflow");
    return this.#stack[this.#stack.length - 1] ?? NONE;
  }

  #popMark(): PValue[] {
    const mark = this.#marks.pop();
    if (mark === undefined) throw this.#fail("MALFORMED", "no MARK on the stack");
    const items = this.#stack.splice(mark);
    return items;
  }

  // ---- reading operands, frame-checked ------------------------------------------------

  #need(n: number): void {
    if (this.#frameEnd >= 0 && this.#src.position + n > this.#frameEnd) {
      throw this.#fail("MALFORMED", "operand runs past the end of its frame");
    }
  }

  #byte(): number {
    this.#need(1);
    return this.#src.readByte();
  }

  #bytes(n: number): Uint8Array {
    this.#need(n);
    return this.#src.readBytes(n);
  }

  #line(): Uint8Array {
    const start = this.#src.position;
    const line = this.#src.readLine(this.#limits.maxLine);
    if (this.#frameEnd >= 0 && start + line.length + 1 > this.#frameEnd) {
      throw this.#fail("MALFORMED", "line runs past the end of its frame");
    }
    return line;
  }

  #u16(): number {
    const b = this.#bytes(2);
    return (b[0] ?? 0) | ((b[1] ?? 0) << 8);
  }

  #u32(): number {
    const b = this.#bytes(4);
    return ((b[0] ?? 0) | ((b[1] ?? 0) << 8) | ((b[2] ?? 0) << 16)) + (b[3] ?? 0) * 0x1000000;
  }

  #i32(): number {
    const b = this.#bytes(4);
    return (b[0] ?? 0) | ((b[1] ?? 0) << 8) | ((b[2] ?? 0) << 16) | ((b[3] ?? 0) << 24);
  }

  #u64(): number {
    const low = this.#u32();
    const high = this.#u32();
    const value = high * 0x1_0000_0000 + low;
    if (high >= 0x20_0000) throw this.#fail("LIMIT_EXCEEDED", "64-bit length too large");
    return value;
  }

  #payloadLength(n: number): number {
    if (n > this.#limits.maxPayload) {
      throw this.#fail(
        "LIMIT_EXCEEDED",
        `payload of ${n} bytes is over ${this.#limits.maxPayload}`,
      );
    }
    return n;
  }

  #readBytesValue(n: number): PValue {
    this.#payloadLength(n);
    const offset = this.#src.base + this.#src.position;
    if (n <= this.#limits.keepBytes) {
      return { t: "bytes", v: this.#bytes(n).slice(), length: n, offset };
    }
    this.#need(n);
    this.#src.skip(n);
    return { t: "bytes", v: null, length: n, offset };
  }

  #readUtf8(n: number): string {
    this.#payloadLength(n);
    // Strings are kept (they name globals and keys); bytes payloads are not.
    if (n > MAX_STRING) {
      throw this.#fail("LIMIT_EXCEEDED", `string of ${n} bytes is over ${MAX_STRING}`);
    }
    try {
      return utf8.decode(this.#bytes(n));
    } catch (error) {
      if (error instanceof FormatError) throw error;
      throw this.#fail("MALFORMED", "string is not valid UTF-8");
    }
  }

  // ---- globals --------------------------------------------------------------------------

  #resolveGlobal(module: string, name: string): PValue {
    const mapped = this.#protocol < 3 ? PY2_MODULES.get(module) ?? module : module;
    const callable = `${mapped}.${name}`;
    const allowed = ALLOWED_GLOBALS.has(callable) && /^[A-Za-z_][\w.]*$/.test(callable);
    this.#imports.push({ callable, opcode: this.#opName, offset: this.#at, allowed });
    if (!allowed) {
      const severity = severityOfDenied(callable);
      this.#finding(
        "pickle.callable_not_allowed",
        severity,
        `Pickle imports "${callable}" (${this.#opName} at offset ${this.#at}), which is not in the allowlist`,
        { callable },
      );
    }
    return { t: "global", name: callable, allowed, offset: this.#at };
  }

  #lineName(): string {
    const line = this.#line();
    try {
      return utf8.decode(line);
    } catch (error) {
      if (error instanceof FormatError) throw error;
      throw this.#fail("MALFORMED", "global name is not valid UTF-8");
    }
  }

  /** A call of `fn`: checks that it may be called, records findings otherwise. */
  #call(fn: PValue, args: PValue, kwargs: PValue | null): PValue {
    if (fn.t === "global") {
      if (fn.allowed && ALLOWED_GLOBALS.get(fn.name) !== "call") {
        this.#finding(
          "pickle.reference_called",
          "high",
          `Pickle calls "${fn.name}" (${this.#opName} at offset ${this.#at}), which is allowed only as a reference`,
          { callable: fn.name },
        );
      }
      if (fn.allowed && HIGHER_ORDER.has(fn.name)) this.#checkCalledArguments(fn.name, args);
    } else if (fn.t !== "opaque") {
      this.#finding(
        "pickle.computed_callable",
        "critical",
        `Pickle calls a computed ${
          describe(fn)
        } (${this.#opName} at offset ${this.#at}) instead of an imported global`,
        { callable: `<${describe(fn)}>` },
      );
    }
    this.#count();
    return { t: "call", fn, args, kwargs, offset: this.#at, state: null, entries: [], items: [] };
  }

  /** Globals a higher-order callable will call must be callable themselves. */
  #checkCalledArguments(name: string, args: PValue): void {
    const items = args.t === "tuple" ? args.items : [];
    for (const item of items) {
      if (item.t === "global" && item.allowed && ALLOWED_GLOBALS.get(item.name) !== "call") {
        this.#finding(
          "pickle.reference_called",
          "high",
          `Pickle passes "${item.name}" to "${name}", which calls it (${this.#opName} at offset ${this.#at})`,
          { callable: item.name },
        );
      }
    }
  }

  /** SETITEM/APPEND/BUILD on an imported global would modify a module-level object. */
  #checkMutationTarget(target: PValue): void {
    if (target.t === "global") {
      this.#finding(
        "pickle.global_mutated",
        "critical",
        `Pickle modifies the imported object "${target.name}" (${this.#opName} at offset ${this.#at})`,
        { callable: target.name },
      );
    }
  }

  // ---- the loop -------------------------------------------------------------------------

  run(): PickleResult {
    const src = this.#src;
    for (;;) {
      if (this.#frameEnd >= 0 && src.position === this.#frameEnd) this.#frameEnd = -1;
      this.#opOffset = src.position;
      const op = this.#byte();
      const name = OPCODE_NAMES[op];
      if (name === undefined) {
        this.#opName = `0x${op.toString(16).padStart(2, "0")}`;
        throw this.#fail("MALFORMED", "unknown opcode");
      }
      this.#opName = name;
      if (op === 0x2e) {
        // STOP
        const value = this.#pop();
        if (this.#stack.length > 0 || this.#marks.length > 0) {
          this.#finding(
            "pickle.unbalanced_stack",
            "low",
            `Pickle stops with ${this.#stack.length} values and ${this.#marks.length} marks left on the stack`,
            {},
          );
        }
        return {
          value,
          protocol: this.#protocol,
          imports: this.#imports,
          persistentIds: this.#persids,
          findings: this.#findings,
          end: src.position,
        };
      }
      this.#step(op);
    }
  }

  #step(op: number): void {
    switch (op) {
      case 0x80: { // PROTO
        const version = this.#byte();
        if (version > 5) throw this.#fail("UNSUPPORTED", `protocol ${version} is newer than 5`);
        this.#protocol = version;
        return;
      }
      case 0x95: { // FRAME
        const length = this.#u64();
        if (this.#frameEnd >= 0 && this.#src.position !== this.#frameEnd) {
          throw this.#fail("MALFORMED", "a new frame starts before the current frame ends");
        }
        if (this.#src.position + length > this.#src.length) {
          throw this.#fail("MALFORMED", `frame of ${length} bytes runs past the end of the data`);
        }
        this.#frameEnd = length === 0 ? -1 : this.#src.position + length;
        return;
      }
      case 0x28: // MARK
        this.#marks.push(this.#stack.length);
        return;
      case 0x30: // POP: with nothing above the innermost mark, CPython pops the mark
        if (this.#above() > 0 || this.#marks.length === 0) this.#pop();
        else this.#popMark();
        return;
      case 0x31: // POP_MARK
        this.#popMark();
        return;
      case 0x32: // DUP
        this.#push(this.#top());
        return;
      case 0x4e: // NONE
        return this.#push(NONE);
      case 0x88: // NEWTRUE
        return this.#push({ t: "bool", v: true });
      case 0x89: // NEWFALSE
        return this.#push({ t: "bool", v: false });
      case 0x49: { // INT
        const text = latin1.decode(this.#line());
        if (text === "01" || text === "00") return this.#push({ t: "bool", v: text === "01" });
        return this.#push({ t: "int", v: this.#parseInt(text) });
      }
      case 0x4c: { // LONG
        const text = latin1.decode(this.#line());
        return this.#push({
          t: "int",
          v: this.#parseInt(text.endsWith("L") ? text.slice(0, -1) : text),
        });
      }
      case 0x4a: // BININT
        return this.#push({ t: "int", v: BigInt(this.#i32()) });
      case 0x4b: // BININT1
        return this.#push({ t: "int", v: BigInt(this.#byte()) });
      case 0x4d: // BININT2
        return this.#push({ t: "int", v: BigInt(this.#u16()) });
      case 0x8a: // LONG1
        return this.#push({ t: "int", v: this.#longBytes(this.#byte()) });
      case 0x8b: { // LONG4
        const n = this.#i32();
        if (n < 0) throw this.#fail("MALFORMED", "negative LONG4 length");
        if (n > 1 << 16) throw this.#fail("LIMIT_EXCEEDED", `LONG4 of ${n} bytes`);
        return this.#push({ t: "int", v: this.#longBytes(n) });
      }
      case 0x46: { // FLOAT
        const text = latin1.decode(this.#line()).trim();
        const value = Number(text);
        if (text === "" || (Number.isNaN(value) && !/^[-+]?nan$/i.test(text))) {
          if (!/^[-+]?inf$/i.test(text)) {
            throw this.#fail("MALFORMED", `bad float "${text.slice(0, 40)}"`);
          }
        }
        return this.#push({ t: "float", v: value });
      }
      case 0x47: { // BINFLOAT
        const bytes = this.#bytes(8);
        return this.#push({
          t: "float",
          v: new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0, false),
        });
      }
      case 0x53: // STRING
        return this.#push({ t: "str", v: this.#quotedString(this.#line()) });
      case 0x54: { // BINSTRING
        const n = this.#i32();
        if (n < 0) throw this.#fail("MALFORMED", "negative BINSTRING length");
        if (n > MAX_STRING) {
          throw this.#fail("LIMIT_EXCEEDED", `string of ${n} bytes is over ${MAX_STRING}`);
        }
        return this.#push({ t: "str", v: latin1.decode(this.#bytes(n)) });
      }
      case 0x55: // SHORT_BINSTRING
        return this.#push({ t: "str", v: latin1.decode(this.#bytes(this.#byte())) });
      case 0x56: // UNICODE (raw-unicode-escape)
        return this.#push({ t: "str", v: rawUnicodeEscape(latin1.decode(this.#line())) });
      case 0x58: // BINUNICODE
        return this.#push({ t: "str", v: this.#readUtf8(this.#u32()) });
      case 0x8c: // SHORT_BINUNICODE
        return this.#push({ t: "str", v: this.#readUtf8(this.#byte()) });
      case 0x8d: // BINUNICODE8
        return this.#push({ t: "str", v: this.#readUtf8(this.#u64()) });
      case 0x42: // BINBYTES
        return this.#push(this.#readBytesValue(this.#u32()));
      case 0x43: // SHORT_BINBYTES
        return this.#push(this.#readBytesValue(this.#byte()));
      case 0x8e: // BINBYTES8
        return this.#push(this.#readBytesValue(this.#u64()));
      case 0x96: // BYTEARRAY8
        return this.#push(this.#readBytesValue(this.#u64()));
      case 0x97: // NEXT_BUFFER
      case 0x98: // READONLY_BUFFER
        throw this.#fail("UNSUPPORTED", "out-of-band buffers cannot come from a file");
      case 0x29: // EMPTY_TUPLE
        return this.#push({ t: "tuple", items: [] });
      case 0x85: // TUPLE1
        return this.#push({ t: "tuple", items: [this.#pop()] });
      case 0x86: { // TUPLE2
        const b = this.#pop();
        const a = this.#pop();
        return this.#push({ t: "tuple", items: [a, b] });
      }
      case 0x87: { // TUPLE3
        const c = this.#pop();
        const b = this.#pop();
        const a = this.#pop();
        return this.#push({ t: "tuple", items: [a, b, c] });
      }
      case 0x74: // TUPLE
        return this.#push({ t: "tuple", items: this.#popMark() });
      case 0x5d: // EMPTY_LIST
        return this.#push({ t: "list", items: [] });
      case 0x6c: // LIST
        return this.#push({ t: "list", items: this.#popMark() });
      case 0x7d: // EMPTY_DICT
        return this.#push({ t: "dict", entries: [] });
      case 0x64: { // DICT
        const items = this.#popMark();
        if (items.length % 2 !== 0) throw this.#fail("MALFORMED", "odd number of items for a dict");
        const entries: [PValue, PValue][] = [];
        for (let i = 0; i < items.length; i += 2) {
          entries.push([items[i] ?? NONE, items[i + 1] ?? NONE]);
        }
        return this.#push({ t: "dict", entries });
      }
      case 0x8f: // EMPTY_SET
        return this.#push({ t: "set", items: [] });
      case 0x91: // FROZENSET
        return this.#push({ t: "set", items: this.#popMark() });
      case 0x90: { // ADDITEMS
        const items = this.#popMark();
        const target = this.#top();
        this.#checkMutationTarget(target);
        if (target.t === "set") target.items.push(...items);
        else if (target.t === "call") target.items.push(...items);
        else if (target.t !== "opaque") {
          throw this.#fail("MALFORMED", `ADDITEMS on a ${describe(target)}`);
        }
        return;
      }
      case 0x61: { // APPEND
        const item = this.#pop();
        this.#append(this.#top(), [item]);
        return;
      }
      case 0x65: { // APPENDS
        const items = this.#popMark();
        this.#append(this.#top(), items);
        return;
      }
      case 0x73: { // SETITEM
        const value = this.#pop();
        const key = this.#pop();
        this.#setItems(this.#top(), [[key, value]]);
        return;
      }
      case 0x75: { // SETITEMS
        const items = this.#popMark();
        if (items.length % 2 !== 0) {
          throw this.#fail("MALFORMED", "odd number of items for SETITEMS");
        }
        const pairs: [PValue, PValue][] = [];
        for (let i = 0; i < items.length; i += 2) {
          pairs.push([items[i] ?? NONE, items[i + 1] ?? NONE]);
        }
        this.#setItems(this.#top(), pairs);
        return;
      }
      case 0x67: { // GET
        const index = Number(this.#parseInt(latin1.decode(this.#line())));
        return this.#push(this.#memoGet(index));
      }
      case 0x68: // BINGET
        return this.#push(this.#memoGet(this.#byte()));
      case 0x6a: // LONG_BINGET
        return this.#push(this.#memoGet(this.#u32()));
      case 0x70: { // PUT
        const index = this.#parseInt(latin1.decode(this.#line()));
        if (index < 0n) throw this.#fail("MALFORMED", "negative PUT index");
        return this.#memoPut(Number(index));
      }
      case 0x71: // BINPUT
        return this.#memoPut(this.#byte());
      case 0x72: // LONG_BINPUT
        return this.#memoPut(this.#u32());
      case 0x94: // MEMOIZE
        return this.#memoPut(this.#memo.size);
      case 0x63: { // GLOBAL
        const module = this.#lineName();
        const name = this.#lineName();
        return this.#push(this.#resolveGlobal(module, name));
      }
      case 0x93: { // STACK_GLOBAL
        const name = this.#pop();
        const module = this.#pop();
        if (module.t !== "str" || name.t !== "str") {
          const callable = `<${describe(module)}>.<${describe(name)}>`;
          this.#finding(
            "pickle.unresolved_global",
            "critical",
            `Pickle imports a global whose name is computed at load time (STACK_GLOBAL at offset ${this.#at})`,
            { callable },
          );
          return this.#push({ t: "opaque", why: "unresolved global" });
        }
        return this.#push(this.#resolveGlobal(module.v, name.v));
      }
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: { // EXT4
        const code = op === 0x82 ? this.#byte() : op === 0x83 ? this.#u16() : this.#i32();
        this.#finding(
          "pickle.extension_code",
          "high",
          `Pickle imports extension code ${code} (${this.#opName} at offset ${this.#at}); the copyreg registry it names cannot be checked`,
          { callable: `<extension ${code}>` },
        );
        return this.#push({ t: "opaque", why: `extension ${code}` });
      }
      case 0x52: { // REDUCE
        const args = this.#pop();
        const fn = this.#pop();
        return this.#push(this.#call(fn, args, null));
      }
      case 0x81: { // NEWOBJ
        const args = this.#pop();
        const cls = this.#pop();
        return this.#push(this.#call(cls, args, null));
      }
      case 0x92: { // NEWOBJ_EX
        const kwargs = this.#pop();
        const args = this.#pop();
        const cls = this.#pop();
        return this.#push(this.#call(cls, args, kwargs));
      }
      case 0x69: { // INST
        const module = this.#lineName();
        const name = this.#lineName();
        const args = this.#popMark();
        const cls = this.#resolveGlobal(module, name);
        return this.#push(this.#call(cls, { t: "tuple", items: args }, null));
      }
      case 0x6f: { // OBJ
        const items = this.#popMark();
        const cls = items.shift();
        if (cls === undefined) throw this.#fail("MALFORMED", "OBJ without a class");
        return this.#push(this.#call(cls, { t: "tuple", items }, null));
      }
      case 0x62: { // BUILD
        const state = this.#pop();
        const target = this.#top();
        this.#checkMutationTarget(target);
        if (target.t === "call") target.state = state;
        return;
      }
      case 0x50: { // PERSID
        const id: PValue = { t: "str", v: latin1.decode(this.#line()) };
        const value = { t: "persid" as const, id, offset: this.#at };
        this.#persids.push(value);
        return this.#push(value);
      }
      case 0x51: { // BINPERSID
        const value = { t: "persid" as const, id: this.#pop(), offset: this.#at };
        this.#persids.push(value);
        return this.#push(value);
      }
      default:
        throw this.#fail("MALFORMED", "unknown opcode");
    }
  }

  #append(target: PValue, items: PValue[]): void {
    this.#checkMutationTarget(target);
    if (target.t === "list" || target.t === "call") target.items.push(...items);
    else if (target.t !== "opaque" && target.t !== "global") {
      throw this.#fail("MALFORMED", `APPEND on a ${describe(target)}`);
    }
  }

  #setItems(target: PValue, pairs: [PValue, PValue][]): void {
    this.#checkMutationTarget(target);
    if (target.t === "dict" || target.t === "call") target.entries.push(...pairs);
    else if (target.t !== "opaque" && target.t !== "global") {
      throw this.#fail("MALFORMED", `SETITEM on a ${describe(target)}`);
    }
  }

  #memoGet(index: number): PValue {
    const value = this.#memo.get(index);
    if (value === undefined) throw this.#fail("MALFORMED", `memo entry ${index} was never stored`);
    return value;
  }

  #memoPut(index: number): void {
    if (!this.#memo.has(index) && this.#memo.size >= this.#limits.maxMemo) {
      throw this.#fail("LIMIT_EXCEEDED", `more than ${this.#limits.maxMemo} memo entries`);
    }
    this.#memo.set(index, this.#top());
  }

  #parseInt(text: string): bigint {
    if (!/^[-+]?\d{1,4300}$/.test(text)) {
      throw this.#fail("MALFORMED", `bad integer "${text.slice(0, 40)}"`);
    }
    return BigInt(text.startsWith("+") ? text.slice(1) : text);
  }

  #longBytes(n: number): bigint {
    if (n === 0) return 0n;
    const bytes = this.#bytes(n);
    let value = 0n;
    for (let i = n - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0);
    if ((bytes[n - 1] ?? 0) & 0x80) value -= 1n << BigInt(8 * n);
    return value;
  }

  /** A protocol-0 STRING argument: a quoted Python bytes literal. */
  #quotedString(line: Uint8Array): string {
    const text = latin1.decode(line);
    const quote = text[0];
    if (text.length < 2 || (quote !== "'" && quote !== '"') || text[text.length - 1] !== quote) {
      throw this.#fail("MALFORMED", "STRING argument is not quoted");
    }
    const decoded = unescapeBytes(text.slice(1, -1));
    if (decoded === null) throw this.#fail("MALFORMED", "bad escape in STRING argument");
    return decoded;
  }
}

/** Short type name of a value for messages. */
export function describe(value: PValue): string {
  switch (value.t) {
    case "global":
      return `global ${value.name}`;
    case "call":
      return `result of ${value.fn.t === "global" ? value.fn.name : "a call"}`;
    default:
      return value.t;
  }
}

const SIMPLE_ESCAPES: Record<string, string> = {
  "\\": "\\",
  "'": "'",
  '"': '"',
  n: "\n",
  r: "\r",
  t: "\t",
  a: "\x07",
  b: "\b",
  f: "\f",
  v: "\v",
  "\n": "",
};

/** Decodes Python bytes-literal escapes; null on a malformed escape. */
function unescapeBytes(text: string): string | null {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? "";
    if (c !== "\\") {
      out += c;
      continue;
    }
    const next = text[++i];
    if (next === undefined) return null;
    const simple = SIMPLE_ESCAPES[next];
    if (simple !== undefined) {
      out += simple;
    } else if (next === "x") {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return null;
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else if (/[0-7]/.test(next)) {
      const oct = /^[0-7]{1,3}/.exec(text.slice(i))?.[0] ?? next;
      out += String.fromCharCode(parseInt(oct, 8) & 0xff);
      i += oct.length - 1;
    } else {
      out += `\\${next}`;
    }
  }
  return out;
}

/** Decodes raw-unicode-escape (`\uXXXX`, `\UXXXXXXXX`; everything else literal). */
function rawUnicodeEscape(text: string): string {
  return text.replace(
    /\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g,
    (_m, u4?: string, u8?: string) => {
      const code = parseInt(u4 ?? u8 ?? "0", 16);
      return code <= 0x10ffff ? String.fromCodePoint(code) : "\ufffd";
    },
  );
}
