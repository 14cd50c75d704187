/**
 * Helpers private to `ffi/`: C strings, errno and the platform gate. Nothing here hands a
 * pointer to code outside this folder.
 * @module
 */
import { FfiError } from "./errors.ts";

const encoder = new TextEncoder();

/**
 * Encodes a string as a NUL-terminated C string.
 * @throws {FfiError} `INVALID_ARGUMENT` when the string itself contains NUL, which C would
 * silently truncate (a path "a\0b" must not become "a")
 */
export function cString(value: string): Uint8Array<ArrayBuffer> {
  if (value.includes("\0")) {
    throw new FfiError("INVALID_ARGUMENT", `Cannot pass a string with NUL to C: "${value}"`);
  }
  return encoder.encode(`${value}\0`);
}

/** The two libc symbols every errno read needs. */
export interface ErrnoSymbols {
  /** `int *__errno_location(void);` as an address. */
  __errno_location: () => bigint;
  /** `void *memcpy(void *dest, const void *src, size_t n);` with src as an address. */
  memcpy: (dest: Uint8Array<ArrayBuffer>, src: bigint, n: bigint) => bigint;
}

/**
 * Reads this thread's errno. memcpy from the errno address into a buffer avoids
 * `Deno.UnsafePointerView`, which `--allow-ffi=<lib>` (scoped) does not permit.
 * Best effort, for messages only: between the failing call and this read the runtime may
 * run code of its own on this thread that sets errno (measured: about 1 read in 200 000
 * differs). Never branch on it.
 */
export function readErrno(symbols: ErrnoSymbols): number {
  const box = new Int32Array(1);
  symbols.memcpy(new Uint8Array(box.buffer), symbols.__errno_location(), 4n);
  return box[0] ?? 0;
}

/**
 * Fails unless this is x86-64 Linux: struct layouts and constants here are that ABI's.
 * @throws {FfiError} `UNSUPPORTED_PLATFORM`
 */
export function assertLinuxX64(): void {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    throw new FfiError(
      "UNSUPPORTED_PLATFORM",
      `Cannot use Linux x86-64 bindings on "${Deno.build.os}/${Deno.build.arch}"`,
    );
  }
}

/**
 * Turns a `Deno.dlopen` failure into a typed error. Permission errors (`NotCapable`) are
 * returned unchanged so that a denial is never mistaken for a missing library.
 */
export function libraryError(path: string, error: unknown): Error {
  if (error instanceof Deno.errors.NotCapable) return error;
  return new FfiError("LIBRARY_UNAVAILABLE", `Cannot open library "${path}"`, { cause: error });
}

/**
 * The single way `ffi/` modules open a library: platform check, then `Deno.dlopen`, with a
 * failure turned into {@link libraryError}.
 * @throws {FfiError} `UNSUPPORTED_PLATFORM` or `LIBRARY_UNAVAILABLE`
 */
export function openLibrary<S extends Deno.ForeignLibraryInterface>(
  path: string,
  symbols: S,
): Deno.DynamicLibrary<S> {
  assertLinuxX64();
  try {
    return Deno.dlopen(path, symbols);
  } catch (error) {
    throw libraryError(path, error);
  }
}
