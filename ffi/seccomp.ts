/**
 * libseccomp bindings: build a BPF syscall filter and load it on every thread of the process
 * (TSYNC). One symbol table, one load site ({@link openSeccomp}). Linux x86-64 only.
 * The policy (which syscalls) belongs to the caller; this module only states it to the kernel.
 * @module
 */
import { cString, openLibrary } from "./_c.ts";
import { FfiError } from "./errors.ts";

/** Soname of libseccomp 2.x. */
export const LIBSECCOMP_SONAME = "libseccomp.so.2";

const SYMBOLS = {
  // scmp_filter_ctx seccomp_init(uint32_t def_action);
  seccomp_init: { parameters: ["u32"], result: "pointer" },
  // int seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value);
  seccomp_attr_set: { parameters: ["pointer", "i32", "u32"], result: "i32" },
  // int seccomp_syscall_resolve_name(const char *name);
  seccomp_syscall_resolve_name: { parameters: ["buffer"], result: "i32" },
  // int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
  //                            unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
  seccomp_rule_add_array: {
    parameters: ["pointer", "u32", "i32", "u32", "buffer"],
    result: "i32",
  },
  // int seccomp_load(const scmp_filter_ctx ctx);
  seccomp_load: { parameters: ["pointer"], result: "i32" },
  // void seccomp_release(scmp_filter_ctx ctx);
  seccomp_release: { parameters: ["pointer"], result: "void" },
  // const unsigned int seccomp_api_get(void);
  seccomp_api_get: { parameters: [], result: "u32" },
} as const satisfies Deno.ForeignLibraryInterface;

const ACT_KILL_PROCESS = 0x8000_0000;
const ACT_ERRNO = 0x0005_0000;
const ACT_ALLOW = 0x7fff_0000;
const ATTR_ACT_BADARCH = 2;
const ATTR_CTL_NNP = 3;
const ATTR_CTL_TSYNC = 4;
/** libseccomp API level 2 = the kernel supports SECCOMP_FILTER_FLAG_TSYNC. */
const API_LEVEL_TSYNC = 2;
const NR_SCMP_ERROR = -1;
const MAX_ERRNO = 4095;

/** Comparison operators of `struct scmp_arg_cmp` (enum scmp_compare). */
export const SECCOMP_CMP = {
  NE: 1,
  LT: 2,
  LE: 3,
  EQ: 4,
  GE: 5,
  GT: 6,
  /** `(arg & value) == datum`. */
  MASKED_EQ: 7,
} as const;

/** One argument test; a rule matches when all of its tests hold. */
export interface SeccompArgCmp {
  /** Argument index, 0–5. */
  arg: number;
  op: keyof typeof SECCOMP_CMP;
  /** Compared value; for MASKED_EQ the mask. */
  value: bigint;
  /** For MASKED_EQ: the value the masked argument must equal. */
  masked?: bigint;
}

/** A syscall the filter answers with an error or by killing the process. */
export interface SeccompRule {
  /** Name as libseccomp knows it, e.g. `"connect"`. */
  syscall: string;
  /** Fail with this errno (e.g. 1 = EPERM, 38 = ENOSYS), or `"kill"` the whole process. */
  action: number | "kill";
  /** Argument tests; none = always. */
  when?: readonly SeccompArgCmp[];
}

/** Options of the functions of this module. */
export interface SeccompOptions {
  /** libseccomp to open; default the soname (needs unscoped `--allow-ffi`). */
  libraryPath?: string;
}

/**
 * Opens libseccomp.
 * @throws {FfiError} `UNSUPPORTED_PLATFORM` or `LIBRARY_UNAVAILABLE`
 * @example
 * ```ts
 * const seccomp = openSeccomp();
 * seccomp.loadDenyFilter([{ syscall: "connect", action: 1 }]);
 * seccomp.close();
 * ```
 */
export function openSeccomp(options: SeccompOptions = {}): Seccomp {
  const path = options.libraryPath ?? LIBSECCOMP_SONAME;
  return new Seccomp(openLibrary(path, SYMBOLS));
}

/**
 * Availability probe: libseccomp loads and the kernel can filter all threads at once (TSYNC).
 * A missing library answers false; a permission denial is thrown, never read as "absent".
 * @throws {Deno.errors.NotCapable} without `--allow-ffi` for the library
 */
export function isSeccompAvailable(options: SeccompOptions = {}): boolean {
  let seccomp: Seccomp;
  try {
    seccomp = openSeccomp(options);
  } catch (error) {
    if (error instanceof FfiError && error.code === "LIBRARY_UNAVAILABLE") return false;
    throw error;
  }
  try {
    return seccomp.apiLevel() >= API_LEVEL_TSYNC;
  } finally {
    seccomp.close();
  }
}

