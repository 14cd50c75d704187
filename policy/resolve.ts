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

function refuse(rule: string, reason: string): UnresolvedPath {
  return { ok: false, rule: `path.fs.${rule}`, reason };
}

/** Resolves workspace paths under one root. */
export class WorkspaceResolver {
  readonly #root: string;
  /** Whether the configured root lies in a system tree (judged once, by its text). */
  readonly #rootIsSystem: boolean;
  #real: string | null = null;
  #dev = 0;

  /** @param root the workspace root, absolute */
  constructor(root: string) {
    if (!root.startsWith("/")) throw new TypeError(`Workspace root "${root}" is not absolute`);
    this.#root = root;
    this.#rootIsSystem = SYSTEM_TREES.some((t) => isUnder(root, t));
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
   *
   * The walk keeps the real path found so far as one string and reads the given segments by
   * index; only once a link is met does it keep a stack of names still to visit (the link's
   * target pushed on top). A decision costs one `lstat` per component, which is most of its
   * time, so nothing else is allocated per component.
   * @param segments the segments from `checkPathLexical` (no empty, `.` or `..` parts)
   * @param op read (a regular file), write (a regular file or a new name in an existing
   *   folder) or list (a folder)
   * @returns the real relative path and its kind, or the rule that refused it
   * @throws {Deno.errors.NotCapable} when the caller was not granted read on the root
   */
  resolve(segments: readonly string[], op: PathOp): PathResolution {
    // Judged by its text first: a system tree is not even looked at (Deno refuses /proc).
    if (this.#rootIsSystem) {
      return refuse("system", "The workspace lies in a system tree (/proc, /dev, /sys)");
    }
    const root = this.#realRoot();
    if (root === null) {
      return refuse("no_workspace", "The workspace folder does not exist");
    }
    if (SYSTEM_TREES.some((t) => isUnder(root, t))) {
      return refuse("system", "The workspace lies in a system tree (/proc, /dev, /sys)");
    }
    // `path` is `root` plus the real components so far; `depth` counts them.
    let path = root;
    let depth = 0;
    let next = 0; // the next given segment, while no link has been met
    // After a link: names still to visit, last on top, and which of them end a link's
    // target (a missing one is dangling).
    let pending: string[] | null = null;
    let tails: boolean[] | null = null;
    let links = 0;
    for (;;) {
      let segment: string;
      let isLinkTail = false;
      if (pending === null) {
        if (next === segments.length) break;
        segment = segments[next++] as string;
      } else {
        if (pending.length === 0) break;
        segment = pending.pop() as string;
        isLinkTail = tails?.pop() as boolean;
      }
      if (segment === "." || segment === "") continue; // only from link targets
      if (segment === "..") {
        // Only link targets contain "..": `path` is symlink-free, so dropping a part is exact.
        if (depth === 0) {
          return refuse("symlink_outside", "A symbolic link points outside the workspace");
        }
        path = path.slice(0, path.lastIndexOf("/"));
        depth--;
        continue;
      }
      const isLast = pending === null ? next === segments.length : pending.length === 0;
      const candidate = `${path}/${segment}`;
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(candidate);
      } catch (err) {
        if (err instanceof Deno.errors.PermissionDenied) {
          return refuse("permission", "A part of the path cannot be inspected");
        }
        if (!(err instanceof Deno.errors.NotFound)) throw err;
        if (isLinkTail) return refuse("dangling", "A symbolic link on the path points nowhere");
        if (isLast && op === "write") {
          return { ok: true, real: relative(root, candidate), kind: "missing", links };
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
        let target = Deno.readLinkSync(candidate);
        if (target.startsWith("/")) {
          if (SYSTEM_TREES.some((t) => isUnder(target, t))) {
            return refuse("system", "A symbolic link points into /proc, /dev or /sys");
          }
          if (!isUnder(target, root)) {
            return refuse("symlink_outside", "A symbolic link points outside the workspace");
          }
          path = root;
          depth = 0;
          target = target.slice(root.length);
        }
        if (pending === null) {
          // From here on the walk takes names from a stack: the given segments still to
          // visit, last first.
          pending = segments.slice(next).reverse();
          tails = pending.map(() => false);
        }
        const parts = target.split("/");
        for (let i = parts.length - 1; i >= 0; i--) {
          pending.push(parts[i] as string);
          tails?.push(i === parts.length - 1);
        }
        continue;
      }
      if (info.dev !== this.#dev) {
        return refuse("mount", "The path crosses into another filesystem");
      }
      if (info.isFifo || info.isSocket || info.isCharDevice || info.isBlockDevice) {
        return refuse("special", "The path names a FIFO, a socket or a device");
      }
      path = candidate;
      depth++;
      if (!isLast) {
        if (!info.isDirectory) return refuse("not_directory", "A part of the path is not a folder");
        continue;
      }
      const real = relative(root, path);
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

/** `path` (which starts with `root/`) relative to `root`. */
function relative(root: string, path: string): string {
  return path.slice(root.length + 1);
}
