/**
 * How artifacts enter the quarantine (spec 13 §2):
 * - **Uploads** stream in over RPC in ordered chunks into a hidden `.upload-*` file of
 *   `quarantine/incoming/` (dot-files are never artifacts), with the size limit enforced as
 *   bytes arrive. The gateway never writes a file.
 * - **The inbox**: a regular file dropped into `quarantine/incoming/` is claimed once it
 *   stopped changing for one poll, with optional sidecars `.<name>.source` (origin URL) and
 *   `.<name>.sig.json` (detached signature). A refused item gets a `.<name>.status.json`
 *   marker that hides it from later polls.
 * - **Claim**: the artifact is renamed into the job's private `quarantine/processing/<id>/`
 *   directory; a file with other hard links is copied instead, so nobody outside keeps a way
 *   to change the bytes being scanned.
 * - **Directories** (diffusion models, spec 13 §4) come the same ways: an upload of kind
 *   `directory` writes each file under a hidden `.upload-*` directory; an inbox item may be a
 *   directory. A claimed directory is renamed as a whole; each of its files with other hard
 *   links is copied, and every file made read-only. Links and special files inside are left
 *   as they are (never followed) for the directory checks to refuse by name.
 * @module
 */
import { ignoreNotFound, writeFileAtomic } from "../../runtime/kit/fs.ts";
import { TREE_LIMITS, treeIdentityOf, walkTree } from "../../runtime/kit/tree.ts";
import {
  ArtifactNameSchema,
  type ArtifactSignature,
  MAX_DIRECTORY_FILES,
  MAX_SIGNATURE_BUNDLE_BYTES,
  type ModelFormat,
  parseSignatureText,
  TicketSchema,
} from "./api.ts";
import { QuarantineError } from "./errors.ts";
import { formatOfName } from "./stages/format_gate.ts";
import { MAX_SOURCE_BYTES } from "./stages/source_policy.ts";
import { PROCESSING_DIR } from "./pipeline.ts";

/** The inbox (writable by importers; only hidden temp files are written by uploads). */
export const INCOMING_DIR = "quarantine/incoming";
/** Uploads open at once. */
const MAX_OPEN_UPLOADS = 8;
/** An upload idle this long is discarded. */
const UPLOAD_IDLE_MS = 10 * 60_000;
// deno-lint-ignore no-control-regex -- refusing control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
/** Largest sidecar read. */
const MAX_SIDECAR_BYTES = 4096;

interface Upload {
  id: string;
  filename: string;
  declared: number | undefined;
  signature: ArtifactSignature | null;
  /** The file being written, or null (a directory upload between or before its entries). */
  file: Deno.FsFile | null;
  /** The upload's file, or its directory. */
  path: string;
  /** Bytes received of the current file. */
  received: number;
  lastActive: number;
  busy: boolean;
  /** Set for a directory upload: its entries so far and their total bytes. */
  directory: { entries: Set<string>; total: number; current: string | null } | null;
}

/** A finished upload, ready to be claimed. */
export interface FinishedUpload {
  path: string;
  filename: string;
  size: number;
  signature: ArtifactSignature | null;
  isDirectory: boolean;
}

/** Upload sessions of one control. */
export class Uploads {
  readonly #home: string;
  readonly #maxBytes: number;
  readonly #open = new Map<string, Upload>();

  /**
   * @param home state dir
   * @param options the largest artifact accepted
   */
  constructor(home: string, options: { maxBytes: number }) {
    this.#home = home;
    this.#maxBytes = options.maxBytes;
  }

