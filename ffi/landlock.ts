/**
 * Landlock (Linux ≥ 5.13): unprivileged, stackable access control for files, TCP ports and
 * IPC scopes. The three Landlock syscalls have no glibc wrappers, so they go through
 * `syscall(2)`; one symbol table, one load site ({@link openLandlock}). Linux x86-64 only.
 *
 * Landlock restricts **the calling thread** and whatever it later creates or executes. In a
 * Deno process other threads (tokio's blocking pool, workers' threads started earlier) stay
 * free: restrict the main thread of a launcher, then `execve` the real program from it.
 * @module
 */
import { cString, openLibrary, readErrno } from "./_c.ts";
import { FfiError } from "./errors.ts";
import { LIBC_SONAME } from "./libc.ts";

const SYS_LANDLOCK_CREATE_RULESET = 444n;
const SYS_LANDLOCK_ADD_RULE = 445n;
const SYS_LANDLOCK_RESTRICT_SELF = 446n;

const SYMBOLS = {
  // long syscall(SYS_landlock_create_ruleset, const struct landlock_ruleset_attr *attr,
  //              size_t size, __u32 flags);
  landlock_create_ruleset: {
    name: "syscall",
    parameters: ["i64", "buffer", "usize", "u32"],
    result: "i64",
  },
  // long syscall(SYS_landlock_add_rule, int ruleset_fd, enum landlock_rule_type rule_type,
  //              const void *rule_attr, __u32 flags);
  landlock_add_rule: {
    name: "syscall",
    parameters: ["i64", "i64", "u32", "buffer", "u32"],
    result: "i64",
  },
  // long syscall(SYS_landlock_restrict_self, int ruleset_fd, __u32 flags);
  landlock_restrict_self: { name: "syscall", parameters: ["i64", "i64", "u32"], result: "i64" },
  // int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
  //           unsigned long arg5);
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  // int open(const char *pathname, int flags, ...);
  open: { parameters: ["buffer", "i32"], result: "i32" },
  // int close(int fd);
  close: { parameters: ["i32"], result: "i32" },
  // int *__errno_location(void);
  __errno_location: { parameters: [], result: "usize" },
  // void *memcpy(void *dest, const void *src, size_t n);
  memcpy: { parameters: ["buffer", "usize", "usize"], result: "usize" },
} as const satisfies Deno.ForeignLibraryInterface;

/** `LANDLOCK_ACCESS_FS_*` bits (uapi/linux/landlock.h). */
export const LANDLOCK_ACCESS_FS = {
  EXECUTE: 1n << 0n,
  WRITE_FILE: 1n << 1n,
  READ_FILE: 1n << 2n,
  READ_DIR: 1n << 3n,
  REMOVE_DIR: 1n << 4n,
  REMOVE_FILE: 1n << 5n,
  MAKE_CHAR: 1n << 6n,
  MAKE_DIR: 1n << 7n,
  MAKE_REG: 1n << 8n,
  MAKE_SOCK: 1n << 9n,
  MAKE_FIFO: 1n << 10n,
  MAKE_BLOCK: 1n << 11n,
  MAKE_SYM: 1n << 12n,
  /** ABI 2. */
  REFER: 1n << 13n,
  /** ABI 3. */
  TRUNCATE: 1n << 14n,
  /** ABI 5. */
  IOCTL_DEV: 1n << 15n,
} as const;

const FS = LANDLOCK_ACCESS_FS;
/** Rights a rule on a non-directory may carry; the kernel rejects the others (EINVAL). */
const FILE_RIGHTS = FS.EXECUTE | FS.WRITE_FILE | FS.READ_FILE | FS.TRUNCATE | FS.IOCTL_DEV;
const READ = FS.READ_FILE | FS.READ_DIR;
const ACCESS: Readonly<Record<LandlockAccess, bigint>> = {
  ro: READ,
  rx: READ | FS.EXECUTE,
  // No MAKE_SYM/FIFO/SOCK/CHAR/BLOCK: a job writes plain files and directories only.
  rw: READ | FS.WRITE_FILE | FS.TRUNCATE | FS.MAKE_REG | FS.MAKE_DIR | FS.REMOVE_FILE |
    FS.REMOVE_DIR | FS.REFER,
  // Character devices such as /dev/null: read and write, no ioctl.
  dev: FS.READ_FILE | FS.WRITE_FILE,
};
const NET_BIND_TCP = 1n;
const NET_CONNECT_TCP = 2n;
const SCOPE_ABSTRACT_UNIX_SOCKET = 1n;
const SCOPE_SIGNAL = 2n;

