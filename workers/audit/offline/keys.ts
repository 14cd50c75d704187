/**
 * Ed25519 public keys of the audit log and head signature checks (node:crypto). The signing
 * key itself is only ever read by the audit control (`workers/audit/keys.ts`).
 * @module
 */
import { createHash, createPublicKey, type KeyObject, verify } from "node:crypto";
import { AuditError } from "./errors.ts";
import { anchorMessage, headMessage, type SignedAnchor, type SignedHead } from "./format.ts";

/** A usable public key. */
export interface PublicKeyInfo {
  /** node:crypto key object (Ed25519). */
  key: KeyObject;
  /** The raw 32-byte key. */
  raw: Uint8Array;
  /** Hex SHA-256 of {@link raw}: the `key` field of every head it signs. */
  id: string;
  /** SPKI PEM text, as exported. */
  pem: string;
}

/** Largest public key file read. */
export const MAX_PUBLIC_KEY_BYTES = 1024;

/**
 * Parses an Ed25519 public key in SPKI PEM form.
 * @param pem the file's text
 * @param source file name for messages
 * @throws {AuditError} AUDIT_KEY_INVALID when it is not one
 */
export function parsePublicKey(pem: string, source: string): PublicKeyInfo {
  if (pem.length > MAX_PUBLIC_KEY_BYTES || !pem.includes("-----BEGIN PUBLIC KEY-----")) {
    throw new AuditError(
      "AUDIT_KEY_INVALID",
      `Public key "${source}" is not a PEM public key (-----BEGIN PUBLIC KEY-----)`,
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: "pem" });
  } catch (err) {
    throw new AuditError("AUDIT_KEY_INVALID", `Public key "${source}" cannot be read`, {
      cause: err,
    });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new AuditError(
      "AUDIT_KEY_INVALID",
      `Public key "${source}" is ${key.asymmetricKeyType ?? "unknown"}, not Ed25519`,
    );
  }
  return publicKeyInfo(key);
}

/** Describes a node:crypto Ed25519 public key. */
export function publicKeyInfo(key: KeyObject): PublicKeyInfo {
  const der = new Uint8Array(key.export({ format: "der", type: "spki" }));
  // An Ed25519 SPKI is a fixed 12-byte header followed by the 32-byte key (RFC 8410).
  const raw = der.slice(der.length - 32);
  return {
    key,
    raw,
    id: createHash("sha256").update(raw).digest("hex"),
    pem: String(key.export({ format: "pem", type: "spki" })),
  };
}

/**
 * Reads a public key file.
 * @throws {AuditError} AUDIT_NOT_FOUND when absent, AUDIT_KEY_INVALID when unusable
 */
export async function readPublicKey(path: string): Promise<PublicKeyInfo> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (info.size > MAX_PUBLIC_KEY_BYTES) {
      throw new AuditError("AUDIT_KEY_INVALID", `Public key "${path}" is too large`);
    }
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new AuditError("AUDIT_NOT_FOUND", `Public key "${path}" does not exist`, {
        cause: err,
      });
    }
    throw err;
  }
  return parsePublicKey(text, path);
}

/**
 * Whether a head carries a valid signature by this key (and names the key).
 * @param signed the head and its signature
 * @param publicKey the key that must have signed it
 */
export function isHeadSigned(signed: SignedHead, publicKey: PublicKeyInfo): boolean {
  if (signed.head.key !== publicKey.id) return false;
  const sig = Uint8Array.from(atob(signed.sig), (c) => c.charCodeAt(0));
  return verify(null, headMessage(signed.head), publicKey.key, sig);
}

/**
 * Whether a retention anchor carries a valid signature by this key (and names the key).
 * @param signed the anchor and its signature
 * @param publicKey the key that must have signed it
 */
export function isAnchorSigned(signed: SignedAnchor, publicKey: PublicKeyInfo): boolean {
  if (signed.anchor.key !== publicKey.id) return false;
  const sig = Uint8Array.from(atob(signed.sig), (c) => c.charCodeAt(0));
  return verify(null, anchorMessage(signed.anchor), publicKey.key, sig);
}

/** Hex SHA-256 of a head's canonical bytes: what the next head's `prev` names. */
export function headHash(signed: SignedHead): string {
  return createHash("sha256").update(headMessage(signed.head)).digest("hex");
}
