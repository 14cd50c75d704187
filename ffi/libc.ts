/**
 * glibc bindings for process hardening: prctl, rlimits, capabilities, close-on-exec for
 * inherited descriptors, a raw file read that needs no Deno read permission, and execve.
 * One symbol table, one load site ({@link openLibc}). Linux x86-64 only.
 * @module
 */
import { cString, openLibrary, readErrno } from "./_c.ts";
import { FfiError } from "./errors.ts";

/** Soname of glibc; the dynamic linker finds it when the caller has unscoped `--allow-ffi`. */
export const LIBC_SONAME = "libc.so.6";

const SYMBOLS = {
  // int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
  //           unsigned long arg5);
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  // int setrlimit(int resource, const struct rlimit *rlim);
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  // int getrlimit(int resource, struct rlimit *rlim);
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  // int capget(cap_user_header_t hdrp, cap_user_data_t datap);
  capget: { parameters: ["buffer", "buffer"], result: "i32" },
  // int capset(cap_user_header_t hdrp, const cap_user_data_t datap);
  capset: { parameters: ["buffer", "buffer"], result: "i32" },
  // int open(const char *pathname, int flags, ...);  (2-argument form: no O_CREAT, no mode)
  open: { parameters: ["buffer", "i32"], result: "i32" },
  // ssize_t read(int fd, void *buf, size_t count);
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // int close(int fd);
  close: { parameters: ["i32"], result: "i32" },
  // int execve(const char *pathname, char *const argv[], char *const envp[]);
  execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  // long syscall(SYS_close_range, unsigned int first, unsigned int last, unsigned int flags);
  close_range: { name: "syscall", parameters: ["i64", "u32", "u32", "u32"], result: "i64" },
  // int *__errno_location(void);
  __errno_location: { parameters: [], result: "usize" },
  // void *memcpy(void *dest, const void *src, size_t n);
  memcpy: { parameters: ["buffer", "usize", "usize"], result: "usize" },
} as const satisfies Deno.ForeignLibraryInterface;

/** Resource numbers of `setrlimit(2)` this project uses. */
export const RLIMIT = { CPU: 0, CORE: 4, NOFILE: 7, AS: 9 } as const;
/** A resource of {@link RLIMIT}. */
export type RlimitResource = typeof RLIMIT[keyof typeof RLIMIT];
/** `RLIM_INFINITY`. */
export const RLIM_INFINITY: bigint = 0xffff_ffff_ffff_ffffn;

/** Soft and hard value of one resource limit. */
export interface Rlimit {
  soft: bigint;
  hard: bigint;
}

/** Capability sets of the calling thread (`capget(2)`, 64 bits each). */
export interface CapabilitySets {
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
}

const PR_GET_DUMPABLE = 3;
const PR_SET_DUMPABLE = 4;
const PR_CAPBSET_READ = 23;
const PR_CAPBSET_DROP = 24;
const PR_SET_NO_NEW_PRIVS = 38;
const PR_GET_NO_NEW_PRIVS = 39;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_CLEAR_ALL = 4n;
const CAP_SETPCAP = 8n;
const LINUX_CAPABILITY_VERSION_3 = 0x2008_0522;
const SYS_CLOSE_RANGE = 436n;
const CLOSE_RANGE_CLOEXEC = 1 << 2;
const MAX_FD = 0xffff_ffff;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;

/** Options of {@link Libc.execve}. */
export interface ExecveOptions {
  /** Full argument vector, argv[0] included. */
  argv: readonly string[];
  /** Environment of the new image; nothing is inherited. */
  env: Readonly<Record<string, string>>;
}

/** Options of {@link openLibc}. */
export interface OpenLibcOptions {
  /**
   * Library to open. Defaults to {@link LIBC_SONAME}; pass an absolute path when the
   * process has only `--allow-ffi=<path>` (Deno resolves a bare name against the cwd).
   */
  path?: string;
}

/**
 * Opens glibc.
 * @returns a handle whose methods check every return code
 * @throws {FfiError} `UNSUPPORTED_PLATFORM` or `LIBRARY_UNAVAILABLE`
 * @example
 * ```ts
 * const libc = openLibc();
 * libc.setNoNewPrivs();
 * libc.close();
 * ```
 */
export function openLibc(options: OpenLibcOptions = {}): Libc {
  const path = options.path ?? LIBC_SONAME;
  return new Libc(openLibrary(path, SYMBOLS));
}

