/**
 * The path gate's filesystem half: resolves a lexically checked workspace path against the
 * real filesystem, one component at a time with `lstat`, following symlinks only while they
 * stay inside the workspace root. Symlinks that point outside (or into `/proc`, `/dev`,
 * `/sys`), loops, dangling links, FIFOs, sockets, devices, mount crossings and multiply linked
 * files are refused. Nothing outside the root is ever touched: a link target is judged by its
 * text before anything at it is looked at.
 *
 * This is the one module of the evaluator side that does I/O (besides the loader): it gathers
 * the filesystem facts a `path_access` or `tool_access` decision depends on. It uses the sync
 * `lstat`/`readLink` calls: each is one syscall that cannot block on a FIFO (nothing is opened),
 * and a decision stays one synchronous step. A decision is about the state at decision time:
 * the executor must still open every component without following links (spec 20 §6).
 * @module
 */

/** Operations the path gate judges. */
export type PathOp = "read" | "write" | "list";

/** What the resolver found for a path that passed. */
export interface ResolvedPath {
  ok: true;
  /** The real path, relative to the workspace root (links inside the root resolved). */
  real: string;
  /** `file`, `dir`, or `missing` (a new file for `write`). */
  kind: "file" | "dir" | "missing";
  /** Symlinks followed on the way. */
  links: number;
}

/** A refused path. */
export interface UnresolvedPath {
  ok: false;
  rule: string;
  reason: string;
}

/** Outcome of {@linkcode WorkspaceResolver.resolve}. */
export type PathResolution = ResolvedPath | UnresolvedPath;

/** Most symlinks followed for one path (Linux's own limit is 40). */
export const MAX_LINK_HOPS = 40;

const SYSTEM_TREES = ["/proc", "/dev", "/sys"];

function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === "/" ? "/" : `${dir}/`);
}

/**
 * `lstat` whose failure carries no stack trace: a missing name is an expected answer here
 * (every new file written), and capturing a stack costs more than the syscall.
 */
function lstatQuiet(path: string): Deno.FileInfo {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return Deno.lstatSync(path);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

function refuse(rule: string, reason: string): UnresolvedPath {
  return { ok: false, rule: `path.fs.${rule}`, reason };
}

/** Resolves workspace paths under one root. */
export class WorkspaceResolver {
  readonly #root: string;
  #real: string | null = null;
  #dev = 0;

  /** @param root the workspace root, absolute */
  constructor(root: string) {
    if (!root.startsWith("/")) throw new TypeError(`Workspace root "${root}" is not absolute`);
    this.#root = root;
  }

  /** The configured root. */
  get root(): string {
    return this.#root;
  }

  /** The root's real path, looked up once it exists; null while it does not. */
  #realRoot(): string | null {
    if (this.#real !== null) return this.#real;
    let real: string;
    try {
      real = Deno.realPathSync(this.#root);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
    const info = Deno.statSync(real);
    if (!info.isDirectory) return null;
    this.#dev = info.dev;
    this.#real = real;
    return real;
  }

  /**
   * Resolves checked segments for an operation.
   * @param segments the segments from `checkPathLexical` (no empty, `.` or `..` parts)
   * @param op read (a regular file), write (a regular file or a new name in an existing
   *   folder) or list (a folder)
   * @returns the real relative path and its kind, or the rule that refused it
   * @throws {Deno.errors.NotCapable} when the caller was not granted read on the root
   */
  resolve(segments: readonly string[], op: PathOp): PathResolution {
    // Judged by its text first: a system tree is not even looked at (Deno refuses /proc).
    if (SYSTEM_TREES.some((t) => isUnder(this.#root, t))) {
      return refuse("system", "The workspace lies in a system tree (/proc, /dev, /sys)");
    }
    const root = this.#realRoot();
    if (root === null) {
      return refuse("no_workspace", "The workspace folder does not exist");
    }
    if (SYSTEM_TREES.some((t) => isUnder(root, t))) {
      return refuse("system", "The workspace lies in a system tree (/proc, /dev, /sys)");
    }
    // Each queued name remembers whether it ends a link's target: a missing one is dangling.
    const queue = segments.map((name) => ({ name, isLinkTail: false }));
    const current: string[] = [];
    let links = 0;
    const expand = (target: string) => {
      const parts = target.split("/");
      queue.unshift(...parts.map((name, i) => ({ name, isLinkTail: i === parts.length - 1 })));
    };
    while (queue.length > 0) {
      const { name: segment, isLinkTail } = queue.shift() as { name: string; isLinkTail: boolean };
      if (segment === "." || segment === "") continue; // only from link targets
      if (segment === "..") {
        // Only link targets contain "..": `current` is symlink-free, so popping it is exact.
        if (current.length === 0) {
          return refuse("symlink_outside", "A symbolic link points outside the workspace");
        }
        current.pop();
        continue;
      }
      const isLast = queue.length === 0;
      const path = `${root}/${[...current, segment].join("/")}`;
      let info: Deno.FileInfo;
      try {
        info = lstatQuiet(path);
      } catch (err) {
        if (err instanceof Deno.errors.PermissionDenied) {
          return refuse("permission", "A part of the path cannot be inspected");
        }
        if (!(err instanceof Deno.errors.NotFound)) throw err;
        if (isLinkTail) return refuse("dangling", "A symbolic link on the path points nowhere");
        if (isLast && op === "write") {
          current.push(segment);
          return { ok: true, real: current.join("/"), kind: "missing", links };
        }
        return isLast
          ? refuse("not_found", "The path does not exist")
          : refuse("parent_missing", "A folder on the path does not exist");
      }
      if (info.isSymlink) {
        links++;
        if (links > MAX_LINK_HOPS) {
          return refuse("symlink_loop", `More than ${MAX_LINK_HOPS} symbolic links (a loop)`);
        }
        const target = Deno.readLinkSync(path);
        if (target.startsWith("/")) {
          if (SYSTEM_TREES.some((t) => isUnder(target, t))) {
            return refuse("system", "A symbolic link points into /proc, /dev or /sys");
          }
          if (!isUnder(target, root)) {
            return refuse("symlink_outside", "A symbolic link points outside the workspace");
          }
          current.length = 0;
          expand(target.slice(root.length));
        } else {
          expand(target);
        }
        continue;
      }
      if (info.dev !== this.#dev) {
        return refuse("mount", "The path crosses into another filesystem");
      }
      if (info.isFifo || info.isSocket || info.isCharDevice || info.isBlockDevice) {
        return refuse("special", "The path names a FIFO, a socket or a device");
      }
      current.push(segment);
      if (!isLast) {
        if (!info.isDirectory) return refuse("not_directory", "A part of the path is not a folder");
        continue;
      }
      const real = current.join("/");
      if (op === "list") {
        if (!info.isDirectory) return refuse("not_directory", "Only a folder can be listed");
        return { ok: true, real, kind: "dir", links };
      }
      if (info.isDirectory) return refuse("is_directory", "The path is a folder");
      if (!info.isFile) return refuse("special", "The path is not a regular file");
      // A second name for a file may be anywhere, outside the workspace included.
      if ((info.nlink ?? 1) > 1) {
        return refuse("hardlink", "The file has more than one hard link");
      }
      return { ok: true, real, kind: "file", links };
    }
    return refuse("not_found", "The path is empty after resolving links");
  }
}
