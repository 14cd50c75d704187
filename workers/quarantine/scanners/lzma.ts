/**
 * A strict LZMA/LZMA2 decoder for wrapped model files (issue #6), written from the LZMA
 * specification (`LzmaSpec.cpp` of the LZMA SDK) and the LZMA2 chunk rules of xz-embedded.
 * `xz.ts` uses the LZMA2 layer for `.xz` files; {@link unlzma} reads the legacy `.lzma`
 * ("LZMA_Alone") format. Every range-coder chunk must end exactly where its header says
 * (compressed size, code 0); a match may not reach before the start of the data or past the
 * end of its chunk.
 *
 * Memory: the dictionary grows with the data up to the declared size and never beyond
 * {@link MAX_DICT}; a stream that refers further back than that is refused
 * (`LIMIT_EXCEEDED`). The probability tables take at most 6 MiB (lc + lp = 12).
 * @module
 */
import { ChunkWriter, type CompressedInput, type OutputSink } from "./_compressed.ts";
import { FormatError } from "./errors.ts";

/** Largest dictionary held in memory (xz -9 uses 64 MiB). */
export const MAX_DICT = 256 << 20;
const INITIAL_WINDOW = 1 << 20;
const PROB_INIT = 1024;
const STATES = 12;
const POS_STATES_MAX = 16;
const END_POS_MODEL_INDEX = 14;
const FULL_DISTANCES = 128;
const ALIGN_BITS = 4;
const LEN_LOW = 2;
const LEN_MID = LEN_LOW + POS_STATES_MAX * 8;
const LEN_HIGH = LEN_MID + POS_STATES_MAX * 8;
const LEN_PROBS = LEN_HIGH + 256;
const MATCH_MIN_LEN = 2;

/** Literal context, literal position and position bits. */
export interface LzmaProperties {
  lc: number;
  lp: number;
  pb: number;
}

function malformed(what: string, message: string, offset: number): FormatError {
  return new FormatError("MALFORMED", `Invalid ${what} stream: ${message}`, offset);
}

/**
 * Decodes the properties byte `(pb * 5 + lp) * 9 + lc`.
 * @param lzma2 LZMA2 also requires lc + lp ≤ 4
 * @returns null when the byte is out of range
 */
export function decodeProperties(byte: number, lzma2: boolean): LzmaProperties | null {
  if (byte >= 9 * 5 * 5) return null;
  const lc = byte % 9;
  const lp = Math.floor(byte / 9) % 5;
  const pb = Math.floor(byte / 45);
  if (lzma2 && lc + lp > 4) return null;
  return { lc, lp, pb };
}

/** The decoded data: a dictionary window that grows up to its limit, then wraps. */
class Window {
  readonly #declared: number;
  readonly #max: number;
  readonly #out: ChunkWriter;
  buffer: Uint8Array;
  /** Write position in `buffer`. */
  pos = 0;
  /** Valid bytes behind `pos` (at most the buffer's length). */
  filled = 0;
  /** Bytes since the last dictionary reset (LZMA's "total position"). */
  total = 0;

