/**
 * Verification of OpenSSF model signing bundles (sigstore/model-transparency, `model_signing
 * sign key …`): a Sigstore bundle (v0.3 JSON) whose DSSE envelope carries an in-toto v1
 * statement listing every file of the model with its SHA-256, signed with an elliptic-curve
 * key. Offline and strict: the key must be one the operator trusts (`quarantine.trustedKeys`,
 * SPKI PEM), the signature must verify over the DSSE pre-authentication encoding, and the
 * statement must name exactly the artifact's digest. Keyless bundles (a Fulcio certificate
 * and a Rekor entry) need the public Sigstore trust root and log, which an air-gapped
 * appliance cannot consult: they are refused with that reason, never passed.
 *
 * Formats read: predicate `https://model_signing/signature/v1.0` (resources in the
 * predicate, one subject whose digest is SHA-256 over the raw resource digests in order) and
 * the older `https://model_signing/Digests/v0.1` (one subject per file).
 * @module
 */
import { createHash, createPublicKey, type KeyObject, verify } from "node:crypto";
import { z } from "zod";

/** Largest bundle read. */
export const MAX_BUNDLE_BYTES = 256 * 1024;
/** Largest DSSE payload (the statement) read. */
const MAX_PAYLOAD_BYTES = 192 * 1024;

const BUNDLE_MEDIA_TYPES = new Set([
  "application/vnd.dev.sigstore.bundle.v0.3+json",
  "application/vnd.dev.sigstore.bundle+json;version=0.3",
]);
const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";
const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
const PREDICATE_V1 = "https://model_signing/signature/v1.0";
const PREDICATE_V01 = "https://model_signing/Digests/v0.1";

const Base64 = z.string().max(MAX_BUNDLE_BYTES).regex(/^[A-Za-z0-9+/]*={0,2}$/);
const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);

const BundleSchema = z.object({
  mediaType: z.string().max(200),
  verificationMaterial: z.object({
    publicKey: z.object({ hint: z.string().max(200).optional() }).optional(),
    certificate: z.unknown().optional(),
    x509CertificateChain: z.unknown().optional(),
    tlogEntries: z.array(z.unknown()).max(16).optional(),
  }),
  dsseEnvelope: z.object({
    payload: Base64,
    payloadType: z.string().max(200),
    signatures: z.array(z.object({ sig: Base64, keyid: z.string().max(200).optional() }))
      .min(1).max(4),
  }).optional(),
  messageSignature: z.unknown().optional(),
});

const ResourceSchema = z.object({
  name: z.string().min(1).max(4096),
  algorithm: z.string().max(40),
  digest: z.string().max(200),
});

const StatementSchema = z.object({
  _type: z.string(),
  subject: z.array(z.object({
    name: z.string().max(4096).optional(),
    digest: z.record(z.string(), z.string().max(200)),
  })).min(1).max(100_000),
  predicateType: z.string().max(200),
  predicate: z.object({
    serialization: z.object({ method: z.string().max(40) }).passthrough().optional(),
    resources: z.array(ResourceSchema).max(100_000).optional(),
  }).passthrough().optional(),
});

/** An elliptic-curve key the operator trusts for model signing bundles. */
export interface BundleKey {
  id: string;
  /** SPKI PEM. */
  publicKeyPem: string;
}

/** What a verification established, or why it failed. */
export type BundleVerdict =
  | {
    ok: true;
    /** Id of the trusted key that signed. */
    signer: string;
    /** Predicate type of the statement. */
    format: string;
    /** The file name the signer gave the artifact. */
    signedName: string;
  }
  | {
    ok: false;
    code:
      | "BUNDLE_INVALID"
      | "KEYLESS_UNSUPPORTED"
      | "UNTRUSTED_SIGNER"
      | "BAD_SIGNATURE"
      | "DIGEST_MISMATCH";
    message: string;
  };

function fail(code: Exclude<BundleVerdict, { ok: true }>["code"], message: string): BundleVerdict {
  return { ok: false, code, message };
}

