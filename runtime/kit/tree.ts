/**
 * Directory artifacts (spec 13 §2, §4, §6): a bounded, link-refusing walk of a directory tree
 * and its domain-separated **tree hash**. The walk only `lstat`s: it never follows a link and
 * never reads a file, so it is safe on hostile trees outside the sandbox (the quarantine's
 * claim and integrity pin, the CLI). The content checks of a directory run in sandboxed jobs.
 *
 * Tree hash (spec 13 §6 "Directory tree hash"): SHA-256 of `"SecAI-Directory-Hash-v1\0"`
 * then, per regular file in byte-sorted relative-path order, u64-BE path length ‖ path
 * (UTF-8) ‖ u64-BE size ‖ content. Symlinks, hard links, special files, more than 25 000
 * entries, or any change while hashing are errors, never a digest.
 * @module
 */
import { createHash } from "node:crypto";

/** Limits of a walk (spec 13 §2 claim and §4 stage 2). */
export const TREE_LIMITS = Object.freeze({
  /** Files, directories, links and special files together (the root not counted). */
  maxEntries: 25_000,
  /** Path segments below the root (a child of the root has depth 1). */
  maxDepth: 32,
  /** UTF-8 bytes of a relative path. */
  maxPathBytes: 4096,
});

/** Domain separation of the tree hash. */
export const TREE_DIGEST_CONTEXT = "SecAI-Directory-Hash-v1\0";

/** What an entry is, by `lstat` (a link is never followed). */
export type TreeEntryKind = "file" | "directory" | "symlink" | "other";

/** One entry below the root. */
export interface TreeEntry {
  /** Path relative to the root, `/`-separated. */
  path: string;
  kind: TreeEntryKind;
  /** Segments of `path`. */
  depth: number;
  size: number;
  nlink: number;
  ino: number | null;
  mtimeMs: number | null;
}

/** Why a walk left something out. */
export type TreeProblemCode = "TOO_MANY_ENTRIES" | "TOO_DEEP" | "PATH_TOO_LONG" | "UNREADABLE";

/** Something a walk could not list within its limits; `path` names where. */
export interface TreeProblem {
  code: TreeProblemCode;
  path: string;
  message: string;
}

/** Result of {@link walkTree}. */
export interface TreeWalk {
  /** Entries in byte-sorted path order. */
  entries: TreeEntry[];
  /** Limits hit; empty when the listing is complete. */
  problems: TreeProblem[];
}

/** Options of {@link walkTree}. */
export interface WalkTreeOptions {
  maxEntries?: number;
  maxDepth?: number;
  maxPathBytes?: number;
}

const encoder = new TextEncoder();

