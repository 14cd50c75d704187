/**
 * The error of the static scanners: a file (or member) that cannot be fully parsed. Every
 * scanner throws it for malformed input; `scanFile` turns it into an `invalid` finding with
 * the offset where parsing stopped. Never a crash, never `clean`.
 * @module
 */

/** Why parsing stopped. */
export type FormatErrorCode =
  /** The bytes break the format's rules. */
  | "MALFORMED"
  /** The file ends before a structure does. */
  | "TRUNCATED"
  /** A count, length or size is past a limit we enforce. */
  | "LIMIT_EXCEEDED"
  /** A valid feature we do not parse (so we cannot call the file clean). */
  | "UNSUPPORTED";

/** A file or member that cannot be parsed fully. */
export class FormatError extends Error {
  /** Machine-readable reason. */
  readonly code: FormatErrorCode;
  /** Byte offset where parsing stopped, when known. */
  readonly offset: number | undefined;

  /**
   * @param code why parsing stopped
   * @param message sentence naming the field and the value
   * @param offset byte offset of the offending field
   */
  constructor(code: FormatErrorCode, message: string, offset?: number) {
    super(message);
    this.name = "FormatError";
    this.code = code;
    this.offset = offset;
  }
}

/**
 * A scan that ran past the deadline its caller gave (`ScanFileOptions.deadline`): the batch
 * scan job stops that file and reports it, and the caller scans the file again on its own.
 */
export class ScanDeadlineError extends Error {
  /** Machine-readable reason. */
  readonly code = "DEADLINE" as const;

  /** @param ms the time the file was given */
  constructor(ms: number) {
    super(`The scan ran past its deadline of ${Math.round(ms)} ms`);
    this.name = "ScanDeadlineError";
  }
}
