/**
 * `secai controls [--json]`: prints the evidence matrix (policy/controls.yaml), each control
 * with its status and the tests that prove a claim.
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs, UsageError } from "./cli_args.ts";
import { EvidenceError, loadControlMatrix, MATRIX_PATH, renderControlsText } from "./evidence.ts";
import { print, printError } from "./log.ts";

/** The matrix shipped with this checkout. */
const DEFAULT_MATRIX = new URL(`../${MATRIX_PATH}`, import.meta.url);

/** Options of {@linkcode controlsCommand}; tests redirect input and output. */
export interface ControlsCommandOptions {
  /** The matrix file; defaults to the project's policy/controls.yaml. */
  matrixPath?: string | URL;
  /** Receives stdout text; defaults to `print`. */
  write?: (text: string) => void;
  /** Receives error lines; defaults to `printError`. */
  writeError?: (text: string) => void;
}

/**
 * Runs `secai controls`.
 * @param argv the arguments after `controls`: only `--json`
 * @param options where to read and write (defaults: the project's matrix, stdout, stderr)
 * @returns 0 after printing the matrix; 1 when the matrix cannot be read or is invalid
 * @throws {UsageError} on unknown options or arguments (exit 2)
 * @example
 * ```ts
 * Deno.exit(await controlsCommand(["--json"]));
 * ```
 */
export async function controlsCommand(
  argv: string[],
  options: ControlsCommandOptions = {},
): Promise<number> {
  const { flags, positional } = parseArgs(argv, { json: "boolean" });
  if (positional.length > 0) throw new UsageError(`Unexpected argument "${positional[0]}"`);
  const write = options.write ?? print;
  const writeError = options.writeError ?? printError;
  const path = options.matrixPath ?? DEFAULT_MATRIX;
  try {
    const matrix = await loadControlMatrix(path instanceof URL ? fileURLToPath(path) : path);
    write(flags.json ? JSON.stringify(matrix, null, 2) : renderControlsText(matrix).trimEnd());
    return 0;
  } catch (err) {
    if (!(err instanceof EvidenceError)) throw err;
    writeError(`error: ${err.message}`);
    return 1;
  }
}
