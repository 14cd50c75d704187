// deno-lint-ignore-file no-console -- the one module allowed to write to the console (STYLE.md §10)
/**
 * The only module allowed to write to the console: one structured line per event on stderr,
 * so stdout stays free for command output (`--json`).
 * @module
 */

/** Log levels in order. */
export type LogLevel = "debug" | "info" | "warn" | "error";
const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
let threshold: LogLevel = "info";
let isJson = false;

/** Sets the minimum level and output format. */
export function configureLog(options: { level?: LogLevel; json?: boolean }): void {
  if (options.level) threshold = options.level;
  if (options.json !== undefined) isJson = options.json;
}

/** Writes one log line to stderr. */
export function log(level: LogLevel, message: string, fields: Record<string, unknown> = {}): void {
  if (ORDER[level] < ORDER[threshold]) return;
  const ts = new Date().toISOString();
  if (isJson) {
    console.error(JSON.stringify({ ts, level, message, ...fields }));
    return;
  }
  const extra = Object.entries(fields).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
  console.error(`${ts} ${level.padEnd(5)} ${message}${extra ? ` ${extra}` : ""}`);
}

/** Writes command output (for the CLI) to stdout. */
export function print(text: string): void {
  console.log(text);
}

/** Writes a user-facing error line (for the CLI) to stderr. */
export function printError(text: string): void {
  console.error(text);
}
