/**
 * Reading the retention anchor (`anchor.json`, see {@linkcode AnchorSchema}): strictly
 * parsed, its signature and its head's checked against the log's key, and its frontier
 * checked against the head's root, so that verification can start from it.
 * @module
 */
import { AuditError } from "./errors.ts";
import {
  ANCHOR_FILE,
  MAX_ANCHOR_BYTES,
  parseJsonLine,
  type SignedAnchor,
  SignedAnchorSchema,
} from "./format.ts";
import { isAnchorSigned, isHeadSigned, type PublicKeyInfo } from "./keys.ts";
import { fromHex, MerkleFrontier, toHex } from "./merkle.ts";

/** A checked anchor, or why it cannot be used. */
export type AnchorRead =
  | { anchor: SignedAnchor; frontier: MerkleFrontier; problem: null }
  | { anchor: null; frontier: null; problem: null }
  | { anchor: null; frontier: null; problem: string; kind: "bad-signature" | "malformed" };

/** Number of one bits of a tree size: the frontier's length. */
function popcount(size: number): number {
  let n = 0;
  for (let s = size; s > 0; s = Math.floor(s / 2)) n += s % 2;
  return n;
}

/**
 * Reads and checks the anchor of an audit directory.
 * @param auditDir the directory
 * @param publicKey the key the anchor and its head must be signed by
 * @returns `{anchor, frontier}`; `{problem: null}` when there is none (nothing was ever
 *   deleted); `{problem}` naming what is wrong with one that is present
 */
export async function readAnchor(
  auditDir: string,
  publicKey: PublicKeyInfo,
): Promise<AnchorRead> {
  const path = `${auditDir}/${ANCHOR_FILE}`;
  let text: string;
  try {
    const info = await Deno.lstat(path);
    if (!info.isFile) return bad(`${ANCHOR_FILE} is not a regular file`);
    if (info.size > MAX_ANCHOR_BYTES) return bad(`${ANCHOR_FILE} is larger than it can be`);
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { anchor: null, frontier: null, problem: null };
    throw err;
  }
  const parsed = SignedAnchorSchema.safeParse(parseJsonLine(text));
  if (!parsed.success) return bad(`${ANCHOR_FILE} is not a valid retention anchor`);
  const signed = parsed.data;
  const { anchor } = signed;
  if (!isAnchorSigned(signed, publicKey)) {
    return bad(
      `${ANCHOR_FILE} is not signed by the log's key ${publicKey.id.slice(0, 16)}`,
      "bad-signature",
    );
  }
  if (!isHeadSigned(anchor.head, publicKey) || anchor.head.head.size !== anchor.size) {
    return bad(
      `The head in ${ANCHOR_FILE} is not the log's signed head of size ${anchor.size}`,
      "bad-signature",
    );
  }
  if (anchor.frontier.length !== popcount(anchor.size)) {
    return bad(
      `${ANCHOR_FILE} has ${anchor.frontier.length} subtree hashes, not the ` +
        `${popcount(anchor.size)} a tree of ${anchor.size} entries has`,
    );
  }
  const frontier = new MerkleFrontier(anchor.frontier.map(fromHex), anchor.size);
  if (toHex(frontier.root()) !== anchor.head.head.root) {
    return bad(`The subtree hashes in ${ANCHOR_FILE} do not make the root of its head`);
  }
  return { anchor: signed, frontier, problem: null };
}

function bad(problem: string, kind: "bad-signature" | "malformed" = "malformed"): AnchorRead {
  return { anchor: null, frontier: null, problem, kind };
}

/**
 * {@linkcode readAnchor} for writers and readers that cannot go on without a usable one.
 * @throws {AuditError} AUDIT_MALFORMED naming the problem
 */
export async function requireAnchor(
  auditDir: string,
  publicKey: PublicKeyInfo,
): Promise<{ anchor: SignedAnchor; frontier: MerkleFrontier } | null> {
  const read = await readAnchor(auditDir, publicKey);
  if (read.problem !== null) throw new AuditError("AUDIT_MALFORMED", read.problem);
  return read.anchor ? { anchor: read.anchor, frontier: read.frontier } : null;
}
