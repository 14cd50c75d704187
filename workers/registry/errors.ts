/**
 * Errors of the registry control. Each `code` crosses the RPC boundary intact.
 * @module
 */

/** Codes of requests the registry refuses. */
export type RegistryErrorCode =
  | "MODEL_NOT_FOUND"
  | "MODEL_REVOKED"
  | "CONFLICT"
  | "REVOKED_CONTENT"
  | "INVALID_STAGED"
  | "INTEGRITY_MISMATCH"
  | "POLICY_UNAVAILABLE"
  | "AUDIT_UNAVAILABLE"
  | "STORE_CORRUPT"
  | "KEY_INVALID"
  /** The tensor manifest could not be made (sandboxed job failed or returned nonsense). */
  | "MANIFEST_FAILED"
  /** A stored tensor manifest is missing, edited or malformed. */
  | "MANIFEST_ALTERED";

/** A refused registry request. */
export class RegistryError extends Error {
  /** Machine-readable code. */
  readonly code: RegistryErrorCode;
  /**
   * @param code what went wrong
   * @param message sentence case, names the value, no trailing period
   * @param options standard `cause`
   */
  constructor(code: RegistryErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RegistryError";
    this.code = code;
  }
}
