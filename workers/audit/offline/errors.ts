/**
 * The one error class of the audit log. Its codes cross RPC boundaries intact (the kit keeps
 * any UPPER_SNAKE `code`), so callers and the CLI can act on them.
 * @module
 */

/** What went wrong. */
export type AuditErrorCode =
  /** An entry cannot be encoded (unsupported value, too deep, too large). */
  | "AUDIT_ENTRY_INVALID"
  /** A file of the log, the tree state or a key is not in the expected format. */
  | "AUDIT_MALFORMED"
  /** The log directory, a segment, an entry or a head does not exist. */
  | "AUDIT_NOT_FOUND"
  /** A signing or public key is unusable (wrong type, loose file mode, symlink). */
  | "AUDIT_KEY_INVALID"
  /** A sequence number, tree size or range is outside the log. */
  | "AUDIT_RANGE_INVALID"
  /** An exported bundle does not parse or exceeds its limits. */
  | "AUDIT_BUNDLE_INVALID"
  /** The log was closed, or a write failed and it refuses further appends. */
  | "AUDIT_UNAVAILABLE";

/** A failure of the audit log with a stable code. */
export class AuditError extends Error {
  /** Machine-readable code. */
  readonly code: AuditErrorCode;

  /**
   * @param code what went wrong
   * @param message sentence-case, names the file, field or value
   * @param options standard `cause`
   */
  constructor(code: AuditErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuditError";
    this.code = code;
  }
}
