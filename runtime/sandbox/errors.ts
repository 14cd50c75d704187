/**
 * Errors the job runner throws: before a job runs, or when it cannot control or clean up
 * after one. How a job itself ended, failure included, is a `JobResult` value instead.
 * @module
 */
import { RpcError } from "../kit/errors.ts";

/** Why a job could not be started. */
export type SandboxErrorCode =
  /** The input path is absolute, escapes the state dir, is a symlink out, or not a file. */
  | "INPUT_REJECTED"
  /** The job module is not a file inside one of the runner's code roots. */
  | "MODULE_REJECTED"
  /** The job spec does not match the contract (args, limits, input). */
  | "INVALID_JOB"
  /** The sandbox cannot run here: probe failed, platform unsupported, config unreadable. */
  | "SANDBOX_UNAVAILABLE"
  /** The subprocess could not be spawned. */
  | "SPAWN_FAILED"
  /** Writing the job's stdin or killing its process group failed unexpectedly. */
  | "PROCESS_CONTROL_FAILED"
  /** The job's directory could not be removed afterwards. */
  | "CLEANUP_FAILED";

/** A job was refused or could not be started; crosses worker ports with its code intact. */
export class SandboxError extends RpcError {
  /** Machine-readable reason. */
  override readonly code: SandboxErrorCode;

  /**
   * @param code why the job was refused
   * @param message sentence case, names the refused action, no trailing period
   * @param options standard `cause`
   */
  constructor(code: SandboxErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "SandboxError";
    this.code = code;
  }
}
