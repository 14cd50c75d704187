/**
 * libyara (4.2, `libyara.so.9`) bindings: compile rule sources, scan memory, report which
 * rules matched. One symbol table, one load site ({@link openYara}).
 *
 * Used only inside sandboxed jobs. Creating the match callback needs unscoped `--allow-ffi`;
 * once {@link openYara} has returned, the job may revoke ffi entirely: scanning calls only
 * already-bound symbols and the callback reads the rule name with `memcpy`/`strlen` on
 * addresses, never through `Deno.UnsafePointerView`.
 * @module
 */
import { cString, openLibrary } from "./_c.ts";
import { FfiError } from "./errors.ts";

/** Soname of libyara 4.2 (Debian 12 `libyara9`). */
export const LIBYARA_SONAME = "libyara.so.9";

const SYMBOLS = {
  // int yr_initialize(void);
  yr_initialize: { parameters: [], result: "i32" },
  // int yr_finalize(void);
  yr_finalize: { parameters: [], result: "i32" },
  // int yr_compiler_create(YR_COMPILER** compiler);
  yr_compiler_create: { parameters: ["buffer"], result: "i32" },
  // void yr_compiler_destroy(YR_COMPILER* compiler);
  yr_compiler_destroy: { parameters: ["usize"], result: "void" },
  // int yr_compiler_add_string(YR_COMPILER* c, const char* rules, const char* namespace_);
  yr_compiler_add_string: { parameters: ["usize", "buffer", "usize"], result: "i32" },
  // char* yr_compiler_get_error_message(YR_COMPILER* c, char* buffer, int buffer_size);
  yr_compiler_get_error_message: { parameters: ["usize", "buffer", "i32"], result: "usize" },
  // int yr_compiler_get_rules(YR_COMPILER* compiler, YR_RULES** rules);
  yr_compiler_get_rules: { parameters: ["usize", "buffer"], result: "i32" },
  // int yr_rules_destroy(YR_RULES* rules);
  yr_rules_destroy: { parameters: ["usize"], result: "i32" },
  // int yr_rules_scan_mem(YR_RULES* rules, const uint8_t* buffer, size_t buffer_size,
  //                       int flags, YR_CALLBACK_FUNC callback, void* user_data, int timeout);
  yr_rules_scan_mem: {
    parameters: ["usize", "buffer", "usize", "i32", "function", "usize", "i32"],
    result: "i32",
  },
  // From libc, found through libyara's dependencies.
  // void *memcpy(void *dest, const void *src, size_t n);
  memcpy: { parameters: ["buffer", "usize", "usize"], result: "usize" },
  // size_t strlen(const char *s);
  strlen: { parameters: ["usize"], result: "usize" },
  // DIR *opendir(const char *name);
  opendir: { parameters: ["buffer"], result: "usize" },
  // struct dirent *readdir(DIR *dirp);
  readdir: { parameters: ["usize"], result: "usize" },
  // int closedir(DIR *dirp);
  closedir: { parameters: ["usize"], result: "i32" },
  // int open(const char *pathname, int flags);
  open: { parameters: ["buffer", "i32"], result: "i32" },
  // ssize_t read(int fd, void *buf, size_t count);
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // int close(int fd);
  close: { parameters: ["i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** `int callback(YR_SCAN_CONTEXT* ctx, int message, void* message_data, void* user_data)`. */
const CALLBACK = { parameters: ["usize", "i32", "usize", "usize"], result: "i32" } as const;
const CALLBACK_MSG_RULE_MATCHING = 1;
const CALLBACK_CONTINUE = 0;
/** Report each string's first match only: we need which rules matched, not every hit. */
const SCAN_FLAGS_FAST_MODE = 1;
/** Offset of `identifier` in `struct YR_RULE` (int32 flags, int32 num_atoms, then it). */
const RULE_IDENTIFIER_OFFSET = 8;
const MAX_IDENTIFIER = 128;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** One rule file to compile. */
export interface YaraSource {
  /** File name, for error messages. */
  name: string;
  /** Rule text. */
  text: string;
}

/** Options of {@link openYara}. */
export interface OpenYaraOptions {
  /** Library to open; default {@link LIBYARA_SONAME} (needs unscoped `--allow-ffi`). */
  libraryPath?: string;
  /** Rule files; all are compiled into one rule set (rule names must be unique). */
  sources: readonly YaraSource[];
  /** Per-scan timeout in seconds; default 120 (spec 13 §3). */
  timeoutSec?: number;
}

/** Compiled rules, ready to scan. */
export interface Yara {
  /**
   * Scans a buffer.
   * @returns identifiers of the rules that matched, in rule order
   * @throws {FfiError} `CALL_FAILED` when libyara reports an error (timeout, memory, …)
   */
  scan(bytes: Uint8Array<ArrayBuffer>): string[];
  /** Frees the rules and the library; the object is unusable afterwards. */
  close(): void;
}

/**
 * Loads libyara and compiles the rules.
 * @throws {FfiError} `LIBRARY_UNAVAILABLE` when libyara cannot be opened, `INVALID_ARGUMENT`
 * for no sources or a rule that does not compile (message names the file), `CALL_FAILED`
 * when libyara cannot initialize
 * @example
 * ```ts
 * const yara = openYara({ sources: [{ name: "a.yar", text: 'rule a { strings: $x = "x" condition: $x }' }] });
 * yara.scan(new TextEncoder().encode("x")); // ["a"]
 * yara.close();
 * ```
 */
export function openYara(options: OpenYaraOptions): Yara {
  if (options.sources.length === 0) {
    throw new FfiError("INVALID_ARGUMENT", "Cannot compile YARA rules: no rule files");
  }
  const lib = openLibrary(options.libraryPath ?? LIBYARA_SONAME, SYMBOLS);
  const s = lib.symbols;
  check(s.yr_initialize(), "initialize libyara");
  let rules = 0n;
  const matches: string[] = [];
  let callbackError: FfiError | null = null;
  let callback: Deno.UnsafeCallback<typeof CALLBACK> | null = null;
  try {
    rules = compile(s, options.sources);
    callback = new Deno.UnsafeCallback(CALLBACK, (_context, message, data) => {
      if (message !== CALLBACK_MSG_RULE_MATCHING) return CALLBACK_CONTINUE;
      try {
        matches.push(ruleIdentifier(s, BigInt(data)));
      } catch (error) {
        callbackError = error instanceof FfiError
          ? error
          : new FfiError("CALL_FAILED", "Cannot read a matched YARA rule", { cause: error });
      }
      return CALLBACK_CONTINUE;
    });
  } catch (error) {
    if (rules !== 0n) s.yr_rules_destroy(rules);
    s.yr_finalize();
    lib.close();
    throw error;
  }
  const pointer = callback.pointer;
  const timeout = options.timeoutSec ?? 120;
  let closed = false;
  return {
    scan(bytes) {
      if (closed) throw new FfiError("INVALID_ARGUMENT", "Cannot scan: YARA rules are closed");
      matches.length = 0;
      callbackError = null;
      const code = s.yr_rules_scan_mem(
        rules,
        bytes,
        BigInt(bytes.byteLength),
        SCAN_FLAGS_FAST_MODE,
        pointer,
        0n,
        timeout,
      );
      if (callbackError !== null) throw callbackError;
      check(code, "scan with YARA");
      return [...matches];
    },
    close() {
      if (closed) return;
      closed = true;
      s.yr_rules_destroy(rules);
      s.yr_finalize();
      callback?.close();
      lib.close();
    },
  };
}

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

function compile(s: Symbols, sources: readonly YaraSource[]): bigint {
  const box = new BigUint64Array(1);
  check(s.yr_compiler_create(new Uint8Array(box.buffer)), "create a YARA compiler");
  const compiler = box[0] ?? 0n;
  try {
    for (const source of sources) {
      const errors = s.yr_compiler_add_string(compiler, cString(source.text), 0n);
      if (errors !== 0) {
        const message = new Uint8Array(512);
        s.yr_compiler_get_error_message(compiler, message, message.length);
        const text = new TextDecoder().decode(message.subarray(0, message.indexOf(0)));
        throw new FfiError(
          "INVALID_ARGUMENT",
          `Cannot compile YARA rules "${source.name}": ${text}`,
        );
      }
    }
    const rules = new BigUint64Array(1);
    check(s.yr_compiler_get_rules(compiler, new Uint8Array(rules.buffer)), "link YARA rules");
    return rules[0] ?? 0n;
  } finally {
    s.yr_compiler_destroy(compiler);
  }
}

/** Reads `rule->identifier` through memcpy/strlen on addresses. */
function ruleIdentifier(s: Symbols, rule: bigint): string {
  if (rule === 0n) throw new FfiError("CALL_FAILED", "Cannot read a matched YARA rule: null");
  const field = new BigUint64Array(1);
  s.memcpy(new Uint8Array(field.buffer), rule + BigInt(RULE_IDENTIFIER_OFFSET), 8n);
  const address = field[0] ?? 0n;
  if (address === 0n) throw new FfiError("CALL_FAILED", "Cannot read a YARA rule identifier");
  const length = Number(s.strlen(address));
  if (length === 0 || length > MAX_IDENTIFIER) {
    throw new FfiError("CALL_FAILED", `Cannot read a YARA rule identifier of length ${length}`);
  }
  const bytes = new Uint8Array(length);
  s.memcpy(bytes, address, BigInt(length));
  const name = new TextDecoder().decode(bytes);
  if (!IDENTIFIER.test(name)) {
    throw new FfiError("CALL_FAILED", "Cannot read a YARA rule identifier: not an identifier");
  }
  return name;
}

function check(code: number, action: string): void {
  if (code !== 0) {
    throw new FfiError("CALL_FAILED", `Cannot ${action}: libyara error ${code}`);
  }
}

/** `struct dirent` on x86-64 glibc: d_ino, d_off (8 bytes each), d_reclen (2), d_type (1), d_name. */
const DIRENT_NAME_OFFSET = 19;
const DIRENT_NAME_MAX = 256;
const O_RDONLY_CLOEXEC = 0o2000000;
/** Largest rule file read. */
export const MAX_RULE_FILE = 1 << 20;

/** Options of {@link readRuleFiles}. */
export interface ReadRuleFilesOptions {
  /** Library to open; default {@link LIBYARA_SONAME}. */
  libraryPath?: string;
}

/**
 * Reads every `*.yar` file of a directory (sorted by name) with libc calls found through
 * libyara, so that a sandboxed job can load its rules with no Deno read permission (the
 * sandbox's Landlock rules still decide what may be read).
 * @param dir absolute directory
 * @returns the rule files; empty when there are none
 * @throws {FfiError} `PATH_UNAVAILABLE` when the directory or a file cannot be read,
 * `INVALID_ARGUMENT` for a rule file over {@link MAX_RULE_FILE}
 */
export function readRuleFiles(dir: string, options: ReadRuleFilesOptions = {}): YaraSource[] {
  const lib = openLibrary(options.libraryPath ?? LIBYARA_SONAME, SYMBOLS);
  try {
    const s = lib.symbols;
    const handle = s.opendir(cString(dir));
    if (handle === 0n) {
      throw new FfiError("PATH_UNAVAILABLE", `Cannot open the YARA rules directory "${dir}"`);
    }
    const names: string[] = [];
    try {
      for (;;) {
        const entry = s.readdir(handle);
        if (entry === 0n) break;
        const raw = new Uint8Array(DIRENT_NAME_MAX);
        s.memcpy(raw, entry + BigInt(DIRENT_NAME_OFFSET), BigInt(DIRENT_NAME_MAX));
        const end = raw.indexOf(0);
        const name = new TextDecoder().decode(raw.subarray(0, end < 0 ? DIRENT_NAME_MAX : end));
        if (/^[\w.-]+\.yar$/.test(name)) names.push(name);
      }
    } finally {
      s.closedir(handle);
    }
    names.sort();
    return names.map((name) => ({ name, text: readSmallFile(s, `${dir}/${name}`) }));
  } finally {
    lib.close();
  }
}

function readSmallFile(s: Symbols, path: string): string {
  const fd = s.open(cString(path), O_RDONLY_CLOEXEC);
  if (fd < 0) throw new FfiError("PATH_UNAVAILABLE", `Cannot open YARA rule file "${path}"`);
  try {
    const buffer = new Uint8Array(MAX_RULE_FILE + 1);
    let filled = 0;
    for (;;) {
      const n = Number(s.read(fd, buffer.subarray(filled), BigInt(buffer.length - filled)));
      if (n < 0) throw new FfiError("PATH_UNAVAILABLE", `Cannot read YARA rule file "${path}"`);
      if (n === 0) break;
      filled += n;
      if (filled > MAX_RULE_FILE) {
        throw new FfiError(
          "INVALID_ARGUMENT",
          `YARA rule file "${path}" is larger than ${MAX_RULE_FILE} bytes`,
        );
      }
    }
    return new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(0, filled));
  } finally {
    s.close(fd);
  }
}