const CREATE_RULESET_VERSION = 1;
const RULE_PATH_BENEATH = 1;
const PR_SET_NO_NEW_PRIVS = 38;
const O_PATH = 0o10000000;
const O_DIRECTORY = 0o200000;
const O_CLOEXEC = 0o2000000;

/**
 * What a rule allows beneath its path: `ro` read files and list directories, `rx` also
 * execute, `rw` also create, write, truncate, rename and delete files and directories, `dev`
 * read and write a device file without ioctl.
 */
export type LandlockAccess = "ro" | "rx" | "rw" | "dev";

/** One allowed path. Everything the ruleset handles and no rule allows is denied. */
export interface LandlockRule {
  /** Absolute path of a file or directory; it must exist (fail closed). */
  path: string;
  access: LandlockAccess;
}

/** Options of the functions of this module. */
export interface LandlockOptions {
  /** libc to call `syscall` from; default the soname (needs unscoped `--allow-ffi`). */
  libcPath?: string;
}

/** What {@link Landlock.restrictSelf} put in force. */
export interface LandlockStatus {
  /** ABI version the ruleset was built for. */
  abi: number;
  /** TCP bind and connect denied (ABI ≥ 4). */
  net: boolean;
  /** Signals and abstract unix sockets limited to the domain (ABI ≥ 6). */
  scoped: boolean;
}

/**
 * Opens the Landlock facility (libc's `syscall`).
 * @throws {FfiError} `UNSUPPORTED_PLATFORM` or `LIBRARY_UNAVAILABLE`
 * @example
 * ```ts
 * const landlock = openLandlock();
 * if (landlock.abi() > 0) landlock.restrictSelf([{ path: "/tmp/job", access: "rw" }]);
 * ```
 */
export function openLandlock(options: LandlockOptions = {}): Landlock {
  const path = options.libcPath ?? LIBC_SONAME;
  return new Landlock(openLibrary(path, SYMBOLS));
}

/**
 * Availability probe: the Landlock ABI version of this kernel, 0 when it has none.
 * @throws {FfiError} `UNSUPPORTED_PLATFORM` or `LIBRARY_UNAVAILABLE`
 */
export function landlockAbi(options: LandlockOptions = {}): number {
  const landlock = openLandlock(options);
  try {
    return landlock.abi();
  } finally {
    landlock.close();
  }
}

/** Checked Landlock calls. Create with {@link openLandlock}. */
export class Landlock {
  readonly #library: Deno.DynamicLibrary<typeof SYMBOLS>;

  /** @param library result of the module's single `Deno.dlopen` */
  constructor(library: Deno.DynamicLibrary<typeof SYMBOLS>) {
    this.#library = library;
  }

  /** Unloads the handle. */
  close(): void {
    this.#library.close();
  }

  #errno(): number {
    return readErrno(this.#library.symbols);
  }