/** Orders two strings by their UTF-8 bytes (JS `<` orders UTF-16 code units). */
export function compareUtf8(a: string, b: string): number {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = (x[i] as number) - (y[i] as number);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function kindOf(info: Deno.FileInfo): TreeEntryKind {
  if (info.isSymlink) return "symlink";
  if (info.isDirectory) return "directory";
  if (info.isFile) return "file";
  return "other";
}

/**
 * Lists a directory tree with `lstat` only, within limits. Links are listed as links and
 * never followed; special files are listed as `other`. A limit that is hit is reported as a
 * problem naming the path, and the walk stops descending there (or stops altogether past
 * `maxEntries`), so a hostile tree costs at most the limits.
 * @param root absolute path of a directory
 * @param options limits; default {@link TREE_LIMITS}
 * @returns the entries found and the limits hit
 * @throws {TypeError} when `root` is not a directory (a link to one included)
 * @throws {Deno.errors.NotFound} and other filesystem errors of the root unchanged
 * @example
 * ```ts
 * const { entries, problems } = await walkTree("/var/lib/secai/quarantine/processing/q1/directory");
 * ```
 */
export async function walkTree(root: string, options: WalkTreeOptions = {}): Promise<TreeWalk> {
  const maxEntries = options.maxEntries ?? TREE_LIMITS.maxEntries;
  const maxDepth = options.maxDepth ?? TREE_LIMITS.maxDepth;
  const maxPathBytes = options.maxPathBytes ?? TREE_LIMITS.maxPathBytes;
  const top = await Deno.lstat(root);
  if (!top.isDirectory) throw new TypeError(`Cannot walk "${root}": not a directory`);
  const entries: TreeEntry[] = [];
  const problems: TreeProblem[] = [];
  const pending: { rel: string; depth: number }[] = [{ rel: "", depth: 0 }];
  walk: for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const names: string[] = [];
    try {
      for await (const item of Deno.readDir(next.rel === "" ? root : `${root}/${next.rel}`)) {
        names.push(item.name);
        // Bounded even for one huge directory: stop reading past the limit.
        if (entries.length + names.length > maxEntries) break;
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      problems.push({
        code: "UNREADABLE",
        path: next.rel,
        message: `Cannot list "${next.rel}": ${error instanceof Error ? error.message : error}`,
      });
      continue;
    }
    names.sort(compareUtf8);
    for (const name of names) {
      const rel = next.rel === "" ? name : `${next.rel}/${name}`;
      if (entries.length >= maxEntries) {
        problems.push({
          code: "TOO_MANY_ENTRIES",
          path: rel,
          message: `More than ${maxEntries} entries; the walk stopped at "${rel}"`,
        });
        break walk;
      }
      const depth = next.depth + 1;
      if (depth > maxDepth) {
        problems.push({
          code: "TOO_DEEP",
          path: rel,
          message: `"${rel}" is ${depth} levels deep (at most ${maxDepth})`,
        });
        break;
      }
      if (encoder.encode(rel).length > maxPathBytes) {
        problems.push({
          code: "PATH_TOO_LONG",
          path: rel,
          message: `Path "${rel.slice(0, 200)}…" is longer than ${maxPathBytes} bytes`,
        });
        continue;
      }
      let info: Deno.FileInfo;
      try {
        info = await Deno.lstat(`${root}/${rel}`);
      } catch (error) {
        if (error instanceof Deno.errors.NotCapable) throw error;
        // Gone since the listing, or a name that is not UTF-8 (Deno cannot name it back).
        problems.push({
          code: "UNREADABLE",
          path: rel,
          message: `Cannot stat "${rel}": ${error instanceof Error ? error.message : error}`,
        });
        continue;
      }
      const kind = kindOf(info);
      entries.push({
        path: rel,
        kind,
        depth,
        size: kind === "file" ? info.size : 0,
        nlink: info.nlink ?? 1,
        ino: info.ino ?? null,
        mtimeMs: info.mtime?.getTime() ?? null,
      });
      if (kind === "directory") pending.push({ rel, depth });
    }
  }
  entries.sort((a, b) => compareUtf8(a.path, b.path));
  return { entries, problems };
}

/** Why a tree has no digest. */
export type TreeDigestErrorCode =
  | "NOT_A_DIRECTORY"
  | "LINK"
  | "HARD_LINK"
  | "SPECIAL_FILE"
  | "TOO_LARGE"
  | "CHANGED"
  | TreeProblemCode;

/** A tree that cannot be hashed: a link, a special file, a limit, or a change while hashing. */
export class TreeDigestError extends Error {
  /** Machine-readable reason. */
  readonly code: TreeDigestErrorCode;
  /** Relative path of the offending entry ("" for the root). */
  readonly path: string;
  /**
   * @param code why
   * @param path where, relative to the root
   * @param message sentence naming the path
   */
  constructor(code: TreeDigestErrorCode, path: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TreeDigestError";
    this.code = code;
    this.path = path;
  }
}

/** The tree hash of a directory. */
export interface TreeDigest {
  /** 64 lowercase hex. */
  sha256: string;
  /** Regular files hashed. */
  files: number;
  /** Their total size in bytes. */
  size: number;
  /** {@link treeIdentityOf} of the listing that was hashed. */
  identity: string;
}

/** Options of {@link digestTree}. */
export interface DigestTreeOptions extends WalkTreeOptions {
  /** Aborting stops the read; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called after each read with the content bytes hashed so far. */
  onProgress?: (bytes: number) => void;
  /** Refuse trees whose files add up to more than this. */
  maxBytes?: number;
}

/** Read size of {@link digestTree}. */
const READ_CHUNK = 4 << 20;

function u64be(value: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value), false);
  return out;
}

/**
 * Identity of a listing: every entry's path, kind, size, inode and mtime. Two walks with the
 * same identity saw the same tree (used to notice a change during hashing, and a tree that
 * changed while a job was interrupted).
 * @param entries a walk's entries
 * @returns `tree:` and 40 hex digits
 */