  /**
   * Opens an upload.
   * @throws {QuarantineError} UPLOAD_TOO_LARGE, TOO_MANY_UPLOADS
   */
  async begin(input: {
    filename: string;
    size?: number | undefined;
    signature?: ArtifactSignature | undefined;
    kind?: "file" | "directory" | undefined;
  }): Promise<{ uploadId: string; maxBytes: number }> {
    this.sweep();
    if (input.size !== undefined && input.size > this.#maxBytes) {
      throw new QuarantineError(
        "UPLOAD_TOO_LARGE",
        `Upload of ${input.size} bytes exceeds the limit of ${this.#maxBytes} bytes`,
      );
    }
    if (this.#open.size >= MAX_OPEN_UPLOADS) {
      throw new QuarantineError(
        "TOO_MANY_UPLOADS",
        `${MAX_OPEN_UPLOADS} uploads are open already; finish or abort one first`,
      );
    }
    const id = `u${randomHex(12)}`;
    const path = `${this.#home}/${INCOMING_DIR}/.upload-${id}`;
    const isDirectory = input.kind === "directory";
    let file: Deno.FsFile | null = null;
    if (isDirectory) await Deno.mkdir(path, { mode: 0o700 });
    else file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    this.#open.set(id, {
      id,
      filename: input.filename,
      declared: isDirectory ? undefined : input.size,
      signature: input.signature ?? null,
      file,
      path,
      received: 0,
      lastActive: Date.now(),
      busy: false,
      directory: isDirectory ? { entries: new Set(), total: 0, current: null } : null,
    });
    return { uploadId: id, maxBytes: this.#maxBytes };
  }

  /**
   * Starts the next file of a directory upload; the previous one is complete.
   * @param input the upload, the file's path in the directory (already a valid entry path)
   * and its declared size
   * @returns the number of files so far
   * @throws {QuarantineError} UPLOAD_NOT_FOUND, UPLOAD_INVALID_ENTRY (not a directory upload,
   * a path given twice or under a file, too many files), UPLOAD_SIZE_MISMATCH
   */
  async entry(
    input: { uploadId: string; path: string; size?: number | undefined },
  ): Promise<number> {
    const upload = this.#get(input.uploadId);
    const dir = upload.directory;
    const refuse = async (message: string) => {
      await this.abort(upload.id);
      return new QuarantineError("UPLOAD_INVALID_ENTRY", message);
    };
    if (dir === null || upload.busy) {
      throw new QuarantineError(
        "UPLOAD_INVALID_ENTRY",
        `Upload "${upload.id}" is not a directory upload ready for its next file`,
      );
    }
    await this.#closeEntry(upload);
    // A path under an earlier file, or naming an earlier directory, fails to be created below.
    if (dir.entries.has(input.path)) throw await refuse(`Entry "${input.path}" is given twice`);
    if (dir.entries.size >= MAX_DIRECTORY_FILES) {
      throw await refuse(`A directory upload holds at most ${MAX_DIRECTORY_FILES} files`);
    }
    if (input.size !== undefined && dir.total + input.size > this.#maxBytes) {
      throw await refuse(`Entry "${input.path}" takes the upload past ${this.#maxBytes} bytes`);
    }
    const at = `${upload.path}/${input.path}`;
    try {
      await Deno.mkdir(at.slice(0, at.lastIndexOf("/")), { recursive: true, mode: 0o700 });
      upload.file = await Deno.open(at, { write: true, createNew: true, mode: 0o600 });
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      // An earlier file where a directory must go, or the other way round.
      throw await refuse(`Entry "${input.path}" cannot be created beside the files already sent`);
    }
    dir.entries.add(input.path);
    dir.current = input.path;
    upload.declared = input.size;
    upload.received = 0;
    upload.lastActive = Date.now();
    return dir.entries.size;
  }

  /** Closes the current file of a directory upload, checking its declared size. */
  async #closeEntry(upload: Upload): Promise<void> {
    const file = upload.file;
    if (upload.directory === null || file === null) return;
    upload.file = null;
    try {
      await file.sync();
    } finally {
      file.close();
    }
    if (upload.declared !== undefined && upload.received !== upload.declared) {
      const current = upload.directory.current;
      await this.abort(upload.id);
      throw new QuarantineError(
        "UPLOAD_SIZE_MISMATCH",
        `Entry "${current}" ended after ${upload.received} of its declared ${upload.declared} bytes`,
      );
    }
  }

  /**
   * Appends the next chunk.
   * @throws {QuarantineError} UPLOAD_NOT_FOUND, UPLOAD_OUT_OF_ORDER, UPLOAD_TOO_LARGE
   */
  async chunk(input: { uploadId: string; offset: number; data: Uint8Array }): Promise<number> {
    const upload = this.#get(input.uploadId);
    if (upload.busy || input.offset !== upload.received || upload.file === null) {
      throw new QuarantineError(
        "UPLOAD_OUT_OF_ORDER",
        upload.file === null
          ? "Chunk before the directory upload's first entry"
          : `Chunk at offset ${input.offset} does not follow the ${upload.received} bytes received`,
      );
    }
    const file = upload.file;
    const total = upload.received + input.data.byteLength;
    const all = (upload.directory?.total ?? 0) + input.data.byteLength;
    if (
      total > this.#maxBytes || all > this.#maxBytes ||
      (upload.declared !== undefined && total > upload.declared)
    ) {
      await this.abort(upload.id);
      throw new QuarantineError(
        "UPLOAD_TOO_LARGE",
        `Upload exceeds ${
          upload.declared !== undefined && upload.declared < this.#maxBytes
            ? `its declared size of ${upload.declared}`
            : `the limit of ${this.#maxBytes}`
        } bytes`,
      );
    }
    upload.busy = true;
    try {
      let written = 0;
      while (written < input.data.byteLength) {
        written += await file.write(input.data.subarray(written));
      }
    } finally {
      upload.busy = false;
    }
    upload.received = total;
    if (upload.directory !== null) upload.directory.total = all;
    upload.lastActive = Date.now();
    return total;
  }

  /**
   * Closes an upload; the caller claims the file.
   * @throws {QuarantineError} UPLOAD_NOT_FOUND, UPLOAD_SIZE_MISMATCH
   */
  async finish(uploadId: string): Promise<FinishedUpload> {
    const upload = this.#get(uploadId);
    if (upload.directory !== null) {
      if (upload.busy) {
        throw new QuarantineError("UPLOAD_OUT_OF_ORDER", "A chunk is still being written");
      }
      await this.#closeEntry(upload);
      this.#open.delete(uploadId);
      return {
        path: upload.path,
        filename: upload.filename,
        size: upload.directory.total,
        signature: upload.signature,
        isDirectory: true,
      };
    }
    if (upload.declared !== undefined && upload.received !== upload.declared) {
      await this.abort(uploadId);
      throw new QuarantineError(
        "UPLOAD_SIZE_MISMATCH",
        `Upload ended after ${upload.received} of its declared ${upload.declared} bytes`,
      );
    }
    this.#open.delete(uploadId);
    try {
      await upload.file?.sync();
    } finally {
      upload.file?.close();
    }
    return {
      path: upload.path,
      filename: upload.filename,
      size: upload.received,
      signature: upload.signature,
      isDirectory: false,
    };
  }

  /** Discards an upload and its bytes (unknown ids are ignored: the result is the same). */
  async abort(uploadId: string): Promise<void> {
    const upload = this.#open.get(uploadId);
    if (upload === undefined) return;
    this.#open.delete(uploadId);
    upload.file?.close();
    upload.file = null;
    await Deno.remove(upload.path, { recursive: true }).catch(ignoreNotFound);
  }

  /** Discards uploads idle for too long. */
  sweep(): void {
    const now = Date.now();
    for (const upload of this.#open.values()) {
      if (now - upload.lastActive > UPLOAD_IDLE_MS && !upload.busy) void this.abort(upload.id);
    }
  }

  /** Discards every open upload (stop). */
  async closeAll(): Promise<void> {
    for (const id of [...this.#open.keys()]) await this.abort(id);
  }

  #get(id: string): Upload {
    const upload = this.#open.get(id);
    if (upload === undefined) {
      throw new QuarantineError("UPLOAD_NOT_FOUND", `No open upload "${id}"`);
    }
    return upload;
  }
}

/** Removes upload leftovers of an earlier run (uploads do not survive a restart). */
export async function removeStaleUploads(home: string): Promise<number> {
  let removed = 0;
  for await (const entry of Deno.readDir(`${home}/${INCOMING_DIR}`)) {
    if ((entry.isFile || entry.isDirectory) && entry.name.startsWith(".upload-u")) {
      await Deno.remove(`${home}/${INCOMING_DIR}/${entry.name}`, { recursive: true })
        .catch(ignoreNotFound);
      removed++;
    }
  }
  return removed;
}

/**
 * The artifact file name inside its job directory: the admitted extension is kept (the
 * scanners and the registry read it), anything else is dropped.
 */
export function artifactName(filename: string): string {
  const byName = formatOfName(filename);
  return "format" in byName ? `artifact.${byName.format satisfies ModelFormat}` : "artifact";
}

/** Name of a claimed directory artifact inside its job's directory. */
export const DIRECTORY_ARTIFACT = "directory";

/**
 * Moves a directory artifact into its job's private directory (spec 13 §2 claim): the whole
 * tree in one rename; then each regular file with other hard links is replaced by a copy, so
 * nobody outside keeps a way to change the bytes being scanned, and every regular file is made
 * read-only. The walk is bounded and follows no link: links, special files and whatever lies
 * past the limits stay as they are, for the directory checks to refuse.
 * @param home state dir
 * @param from absolute path of the directory to claim
 * @param options the job id
 * @returns the artifact's path relative to the state dir and its files' total size
 */
export async function claimDirectory(
  home: string,
  from: string,
  options: { jobId: string },
): Promise<{ rel: string; size: number }> {
  const dir = `${PROCESSING_DIR}/${options.jobId}`;
  await Deno.mkdir(`${home}/${dir}`, { recursive: true, mode: 0o700 });
  const rel = `${dir}/${DIRECTORY_ARTIFACT}`;
  const to = `${home}/${rel}`;
  await Deno.rename(from, to);
  const top = await Deno.lstat(to);
  if (!top.isDirectory) {
    await Deno.remove(to, { recursive: true });
    throw new QuarantineError("INVALID_STATE", "The submitted artifact is not a directory");
  }
  // Bounded like the tree walk; whatever lies past the limit is the directory checks' to refuse.
  let size = 0;
  let entries = 0;
  const pending = [to];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    // Ours now: an unreadable or unwritable directory would block the checks and the removal.
    await Deno.chmod(next, 0o700);
    for await (const item of Deno.readDir(next)) {
      if (++entries > TREE_LIMITS.maxEntries) break;
      const path = `${next}/${item.name}`;
      const info = await Deno.lstat(path);
      if (info.isDirectory) {
        if (path.split("/").length - to.split("/").length <= TREE_LIMITS.maxDepth) {
          pending.push(path);
        }
      } else if (info.isFile) {
        await Deno.chmod(path, 0o400);
        if ((info.nlink ?? 1) > 1) {
          const copy = `${next}/.secai-copy-${randomHex(6)}`;
          await Deno.copyFile(path, copy);
          await Deno.rename(copy, path);
        }
        size += info.size;
      }
    }
  }
  return { rel, size };
}

/**
 * Moves an artifact into its job's private directory.
 * @param home state dir
 * @param from absolute path of the file to claim (in the inbox)
 * @param options job id and the submitted name
 * @returns the artifact's path relative to the state dir
 */
export async function claim(
  home: string,
  from: string,
  options: { jobId: string; filename: string },
): Promise<string> {
  const dir = `${PROCESSING_DIR}/${options.jobId}`;
  await Deno.mkdir(`${home}/${dir}`, { recursive: true, mode: 0o700 });
  const rel = `${dir}/${artifactName(options.filename)}`;
  const to = `${home}/${rel}`;
  await Deno.rename(from, to);
  const info = await Deno.lstat(to);
  if (!info.isFile) {
    await Deno.remove(to);
    throw new QuarantineError("INVALID_STATE", "The submitted artifact is not a regular file");
  }
  if ((info.nlink ?? 1) > 1) {
    // Another link would let its holder change the bytes under the scan: take a copy.
    const copy = `${to}.copy`;
    await Deno.copyFile(to, copy);
    await Deno.remove(to);
    await Deno.rename(copy, to);
  }
  await Deno.chmod(to, 0o400);
  return rel;
}

/** An inbox item ready to be claimed. */
export interface InboxItem {
  name: string;
  path: string;
  size: number;
  /** A directory artifact (its size is its files' total). */
  isDirectory: boolean;
  source: string | null;
  signature: ArtifactSignature | null;
  ticket: string | null;
}

/**
 * Scans the inbox for items that are stable (unchanged since the previous poll).
 * Refused items get a status marker. Returns what may be claimed now.
 * @param home state dir
 * @param seen file identities of the previous poll (updated in place)
 */
export async function pollInbox(home: string, seen: Map<string, string>): Promise<InboxItem[]> {
  const dir = `${home}/${INCOMING_DIR}`;
  const names = new Set<string>();
  for await (const entry of Deno.readDir(dir)) names.add(entry.name);
  const ready: InboxItem[] = [];
  const current = new Map<string, string>();
  for (const name of [...names].sort()) {
    if (name.startsWith(".") || names.has(`.${name}.status.json`)) continue;
    const path = `${dir}/${name}`;
    const info = await Deno.lstat(path);
    if (!info.isFile && !info.isDirectory) {
      await refuse(dir, name, "not a regular file or directory (links and devices are refused)");
      continue;
    }
    if (!ArtifactNameSchema.safeParse(name).success) {
      await refuse(
        dir,
        name,
        "the file name is not a bare name of letters, digits and . _ + - ( ) [ ]",
      );
      continue;
    }
    let size = info.size;
    let id = `${info.ino}:${info.size}:${info.mtime?.getTime() ?? 0}`;
    if (info.isDirectory) {
      // A directory is stable when its whole listing (names, sizes, inodes, mtimes) is.
      const listing = await walkTree(path);
      size = listing.entries.reduce((n, e) => n + e.size, 0);
      id = `${treeIdentityOf(listing.entries)}:${listing.problems.length}`;
    }
    current.set(name, id);
    try {
      // A ticket is written by an importer that finished writing the item (the CLI): such an
      // item is complete now. Others wait until they did not change for one poll.
      const ticket = await readTicketSidecar(`${dir}/.${name}.ticket`);
      if (ticket === null && seen.get(name) !== id) continue;
      ready.push({
        name,
        path,
        size,
        isDirectory: info.isDirectory,
        source: await readSourceSidecar(`${dir}/.${name}.source`),
        signature: await readSignatureSidecar(`${dir}/.${name}.sig.json`),
        ticket,
      });
    } catch (error) {
      if (!(error instanceof SidecarError)) throw error;
      await refuse(dir, name, error.message);
    }
  }
  seen.clear();
  for (const [name, id] of current) seen.set(name, id);
  return ready;
}

/** Deletes an item's sidecars after its claim. */
export async function removeSidecars(home: string, name: string): Promise<void> {
  for (const suffix of [".source", ".sig.json", ".ticket"]) {
    await Deno.remove(`${home}/${INCOMING_DIR}/.${name}${suffix}`).catch(ignoreNotFound);
  }
}

class SidecarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SidecarError";
  }
}

async function readSidecar(path: string, maxBytes = MAX_SIDECAR_BYTES): Promise<string | null> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const name = path.slice(path.lastIndexOf("/") + 1);
  if (!info.isFile || (info.nlink ?? 1) !== 1) {
    throw new SidecarError(`Sidecar "${name}" is not a single-link regular file`);
  }
  if (info.size > maxBytes) {
    throw new SidecarError(`Sidecar "${name}" is larger than ${maxBytes} bytes`);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(path));
  } catch (error) {
    if (error instanceof TypeError) throw new SidecarError(`Sidecar "${name}" is not UTF-8`);
    throw error;
  }
}

async function readSourceSidecar(path: string): Promise<string | null> {
  const text = await readSidecar(path);
  if (text === null) return null;
  const url = text.replace(/\n$/, "");
  if (
    url.length === 0 || new TextEncoder().encode(url).length > MAX_SOURCE_BYTES ||
    CONTROL_CHARS.test(url)
  ) {
    throw new SidecarError("The .source sidecar is empty, too long or holds control characters");
  }
  return url;
}

async function readTicketSidecar(path: string): Promise<string | null> {
  const text = await readSidecar(path);
  if (text === null) return null;
  const parsed = TicketSchema.safeParse(text.trim());
  if (!parsed.success) throw new SidecarError("The .ticket sidecar is not 24 lowercase hex");
  return parsed.data;
}

async function readSignatureSidecar(path: string): Promise<ArtifactSignature | null> {
  // A model signing bundle is larger than our own signature form.
  const text = await readSidecar(path, MAX_SIGNATURE_BUNDLE_BYTES);
  if (text === null) return null;
  const parsed = parseSignatureText(text);
  if (typeof parsed === "string") throw new SidecarError(`The .sig.json sidecar: ${parsed}`);
  return parsed;
}

async function refuse(dir: string, name: string, reason: string): Promise<void> {
  // The marker's name is derived from the item's; a name too odd to derive one from is left.
  if (name.length > 200 || name.includes("/")) return;
  await writeFileAtomic(
    `${dir}/.${name}.status.json`,
    JSON.stringify({ state: "refused", reason, at: new Date().toISOString() }),
  );
}

/** Random lowercase hex of `bytes` bytes. */
export function randomHex(bytes: number): string {
  const data = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join("");
}
