/**
 * Contracts of the registry control (spec 13 §5–§7): the trusted store of promoted models.
 * Three capabilities, each to whoever needs exactly it:
 * - `registry-promote` (quarantine only): a promotion request; the registry asks the policy
 *   control (`model_promotion`) and re-hashes the staged artifact before it stores anything.
 * - `registry` (gateway): list, read, revoke, re-verify, signed manifest export.
 * - `registry-resolve` (inference, issue #7): the only way to get a model's path, re-hashed
 *   before every answer.
 * Also the config section `registry`.
 * @module
 */
import { z } from "zod";
import { defineApi } from "../../runtime/kit/rpc.ts";
import {
  ArtifactNameSchema,
  ArtifactSignatureSchema,
  FindingSchema,
  JobIdSchema,
  ModelFormatSchema,
  PromotionDecisionSchema,
} from "../quarantine/api.ts";

const Hex64 = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex");

/** A model id: `m` and the first 24 hex digits of its SHA-256 (content-addressed). */
export const ModelIdSchema = z.string().regex(/^m[0-9a-f]{24}$/);

/** What the scans said, as kept in the manifest (the full report stays with the job). */
export const ScanSummarySchema = z.strictObject({
  verdict: z.enum(["clean", "threat", "invalid"]),
  format: z.string().max(64),
  bytesScanned: z.number().int().nonnegative(),
  findingsTotal: z.number().int().nonnegative(),
  bySeverity: z.strictObject({
    info: z.number().int().nonnegative(),
    low: z.number().int().nonnegative(),
    medium: z.number().int().nonnegative(),
    high: z.number().int().nonnegative(),
    critical: z.number().int().nonnegative(),
  }),
  /** The findings themselves (bounded; informational ones of a clean file). */
  findings: z.array(FindingSchema).max(100),
});
/** Scan summary. */
export type ScanSummary = z.infer<typeof ScanSummarySchema>;

/** The behavioural smoke test's result (spec 13 §3 stage 6). */
export const SmokeTestSchema = z.strictObject({
  status: z.enum(["passed", "failed", "skipped"]),
  score: z.number().min(0).max(1).nullable(),
  critical: z.number().int().nonnegative().nullable(),
  reason: z.string().max(1000),
});

/** Provenance as established by stage 4. */
export const ProvenanceSchema = z.strictObject({
  /** `none`: local import, unsigned; `recorded`: origin URL kept; `verified`: signature checked. */
  status: z.enum(["none", "recorded", "verified"]),
  signer: z.string().max(64).nullable(),
  /** Whether a lock pin matched the hash (false: trust on first use). */
  pinned: z.boolean(),
});

/** What the quarantine established about an artifact: sent to promote it, kept with the model. */
const ArtifactEvidence = {
  sha256: Hex64,
  fsverity: Hex64,
  source: z.string().max(4096),
  provenance: ProvenanceSchema,
  signature: ArtifactSignatureSchema.nullable(),
  scan: ScanSummarySchema,
  smokeTest: SmokeTestSchema,
};

/** What the quarantine sends to promote one artifact. */
export const PromoteRequestSchema = z.strictObject({
  jobId: JobIdSchema,
  /** Bare name of the staged file in `promotion-staging/` (never a path). */
  staged: z.string().regex(/^q[0-9a-f]{24}\.(gguf|safetensors)$/),
  filename: ArtifactNameSchema,
  format: ModelFormatSchema,
  size: z.number().int().positive().max(64 * 2 ** 30),
  ...ArtifactEvidence,
  /** Verdict per stage, in order. */
  stages: z.record(z.string().max(32), z.enum(["pass", "fail", "skipped"])),
  /** A person approved this promotion (answer to an earlier `ask`). */
  approval: z.strictObject({ by: z.string().max(200), at: z.string().max(40) }).nullable(),
});
/** A promotion request. */
export type PromoteRequest = z.infer<typeof PromoteRequestSchema>;

/**
 * The model's per-tensor manifest and structural fingerprint (spec 13 §6
 * `gguf_guard_manifest`/`gguf_guard_fingerprint`), made inside the promotion transaction.
 */
