/**
 * Reads the policy files from disk (spec 12 §3.3): each a regular file (not a symlink), at
 * most 1 MiB, not writable by group or others, unchanged while it was read. The shipped
 * defaults live in `policy/defaults/`; an operator's edited copy of either file in the
 * override folder (`<state dir>/policy/`) replaces the shipped one as a whole. The text then
 * goes to {@linkcode compilePolicy}.
 * @module
 */
import {
  type CompiledPolicy,
  compilePolicy,
  MAX_POLICY_BYTES,
  type PolicySource,
} from "./compile.ts";
import { PolicyLoadError } from "./errors.ts";

/** The policy files, in digest order. */
export const POLICY_FILES = ["policy.yaml", "agent.yaml"] as const;

/** The shipped defaults folder. */
export const DEFAULTS_DIR: string = new URL("./defaults", import.meta.url).pathname;

/** Where the policy is read from. */
export interface PolicyDirs {
  /** The shipped defaults (`policy/defaults`). */
  defaultsDir: string;
  /** The operator's overrides; a file here replaces the shipped one. Null: none. */
  overrideDir: string | null;
}

function unreadable(file: string, reason: string, cause?: unknown): PolicyLoadError {
  return new PolicyLoadError("POLICY_UNREADABLE", {
    file,
    field: "(file)",
    reason,
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Reads one policy file with the file checks of spec 12 §3.3.
 * @returns the text, or null when the file does not exist
 * @throws {PolicyLoadError} POLICY_UNREADABLE when it exists but may not be used
 */
export async function readPolicyFile(path: string): Promise<string | null> {
  let before: Deno.FileInfo;
  try {
    before = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw unreadable(path, "cannot stat the file", err);
  }
  if (before.isSymlink) throw unreadable(path, "the file is a symbolic link");
  if (!before.isFile) throw unreadable(path, "not a regular file");
  if (before.size > MAX_POLICY_BYTES) {
    throw unreadable(path, `the file is larger than ${MAX_POLICY_BYTES} bytes`);
  }
  if (before.mode !== null && (before.mode & 0o022) !== 0) {
    throw unreadable(path, "the file is writable by group or others");
  }
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    throw unreadable(path, "cannot read the file", err);
  }
  const after = await Deno.lstat(path).catch((err) => {
    throw unreadable(path, "the file disappeared while it was read", err);
  });
  if (
    after.ino !== before.ino || after.dev !== before.dev || after.size !== bytes.length ||
    after.mtime?.getTime() !== before.mtime?.getTime()
  ) {
    throw unreadable(path, "the file changed while it was read");
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (err) {
    throw unreadable(path, "the file is not UTF-8", err);
  }
}

/** Reads the effective sources: an override where one exists, else the shipped default. */
export async function readPolicySources(dirs: PolicyDirs): Promise<PolicySource[]> {
  const sources: PolicySource[] = [];
  for (const name of POLICY_FILES) {
    const overridePath = dirs.overrideDir ? `${dirs.overrideDir}/${name}` : null;
    const overrideText = overridePath ? await readPolicyFile(overridePath) : null;
    if (overridePath && overrideText !== null) {
      sources.push({ name, origin: "override", path: overridePath, text: overrideText });
      continue;
    }
    const path = `${dirs.defaultsDir}/${name}`;
    const text = await readPolicyFile(path);
    if (text === null) throw unreadable(path, "the shipped default is missing");
    sources.push({ name, origin: "default", path, text });
  }
  return sources;
}

/**
 * Loads and compiles the policy in force.
 * @throws {PolicyLoadError} naming the file, field and reason
 * @example
 * ```ts
 * const policy = await loadPolicy({ defaultsDir: DEFAULTS_DIR, overrideDir: null });
 * ```
 */
export async function loadPolicy(dirs: PolicyDirs): Promise<CompiledPolicy> {
  const [policy, agent] = await readPolicySources(dirs);
  if (!policy || !agent) throw new TypeError("Both policy files are required");
  return compilePolicy(policy, agent);
}
