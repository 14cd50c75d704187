/**
 * Turning generated tokens into streamed text: pieces are released only when they are whole
 * characters, and text that could be the start of a stop string is held back until it is
 * known not to be one, so a client never sees part of a stop string. Pure; used inside the
 * sandboxed engine and unit-tested beside it.
 * @module
 */

/** Tokens that make one character (a 4-byte UTF-8 character as single-byte tokens). */
const MAX_PENDING_TOKENS = 4;
/** Tokens of context kept for the detokenizer (leading-space rules of SentencePiece). */
const HISTORY_TOKENS = 8;

/** Turns token ids into text, given a few preceding tokens for context. */
export type Detokenize<T extends number = number> = (
  tokens: readonly T[],
  previous: readonly T[],
) => string;

/**
 * Assembles streamed text from tokens. A token may carry one byte of a multi-byte character
 * (byte-fallback vocabularies); such a piece decodes to U+FFFD until the rest arrives, so it
 * is kept pending until it decodes cleanly (or {@link MAX_PENDING_TOKENS} tokens have come,
 * when the replacement character is what the model really said).
 */
export class PieceAssembler<T extends number = number> {
  readonly #detokenize: Detokenize<T>;
  #pending: T[] = [];
  #history: T[] = [];

  /** @param detokenize the model's detokenizer */
  constructor(detokenize: Detokenize<T>) {
    this.#detokenize = detokenize;
  }

  /**
   * Adds one token.
   * @returns the text it completes (empty while a character is incomplete)
   */
  push(token: T): string {
    this.#pending.push(token);
    const text = this.#detokenize(this.#pending, this.#history);
    if (text.endsWith("\uFFFD") && this.#pending.length < MAX_PENDING_TOKENS) return "";
    return this.#release(text);
  }

  /** The text of tokens still pending (at the end of a generation). */
  flush(): string {
    if (this.#pending.length === 0) return "";
    return this.#release(this.#detokenize(this.#pending, this.#history));
  }

  #release(text: string): string {
    this.#history = [...this.#history, ...this.#pending].slice(-HISTORY_TOKENS);
    this.#pending = [];
    return text;
  }
}

/** What {@link StopMatcher.push} decided. */
export interface StopStep {
  /** Text that is final and can be sent. */
  text: string;
  /** A stop string was found: generation ends, and `text` is everything before it. */
  isStopped: boolean;
}

/**
 * Finds stop strings in streamed text. Text is released as soon as no stop string can start
 * in it; a suffix that is a prefix of a stop string is held until the next piece decides.
 */
export class StopMatcher {
  readonly #stops: readonly string[];
  #held = "";
  #isStopped = false;

  /** @param stops the stop strings (empty strings are ignored) */
  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((s) => s.length > 0);
  }

  /** Adds a piece of text. */
  push(piece: string): StopStep {
    if (this.#isStopped) return { text: "", isStopped: true };
    const buffer = this.#held + piece;
    let cut = -1;
    for (const stop of this.#stops) {
      const at = buffer.indexOf(stop);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      this.#held = "";
      this.#isStopped = true;
      return { text: buffer.slice(0, cut), isStopped: true };
    }
    const hold = this.#heldLength(buffer);
    this.#held = buffer.slice(buffer.length - hold);
    return { text: buffer.slice(0, buffer.length - hold), isStopped: false };
  }

  /** Releases held text at the end of a generation (it was not a stop string). */
  flush(): string {
    const text = this.#isStopped ? "" : this.#held;
    this.#held = "";
    return text;
  }

  /** Length of the longest suffix of `buffer` that a stop string starts with. */
  #heldLength(buffer: string): number {
    let longest = 0;
    for (const stop of this.#stops) {
      for (let k = Math.min(stop.length - 1, buffer.length); k > longest; k--) {
        if (buffer.endsWith(stop.slice(0, k))) {
          longest = k;
          break;
        }
      }
    }
    return longest;
  }
}

/**
 * Length of the common prefix of two token lists: tokens a new prompt shares with what the
 * engine's context already holds are not evaluated again.
 */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