export const TensorManifestRefSchema = z.strictObject({
  /** `recorded`; `skipped` (with the reason) when no manifest could be listed for this file. */
  status: z.enum(["recorded", "skipped"]),
  /** SHA-256 over format, structure facts and tensor names/types/dims, not the bytes. */
  fingerprint: Hex64.nullable(),
  /** The manifest file, relative to the registry dir (`manifests/<sha256>.tensors.json`). */
  path: z.string().max(200).nullable(),
  /** SHA-256 of the manifest file, checked before it is believed. */
  sha256: Hex64.nullable(),
  tensors: z.number().int().nonnegative().nullable(),
  reason: z.string().max(1000).nullable(),
});
/** A model's tensor manifest reference. */
export type TensorManifestRef = z.infer<typeof TensorManifestRefSchema>;

/** One promoted (or revoked) model. */
export const ModelSchema = z.strictObject({
  id: ModelIdSchema,
  /** File stem without the quantisation suffix (spec 13 §5). */
  name: z.string().max(512),
  filename: ArtifactNameSchema,
  format: ModelFormatSchema,
  size: z.number().int().positive(),
  ...ArtifactEvidence,
  decision: PromotionDecisionSchema.extend({ approvedBy: z.string().max(200).nullable() }),
  jobId: JobIdSchema,
  promotedAt: z.string().max(40),
  /** Control that asked for the promotion. */
  promotedBy: z.string().max(64),
  lastVerifiedAt: z.string().max(40).nullable(),
  revokedAt: z.string().max(40).nullable(),
  revokedReason: z.string().max(1000).nullable(),
  /** Null for a model promoted before manifests were kept. */
  tensorManifest: TensorManifestRefSchema.nullable(),
});
/** A registry entry. */
export type Model = z.infer<typeof ModelSchema>;

/** Outcome of a promotion request: a decision is a value, failures are errors. */
export const PromoteResultSchema = z.discriminatedUnion("status", [
  z.strictObject({ status: z.literal("promoted"), model: ModelSchema }),
  z.strictObject({ status: z.literal("awaiting_approval"), decision: PromotionDecisionSchema }),
  z.strictObject({ status: z.literal("denied"), decision: PromotionDecisionSchema }),
]);
/** A promotion outcome. */
export type PromoteResult = z.infer<typeof PromoteResultSchema>;

const TensorNames = z.array(z.string().max(4096)).max(1_000);

/**
 * What an integrity pass says about a model's tensors. `intact`: the file hash vouches for
 * every tensor and the stored manifest is unaltered; `changed`: the hash failed and the
 * stored manifest located the change; `unknown`: the hash failed and it could not be located
 * (blob missing, manifest altered…); `skipped`: no manifest; `manifest_altered`: the model is
 * intact but its stored manifest is missing or edited.
 */
export const TensorCheckSchema = z.strictObject({
  status: z.enum(["intact", "changed", "unknown", "skipped", "manifest_altered"]),
  /** Tensors whose bytes differ (at most 1000 names; `changedCount` is exact). */
  changed: TensorNames,
  changedCount: z.number().int().nonnegative(),
  /** Header (metadata, tensor infos) differs. */
  headerChanged: z.boolean(),
  /** Bytes in no tensor (padding, gaps, trailing data) or the size differ. */
  otherBytesChanged: z.boolean(),
  reason: z.string().max(1000).nullable(),
});
/** A tensor check. */
export type TensorCheck = z.infer<typeof TensorCheckSchema>;

/** Result of re-hashing one model. */
export const VerifyResultSchema = z.strictObject({
  id: ModelIdSchema,
  status: z.enum(["verified", "tampered"]),
  expected: z.strictObject({ sha256: Hex64, fsverity: Hex64, size: z.number().int() }),
  actual: z.strictObject({
    sha256: Hex64.nullable(),
    fsverity: Hex64.nullable(),
    size: z.number().int().nullable(),
  }),
  verifiedAt: z.string().max(40),
  error: z.string().max(1000).nullable(),
  tensors: TensorCheckSchema,
});

/**
 * Result of the tensor-level manifest check (spec 13 §6 `verify-manifest`): the blob is
 * re-hashed, then its manifest is derived again in the sandbox and compared tensor by tensor
 * with the stored one. `verified`: identical; `mismatch`: it differs although the file hash
 * holds (or the stored manifest was altered), the lists say where; `tampered`: the file hash
 * failed and the model was revoked; `skipped`: no manifest was recorded (the reason says why).
 */
