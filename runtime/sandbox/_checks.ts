/**
 * Small structural checks for the JSON the runner hands to the launcher and boot (trusted,
 * but checked so that a bug fails closed). Hand-written: zod would add ~8 ms to every job.
 * @module
 */

/** A parsed JSON object. */
export type Json = Record<string, unknown>;

/** @throws {TypeError} unless `value` is a plain object */
export function object(value: unknown, what: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`Invalid ${what}: not an object`);
  }
  return value as Json;
}

/** @throws {TypeError} unless `value` is a string of at most 64 KiB */
export function text(value: unknown, what: string): string {
  if (typeof value !== "string" || value.length > 65536) {
    throw new TypeError(`Invalid ${what}: not a string`);
  }
  return value;
}

/** @throws {TypeError} unless `value` is an absolute path without NUL */
export function absolute(value: unknown, what: string): string {
  const path = text(value, what);
  if (!path.startsWith("/") || path.includes("\0")) {
    throw new TypeError(`Invalid ${what}: not an absolute path`);
  }
  return path;
}

/** @throws {TypeError} unless `value` is a non-negative safe integer */
export function count(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`Invalid ${what}: not a non-negative integer`);
  }
  return value;
}

/** @throws {TypeError} unless `value` is a boolean */
export function flag(value: unknown, what: string): boolean {
  if (typeof value !== "boolean") throw new TypeError(`Invalid ${what}: not a boolean`);
  return value;
}

/** @throws {TypeError} unless `value` is an array of at most 256 strings */
export function strings(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || value.length > 256) throw new TypeError(`Invalid ${what}`);
  return value.map((item, index) => text(item, `${what}[${index}]`));
}
