/**
 * The registry's manifest signing key (Ed25519, WebCrypto) and the signed manifest export.
 * The key is created on first start in `registry/keys/` (0600, PKCS#8) and never leaves the
 * registry worker; the export carries the public key and its id so anyone can check it.
 * @module
 */
import { createHash } from "node:crypto";
import { writeFileAtomic } from "../../runtime/kit/fs.ts";
import type { Model } from "./api.ts";
import { RegistryError } from "./errors.ts";

/** Manifest format version. */
export const MANIFEST_VERSION = 1;

/** A loaded signing key. */
export interface SigningKey {
  privateKey: CryptoKey;
  /** Raw 32-byte public key. */
  publicKey: Uint8Array;
  /** First 16 hex digits of SHA-256 of the raw public key. */
  keyId: string;
}

/** A signed manifest. */
export interface SignedManifest {
  manifest: string;
  signature: string;
  publicKey: string;
  keyId: string;
}

/**
 * Loads the signing key, creating it on first start.
 * @param path absolute path of the PKCS#8 key file
 * @throws {RegistryError} KEY_INVALID when the file exists but is not an Ed25519 key
 */
export async function loadOrCreateKey(path: string): Promise<SigningKey> {
  let pkcs8: Uint8Array<ArrayBuffer>;
  try {
    pkcs8 = await Deno.readFile(path) as Uint8Array<ArrayBuffer>;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
      "sign",
      "verify",
    ]) as CryptoKeyPair;
    pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    await writeFileAtomic(path, pkcs8, { mode: 0o600 });
  }
  let privateKey: CryptoKey;
  let jwk: JsonWebKey;
  try {
    privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
    jwk = await crypto.subtle.exportKey("jwk", privateKey);
  } catch (error) {
    throw new RegistryError("KEY_INVALID", `Manifest signing key "${path}" is not an Ed25519 key`, {
      cause: error,
    });
  }
  if (typeof jwk.x !== "string") {
    throw new RegistryError("KEY_INVALID", `Manifest signing key "${path}" has no public part`);
  }
  const publicKey = fromBase64Url(jwk.x);
  return {
    privateKey,
    publicKey,
    keyId: createHash("sha256").update(publicKey).digest("hex").slice(0, 16),
  };
}

/**
 * Builds and signs the manifest of active models.
 * @param models active models
 * @param key the signing key
 * @returns the manifest text, its signature and the public key
 */
export async function signManifest(
  models: readonly Model[],
  key: SigningKey,
): Promise<SignedManifest> {
  const manifest = JSON.stringify({
    version: MANIFEST_VERSION,
    issuedAt: new Date().toISOString(),
    keyId: key.keyId,
    models: models.map((m) => ({
      id: m.id,
      name: m.name,
      filename: m.filename,
      format: m.format,
      size: m.size,
      sha256: m.sha256,
      fsverity: m.fsverity,
      source: m.source,
      provenance: m.provenance,
      signature: m.signature,
      scanVerdict: m.scan.verdict,
      smokeTest: m.smokeTest.status,
      decision: { rule: m.decision.rule, policyVersion: m.decision.policy_version },
      promotedAt: m.promotedAt,
      promotedBy: m.promotedBy,
      // The structural fingerprint and the manifest file's digest (spec 13 §6), so a copy of
      // the manifest can be checked against this signature.
      tensorManifest: m.tensorManifest === null ? null : {
        status: m.tensorManifest.status,
        fingerprint: m.tensorManifest.fingerprint,
        sha256: m.tensorManifest.sha256,
        tensors: m.tensorManifest.tensors,
      },
    })),
  });
  const signature = new Uint8Array(
    await crypto.subtle.sign(
      { name: "Ed25519" },
      key.privateKey,
      new TextEncoder().encode(manifest),
    ),
  );
  return {
    manifest,
    signature: toBase64(signature),
    publicKey: toBase64(key.publicKey),
    keyId: key.keyId,
  };
}

/**
 * Writes `manifest.json` and its detached `manifest.json.sig` (each atomically, 0644).
 * @param dir the registry directory
 * @param signed the signed manifest
 */
export async function writeManifest(dir: string, signed: SignedManifest): Promise<void> {
  await writeFileAtomic(`${dir}/manifest.json`, signed.manifest, { mode: 0o644 });
  await writeFileAtomic(
    `${dir}/manifest.json.sig`,
    JSON.stringify({
      keyId: signed.keyId,
      publicKey: signed.publicKey,
      signature: signed.signature,
    }),
    { mode: 0o644 },
  );
}

/** Standard base64. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function fromBase64Url(text: string): Uint8Array {
  const binary = atob(
    text.replaceAll("-", "+").replaceAll("_", "/").padEnd(Math.ceil(text.length / 4) * 4, "="),
  );
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
