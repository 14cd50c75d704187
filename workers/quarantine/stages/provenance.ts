/**
 * Stage 4 — provenance (spec 13 §3; weakness 6: signatures must be real and every error
 * fatal). A detached signature, when present, is either ours (Ed25519 over the artifact's
 * SHA-256 and size, `signedMessage`) or an OpenSSF model signing bundle (`model_signing sign
 * key`, EC key); either must come from a key in `quarantine.trustedKeys`. A bad, untrusted
 * or unverifiable (keyless) signature fails, it is never ignored. Without one:
 * fails when `quarantine.requireSignature` or the source rule requires a signature, else
 * passes as `none` (local) or `recorded` (origin URL kept) — never labelled "verified".
 * The promotion policy sees which, and may refuse unsigned models.
 * @module
 */
import { signedMessage } from "../api.ts";
import { verifyModelSigningBundle } from "./model_signing.ts";
import { fail, pass, type Stage, type StageContext, type StageOutcome } from "./stage.ts";

/** An OpenSSF model signing bundle over a single file (see `model_signing.ts`). */
function verifyBundle(
  bundle: string,
  at: { ctx: StageContext; sha256: string },
): StageOutcome {
  const { ctx, sha256 } = at;
  if (ctx.artifact.kind !== "file") {
    return fail("provenance", {
      code: "BUNDLE_UNSUPPORTED",
      message: "Model signing bundles are checked for single files; a signed directory is not " +
        "supported yet",
    });
  }
  const keys = ctx.config.trustedKeys.flatMap((k) =>
    k.publicKeyPem === undefined ? [] : [{ id: k.id, publicKeyPem: k.publicKeyPem }]
  );
  const verdict = verifyModelSigningBundle(bundle, { sha256, keys });
  if (!verdict.ok) return fail("provenance", { code: verdict.code, message: verdict.message });
  return pass(
    { provenance: "verified", signer: verdict.signer },
    `OpenSSF model signing bundle (${verdict.format}) for "${verdict.signedName}" verified ` +
      `with key "${verdict.signer}"`,
  );
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Stage 4. */
export const provenanceStage: Stage = {
  name: "provenance",
  describeInput: (ctx) => ({
    signed: ctx.signature !== null,
    algorithm: ctx.signature?.algorithm ?? null,
    keyId: ctx.signature?.algorithm === "ed25519" ? ctx.signature.keyId : null,
    sha256: ctx.facts.sha256 ?? null,
  }),
  async run(ctx): Promise<StageOutcome> {
    const { sha256, size } = ctx.facts;
    if (sha256 === undefined || size === undefined) {
      throw new Error("Provenance needs the integrity pin's digest");
    }
    const signature = ctx.signature;
    if (signature === null) {
      const required = ctx.config.requireSignature || ctx.facts.sourceRequiresSignature === true;
      if (required) {
        return fail("provenance", {
          code: "UNSIGNED",
          message: ctx.config.requireSignature
            ? "The artifact is unsigned and quarantine.requireSignature is set"
            : "The artifact is unsigned and its source rule requires a signature",
        });
      }
      const status = ctx.source === null ? "none" : "recorded";
      return pass(
        { provenance: status, signer: null },
        status === "none"
          ? "Unsigned local import: no provenance (the promotion policy decides)"
          : "Unsigned: origin URL recorded, no signature verified",
      );
    }
    if (signature.algorithm === "sigstore-bundle") {
      return verifyBundle(signature.bundle, { ctx, sha256 });
    }
    const key = ctx.config.trustedKeys.find((k) => k.id === signature.keyId);
    if (key?.publicKey === undefined) {
      return fail("provenance", {
        code: "UNTRUSTED_SIGNER",
        message:
          `Signature key "${signature.keyId}" is not an Ed25519 key in quarantine.trustedKeys`,
      });
    }
    const publicKey = await crypto.subtle.importKey(
      "raw",
      fromBase64(key.publicKey),
      { name: "Ed25519" },
      false,
      ["verify"],
    );
    const isValid = await crypto.subtle.verify(
      { name: "Ed25519" },
      publicKey,
      fromBase64(signature.signature),
      signedMessage(sha256, size),
    );
    if (!isValid) {
      return fail("provenance", {
        code: "BAD_SIGNATURE",
        message: `Signature by "${signature.keyId}" does not verify over SHA-256 ${sha256}`,
      });
    }
    return pass(
      { provenance: "verified", signer: signature.keyId },
      `Ed25519 signature by "${signature.keyId}" verified`,
    );
  },
};