/** Checked libseccomp calls. Create with {@link openSeccomp}. */
export class Seccomp {
  readonly #library: Deno.DynamicLibrary<typeof SYMBOLS>;

  /** @param library result of the module's single `Deno.dlopen` */
  constructor(library: Deno.DynamicLibrary<typeof SYMBOLS>) {
    this.#library = library;
  }

  /** Unloads the handle. */
  close(): void {
    this.#library.close();
  }

  /** libseccomp's view of the kernel: 0 none, 1 basic, 2 TSYNC, higher = newer features. */
  apiLevel(): number {
    return this.#library.symbols.seccomp_api_get();
  }

  /**
   * Loads a default-allow filter that answers each rule's syscall with its action, on every
   * thread of the process (TSYNC; threads created later inherit it). A syscall from another
   * ABI (i386, x32) kills the process, so the filter cannot be sidestepped. Irreversible.
   * Sets `no_new_privs` as the kernel requires.
   * @throws {FfiError} `SECCOMP_UNSUPPORTED` without TSYNC support, `INVALID_ARGUMENT` for a
   * syscall name libseccomp does not know, `CALL_FAILED` when building or loading fails
   */
  loadDenyFilter(rules: readonly SeccompRule[]): void {
    const symbols = this.#library.symbols;
    if (this.apiLevel() < API_LEVEL_TSYNC) {
      throw new FfiError("SECCOMP_UNSUPPORTED", "Cannot filter all threads: no seccomp TSYNC");
    }
    const context = symbols.seccomp_init(ACT_ALLOW);
    if (context === null) throw new FfiError("CALL_FAILED", "Cannot create seccomp filter");
    try {
      check(symbols.seccomp_attr_set(context, ATTR_ACT_BADARCH, ACT_KILL_PROCESS), "set badarch");
      check(symbols.seccomp_attr_set(context, ATTR_CTL_NNP, 1), "set no_new_privs");
      // Without TSYNC only the calling thread is filtered: Deno's other threads (tokio pool,
      // V8 workers) would keep full access.
      check(symbols.seccomp_attr_set(context, ATTR_CTL_TSYNC, 1), "set TSYNC");
      for (const rule of rules) this.#addRule(context, rule);
      check(symbols.seccomp_load(context), "load filter");
    } finally {
      symbols.seccomp_release(context);
    }
  }

  #addRule(context: Deno.PointerObject, rule: SeccompRule): void {
    const symbols = this.#library.symbols;
    const nr = symbols.seccomp_syscall_resolve_name(cString(rule.syscall));
    if (nr === NR_SCMP_ERROR) {
      throw new FfiError("INVALID_ARGUMENT", `Cannot filter unknown syscall "${rule.syscall}"`);
    }
    const action = actionOf(rule);
    const tests = rule.when ?? [];
    if (tests.length > 6) {
      throw new FfiError("INVALID_ARGUMENT", `Cannot test over 6 arguments of "${rule.syscall}"`);
    }
    // struct scmp_arg_cmp { unsigned int arg; enum scmp_compare op; scmp_datum_t datum_a, datum_b; }
    const array = new Uint8Array(24 * Math.max(tests.length, 1));
    const view = new DataView(array.buffer);
    tests.forEach((test, index) => {
      if (!Number.isInteger(test.arg) || test.arg < 0 || test.arg > 5) {
        throw new FfiError("INVALID_ARGUMENT", `Cannot test argument ${test.arg}`);
      }
      view.setUint32(index * 24, test.arg, true);
      view.setUint32(index * 24 + 4, SECCOMP_CMP[test.op], true);
      view.setBigUint64(index * 24 + 8, BigInt.asUintN(64, test.value), true);
      view.setBigUint64(index * 24 + 16, BigInt.asUintN(64, test.masked ?? 0n), true);
    });
    check(
      symbols.seccomp_rule_add_array(context, action, nr, tests.length, array),
      `add rule for "${rule.syscall}"`,
    );
  }
}

function actionOf(rule: SeccompRule): number {
  if (rule.action === "kill") return ACT_KILL_PROCESS;
  if (!Number.isInteger(rule.action) || rule.action < 1 || rule.action > MAX_ERRNO) {
    throw new FfiError("INVALID_ARGUMENT", `Cannot use errno ${rule.action} for "${rule.syscall}"`);
  }
  return ACT_ERRNO | rule.action;
}

/** libseccomp returns 0 or a negative errno. */
function check(result: number, what: string): void {
  if (result !== 0) {
    throw new FfiError("CALL_FAILED", `Cannot ${what}: errno ${-result}`, { errno: -result });
  }
}