export const ManifestCheckSchema = z.strictObject({
  id: ModelIdSchema,
  status: z.enum(["verified", "mismatch", "tampered", "skipped"]),
  fingerprint: z.strictObject({ expected: Hex64.nullable(), actual: Hex64.nullable() }),
  /** Tensors compared. */
  tensors: z.number().int().nonnegative(),
  changed: TensorNames,
  layoutChanged: TensorNames,
  added: TensorNames,
  removed: TensorNames,
  headerChanged: z.boolean(),
  otherBytesChanged: z.boolean(),
  checkedAt: z.string().max(40),
  reason: z.string().max(1000).nullable(),
});
/** A manifest check. */
export type ManifestCheck = z.infer<typeof ManifestCheckSchema>;

/** Promotion capability (quarantine). */
export const registryPromoteApi = defineApi("registry-promote", {
  promote: { input: PromoteRequestSchema, output: PromoteResultSchema },
});

/** Read/admin capability (gateway). */
export const registryApi = defineApi("registry", {
  list: {
    input: z.strictObject({ includeRevoked: z.boolean().default(false) }),
    output: z.strictObject({ models: z.array(ModelSchema).max(10_000) }),
  },
  get: { input: z.strictObject({ id: ModelIdSchema }), output: ModelSchema },
  /** Revokes a model: it is never served again, and its content can never be promoted again. */
  revoke: {
    input: z.strictObject({ id: ModelIdSchema, reason: z.string().min(1).max(1000) }),
    output: ModelSchema,
  },
  /** Re-hashes one model now (a mismatch revokes it as tampered). */
  verify: { input: z.strictObject({ id: ModelIdSchema }), output: VerifyResultSchema },
  /**
   * Derives the model's tensor manifest again (sandboxed job) and compares it with the one
   * recorded at promotion (a hash mismatch revokes it as tampered, as `verify` does).
   */
  verifyManifest: { input: z.strictObject({ id: ModelIdSchema }), output: ManifestCheckSchema },
  /** The manifest of active models, signed with the registry's Ed25519 key. */
  exportManifest: {
    input: z.strictObject({}),
    output: z.strictObject({
      /** The signed bytes, UTF-8 JSON. */
      manifest: z.string().max(64 << 20),
      /** Base64 Ed25519 signature over `manifest`. */
      signature: z.string().max(200),
      /** Base64 raw Ed25519 public key. */
      publicKey: z.string().max(100),
      keyId: z.string().max(64),
    }),
  },
});

/** Load capability (inference): a verified path or an error, never an unverified path. */
export const registryResolveApi = defineApi("registry-resolve", {
  resolve: {
    input: z.strictObject({ id: ModelIdSchema }),
    output: z.strictObject({
      id: ModelIdSchema,
      /** Absolute path of the read-only blob, re-hashed just now. */
      path: z.string().max(4096),
      format: ModelFormatSchema,
      size: z.number().int().positive(),
      sha256: Hex64,
      fsverity: Hex64,
      verifiedAt: z.string().max(40),
    }),
  },
  /**
   * The active models a loader may ask for, without paths (issue #7: the inference API's
   * model list). Nothing here is verified: `resolve` is still the only way to a path.
   */
  list: {
    input: z.strictObject({}),
    output: z.strictObject({
      models: z.array(z.strictObject({
        id: ModelIdSchema,
        name: z.string().max(512),
        format: ModelFormatSchema,
        size: z.number().int().positive(),
        promotedAt: z.string().max(40),
      })).max(10_000),
    }),
  },
});

/** Config section `registry`. */
export const RegistryConfigSchema = z.strictObject({
  /** Re-verification period of every model (spec 13 §7: 5, 15, 30 or 60 min). */
  verifyIntervalMinutes: z.union([z.literal(5), z.literal(15), z.literal(30), z.literal(60)])
    .default(15),
  /** Delay of the first pass after start (spec: 2 min). */
  firstVerifyDelayMs: z.number().int().min(1_000).max(3_600_000).default(120_000),
}).default({});
/** Registry config. */
export type RegistryConfig = z.infer<typeof RegistryConfigSchema>;