/** DSSE v1 pre-authentication encoding of a payload. */
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = new TextEncoder().encode(payloadType);
  const head = new TextEncoder().encode(`DSSEv1 ${type.length} `);
  const middle = new TextEncoder().encode(` ${payload.length} `);
  const out = new Uint8Array(head.length + type.length + middle.length + payload.length);
  out.set(head, 0);
  out.set(type, head.length);
  out.set(middle, head.length + type.length);
  out.set(payload, head.length + type.length + middle.length);
  return out;
}

/** The hint model_signing records: hex SHA-256 of the key's SPKI PEM. */
export function keyHint(key: KeyObject): string {
  const pem = String(key.export({ type: "spki", format: "pem" }));
  return createHash("sha256").update(pem).digest("hex");
}

const CURVE_HASH: Record<string, string> = {
  prime256v1: "sha256",
  secp384r1: "sha384",
  secp521r1: "sha512",
};

function loadKey(key: BundleKey): { key: KeyObject; hash: string } | null {
  try {
    const object = createPublicKey(key.publicKeyPem);
    const curve = object.asymmetricKeyDetails?.namedCurve ?? "";
    const hash = object.asymmetricKeyType === "ec" ? CURVE_HASH[curve] : undefined;
    return hash ? { key: object, hash } : null;
  } catch {
    return null;
  }
}