  constructor(declared: number, out: ChunkWriter) {
    this.#declared = declared;
    this.#max = Math.min(declared, MAX_DICT);
    this.#out = out;
    this.buffer = new Uint8Array(Math.min(this.#max, INITIAL_WINDOW));
  }

  /** Forgets the data (LZMA2 dictionary reset). */
  reset(): void {
    this.pos = 0;
    this.filled = 0;
    this.total = 0;
  }

  put(byte: number): void {
    this.buffer[this.pos++] = byte;
    this.total++;
    if (this.filled < this.pos) this.filled = this.pos;
    if (this.pos === this.buffer.length) this.#advance();
    this.#out.byte(byte);
  }

  /** The byte `distance` bytes back (1 = the last one); the caller checked the distance. */
  get(distance: number): number {
    let i = this.pos - distance;
    if (i < 0) i += this.buffer.length;
    return this.buffer[i] as number;
  }

  /**
   * Checks that a match `distance` bytes back lies in the data.
   * @throws {FormatError} `MALFORMED`, or `LIMIT_EXCEEDED` when it lies beyond {@link MAX_DICT}
   */
  check(distance: number, what: string, at: number): void {
    if (distance <= this.filled) return;
    if (distance <= this.#declared && this.filled === this.#max && this.#max < this.#declared) {
      throw new FormatError(
        "LIMIT_EXCEEDED",
        `The ${what} stream refers ${distance} bytes back; only ${MAX_DICT} bytes of dictionary are kept`,
        at,
      );
    }
    throw malformed(
      what,
      `a match refers ${distance} bytes back, before the start of the data`,
      at,
    );
  }

  #advance(): void {
    if (this.buffer.length < this.#max) {
      const grown = new Uint8Array(Math.min(this.#max, this.buffer.length * 2));
      grown.set(this.buffer);
      this.buffer = grown;
    } else {
      this.pos = 0;
    }
  }
}

/** The range decoder of LZMA. */
class RangeDecoder {
  readonly #input: CompressedInput;
  readonly #what: string;
  range = 0;
  code = 0;

  constructor(input: CompressedInput, what: string) {
    this.#input = input;
    this.#what = what;
  }

  /** Starts a range-coded chunk: a zero byte, then the first 32 bits of the code. */
  init(): void {
    const at = this.#input.offset;
    if (this.#input.readByte() !== 0) {
      throw malformed(this.#what, "a range-coded chunk does not start with a zero byte", at);
    }
    let code = 0;
    for (let i = 0; i < 4; i++) code = ((code << 8) | this.#input.readByte()) >>> 0;
    this.range = 0xffffffff;
    this.code = code;
    if (code === this.range) throw malformed(this.#what, "a corrupt range-coder start", at);
  }

  /** Whether the coder ended cleanly (LzmaSpec `IsFinishedOK`). */
  get finished(): boolean {
    return this.code === 0;
  }

  bit(probs: Uint16Array, i: number): number {
    const p = probs[i] as number;
    const bound = (this.range >>> 11) * p;
    let bit: number;
    if (this.code < bound) {
      this.range = bound;
      probs[i] = p + ((2048 - p) >>> 5);
      bit = 0;
    } else {
      this.range -= bound;
      this.code -= bound;
      probs[i] = p - (p >>> 5);
      bit = 1;
    }
    if (this.range < 0x1000000) {
      this.range = (this.range << 8) >>> 0;
      this.code = ((this.code << 8) | this.#input.readByte()) >>> 0;
    }
    return bit;
  }

  direct(count: number): number {
    let result = 0;
    for (let i = 0; i < count; i++) {
      this.range >>>= 1;
      let bit = 0;
      if (this.code >= this.range) {
        this.code -= this.range;
        bit = 1;
      }
      result = result * 2 + bit;
      if (this.range < 0x1000000) {
        this.range = (this.range << 8) >>> 0;
        this.code = ((this.code << 8) | this.#input.readByte()) >>> 0;
      }
    }
    return result;
  }

  tree(probs: Uint16Array, base: number, count: number): number {
    let m = 1;
    for (let i = 0; i < count; i++) m = (m << 1) | this.bit(probs, base + m);
    return m - (1 << count);
  }

  reverse(probs: Uint16Array, base: number, count: number): number {
    let m = 1;
    let symbol = 0;
    for (let i = 0; i < count; i++) {
      const bit = this.bit(probs, base + m);
      m = (m << 1) | bit;
      symbol |= bit << i;
    }
    return symbol;
  }
}

/** LZMA decoder state: probabilities, state machine and the four last distances. */
class LzmaState {
  readonly #what: string;
  props: LzmaProperties = { lc: 0, lp: 0, pb: 0 };
  literals = new Uint16Array(0x300);
  isMatch = new Uint16Array(STATES * POS_STATES_MAX);
  isRep = new Uint16Array(STATES);
  isRepG0 = new Uint16Array(STATES);
  isRepG1 = new Uint16Array(STATES);
  isRepG2 = new Uint16Array(STATES);
  isRep0Long = new Uint16Array(STATES * POS_STATES_MAX);
  posSlot = new Uint16Array(4 * 64);
  posDecoders = new Uint16Array(1 + FULL_DISTANCES - END_POS_MODEL_INDEX);
  align = new Uint16Array(1 << ALIGN_BITS);
  lenProbs = new Uint16Array(LEN_PROBS);
  repLenProbs = new Uint16Array(LEN_PROBS);
  state = 0;
  rep0 = 0;
  rep1 = 0;
  rep2 = 0;
  rep3 = 0;

  constructor(what: string) {
    this.#what = what;
  }

  /** New properties and a state reset. */
  setProperties(props: LzmaProperties): void {
    this.props = props;
    const size = 0x300 << (props.lc + props.lp);
    if (this.literals.length !== size) this.literals = new Uint16Array(size);
    this.reset();
  }

  /** State reset: every probability to one half, state and distances to zero. */
  reset(): void {
    for (
      const probs of [
        this.literals,
        this.isMatch,
        this.isRep,
        this.isRepG0,
        this.isRepG1,
        this.isRepG2,
        this.isRep0Long,
        this.posSlot,
        this.posDecoders,
        this.align,
        this.lenProbs,
        this.repLenProbs,
      ]
    ) probs.fill(PROB_INIT);
    this.state = 0;
    this.rep0 =
      this.rep1 =
      this.rep2 =
      this.rep3 =
        0;
  }

  #length(rc: RangeDecoder, probs: Uint16Array, posState: number): number {
    if (rc.bit(probs, 0) === 0) return rc.tree(probs, LEN_LOW + posState * 8, 3);
    if (rc.bit(probs, 1) === 0) return 8 + rc.tree(probs, LEN_MID + posState * 8, 3);
    return 16 + rc.tree(probs, LEN_HIGH, 8);
  }

  #distance(rc: RangeDecoder, len: number): number {
    const lenState = Math.min(len, 3);
    const slot = rc.tree(this.posSlot, lenState * 64, 6);
    if (slot < 4) return slot;
    const directBits = (slot >>> 1) - 1;
    let distance = (2 | (slot & 1)) * 2 ** directBits;
    if (slot < END_POS_MODEL_INDEX) {
      return distance + rc.reverse(this.posDecoders, distance - slot, directBits);
    }
    distance += rc.direct(directBits - ALIGN_BITS) * 2 ** ALIGN_BITS;
    return distance + rc.reverse(this.align, 0, ALIGN_BITS);
  }

  /**
   * Decodes until the declared end (`remaining` bytes), an end marker when one may come, or
   * a pause once `budget` bytes were produced in this call.
   * @param remaining bytes up to the declared end (Infinity: unknown, an end marker ends it)
   * @param budget bytes after which the call returns "pause" (a match may overshoot it)
   * @param markerAllowed whether an end-of-payload marker may end the data (LZMA1)
   * @param dictSize the declared dictionary size (no distance may reach further)
   * @returns how the call ended and how many bytes it produced
   */
  decode(
    rc: RangeDecoder,
    window: Window,
    input: CompressedInput,
    options: { remaining: number; budget: number; markerAllowed: boolean; dictSize: number },
  ): { end: "size" | "marker" | "pause"; produced: number } {
    const what = this.#what;
    let remaining = options.remaining;
    let produced = 0;
    const pbMask = (1 << this.props.pb) - 1;
    const lpMask = (1 << this.props.lp) - 1;
    const lc = this.props.lc;
    for (;;) {
      if (remaining === 0 && (!options.markerAllowed || rc.finished)) {
        return { end: "size", produced };
      }
      if (remaining > 0 && produced >= options.budget) {
        return { end: "pause", produced };
      }
      const posState = window.total & pbMask;
      const at = input.offset;
      if (rc.bit(this.isMatch, (this.state << 4) + posState) === 0) {
        if (remaining === 0) throw malformed(what, "data continues past its declared size", at);
        const prev = window.filled > 0 ? window.get(1) : 0;
        const base = 0x300 * (((window.total & lpMask) << lc) + (prev >>> (8 - lc)));
        let symbol = 1;
        if (this.state >= 7) {
          let match = window.get(this.rep0 + 1);
          do {
            const matchBit = (match >>> 7) & 1;
            match <<= 1;
            const bit = rc.bit(this.literals, base + ((1 + matchBit) << 8) + symbol);
            symbol = (symbol << 1) | bit;
            if (matchBit !== bit) break;
          } while (symbol < 0x100);
        }
        while (symbol < 0x100) symbol = (symbol << 1) | rc.bit(this.literals, base + symbol);
        window.put(symbol - 0x100);
        this.state = this.state < 4 ? 0 : this.state < 10 ? this.state - 3 : this.state - 6;
        remaining--;
        produced++;
        continue;
      }
      let len: number;
      if (rc.bit(this.isRep, this.state) !== 0) {
        if (remaining === 0) throw malformed(what, "data continues past its declared size", at);
        if (window.filled === 0) throw malformed(what, "a repeated match before any data", at);
        if (rc.bit(this.isRepG0, this.state) === 0) {
          if (rc.bit(this.isRep0Long, (this.state << 4) + posState) === 0) {
            this.state = this.state < 7 ? 9 : 11;
            window.put(window.get(this.rep0 + 1));
            remaining--;
            produced++;
            continue;
          }
        } else {
          let distance: number;
          if (rc.bit(this.isRepG1, this.state) === 0) distance = this.rep1;
          else {
            if (rc.bit(this.isRepG2, this.state) === 0) distance = this.rep2;
            else {
              distance = this.rep3;
              this.rep3 = this.rep2;
            }
            this.rep2 = this.rep1;
          }
          this.rep1 = this.rep0;
          this.rep0 = distance;
        }
        len = this.#length(rc, this.repLenProbs, posState);
        this.state = this.state < 7 ? 8 : 11;
      } else {
        this.rep3 = this.rep2;
        this.rep2 = this.rep1;
        this.rep1 = this.rep0;
        len = this.#length(rc, this.lenProbs, posState);
        this.state = this.state < 7 ? 7 : 10;
        this.rep0 = this.#distance(rc, len);
        if (this.rep0 === 0xffffffff) {
          if (!options.markerAllowed) throw malformed(what, "an end marker inside LZMA2", at);
          if (!rc.finished) throw malformed(what, "the range coder does not end cleanly", at);
          return { end: "marker", produced };
        }
        if (remaining === 0) throw malformed(what, "data continues past its declared size", at);
        if (this.rep0 >= options.dictSize) {
          throw malformed(what, "a match reaches beyond the declared dictionary size", at);
        }
        window.check(this.rep0 + 1, what, at);
      }
      len += MATCH_MIN_LEN;
      if (len > remaining) throw malformed(what, "a match runs past the end of its data", at);
      const distance = this.rep0 + 1;
      for (let i = 0; i < len; i++) window.put(window.get(distance));
      remaining -= len;
      produced += len;
    }
  }
}

/** Options of {@link unlzma} (and of the xz reader). */
export interface LzmaDecodeOptions {
  /** Called before each chunk (LZMA2) or every 1 MiB of output; may throw to stop. */
  onChunk?: () => void;
}

/** Options of {@link decodeLzma2}. */
export interface Lzma2DecodeOptions extends LzmaDecodeOptions {
  /** The dictionary size the container declares (no match may reach further back). */
  dictSize: number;
}

/**
 * Decodes one LZMA2 stream (as in an xz block) up to and including its end byte.
 * @param input positioned at the first chunk
 * @param sink receives the decoded bytes
 * @param options the declared dictionary size and a hook called before each chunk
 * @returns the number of bytes decoded
 * @throws {FormatError} `MALFORMED`, `TRUNCATED` or `LIMIT_EXCEEDED`
 */
export function decodeLzma2(
  input: CompressedInput,
  sink: OutputSink,
  options: Lzma2DecodeOptions,
): number {
  const what = "xz";
  const dictSize = options.dictSize;
  const out = new ChunkWriter(sink);
  const window = new Window(dictSize, out);
  const rc = new RangeDecoder(input, what);
  const lzma = new LzmaState(what);
  let needDictReset = true;
  let needProps = true;
  let produced = 0;
  for (;;) {
    options.onChunk?.();
    const at = input.offset;
    const control = input.readByte();
    if (control === 0x00) break;
    if (control >= 0xe0 || control === 0x01) {
      needProps = true;
      needDictReset = false;
      window.reset();
    } else if (needDictReset) {
      throw malformed(what, "the first LZMA2 chunk does not reset the dictionary", at);
    }
    if (control >= 0x80) {
      const unpacked = (control & 0x1f) * 65536 + input.readByte() * 256 + input.readByte() + 1;
      const packed = input.readByte() * 256 + input.readByte() + 1;
      if (control >= 0xc0) {
        const propsAt = input.offset;
        const props = decodeProperties(input.readByte(), true);
        if (props === null) throw malformed(what, "invalid LZMA2 properties", propsAt);
        lzma.setProperties(props);
        needProps = false;
      } else if (needProps) {
        throw malformed(what, "an LZMA2 chunk without properties after a reset", at);
      } else if (control >= 0xa0) {
        lzma.reset();
      }
      const start = input.offset;
      rc.init();
      lzma.decode(rc, window, input, {
        remaining: unpacked,
        budget: Infinity,
        markerAllowed: false,
        dictSize,
      });
      if (!rc.finished || input.offset - start !== packed) {
        throw malformed(
          what,
          `an LZMA2 chunk does not end where its header says (${packed} bytes)`,
          start,
        );
      }
      produced += unpacked;
    } else {
      if (control > 0x02) throw malformed(what, `invalid LZMA2 control byte ${control}`, at);
      const size = input.readByte() * 256 + input.readByte() + 1;
      for (let i = 0; i < size; i++) window.put(input.readByte());
      produced += size;
    }
  }
  out.flush();
  return produced;
}

/**
 * Decodes a legacy `.lzma` file (LZMA_Alone: properties byte, dictionary size, uncompressed
 * size or all ones, then one LZMA stream). Bytes after the stream are `MALFORMED`.
 * @param input the file from its first byte
 * @param sink receives the decoded bytes
 * @throws {FormatError} `MALFORMED`, `TRUNCATED` or `LIMIT_EXCEEDED`
 */
export function unlzma(
  input: CompressedInput,
  sink: OutputSink,
  options: LzmaDecodeOptions = {},
): void {
  const what = "lzma";
  const header = readAloneHeader(input);
  const out = new ChunkWriter(sink);
  const dictSize = Math.max(header.dictSize, 4096);
  const window = new Window(dictSize, out);
  const rc = new RangeDecoder(input, what);
  const lzma = new LzmaState(what);
  lzma.setProperties(header.props);
  rc.init();
  // Decoded in slices of 1 MiB so that the hook runs while a large file inflates.
  let remaining = header.size ?? Infinity;
  for (;;) {
    options.onChunk?.();
    const step = lzma.decode(rc, window, input, {
      remaining,
      budget: 1 << 20,
      markerAllowed: true,
      dictSize,
    });
    remaining -= step.produced;
    if (step.end !== "pause") break;
  }
  if (!rc.finished) throw malformed(what, "the range coder does not end cleanly", input.offset);
  out.flush();
  if (!input.atEnd()) {
    throw malformed(what, `data at offset ${input.offset} follows the LZMA stream`, input.offset);
  }
}

/** The 13-byte header of a `.lzma` file. */
export interface AloneHeader {
  props: LzmaProperties;
  dictSize: number;
  /** Uncompressed size, or null when unknown (then an end marker ends the data). */
  size: number | null;
}

/**
 * Parses the 13-byte `.lzma` header the way xz's picky detection does: a valid properties
 * byte, a dictionary size of 2^n or 2^n + 2^(n-1) (or all ones), and a known size below
 * 2^38 or unknown.
 * @returns null when the bytes are not such a header
 */
export function parseAloneHeader(head: Uint8Array): AloneHeader | null {
  if (head.length < 13) return null;
  const props = decodeProperties(head[0] as number, false);
  if (props === null) return null;
  const view = new DataView(head.buffer, head.byteOffset, 13);
  const dictSize = view.getUint32(1, true);
  if (dictSize !== 0xffffffff) {
    let d = dictSize - 1;
    d |= d >>> 2;
    d |= d >>> 3;
    d |= d >>> 4;
    d |= d >>> 8;
    d |= d >>> 16;
    if (((d + 1) >>> 0) !== dictSize) return null;
  }
  const lo = view.getUint32(5, true);
  const hi = view.getUint32(9, true);
  if (lo === 0xffffffff && hi === 0xffffffff) return { props, dictSize, size: null };
  if (hi >= 1 << 6) return null;
  return { props, dictSize, size: hi * 2 ** 32 + lo };
}

function readAloneHeader(input: CompressedInput): AloneHeader {
  const head = new Uint8Array(13);
  for (let i = 0; i < 13; i++) head[i] = input.readByte();
  const header = parseAloneHeader(head);
  if (header === null) throw malformed("lzma", "the 13-byte header is not a .lzma header", 0);
  return header;
}
