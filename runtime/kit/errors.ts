/**
 * Errors that cross worker boundaries. Every error a control reports to a caller is an
 * {@link RpcError}: a stable UPPER_SNAKE `code` plus a sentence-case message without secrets.
 * @module
 */

/** Codes the runtime itself produces; controls may add their own UPPER_SNAKE codes. */
export type RuntimeErrorCode =
  | "DEADLINE_EXCEEDED"
  | "CANCELLED"
  | "UNAVAILABLE"
  | "INVALID_REQUEST"
  | "INVALID_RESPONSE"
  | "UNKNOWN_METHOD"
  | "PROTOCOL_ERROR"
  | "INTERNAL";

/** Pattern every error code must match (keeps codes machine-readable across boundaries). */
export const ERROR_CODE_PATTERN: RegExp = /^[A-Z][A-Z0-9_]{1,63}$/;

/** An error with a stable code that survives a trip over a MessagePort intact. */
export class RpcError extends Error {
  /** Machine-readable code, UPPER_SNAKE. */
  readonly code: string;

  /**
   * @param code UPPER_SNAKE code, e.g. `"UNAVAILABLE"` or a control's own code
   * @param message sentence-case, no trailing period, never a secret
   * @param options standard `cause`
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    if (!ERROR_CODE_PATTERN.test(code)) throw new TypeError(`Invalid error code "${code}"`);
    this.name = "RpcError";
    this.code = code;
  }
}

/** Serialized form of an error on the wire. */
export interface WireError {
  code: string;
  message: string;
}

/**
 * Turns anything thrown by a handler into a wire error. Errors with a valid `code` keep it;
 * anything else becomes INTERNAL with a generic message so stack traces and internal paths
 * never leak to the caller.
 */
export function toWireError(err: unknown, where: string): WireError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && ERROR_CODE_PATTERN.test(code)) {
      return { code, message: err.message.slice(0, 2000) };
    }
    if (err instanceof Deno.errors.NotCapable) {
      return { code: "NOT_CAPABLE", message: `Permission denied in ${where}` };
    }
  }
  return { code: "INTERNAL", message: `Internal error in ${where}` };
}
