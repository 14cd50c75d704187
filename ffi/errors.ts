/**
 * The one error type of `ffi/`: every failed native call, missing library or unsupported
 * kernel facility surfaces as an {@link FfiError} with a stable `code`.
 * @module
 */

/** Why a native call failed. */
export type FfiErrorCode =
  /** Not Linux, or an architecture whose ABI these bindings do not describe. */
  | "UNSUPPORTED_PLATFORM"
  /** The shared library could not be opened. */
  | "LIBRARY_UNAVAILABLE"
  /** A libc function or raw syscall returned an error. */
  | "CALL_FAILED"
  /** The kernel does not implement Landlock (or it is disabled at boot). */
  | "LANDLOCK_UNSUPPORTED"
  /** The kernel or libseccomp cannot install a thread-synchronized filter. */
  | "SECCOMP_UNSUPPORTED"
  /** A path given for a rule does not exist or cannot be opened. */
  | "PATH_UNAVAILABLE"
  /** An argument is outside what the native interface accepts. */
  | "INVALID_ARGUMENT";

/** Options of {@link FfiError}. */
export interface FfiErrorOptions extends ErrorOptions {
  /** `errno` (positive) reported by the failing call, when there is one. */
  errno?: number;
}

/** A native call failed; `code` says how, `errno` (if any) says what the kernel answered. */
export class FfiError extends Error {
  /** Machine-readable reason. */
  readonly code: FfiErrorCode;
  /** Positive errno of the failing call, or null when none applies. */
  readonly errno: number | null;

  /**
   * @param code why the call failed
   * @param message sentence case, names the failed action, no trailing period
   * @param options `cause` and `errno`
   */
  constructor(code: FfiErrorCode, message: string, options: FfiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "FfiError";
    this.code = code;
    this.errno = options.errno ?? null;
  }
}
