/**
 * Strict argument parsing for the `secai` CLI: unknown flags and missing values are usage
 * errors (exit 2), never ignored.
 * @module
 */

/** A usage error: exit code 2. */
export class UsageError extends Error {
  /** Always USAGE. */
  readonly code = "USAGE";
  /** @param message what is wrong with the command line */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Flag kinds a command accepts. */
export type FlagSpec = Record<string, "string" | "boolean">;

/** Parsed command line of one command. */
export interface ParsedArgs {
  flags: Record<string, string | boolean>;
  positional: string[];
}

/**
 * Parses `--flag value`, `--flag=value` and boolean `--flag`.
 * @throws {UsageError} on unknown flags or missing values
 */
export function parseArgs(argv: string[], spec: FlagSpec): ParsedArgs {
  const flags: Record<string, string | boolean> = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const kind = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!kind) throw new UsageError(`Unknown option "--${name}"`);
    if (kind === "boolean") {
      if (eq !== -1) throw new UsageError(`Option "--${name}" takes no value`);
      flags[name] = true;
      continue;
    }
    const value = eq !== -1 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === "") {
      throw new UsageError(`Option "--${name}" needs a value`);
    }
    flags[name] = value;
  }
  return { flags, positional };
}

/**
 * Parses a TCP port.
 * @throws {UsageError} when not an integer in 0..65535
 */
export function parsePort(value: string, source: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) {
    throw new UsageError(`${source} must be a port number 0-65535, got "${value}"`);
  }
  return Number(value);
}
