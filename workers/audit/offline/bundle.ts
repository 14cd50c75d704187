/**
 * Self-verifying export bundles: a range of entries, each with its inclusion proof, and the
 * signed head they prove into. A third party checks one with nothing but the log's public
 * key ({@linkcode checkBundle}); they learn that exactly these entries are in the log the key
 * signs, at these positions.
 * @module
 */
import { AuditError } from "./errors.ts";
import {
  type Bundle,
  BUNDLE_FORMAT,
  BundleSchema,
  MAX_BUNDLE_ENTRIES,
  readEntryLine,
  type SignedHead,
} from "./format.ts";
import { isHeadSigned, type PublicKeyInfo } from "./keys.ts";
import { fromHex, inclusionProof, leafHash, toHex, verifyInclusion } from "./merkle.ts";
import { openHashSource, proveInclusion, readEntries } from "./read.ts";

/**
 * Builds a bundle of entries `from..to` (inclusive) proving into `head`.
 * @throws {AuditError} AUDIT_RANGE_INVALID for an empty, oversized or out-of-tree range
 */
export async function buildBundle(
  auditDir: string,
  request: { from: number; to: number; head: SignedHead; publicKeyPem: string },
): Promise<Bundle> {
  const { from, to, head } = request;
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from) {
    throw new AuditError("AUDIT_RANGE_INVALID", `Invalid range ${from}..${to}`);
  }
  if (to - from + 1 > MAX_BUNDLE_ENTRIES) {
    throw new AuditError(
      "AUDIT_RANGE_INVALID",
      `Range ${from}..${to} has more than ${MAX_BUNDLE_ENTRIES} entries`,
    );
  }
  if (to >= head.head.size) {
    throw new AuditError(
      "AUDIT_RANGE_INVALID",
      `Entry ${to} is not in the signed tree of ${head.head.size} entries`,
    );
  }
  // The first proof also checks that the stored tree matches the head.
  await proveInclusion(auditDir, { seq: from, head });
  const entries = await readEntries(auditDir, { from, to });
  const hashes = await openHashSource(auditDir, head.head.size);
  try {
    const out: Bundle["entries"] = [];
    for (const e of entries) {
      const proof = await inclusionProof(hashes.source, {
        index: e.entry.seq,
        size: head.head.size,
      });
      out.push({ line: e.line, proof: proof.map(toHex) });
    }
    return { format: BUNDLE_FORMAT, publicKey: request.publicKeyPem, head, entries: out };
  } finally {
    hashes.close();
  }
}

/** Result of {@linkcode checkBundle}. */
export interface BundleReport {
  isValid: boolean;
  /** Entries that proved into the head before the first failure (all when valid). */
  entries: number;
  /** First and last seq of the bundle, when it parsed. */
  from: number | null;
  to: number | null;
  /** Tree size of the bundle's head. */
  size: number | null;
  /** Seq of the first entry that failed; null when valid or when the head itself failed. */
  firstBadSeq: number | null;
  detail: string;
}

/**
 * Checks a bundle with only a trusted public key: the head's signature, then every entry's
 * canonical form, its position and its inclusion proof.
 * @param data the parsed JSON of the bundle file
 * @param publicKey the key the reader trusts (not the one inside the bundle)
 * @returns the report; a bundle that fails is reported, never thrown
 */
export function checkBundle(data: unknown, publicKey: PublicKeyInfo): BundleReport {
  const parsed = BundleSchema.safeParse(data);
  const fail = (detail: string, more: Partial<BundleReport> = {}): BundleReport => ({
    isValid: false,
    entries: 0,
    from: null,
    to: null,
    size: null,
    firstBadSeq: null,
    detail,
    ...more,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return fail(
      `Not an audit bundle: at "${issue?.path.join(".") || "(root)"}": ${
        issue?.message ?? "invalid"
      }`,
    );
  }
  const bundle = parsed.data;
  const head = bundle.head.head;
  if (!isHeadSigned(bundle.head, publicKey)) {
    return fail(
      head.key === publicKey.id
        ? `The bundle's head (size ${head.size}) has an invalid signature`
        : `The bundle's head is signed by key ${head.key.slice(0, 16)}, not the trusted key ` +
          `${publicKey.id.slice(0, 16)}`,
      { size: head.size },
    );
  }
  const root = fromHex(head.root);
  let first: number | null = null;
  let count = 0;
  for (const item of bundle.entries) {
    const entry = readEntryLine(item.line);
    const expectedSeq = first === null ? null : first + count;
    if (typeof entry === "string") {
      return fail(`Entry ${expectedSeq ?? count} of the bundle is unusable: ${entry}`, {
        entries: count,
        from: first,
        size: head.size,
        firstBadSeq: expectedSeq,
      });
    }
    if (expectedSeq !== null && entry.seq !== expectedSeq) {
      return fail(`The bundle skips from ${expectedSeq - 1} to ${entry.seq}`, {
        entries: count,
        from: first,
        size: head.size,
        firstBadSeq: expectedSeq,
      });
    }
    first ??= entry.seq;
    const leaf = leafHash(new TextEncoder().encode(item.line));
    const isIncluded = verifyInclusion(
      { index: entry.seq, size: head.size, hash: leaf },
      item.proof.map(fromHex),
      root,
    );
    if (!isIncluded) {
      return fail(`Entry ${entry.seq} does not prove into the signed head of size ${head.size}`, {
        entries: count,
        from: first,
        size: head.size,
        firstBadSeq: entry.seq,
      });
    }
    count++;
  }
  const from = first as number;
  return {
    isValid: true,
    entries: count,
    from,
    to: from + count - 1,
    size: head.size,
    firstBadSeq: null,
    detail: `${count} entries (${from}..${from + count - 1}) are in the log signed by key ` +
      `${publicKey.id.slice(0, 16)} at tree size ${head.size}`,
  };
}