/** Bytes of base64 text, or null when it is not valid base64. */
function fromBase64(text: string): Uint8Array | null {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/** The files a statement signs, as name → SHA-256, or why it cannot be read. */
function signedFiles(statement: z.infer<typeof StatementSchema>): Map<string, string> | string {
  const files = new Map<string, string>();
  if (statement.predicateType === PREDICATE_V01) {
    for (const s of statement.subject) {
      const digest = s.digest.sha256;
      if (s.name === undefined || digest === undefined || !Hex64.safeParse(digest).success) {
        return "a subject has no name or no SHA-256 digest";
      }
      if (files.has(s.name)) return `"${s.name.slice(0, 100)}" is listed twice`;
      files.set(s.name, digest);
    }
    return files;
  }
  if (statement.predicateType !== PREDICATE_V1) {
    return `predicate type "${statement.predicateType.slice(0, 80)}" is not a model signature`;
  }
  const method = statement.predicate?.serialization?.method;
  if (method !== "files") {
    return `serialization "${String(method).slice(0, 40)}" is not supported (only "files": ` +
      `one SHA-256 per file)`;
  }
  const resources = statement.predicate?.resources ?? [];
  if (statement.subject.length !== 1) return "a v1.0 statement has exactly one subject";
  const root = createHash("sha256");
  for (const r of resources) {
    if (r.algorithm !== "sha256" || !Hex64.safeParse(r.digest).success) {
      return `resource "${r.name.slice(0, 100)}" is not a SHA-256 digest`;
    }
    if (files.has(r.name)) return `"${r.name.slice(0, 100)}" is listed twice`;
    files.set(r.name, r.digest);
    root.update(Uint8Array.from(r.digest.match(/../g) ?? [], (h) => parseInt(h, 16)));
  }
  if (root.digest("hex") !== statement.subject[0]?.digest.sha256) {
    return "the subject's digest does not match the resources it summarises";
  }
  return files;
}

/**
 * Verifies a model signing bundle for one file.
 * @param bundleText the bundle as JSON text
 * @param artifact the file's SHA-256 (hex) and the keys to trust
 * @returns the signer, or the first failed check with a reason
 */
export function verifyModelSigningBundle(
  bundleText: string,
  artifact: { sha256: string; keys: readonly BundleKey[] },
): BundleVerdict {
  if (bundleText.length > MAX_BUNDLE_BYTES) {
    return fail("BUNDLE_INVALID", `The bundle is larger than ${MAX_BUNDLE_BYTES} bytes`);
  }
  let json: unknown;
  try {
    json = JSON.parse(bundleText);
  } catch {
    return fail("BUNDLE_INVALID", "The bundle is not JSON");
  }
  const parsed = BundleSchema.safeParse(json);
  if (!parsed.success) {
    return fail("BUNDLE_INVALID", "The bundle does not have the Sigstore bundle shape");
  }
  const bundle = parsed.data;
  if (!BUNDLE_MEDIA_TYPES.has(bundle.mediaType)) {
    return fail("BUNDLE_INVALID", `Bundle media type "${bundle.mediaType}" is not v0.3`);
  }
  const material = bundle.verificationMaterial;
  if (material.certificate !== undefined || material.x509CertificateChain !== undefined) {
    return fail(
      "KEYLESS_UNSUPPORTED",
      "The bundle is signed with a certificate (keyless Sigstore or a PKI): checking it needs " +
        "the certificate authority and the transparency log, which this offline appliance " +
        "cannot consult. Sign the model with a key (model_signing sign key) and trust its " +
        "public key in quarantine.trustedKeys",
    );
  }
  const envelope = bundle.dsseEnvelope;
  if (!envelope || bundle.messageSignature !== undefined) {
    return fail("BUNDLE_INVALID", "The bundle carries no DSSE envelope (not a model signature)");
  }
  if (envelope.signatures.length !== 1) {
    return fail("BUNDLE_INVALID", "The envelope must carry exactly one signature");
  }
  const hint = material.publicKey?.hint;
  const candidates = artifact.keys
    .map((k) => ({ id: k.id, loaded: loadKey(k) }))
    .filter((k): k is { id: string; loaded: { key: KeyObject; hash: string } } =>
      k.loaded !== null && (hint === undefined || keyHint(k.loaded.key) === hint)
    );
  if (candidates.length === 0) {
    return fail(
      "UNTRUSTED_SIGNER",
      hint === undefined
        ? "No elliptic-curve key in quarantine.trustedKeys to check the bundle with"
        : `The bundle names key ${hint.slice(0, 16)}…, which is not in quarantine.trustedKeys`,
    );
  }
  const payload = fromBase64(envelope.payload);
  const sig = fromBase64((envelope.signatures[0] as { sig: string }).sig);
  if (payload === null || sig === null) {
    return fail("BUNDLE_INVALID", "The envelope's payload or signature is not valid base64");
  }
  if (payload.length > MAX_PAYLOAD_BYTES) {
    return fail("BUNDLE_INVALID", "The signed statement is too large");
  }
  const signed = preAuthEncoding(envelope.payloadType, payload);
  const signer = candidates.find((c) => {
    try {
      return verify(c.loaded.hash, signed, c.loaded.key, sig);
    } catch {
      return false;
    }
  });
  if (!signer) {
    return fail("BAD_SIGNATURE", "The bundle's signature does not verify with the trusted key");
  }
  // Only now, with the statement authenticated, is its content read.
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    return fail("BUNDLE_INVALID", `Payload type "${envelope.payloadType}" is not in-toto`);
  }
  let statementJson: unknown;
  try {
    statementJson = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    return fail("BUNDLE_INVALID", "The signed statement is not UTF-8 JSON");
  }
  const statement = StatementSchema.safeParse(statementJson);
  if (!statement.success || statement.data._type !== STATEMENT_TYPE) {
    return fail("BUNDLE_INVALID", "The signed statement is not an in-toto v1 statement");
  }
  const files = signedFiles(statement.data);
  if (typeof files === "string") return fail("BUNDLE_INVALID", `The signed statement: ${files}`);
  if (files.size !== 1) {
    return fail(
      "DIGEST_MISMATCH",
      `The bundle signs ${files.size} files; a single-file artifact needs a bundle for that ` +
        `file alone`,
    );
  }
  const [[signedName, digest]] = [...files] as [[string, string]];
  if (digest !== artifact.sha256) {
    return fail(
      "DIGEST_MISMATCH",
      `The bundle signs "${signedName.slice(0, 100)}" with SHA-256 ${digest}, not this ` +
        `artifact's ${artifact.sha256}`,
    );
  }
  return { ok: true, signer: signer.id, format: statement.data.predicateType, signedName };
}
