/**
 * Errors of the inference control; each `code` crosses the RPC boundary intact and the
 * gateway's `/v1` routes map it to an HTTP status.
 * @module
 */

/** Codes of refused or failed inference requests. */
export type InferenceErrorCode =
  | "UNAUTHENTICATED"
  | "INFERENCE_DISABLED"
  | "INVALID_REQUEST"
  | "MAX_TOKENS_EXCEEDED"
  | "MODEL_NOT_FOUND"
  | "MODEL_FORMAT_UNSUPPORTED"
  | "INTEGRITY_FAILED"
  | "EGRESS_DENIED"
  | "QUEUE_FULL"
  | "QUEUE_TIMEOUT"
  | "REQUEST_TIMEOUT"
  | "STREAM_NOT_FOUND"
  | "EXTERNAL_FAILED";

/** A refused or failed inference request. */
export class InferenceError extends Error {
  /** Machine-readable code. */
  readonly code: InferenceErrorCode;
  /**
   * @param code what went wrong
   * @param message sentence case, names the value, no trailing period, never a secret
   * @param options standard `cause`
   */
  constructor(code: InferenceErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InferenceError";
    this.code = code;
  }
}
