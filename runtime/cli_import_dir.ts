/**
 * `secai import DIR`: a diffusion model directory (spec 13 §4) into the quarantine, the two
 * ways `secai import FILE` goes — copied into a running instance's inbox, or streamed over
 * the quarantine contract to controls started in this process (one `uploadEntry` per file).
 *
 * The directory is listed first with an `lstat`-only walk that follows no link. What cannot
 * be sent faithfully is refused here with the path named, before anything is sent: a link
 * or special file, a name the upload contract does not take (bare names of letters, digits
 * and `. _ + - ( ) [ ]`), or a walk past the limits. Everything else, malformed or not, goes
 * to the quarantine, whose checks decide.
 * @module
 */
import {
  EntryPathSchema,
  MAX_CHUNK_BYTES,
  MAX_DIRECTORY_FILES,
  type quarantineApi,
} from "../workers/quarantine/api.ts";
import type { RpcClient } from "./kit/rpc.ts";
import { walkTree } from "./kit/tree.ts";

/** A directory that cannot be imported as it is; the message names the path and why. */
export class DirectoryImportError extends Error {
  /** Always DIRECTORY_REFUSED. */
  readonly code = "DIRECTORY_REFUSED";
  /** @param message what is wrong, naming the path */
  constructor(message: string) {
    super(message);
    this.name = "DirectoryImportError";
  }
}

/** What will be sent: every regular file and directory, by relative path. */
export interface DirectoryPlan {
  root: string;
  files: { path: string; size: number }[];
  directories: string[];
  /** Total bytes of the files. */
  size: number;
}

/**
 * Lists a directory for import.
 * @param path absolute path of the directory
 * @returns the plan
 * @throws {DirectoryImportError} for a link, special file, unsendable name or a limit hit
 */
export async function planDirectoryImport(path: string): Promise<DirectoryPlan> {
  const listing = await walkTree(path);
  const problem = listing.problems[0];
  if (problem !== undefined) throw new DirectoryImportError(problem.message);
  const plan: DirectoryPlan = { root: path, files: [], directories: [], size: 0 };
  for (const entry of listing.entries) {
    if (entry.kind === "symlink" || entry.kind === "other") {
      throw new DirectoryImportError(
        `"${entry.path}" is ${
          entry.kind === "symlink" ? "a symbolic link" : "a special file"
        }: a directory artifact holds regular files and directories only (spec 13 §4)`,
      );
    }
    if (!EntryPathSchema.safeParse(entry.path).success) {
      throw new DirectoryImportError(
        `"${
          entry.path.slice(0, 200)
        }" is not a path of bare names of letters, digits and . _ + - ( ) [ ]`,
      );
    }
    if (entry.kind === "directory") {
      plan.directories.push(entry.path);
    } else {
      plan.files.push({ path: entry.path, size: entry.size });
      plan.size += entry.size;
    }
  }
  if (plan.files.length > MAX_DIRECTORY_FILES) {
    throw new DirectoryImportError(`More than ${MAX_DIRECTORY_FILES} files`);
  }
  return plan;
}

/**
 * Copies a planned directory to `to` (which must not exist): directories, then file bytes.
 * @param plan the plan
 * @param to absolute path of the copy
 */
export async function copyDirectory(plan: DirectoryPlan, to: string): Promise<void> {
  await Deno.mkdir(to, { mode: 0o700 });
  for (const dir of plan.directories) await Deno.mkdir(`${to}/${dir}`, { recursive: true });
  for (const file of plan.files) {
    await Deno.copyFile(`${plan.root}/${file.path}`, `${to}/${file.path}`);
  }
}

/**
 * Streams a planned directory to the quarantine as one directory upload.
 * @param quarantine the quarantine contract
 * @param plan the plan
 * @param name the directory's name (the job's file name)
 * @returns the job id
 */
export async function uploadDirectory(
  quarantine: RpcClient<typeof quarantineApi>,
  plan: DirectoryPlan,
  name: string,
): Promise<string> {
  const { uploadId } = await quarantine.call("uploadBegin", { filename: name, kind: "directory" });
  try {
    for (const entry of plan.files) {
      await quarantine.call("uploadEntry", { uploadId, path: entry.path, size: entry.size });
      const file = await Deno.open(`${plan.root}/${entry.path}`, { read: true });
      try {
        await sendChunks(quarantine, { uploadId, file });
      } finally {
        file.close();
      }
    }
    return (await quarantine.call("uploadFinish", { uploadId })).id;
  } catch (error) {
    await quarantine.call("uploadAbort", { uploadId }).catch(() => undefined);
    throw error;
  }
}

/** Where {@link sendChunks} sends bytes from and to. */
export interface ChunkSource {
  /** The open upload (for a directory: its current entry). */
  uploadId: string;
  /** Read from its current position to its end; not closed. */
  file: Deno.FsFile;
}

/**
 * Sends a file's bytes to an upload in order, in full chunks of {@link MAX_CHUNK_BYTES}
 * (the last one shorter), shared by `secai import FILE` and `secai import DIR`.
 * @param quarantine the quarantine contract
 * @param source the upload and the file
 */
export async function sendChunks(
  quarantine: RpcClient<typeof quarantineApi>,
  source: ChunkSource,
): Promise<void> {
  const buffer = new Uint8Array(MAX_CHUNK_BYTES);
  let offset = 0;
  for (;;) {
    let filled = 0;
    while (filled < buffer.length) {
      const n = await source.file.read(buffer.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    if (filled === 0) break;
    await quarantine.call("uploadChunk", {
      uploadId: source.uploadId,
      offset,
      data: buffer.subarray(0, filled),
    });
    offset += filled;
    if (filled < buffer.length) break;
  }
}