  /** ABI version, 0 when the kernel lacks Landlock (ENOSYS) or has it disabled (EOPNOTSUPP). */
  abi(): number {
    const version = this.#library.symbols.landlock_create_ruleset(
      SYS_LANDLOCK_CREATE_RULESET,
      null,
      0n,
      CREATE_RULESET_VERSION,
    );
    return version > 0n ? Number(version) : 0;
  }

  /**
   * Sets `no_new_privs` (the kernel requires it) and restricts the calling thread, and all it
   * later spawns or executes, to `rules`. Filesystem access not granted by a rule is denied;
   * from ABI 4 all TCP bind/connect, from ABI 6 signals and abstract unix sockets leaving the
   * domain are denied too. Irreversible.
   * @throws {FfiError} `LANDLOCK_UNSUPPORTED` when {@link abi} is 0, `PATH_UNAVAILABLE` when a
   * rule's path cannot be opened, `CALL_FAILED` when a syscall fails
   */
  restrictSelf(rules: readonly LandlockRule[]): LandlockStatus {
    const symbols = this.#library.symbols;
    const abi = this.abi();
    if (abi < 1) throw new FfiError("LANDLOCK_UNSUPPORTED", "Cannot restrict: no Landlock");
    // Handle every right this ABI knows, so that nothing is left implicitly allowed:
    // v1 13 rights, v2 +REFER, v3 +TRUNCATE, v5 +IOCTL_DEV.
    const fsBits = abi >= 5 ? 16n : abi >= 3 ? 15n : abi >= 2 ? 14n : 13n;
    const handledFs = (1n << fsBits) - 1n;
    const handledNet = abi >= 4 ? NET_BIND_TCP | NET_CONNECT_TCP : 0n;
    const scoped = abi >= 6 ? SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL : 0n;
    // struct landlock_ruleset_attr { __u64 handled_access_fs, handled_access_net, scoped; }
    const attr = new BigUint64Array([handledFs, handledNet, scoped]);
    const size = abi >= 6 ? 24n : abi >= 4 ? 16n : 8n;
    const rulesetFd = symbols.landlock_create_ruleset(
      SYS_LANDLOCK_CREATE_RULESET,
      new Uint8Array(attr.buffer),
      size,
      0,
    );
    if (rulesetFd < 0n) this.#fail("create Landlock ruleset");
    try {
      for (const rule of rules) this.#addRule(rulesetFd, rule, handledFs);
      if (symbols.prctl(PR_SET_NO_NEW_PRIVS, 1n, 0n, 0n, 0n) !== 0) this.#fail("set no_new_privs");
      const restricted = symbols.landlock_restrict_self(SYS_LANDLOCK_RESTRICT_SELF, rulesetFd, 0);
      if (restricted < 0n) this.#fail("enforce Landlock ruleset");
    } finally {
      symbols.close(Number(rulesetFd));
    }
    return { abi, net: handledNet !== 0n, scoped: scoped !== 0n };
  }

  #addRule(rulesetFd: bigint, rule: LandlockRule, handledFs: bigint): void {
    const symbols = this.#library.symbols;
    if (!rule.path.startsWith("/")) {
      throw new FfiError(
        "INVALID_ARGUMENT",
        `Cannot add Landlock rule: "${rule.path}" is relative`,
      );
    }
    // O_PATH opens without reading; try as a directory first to learn which rights apply.
    // (Decided by which open succeeds, not by errno, which the runtime may overwrite.)
    let fd = symbols.open(cString(rule.path), O_PATH | O_DIRECTORY | O_CLOEXEC);
    let isDirectory = true;
    if (fd < 0) {
      fd = symbols.open(cString(rule.path), O_PATH | O_CLOEXEC);
      isDirectory = false;
    }
    if (fd < 0) {
      const errno = this.#errno();
      throw new FfiError("PATH_UNAVAILABLE", `Cannot open "${rule.path}": errno ${errno}`, {
        errno,
      });
    }
    try {
      const allowed = ACCESS[rule.access] & handledFs & (isDirectory ? ~0n : FILE_RIGHTS);
      // struct landlock_path_beneath_attr { __u64 allowed_access; __s32 parent_fd; } (packed)
      const attr = new Uint8Array(12);
      const view = new DataView(attr.buffer);
      view.setBigUint64(0, allowed, true);
      view.setInt32(8, fd, true);
      const added = symbols.landlock_add_rule(
        SYS_LANDLOCK_ADD_RULE,
        rulesetFd,
        RULE_PATH_BENEATH,
        attr,
        0,
      );
      if (added < 0n) this.#fail(`add Landlock rule for "${rule.path}"`);
    } finally {
      symbols.close(fd);
    }
  }

  #fail(what: string): never {
    const errno = this.#errno();
    throw new FfiError("CALL_FAILED", `Cannot ${what}: errno ${errno}`, { errno });
  }
}
