/**
 * Stage 3 — integrity pin (spec 13 §3). One streaming pass computes the SHA-256 and the
 * fs-verity digest (4 KiB blocks, SHA-256, no salt) with progress; no byte is interpreted,
 * so this pass runs in the worker and can report progress as it goes. Then the lock pins:
 * a blocked hash fails whatever the name (blocks by content); a pin with the same file name
 * must match the hash (and, for remote origins, the pinned source); a remote artifact with
 * no pin fails; a local import with no pin passes as `pinned: false` (trust on first use).
 *
 * A directory artifact is pinned by its tree hash (spec 13 §6: domain-separated SHA-256 over
 * the byte-sorted relative paths, sizes and contents), computed here in one streaming pass;
 * a link, hard link, special file, too many entries or a change while hashing fails the
 * stage. Blocked hashes apply to it as to a file. A remote directory needs its download
 * receipt and a pin in the diffusion lock (spec 13 §4 stage 3), neither of which exists yet
 * (remote downloads need the airlock), so it fails as not pinned; a local directory passes
 * as `pinned: false` — and is never promoted (spec 13 §4).
 * @module
 */
import { digestFile } from "../../../runtime/kit/digest.ts";
import { digestTree, TreeDigestError } from "../../../runtime/kit/tree.ts";
import type { Pin } from "../api.ts";
import type { FailureClass } from "../errors.ts";
import { fail, pass, type Stage, type StageContext, type StageOutcome } from "./stage.ts";

/** Identity of a file's inode, to notice that a resumed job's artifact was replaced. */
export function fileIdOf(info: Deno.FileInfo): string {
  return `${info.dev}:${info.ino}:${info.size}:${info.mtime?.getTime() ?? 0}`;
}

/**
 * Applies the lock to a hash.
 * @returns null when it passes, or the failure
 */
export function checkPins(
  pins: readonly Pin[],
  artifact: { sha256: string; size: number; filename: string; source: string | null },
):
  | { pinned: boolean; pinName?: string }
  | { code: "BLOCKED_HASH" | "PIN_MISMATCH" | "NOT_PINNED"; message: string } {
  const blocked = pins.find((p) => p.blocked && p.sha256 === artifact.sha256);
  if (blocked) {
    return {
      code: "BLOCKED_HASH",
      message: `Content is blocked as "${blocked.name}": ${
        blocked.blockedReason ?? "no reason given"
      }`,
    };
  }
  const pin = pins.find((p) => !p.blocked && p.filename === artifact.filename);
  if (pin) {
    if (artifact.source !== null) {
      const expected = pin.source === null
        ? null
        : pin.sourceRevision === null
        ? pin.source
        : `${pin.source.replace(/\/+$/, "")}/resolve/${pin.sourceRevision}/${pin.filename}`;
      const matches = expected !== null &&
        (pin.sourceRevision === null
          ? artifact.source === expected ||
            artifact.source.startsWith(`${expected.replace(/\/+$/, "")}/`)
          : artifact.source === expected);
      if (!matches) {
        return {
          code: "PIN_MISMATCH",
          message: `Origin does not match the pinned source of "${pin.name}"`,
        };
      }
    }
    if (pin.sha256 !== artifact.sha256 || pin.sizeBytes !== artifact.size) {
      return {
        code: "PIN_MISMATCH",
        message:
          `SHA-256 ${artifact.sha256} (${artifact.size} bytes) does not match the pin of "${pin.name}" (${pin.sha256}, ${pin.sizeBytes} bytes)`,
      };
    }
    return { pinned: true, pinName: pin.name };
  }
  if (artifact.source !== null) {
    return { code: "NOT_PINNED", message: "Remote artifact has no pinned hash" };
  }
  return { pinned: false };
}

/** Failure class of each reason a tree has no hash. */
const TREE_FAILURES: Readonly<Record<string, FailureClass>> = {
  CHANGED: "ARTIFACT_CHANGED",
  TOO_LARGE: "TOO_LARGE",
};

async function pinDirectory(ctx: StageContext): Promise<StageOutcome> {
  let digest;
  try {
    digest = await digestTree(ctx.artifact.abs, {
      signal: ctx.signal,
      onProgress: (bytes) => ctx.progress(bytes),
      maxBytes: ctx.config.maxArtifactBytes,
    });
  } catch (error) {
    if (!(error instanceof TreeDigestError)) throw error;
    const code = TREE_FAILURES[error.code] ?? "INVALID_DIRECTORY";
    return fail("integrity_pin", { code, message: `No tree hash: ${error.message}` }, {
      findings: [{
        stage: "integrity_pin",
        rule: `integrity_pin.tree_${error.code.toLowerCase()}`,
        severity: "high",
        message: `No tree hash: ${error.message}`,
        ...(error.path === "" ? {} : { member: error.path }),
      }],
    });
  }
  const facts = { size: digest.size, sha256: digest.sha256, fileId: digest.identity };
  const blocked = checkPins(ctx.config.pins, {
    sha256: digest.sha256,
    size: digest.size,
    filename: ctx.filename,
    source: null,
  });
  if ("code" in blocked) return fail("integrity_pin", blocked, { facts });
  if (ctx.source !== null) {
    return fail("integrity_pin", {
      code: "NOT_PINNED",
      message:
        "Remote directory artifact has no pin: the diffusion lock and download receipts (spec 13 §4 stage 3) are not supported yet",
    }, { facts });
  }
  return pass(
    { ...facts, pinned: false },
    `Tree hash over ${digest.files} files (${digest.size} bytes); local directory without a pin (pinned: false), never promoted`,
  );
}

/** Stage 3. */
export const integrityPinStage: Stage = {
  name: "integrity_pin",
  describeInput: (ctx) => ({ artifact: ctx.artifact.rel, kind: ctx.artifact.kind }),
  async run(ctx): Promise<StageOutcome> {
    if (ctx.artifact.kind === "directory") return await pinDirectory(ctx);
    const before = await Deno.stat(ctx.artifact.abs);
    if (!before.isFile) throw new Error("The artifact is not a regular file");
    if (before.size > ctx.config.maxArtifactBytes) {
      return fail("integrity_pin", {
        code: "TOO_LARGE",
        message:
          `Artifact of ${before.size} bytes exceeds quarantine.maxArtifactBytes (${ctx.config.maxArtifactBytes})`,
      });
    }
    const digests = await digestFile(ctx.artifact.abs, {
      signal: ctx.signal,
      onProgress: (bytes) => ctx.progress(bytes),
      maxBytes: ctx.config.maxArtifactBytes,
    });
    const after = await Deno.stat(ctx.artifact.abs);
    if (fileIdOf(after) !== fileIdOf(before) || digests.size !== before.size) {
      return fail("integrity_pin", {
        code: "ARTIFACT_CHANGED",
        message: "The artifact changed while it was being hashed",
      });
    }
    const facts = {
      size: digests.size,
      sha256: digests.sha256,
      fsverity: digests.fsverity,
      merkleRoot: digests.merkleRoot,
      fileId: fileIdOf(after),
    };
    const verdict = checkPins(ctx.config.pins, {
      sha256: digests.sha256,
      size: digests.size,
      filename: ctx.filename,
      source: ctx.source,
    });
    if ("code" in verdict) return fail("integrity_pin", verdict, { facts });
    return pass(
      {
        ...facts,
        pinned: verdict.pinned,
        ...(verdict.pinName ? { pinName: verdict.pinName } : {}),
      },
      verdict.pinned
        ? `Matches the pin of "${verdict.pinName}"`
        : "Local import without a pin: trusted on first use (pinned: false)",
    );
  },
};
