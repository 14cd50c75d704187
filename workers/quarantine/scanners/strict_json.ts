/**
 * RFC 8259 JSON with the rules `JSON.parse` lacks: no duplicate keys, a nesting limit and a
 * token limit, so a hostile document costs at most its limits. Objects come back with a null
 * prototype (`__proto__` is an ordinary key). Used for safetensors headers and for the JSON
 * files of directory artifacts.
 * @module
 */

/** A parsed JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Why parsing stopped. */
export type StrictJsonFailure =
  | { kind: "syntax"; at: number; why: string }
  | { kind: "tokens"; limit: number }
  | { kind: "depth"; limit: number };

/** Options of {@link parseStrictJson}. */
export interface StrictJsonOptions {
  maxDepth: number;
  maxTokens: number;
  /** Builds the error to throw for a failure (the caller's error type and wording). */
  fail: (failure: StrictJsonFailure) => Error;
}

/**
 * Parses one JSON text strictly.
 * @param text the whole text (nothing but white space may follow the value)
 * @param options limits and the error factory
 * @returns the value
 * @throws whatever `options.fail` returns, for any rule the text breaks
 */
export function parseStrictJson(text: string, options: StrictJsonOptions): Json {
  return new StrictJson(text, options).parse();
}

class StrictJson {
  readonly #text: string;
  readonly #o: StrictJsonOptions;
  #p = 0;
  #tokens = 0;
  #depth = 0;

  constructor(text: string, options: StrictJsonOptions) {
    this.#text = text;
    this.#o = options;
  }

  parse(): Json {
    const value = this.#value();
    this.#space();
    if (this.#p !== this.#text.length) throw this.#error("unexpected text after the value");
    return value;
  }

  #error(why: string): Error {
    return this.#o.fail({ kind: "syntax", at: this.#p, why });
  }

  #space(): void {
    for (;;) {
      const c = this.#text.charCodeAt(this.#p);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.#p++;
      else return;
    }
  }

  #value(): Json {
    this.#space();
    if (++this.#tokens > this.#o.maxTokens) {
      throw this.#o.fail({ kind: "tokens", limit: this.#o.maxTokens });
    }
    const c = this.#text[this.#p];
    if (c === "{" || c === "[") {
      if (++this.#depth > this.#o.maxDepth) {
        throw this.#o.fail({ kind: "depth", limit: this.#o.maxDepth });
      }
      const value = c === "{" ? this.#object() : this.#array();
      this.#depth--;
      return value;
    }
    if (c === '"') return this.#string();
    const literal = /^(true|false|null|-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?)/.exec(
      this.#text.slice(this.#p, this.#p + 400),
    );
    if (literal === null) throw this.#error(`unexpected "${c ?? "end"}"`);
    this.#p += literal[0].length;
    if (literal[0] === "true") return true;
    if (literal[0] === "false") return false;
    if (literal[0] === "null") return null;
    return Number(literal[0]);
  }

  #object(): Json {
    this.#p++;
    const out: Record<string, Json> = Object.create(null);
    this.#space();
    if (this.#text[this.#p] === "}") {
      this.#p++;
      return out;
    }
    for (;;) {
      this.#space();
      if (this.#text[this.#p] !== '"') throw this.#error("expected a key");
      const key = this.#string();
      if (Object.hasOwn(out, key)) throw this.#error(`duplicate key "${key.slice(0, 80)}"`);
      this.#space();
      if (this.#text[this.#p++] !== ":") throw this.#error("expected ':'");
      out[key] = this.#value();
      this.#space();
      const c = this.#text[this.#p++];
      if (c === "}") return out;
      if (c !== ",") throw this.#error("expected ',' or '}'");
    }
  }

  #array(): Json[] {
    this.#p++;
    const out: Json[] = [];
    this.#space();
    if (this.#text[this.#p] === "]") {
      this.#p++;
      return out;
    }
    for (;;) {
      out.push(this.#value());
      this.#space();
      const c = this.#text[this.#p++];
      if (c === "]") return out;
      if (c !== ",") throw this.#error("expected ',' or ']'");
    }
  }

  #string(): string {
    const start = ++this.#p;
    let hasEscape = false;
    for (;;) {
      const c = this.#text.charCodeAt(this.#p);
      if (Number.isNaN(c)) throw this.#error("unterminated string");
      if (c < 0x20) throw this.#error("control character in a string");
      if (c === 0x5c) {
        // Each escape is judged where it starts, so `\\x` (an escaped backslash, then x)
        // is two characters, not a bad `\x`.
        const next = this.#text[this.#p + 1] ?? "";
        if (next !== "" && '"\\/bfnrt'.includes(next)) {
          this.#p += 2;
        } else if (
          next === "u" && /^[0-9a-fA-F]{4}$/.test(this.#text.slice(this.#p + 2, this.#p + 6))
        ) {
          this.#p += 6;
        } else {
          throw this.#error("bad escape in a string");
        }
        hasEscape = true;
        continue;
      }
      if (c === 0x22) break;
      this.#p++;
    }
    const raw = this.#text.slice(start, this.#p);
    this.#p++;
    if (!hasEscape) return raw;
    return JSON.parse(`"${raw}"`) as string;
  }
}
