/**
 * Errors of the policy language. A policy that cannot be loaded is refused with the file,
 * the field and the reason; the caller keeps the policy it had (or does not start).
 * @module
 */

/** Why a policy could not be loaded. */
export type PolicyLoadErrorCode = "POLICY_INVALID" | "POLICY_UNREADABLE";

/** Options of a {@link PolicyLoadError}. */
export interface PolicyLoadErrorOptions extends ErrorOptions {
  /** File name (`policy.yaml`, `agent.yaml`, a test file). */
  file: string;
  /** Dotted path of the offending field, `(root)` for the whole document. */
  field: string;
  /** What is wrong with it. */
  reason: string;
}

/** A policy file was refused. */
export class PolicyLoadError extends Error {
  /** Machine-readable code. */
  readonly code: PolicyLoadErrorCode;
  /** The file that was refused. */
  readonly file: string;
  /** The offending field. */
  readonly field: string;
  /** What is wrong with it. */
  readonly reason: string;

  /**
   * @param code POLICY_INVALID (content) or POLICY_UNREADABLE (file)
   * @param options file, field and reason; the message is built from them
   */
  constructor(code: PolicyLoadErrorCode, options: PolicyLoadErrorOptions) {
    super(
      `Policy "${options.file}" is ${
        code === "POLICY_INVALID" ? "invalid" : "unreadable"
      } at "${options.field}": ${options.reason}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "PolicyLoadError";
    this.code = code;
    this.file = options.file;
    this.field = options.field;
    this.reason = options.reason;
  }
}
