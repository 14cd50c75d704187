/**
 * Errors of the quarantine control. Each carries an UPPER_SNAKE `code` that crosses the RPC
 * boundary intact (the gateway maps it to an HTTP status).
 * @module
 */

/** Codes of requests the quarantine refuses. */
export type QuarantineErrorCode =
  | "JOB_NOT_FOUND"
  | "INVALID_STATE"
  | "UPLOAD_NOT_FOUND"
  | "UPLOAD_TOO_LARGE"
  | "UPLOAD_OUT_OF_ORDER"
  | "UPLOAD_SIZE_MISMATCH"
  | "UPLOAD_INVALID_ENTRY"
  | "TOO_MANY_UPLOADS"
  | "STORE_CORRUPT";

/** A refused quarantine request. */
export class QuarantineError extends Error {
  /** Machine-readable code. */
  readonly code: QuarantineErrorCode;
  /**
   * @param code what went wrong
   * @param message sentence case, names the value, no trailing period
   * @param options standard `cause`
   */
  constructor(code: QuarantineErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "QuarantineError";
    this.code = code;
  }
}

/**
 * Failure classes of a rejected job (spec 13 §1: the `rejected` audit event carries one).
 * A stage that fails reports one of these; anything it could not complete is STAGE_ERROR.
 */
export type FailureClass =
  | "INVALID_SOURCE"
  | "SMOKE_TEST_FAILED"
  | "SOURCE_NOT_ALLOWED"
  | "DENIED_FORMAT"
  | "UNKNOWN_FORMAT"
  | "INVALID_HEADER"
  | "PICKLE_POLYGLOT"
  | "BLOCKED_HASH"
  | "PIN_MISMATCH"
  | "NOT_PINNED"
  | "ARTIFACT_CHANGED"
  | "TOO_LARGE"
  | "UNSIGNED"
  | "UNTRUSTED_SIGNER"
  | "BAD_SIGNATURE"
  /** A model signing bundle that is malformed, keyless (not checkable offline), signs another
   * digest, or covers a directory. */
  | "BUNDLE_INVALID"
  | "KEYLESS_UNSUPPORTED"
  | "DIGEST_MISMATCH"
  | "BUNDLE_UNSUPPORTED"
  | "SCAN_THREAT"
  | "SCAN_INVALID"
  | "FORMAT_MISMATCH"
  | "INVALID_DIRECTORY"
  | "DIFFUSION_CHECK_FAILED"
  | "STAGE_ERROR"
  | "PROMOTION_DENIED";

/** A stage's verdict that the artifact must not pass, with its failure class. */
export class StageFailure extends Error {
  /** Failure class. */
  readonly code: FailureClass;
  /**
   * @param code failure class
   * @param message why, naming the value
   */
  constructor(code: FailureClass, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StageFailure";
    this.code = code;
  }
}
