/**
 * The log's Ed25519 signing key, held only by the audit control (spec 11 §9.6: writers never
 * hold the key that vouches for their history). Generated in `<home>/audit/keys/` on first
 * start: `signing.key` (PKCS#8 PEM, 0600, refused when group/world accessible or a symlink)
 * and `signing.pub` (SPKI PEM, 0644, exportable).
 * @module
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
} from "node:crypto";
import { syncDir, writeFileAtomic } from "../../runtime/kit/fs.ts";
import { AuditError } from "./offline/errors.ts";
import {
  type Anchor,
  anchorMessage,
  type Head,
  headMessage,
  type SignedAnchor,
  type SignedHead,
} from "./offline/format.ts";
import { type PublicKeyInfo, publicKeyInfo } from "./offline/keys.ts";

/** The signing key and its public half. */
export interface SigningKey {
  privateKey: KeyObject;
  publicKey: PublicKeyInfo;
}

/** What loading the key found. */
export interface LoadedKey {
  key: SigningKey;
  /** The key was generated now (first start). */
  isNew: boolean;
  /** `signing.pub` was missing or did not match the private key, and was rewritten. */
  isPublicKeyRepaired: boolean;
}

const MAX_KEY_FILE_BYTES = 4096;

/**
 * Loads the signing key from `dir`, generating it on first use.
 * @param dir `<home>/audit/keys` (created 0700 when absent)
 * @throws {AuditError} AUDIT_KEY_INVALID when the key file is unsafe or unreadable
 */
export async function loadSigningKey(dir: string): Promise<LoadedKey> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const keyPath = `${dir}/signing.key`;
  const pubPath = `${dir}/signing.pub`;
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.lstat(keyPath);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  let privateKey: KeyObject;
  let isNew = false;
  if (info === null) {
    const pair = generateKeyPairSync("ed25519");
    privateKey = pair.privateKey;
    const pem = String(privateKey.export({ format: "pem", type: "pkcs8" }));
    await writeFileAtomic(keyPath, pem, { mode: 0o600 });
    isNew = true;
  } else {
    if (info.isSymlink || !info.isFile) {
      throw new AuditError("AUDIT_KEY_INVALID", `Signing key "${keyPath}" is not a regular file`);
    }
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      throw new AuditError(
        "AUDIT_KEY_INVALID",
        `Signing key "${keyPath}" is accessible to group or others (mode ${
          (info.mode & 0o777).toString(8)
        }); it must be 0600`,
      );
    }
    if (info.size > MAX_KEY_FILE_BYTES) {
      throw new AuditError("AUDIT_KEY_INVALID", `Signing key "${keyPath}" is too large`);
    }
    try {
      privateKey = createPrivateKey({ key: await Deno.readTextFile(keyPath), format: "pem" });
    } catch (err) {
      throw new AuditError("AUDIT_KEY_INVALID", `Signing key "${keyPath}" cannot be read`, {
        cause: err,
      });
    }
    if (privateKey.asymmetricKeyType !== "ed25519") {
      throw new AuditError("AUDIT_KEY_INVALID", `Signing key "${keyPath}" is not Ed25519`);
    }
  }
  const publicKey = publicKeyInfo(createPublicKey(privateKey));
  let isPublicKeyRepaired = false;
  let stored: string | null = null;
  try {
    stored = await Deno.readTextFile(pubPath);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (stored !== publicKey.pem) {
    await writeFileAtomic(pubPath, publicKey.pem, { mode: 0o644 });
    isPublicKeyRepaired = !isNew;
  }
  if (isNew) await syncDir(dir);
  return { key: { privateKey, publicKey }, isNew, isPublicKeyRepaired };
}

/**
 * Signs a head.
 * @param head the statement (its `key` must be this key's id)
 * @param key the signing key
 */
export function signHead(head: Head, key: SigningKey): SignedHead {
  const sig = sign(null, headMessage(head), key.privateKey);
  return { head, sig: btoa(String.fromCharCode(...sig)) };
}

/**
 * Signs a retention anchor.
 * @param anchor the statement (its `key` must be this key's id)
 * @param key the signing key
 */
export function signAnchor(anchor: Anchor, key: SigningKey): SignedAnchor {
  const sig = sign(null, anchorMessage(anchor), key.privateKey);
  return { anchor, sig: btoa(String.fromCharCode(...sig)) };
}