/** Checked wrappers around glibc. Create with {@link openLibc}. */
export class Libc {
  readonly #library: Deno.DynamicLibrary<typeof SYMBOLS>;

  /** @param library result of the module's single `Deno.dlopen` */
  constructor(library: Deno.DynamicLibrary<typeof SYMBOLS>) {
    this.#library = library;
  }

  /** Unloads the handle; later calls throw. */
  close(): void {
    this.#library.close();
  }

  /** errno of the last failed call on this thread. */
  errno(): number {
    return readErrno(this.#library.symbols);
  }

  #fail(what: string): never {
    const errno = this.errno();
    throw new FfiError("CALL_FAILED", `Cannot ${what}: errno ${errno}`, { errno });
  }

  #prctl(option: number, arg2: bigint, what: string): number {
    const result = this.#library.symbols.prctl(option, arg2, 0n, 0n, 0n);
    if (result < 0) this.#fail(what);
    return result;
  }

  /** Sets `PR_SET_NO_NEW_PRIVS`: execve can never again grant privileges (setuid, file caps). */
  setNoNewPrivs(): void {
    this.#prctl(PR_SET_NO_NEW_PRIVS, 1n, "set no_new_privs");
    if (!this.hasNoNewPrivs()) {
      throw new FfiError("CALL_FAILED", "Cannot set no_new_privs: flag still clear");
    }
  }

  /** Whether `no_new_privs` is set for this thread. */
  hasNoNewPrivs(): boolean {
    return this.#prctl(PR_GET_NO_NEW_PRIVS, 0n, "read no_new_privs") === 1;
  }

  /**
   * Sets or clears the dumpable flag. Clear, the process makes no core dump and other
   * processes of the same uid cannot ptrace it or open its /proc/<pid>/mem.
   */
  setDumpable(dumpable: boolean): void {
    this.#prctl(PR_SET_DUMPABLE, dumpable ? 1n : 0n, "set dumpable");
    if (this.isDumpable() !== dumpable) {
      throw new FfiError("CALL_FAILED", "Cannot set dumpable: flag did not change");
    }
  }

  /** Whether the process is dumpable. */
  isDumpable(): boolean {
    return this.#prctl(PR_GET_DUMPABLE, 0n, "read dumpable") !== 0;
  }

  /**
   * Sets a resource limit for the whole process (and what it executes).
   * @throws {FfiError} `CALL_FAILED`, e.g. EPERM when raising a hard limit
   */
  setRlimit(resource: RlimitResource, limit: Rlimit): void {
    if (limit.soft > limit.hard) {
      throw new FfiError("INVALID_ARGUMENT", `Cannot set rlimit ${resource}: soft above hard`);
    }
    const value = new BigUint64Array([limit.soft, limit.hard]);
    if (this.#library.symbols.setrlimit(resource, new Uint8Array(value.buffer)) !== 0) {
      this.#fail(`set rlimit ${resource}`);
    }
  }

  /** Reads a resource limit. */
  getRlimit(resource: RlimitResource): Rlimit {
    const value = new BigUint64Array(2);
    if (this.#library.symbols.getrlimit(resource, new Uint8Array(value.buffer)) !== 0) {
      this.#fail(`read rlimit ${resource}`);
    }
    return { soft: value[0] ?? 0n, hard: value[1] ?? 0n };
  }

  /** Capability sets of the calling thread. */
  capabilities(): CapabilitySets {
    const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]);
    const data = new Uint32Array(6); // 2 × {effective, permitted, inheritable}
    if (this.#library.symbols.capget(new Uint8Array(header.buffer), new Uint8Array(data.buffer))) {
      this.#fail("read capabilities");
    }
    const join = (low: number, high: number): bigint => (BigInt(high) << 32n) | BigInt(low);
    return {
      effective: join(data[0] ?? 0, data[3] ?? 0),
      permitted: join(data[1] ?? 0, data[4] ?? 0),
      inheritable: join(data[2] ?? 0, data[5] ?? 0),
    };
  }

  /**
   * Drops every capability for good: the bounding set (so execve cannot regain any), the
   * ambient set, then effective/permitted/inheritable. Without CAP_SETPCAP the bounding set
   * cannot be changed, but then nothing is held that it could grant back under no_new_privs.
   * @throws {FfiError} `CALL_FAILED` when a capability survives
   */
  dropCapabilities(): void {
    const symbols = this.#library.symbols;
    const canSetPcap = (this.capabilities().effective & (1n << CAP_SETPCAP)) !== 0n;
    // Unprivileged, the bounding set cannot be changed (EPERM), and there is nothing it could
    // grant back under no_new_privs.
    for (let cap = 0n; canSetPcap && cap < 64n; cap++) {
      const held = symbols.prctl(PR_CAPBSET_READ, cap, 0n, 0n, 0n);
      if (held < 0) break; // EINVAL, its only error: past the kernel's last capability
      if (held === 0) continue;
      if (symbols.prctl(PR_CAPBSET_DROP, cap, 0n, 0n, 0n) !== 0) {
        this.#fail(`drop bounding capability ${cap}`);
      }
    }
    this.#prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, "clear ambient capabilities");
    const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]);
    if (symbols.capset(new Uint8Array(header.buffer), new Uint8Array(24)) !== 0) {
      this.#fail("clear capabilities");
    }
    const left = this.capabilities();
    if (left.effective !== 0n || left.permitted !== 0n || left.inheritable !== 0n) {
      throw new FfiError("CALL_FAILED", "Cannot clear capabilities: some are still held");
    }
  }

  /**
   * Marks every descriptor from `first` up close-on-exec (`close_range(2)`, Linux ≥ 5.11), so
   * that a program executed next inherits none of them: not this process's own, and not
   * those its parent passed down without close-on-exec (sockets, logs).
   * @throws {FfiError} `CALL_FAILED`
   */
  closeOnExecFrom(first: number): void {
    if (!Number.isInteger(first) || first < 0) {
      throw new FfiError("INVALID_ARGUMENT", `Cannot close descriptors from ${first}`);
    }
    const result = this.#library.symbols.close_range(
      SYS_CLOSE_RANGE,
      first,
      MAX_FD,
      CLOSE_RANGE_CLOEXEC,
    );
    if (result < 0n) this.#fail("mark descriptors close-on-exec");
  }

  /**
   * Reads a whole small file with open/read/close, outside Deno's permission checks (for
   * /proc/self files). Use only for paths the caller chose, never for untrusted ones.
   * @throws {FfiError} `PATH_UNAVAILABLE` when it cannot be opened, `INVALID_ARGUMENT` when
   * it is larger than `maxBytes`
   */
  readFile(path: string, maxBytes: number): Uint8Array<ArrayBuffer> {
    const symbols = this.#library.symbols;
    const fd = symbols.open(cString(path), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const errno = this.errno();
      throw new FfiError("PATH_UNAVAILABLE", `Cannot open "${path}": errno ${errno}`, { errno });
    }
    try {
      const chunks: Uint8Array<ArrayBuffer>[] = [];
      let total = 0;
      for (;;) {
        const chunk = new Uint8Array(64 * 1024);
        const count = symbols.read(fd, chunk, BigInt(chunk.length));
        if (count < 0n) this.#fail(`read "${path}"`);
        if (count === 0n) break;
        total += Number(count);
        if (total > maxBytes) {
          throw new FfiError("INVALID_ARGUMENT", `Cannot read "${path}": over ${maxBytes} bytes`);
        }
        chunks.push(chunk.subarray(0, Number(count)));
      }
      const out = new Uint8Array(total);
      let offset = 0;
      for (const chunk of chunks) {
        out.set(chunk, offset);
        offset += chunk.length;
      }
      return out;
    } finally {
      symbols.close(fd);
    }
  }

  /**
   * Replaces the process image (same pid, same thread that calls it). Needs unscoped
   * `--allow-ffi`: the argv/envp arrays hold raw addresses.
   * @param path absolute path of the program
   * @param options its argument vector and environment
   * @throws {FfiError} `CALL_FAILED` (execve returns only on failure)
   */
  execve(path: string, options: ExecveOptions): never {
    const { argv, env } = options;
    const keep: Uint8Array<ArrayBuffer>[] = []; // keeps the strings alive until the call
    const table = (values: readonly string[]): Uint8Array<ArrayBuffer> => {
      const pointers = new BigUint64Array(values.length + 1); // NULL-terminated
      values.forEach((value, index) => {
        const bytes = cString(value);
        keep.push(bytes);
        pointers[index] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
      });
      return new Uint8Array(pointers.buffer);
    };
    const argvTable = table(argv);
    const envTable = table(Object.entries(env).map(([key, value]) => `${key}=${value}`));
    this.#library.symbols.execve(cString(path), argvTable, envTable);
    const errno = this.errno();
    keep.length = 0;
    throw new FfiError("CALL_FAILED", `Cannot execute "${path}": errno ${errno}`, { errno });
  }
}