export function treeIdentityOf(entries: readonly TreeEntry[]): string {
  const hash = createHash("sha256");
  for (const e of entries) {
    hash.update(`${e.path}\0${e.kind}\0${e.size}\0${e.ino ?? "-"}\0${e.mtimeMs ?? "-"}\n`);
  }
  return `tree:${hash.digest("hex").slice(0, 40)}`;
}

/**
 * Checks that a walk lists only what a tree hash admits.
 * @throws {TreeDigestError} for the first problem, link, hard link or special file
 */
function requireHashable(walk: TreeWalk, maxBytes: number | undefined): void {
  const problem = walk.problems[0];
  if (problem !== undefined) throw new TreeDigestError(problem.code, problem.path, problem.message);
  let total = 0;
  for (const e of walk.entries) {
    if (e.kind === "symlink") {
      throw new TreeDigestError("LINK", e.path, `"${e.path}" is a symbolic link`);
    }
    if (e.kind === "other") {
      throw new TreeDigestError("SPECIAL_FILE", e.path, `"${e.path}" is not a regular file`);
    }
    if (e.kind === "file" && e.nlink > 1) {
      // Another link to the same inode lets its holder change the bytes after hashing.
      throw new TreeDigestError("HARD_LINK", e.path, `"${e.path}" has ${e.nlink} hard links`);
    }
    total += e.size;
    if (maxBytes !== undefined && total > maxBytes) {
      throw new TreeDigestError(
        "TOO_LARGE",
        e.path,
        `The files add up to more than ${maxBytes} bytes`,
      );
    }
  }
}

/**
 * Computes the tree hash of a directory in one streaming pass (constant memory).
 * @param root absolute path of the directory
 * @param options cancellation, progress and limits
 * @returns the digest, file count, total size and the identity of the hashed listing
 * @throws {TreeDigestError} for a link, hard link, special file, a limit, or a change during
 * hashing (`CHANGED`: a file's size, inode or mtime moved, or the listing differs afterwards)
 * @example
 * ```ts
 * const { sha256 } = await digestTree("/var/lib/secai/quarantine/processing/q1/directory");
 * ```
 */
export async function digestTree(
  root: string,
  options: DigestTreeOptions = {},
): Promise<TreeDigest> {
  let walk: TreeWalk;
  try {
    walk = await walkTree(root, options);
  } catch (error) {
    if (error instanceof TypeError) {
      throw new TreeDigestError("NOT_A_DIRECTORY", "", error.message, { cause: error });
    }
    throw error;
  }
  requireHashable(walk, options.maxBytes);
  const hash = createHash("sha256");
  hash.update(TREE_DIGEST_CONTEXT);
  const buffer = new Uint8Array(READ_CHUNK);
  let done = 0;
  let files = 0;
  for (const entry of walk.entries) {
    if (entry.kind !== "file") continue;
    const changed = (why: string) =>
      new TreeDigestError(
        "CHANGED",
        entry.path,
        `"${entry.path}" changed while it was hashed: ${why}`,
      );
    const path = encoder.encode(entry.path);
    hash.update(u64be(path.length));
    hash.update(path);
    hash.update(u64be(entry.size));
    const file = await Deno.open(`${root}/${entry.path}`, { read: true });
    try {
      const before = await file.stat();
      if (!before.isFile || before.ino !== entry.ino || before.size !== entry.size) {
        throw changed("it is not the file that was listed");
      }
      let remaining = entry.size;
      while (remaining > 0) {
        options.signal?.throwIfAborted();
        const count = await file.read(buffer.subarray(0, Math.min(buffer.length, remaining)));
        if (count === null) throw changed("it ended early");
        hash.update(buffer.subarray(0, count));
        remaining -= count;
        done += count;
        options.onProgress?.(done);
      }
      if (await file.read(buffer.subarray(0, 1)) !== null) throw changed("it grew");
      const after = await file.stat();
      if (after.size !== entry.size || (after.mtime?.getTime() ?? null) !== entry.mtimeMs) {
        throw changed("its size or mtime moved");
      }
    } finally {
      file.close();
    }
    files++;
  }
  const identity = treeIdentityOf(walk.entries);
  const again = await walkTree(root, options);
  if (again.problems.length > 0 || treeIdentityOf(again.entries) !== identity) {
    throw new TreeDigestError("CHANGED", "", "The directory changed while it was hashed");
  }
  return { sha256: hash.digest("hex"), files, size: done, identity };
}
