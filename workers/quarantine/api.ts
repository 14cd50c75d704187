/**
 * Contract of the quarantine control (spec 13 §1–§5): uploads stream in over RPC (the
 * gateway has no write permission at all), each artifact becomes a job that runs the seven
 * stages in order, and a job can be read, followed, cancelled and — when the policy asks for
 * a person's approval — approved. Also the config section `quarantine`.
 * @module
 */
import { z } from "zod";
import { defineApi } from "../../runtime/kit/rpc.ts";

/** The seven stages, in the order they run (spec 13 §3–§4). */
export const STAGE_NAMES = [
  "source_policy",
  "format_gate",
  "integrity_pin",
  "provenance",
  "static_scan",
  "smoke_test",
  "diffusion_checks",
] as const;
/** A stage name. */
export const StageNameSchema = z.enum(STAGE_NAMES);
/** A stage name. */
export type StageName = z.infer<typeof StageNameSchema>;

/** Formats that may be promoted (pickle-based formats are never admitted, spec 13 §2). */
export const ModelFormatSchema = z.enum(["gguf", "safetensors"]);
/** An admitted model format. */
export type ModelFormat = z.infer<typeof ModelFormatSchema>;

/**
 * What a job's artifact is: a single model file, or a diffusion model directory in the
 * diffusers layout (spec 13 §4), which is scanned but, as a local import, never promoted.
 */
export const ArtifactFormatSchema = z.enum(["gguf", "safetensors", "diffusion-directory"]);
/** A job's artifact format. */
export type ArtifactFormat = z.infer<typeof ArtifactFormatSchema>;

/** Most files of a directory upload (spec 13 §4: ≤ 20 000 files). */
export const MAX_DIRECTORY_FILES = 20_000;
/** Deepest path of a directory upload (spec 13 §4: depth ≤ 32). */
export const MAX_DIRECTORY_DEPTH = 32;

const ENTRY_SEGMENT = /^[A-Za-z0-9_+()\[\]-][A-Za-z0-9._+()\[\]-]{0,254}$/;

/**
 * A file's path inside a directory upload: bare names (as {@link ArtifactNameSchema})
 * joined by `/`, at most {@link MAX_DIRECTORY_DEPTH} of them and 4096 bytes — never absolute,
 * never `.`/`..`, never hidden.
 */
export const EntryPathSchema = z.string().min(1).max(4096).refine(
  (path) => {
    const segments = path.split("/");
    return segments.length <= MAX_DIRECTORY_DEPTH && segments.every((s) => ENTRY_SEGMENT.test(s));
  },
  "expected a relative path of bare names of letters, digits and . _ + - ( ) [ ] joined by /",
);

/** Finding severities, lowest first (the scanners' `Severity`). */
export const SeveritySchema = z.enum(["info", "low", "medium", "high", "critical"]);

/** One finding: which stage, which rule, how bad, and where (offset/member) and why. */
export const FindingSchema = z.strictObject({
  stage: z.string().min(1).max(64),
  rule: z.string().min(1).max(128),
  severity: SeveritySchema,
  message: z.string().max(2000),
  offset: z.number().int().nonnegative().optional(),
  member: z.string().max(4096).optional(),
  callable: z.string().max(1024).optional(),
  opcode: z.string().max(64).optional(),
});
/** A finding. */
export type Finding = z.infer<typeof FindingSchema>;

/** Most findings kept per stage; the rest are counted in one summary finding. */
export const MAX_STAGE_FINDINGS = 500;

/** Where a stage stands. */
export const StageStatusSchema = z.enum(["pending", "running", "passed", "failed", "skipped"]);

/**
 * The one record every stage produces (the stage contract): what it was given, what it
 * found, its verdict and how long it took. `facts` are what later stages and the registry
 * use (format, digests, provenance, scan summary).
 */
export const StageRecordSchema = z.strictObject({
  stage: StageNameSchema,
  status: StageStatusSchema,
  input: z.record(z.string().max(64), z.unknown()),
  findings: z.array(FindingSchema).max(MAX_STAGE_FINDINGS + 1),
  verdict: z.enum(["pass", "fail", "skipped"]).nullable(),
  timing: z.strictObject({
    startedAt: z.string().max(40).nullable(),
    finishedAt: z.string().max(40).nullable(),
    ms: z.number().nonnegative().nullable(),
  }),
  /** Times the stage was started (a restart re-runs an interrupted stage). */
  attempts: z.number().int().nonnegative(),
  facts: z.record(z.string().max(64), z.unknown()),
  note: z.string().max(1000).nullable(),
});
/** A stage record. */
export type StageRecord = z.infer<typeof StageRecordSchema>;

/**
 * What the sandboxed `diffusion_checks` job reports on a directory artifact (stage 2 `gate`,
 * stage 7 `deep`; `DirectoryReport` of `scanners/diffusion.ts`), validated by its callers.
 */
export const DirectoryReportSchema = z.strictObject({
  findings: z.array(FindingSchema).max(10_000),
  files: z.number().int().nonnegative(),
  directories: z.number().int().nonnegative(),
  totalBytes: z.number().int().nonnegative(),
  safetensors: z.number().int().nonnegative(),
  components: z.array(z.string().max(128)).max(1000),
  className: z.string().max(128).nullable(),
});
/** A directory report. */
export type DirectoryReport = z.infer<typeof DirectoryReportSchema>;

/**
 * What the sandboxed `static_scan` job reports on an artifact (stage 5 and `secai scan`;
 * `ScanReport` of `scanners/types.ts`), validated by its callers.
 */
export const ScanReportSchema = z.strictObject({
  format: z.string().max(64),
  verdict: z.enum(["clean", "threat", "invalid"]),
  findings: z.array(FindingSchema).max(100_000),
  bytesScanned: z.number().int().nonnegative(),
  ms: z.number().nonnegative(),
});

/** Lifecycle of a job. Terminal: promoted, rejected, cancelled. */
export const JobStateSchema = z.enum([
  "queued",
  "running",
  "awaiting_approval",
  "promoting",
  "promotion_failed",
  "promoted",
  "rejected",
  "cancelled",
]);
/** A job state. */
export type JobState = z.infer<typeof JobStateSchema>;

/** A job id: `q` and 24 hex digits. */
export const JobIdSchema = z.string().regex(/^q[0-9a-f]{24}$/);

/** The policy decision that settled (or holds) a promotion. */
export const PromotionDecisionSchema = z.strictObject({
  decision: z.enum(["allow", "deny", "ask"]),
  rule: z.string().max(200),
  reasons: z.array(z.string().max(1000)).max(32),
  policy_version: z.string().max(100),
});
/** A promotion decision. */
export type PromotionDecision = z.infer<typeof PromotionDecisionSchema>;

/** A job without its stage records (lists). */
export const JobSummarySchema = z.strictObject({
  id: JobIdSchema,
  /** The name the artifact was submitted under (display only; never a path). */
  filename: z.string().max(255),
  /** `local-import`, or the origin URL. */
  source: z.string().max(4096),
  state: JobStateSchema,
  /** Stage running now, or the one that decided the outcome. */
  stage: StageNameSchema.nullable(),
  format: ArtifactFormatSchema.nullable(),
  size: z.number().int().nonnegative(),
  /** Bytes of the current stage's pass over the artifact. */
  bytesDone: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  fsverity: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  /** Why the job did not get promoted: failure class and message. */
  error: z.strictObject({ code: z.string().max(64), message: z.string().max(2000) }).nullable(),
  decision: PromotionDecisionSchema.nullable(),
  /** Registry id once promoted. */
  modelId: z.string().max(64).nullable(),
  createdAt: z.string().max(40),
  updatedAt: z.string().max(40),
});
/** A job summary. */
export type JobSummary = z.infer<typeof JobSummarySchema>;

/** A job with every stage record. */
export const JobSchema = JobSummarySchema.extend({
  stages: z.array(StageRecordSchema).max(STAGE_NAMES.length),
});
/** A job. */
export type Job = z.infer<typeof JobSchema>;

/**
 * A name an artifact may be submitted under: a bare file name (no path, no leading dot, no
 * control characters), ≤ 255 bytes.
 */
export const ArtifactNameSchema = z.string().min(1).max(255).regex(
  /^[A-Za-z0-9_+()\[\]-][A-Za-z0-9._+()\[\]-]*$/,
  "expected a bare file name of letters, digits and . _ + - ( ) [ ]",
);

/** Our own detached signature: Ed25519 over {@link signedMessage}. */
export const Ed25519SignatureSchema = z.strictObject({
  version: z.literal(1),
  algorithm: z.literal("ed25519"),
  /** Id of a key in `quarantine.trustedKeys`. */
  keyId: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
  /** Base64 of the 64-byte Ed25519 signature over {@link signedMessage}. */
  signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/),
});

/** Largest OpenSSF model signing bundle accepted (one file's bundle is a few KiB). */
export const MAX_SIGNATURE_BUNDLE_BYTES = 256 * 1024;

/**
 * An OpenSSF model signing bundle (`model_signing sign key`, a Sigstore v0.3 bundle), kept
 * as the text it arrived as; verified by the provenance stage against an EC trusted key.
 */
export const SigstoreBundleSignatureSchema = z.strictObject({
  version: z.literal(1),
  algorithm: z.literal("sigstore-bundle"),
  bundle: z.string().min(2).max(MAX_SIGNATURE_BUNDLE_BYTES),
});

/** A detached signature of an artifact (optional sidecar; verified by the provenance stage). */
export const ArtifactSignatureSchema = z.union([
  Ed25519SignatureSchema,
  SigstoreBundleSignatureSchema,
]);
/** A detached artifact signature. */
export type ArtifactSignature = z.infer<typeof ArtifactSignatureSchema>;

/**
 * Reads a signature document: our JSON form, or an OpenSSF model signing bundle as written
 * by `model_signing` (recognised by its Sigstore bundle media type).
 * @param text the document
 * @returns the signature, or why the text is not one
 */
export function parseSignatureText(text: string): ArtifactSignature | string {
  if (text.length > MAX_SIGNATURE_BUNDLE_BYTES) return "The signature document is too large";
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "The signature document is not JSON";
  }
  const mediaType = typeof value === "object" && value !== null
    ? (value as { mediaType?: unknown }).mediaType
    : undefined;
  if (typeof mediaType === "string" && mediaType.startsWith("application/vnd.dev.sigstore")) {
    return { version: 1, algorithm: "sigstore-bundle", bundle: text };
  }
  const parsed = ArtifactSignatureSchema.safeParse(value);
  return parsed.success ? parsed.data : "The signature document is not a valid signature";
}

/** Domain separation of artifact signatures. */
export const SIGNATURE_CONTEXT = "SecAI-Model-Signature-v1";

/**
 * The bytes an artifact signature covers: context, NUL, the artifact's SHA-256 in lowercase
 * hex, NUL, its size in decimal. Binding the size too means a signature cannot be replayed
 * onto a truncated or extended file that somehow shared a prefix digest.
 * @param sha256 64 lowercase hex
 * @param size bytes
 * @returns UTF-8 bytes to sign or verify
 */
export function signedMessage(sha256: string, size: number): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${SIGNATURE_CONTEXT}\0${sha256}\0${size}`);
}

/**
 * A ticket an importer (the CLI) writes beside an inbox item as `.<name>.ticket`, to find
 * the job its item became. Not a secret; 24 lowercase hex.
 */
export const TicketSchema = z.string().regex(/^[0-9a-f]{24}$/);

/** Largest upload chunk over RPC. */
export const MAX_CHUNK_BYTES = 1 << 20;
const UploadIdSchema = z.string().regex(/^u[0-9a-f]{24}$/);

/** The quarantine contract (gateway, CLI). */
export const quarantineApi = defineApi("quarantine", {
  /**
   * Opens an upload into the inbox; bytes follow with `uploadChunk`. A `directory` upload
   * (a diffusion model folder, spec 13 §4) names the directory; each of its files is opened
   * with `uploadEntry`, then its bytes follow.
   */
  uploadBegin: {
    input: z.strictObject({
      filename: ArtifactNameSchema,
      /** Declared size, if known: checked against the limit now and the bytes at the end. */
      size: z.number().int().nonnegative().optional(),
      signature: ArtifactSignatureSchema.optional(),
      kind: z.enum(["file", "directory"]).optional(),
    }),
    output: z.strictObject({ uploadId: UploadIdSchema, maxBytes: z.number().int().positive() }),
  },
  /**
   * Starts the next file of a directory upload (the previous one is complete); its bytes
   * follow with `uploadChunk`, offsets counted from the start of this file.
   */
  uploadEntry: {
    input: z.strictObject({
      uploadId: UploadIdSchema,
      path: EntryPathSchema,
      /** Declared size, if known: checked at the next entry or at the end. */
      size: z.number().int().nonnegative().optional(),
    }),
    output: z.strictObject({ entries: z.number().int().positive() }),
  },
  /** Appends bytes at `offset` (must equal the bytes received so far of the file). */
  uploadChunk: {
    input: z.strictObject({
      uploadId: UploadIdSchema,
      offset: z.number().int().nonnegative(),
      data: z.custom<Uint8Array>(
        (d) => d instanceof Uint8Array && d.byteLength > 0 && d.byteLength <= MAX_CHUNK_BYTES,
        `expected 1 to ${MAX_CHUNK_BYTES} bytes`,
      ),
    }),
    output: z.strictObject({ received: z.number().int().nonnegative() }),
  },
  /** Closes the upload, claims the artifact and queues its job. */
  uploadFinish: {
    input: z.strictObject({ uploadId: UploadIdSchema }),
    output: JobSummarySchema,
  },
  /** Discards an upload. */
  uploadAbort: {
    input: z.strictObject({ uploadId: UploadIdSchema }),
    output: z.strictObject({}),
  },
  /** Jobs, newest first. */
  list: {
    input: z.strictObject({
      limit: z.number().int().min(1).max(500).default(50),
      state: JobStateSchema.optional(),
      /** The ticket an importer left beside an inbox item (`.<name>.ticket`). */
      ticket: TicketSchema.optional(),
    }),
    output: z.strictObject({ jobs: z.array(JobSummarySchema).max(500) }),
  },
  /** One job with its stage records. */
  get: { input: z.strictObject({ id: JobIdSchema }), output: JobSchema },
  /** Stops a job that has not finished; its artifact is deleted. */
  cancel: { input: z.strictObject({ id: JobIdSchema }), output: JobSummarySchema },
  /**
   * Approves a job the promotion policy answered `ask` for, or retries a promotion that
   * failed (registry or policy unreachable). The registry asks the policy again.
   */
  promote: { input: z.strictObject({ id: JobIdSchema }), output: JobSummarySchema },
});

/** A URL prefix models may come from (spec 13 §3 stage 1, `sources.allowlist.yaml`). */
export const SourceRuleSchema = z.strictObject({
  /** `https://host/path-prefix` */
  urlPrefix: z.string().max(4096).regex(/^https:\/\/[a-z0-9.-]+(\/[^\s?#]*)?$/),
  formats: z.array(ModelFormatSchema).min(1).max(2),
  requireSignature: z.boolean().default(false),
});

/** A pin in the lock (spec 13 §3 stage 3, `models.lock.yaml`). */
export const PinSchema = z.strictObject({
  name: z.string().min(1).max(512),
  format: ModelFormatSchema,
  source: z.string().max(4096).nullable().default(null),
  sourceRevision: z.string().regex(/^[0-9a-f]{40}$/).nullable().default(null),
  filename: ArtifactNameSchema,
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex"),
  sizeBytes: z.number().int().positive().max(64 * 2 ** 30),
  blocked: z.boolean().default(false),
  blockedReason: z.string().max(1000).nullable().default(null),
});
/** A lock pin. */
export type Pin = z.infer<typeof PinSchema>;

/** A key whose signatures the provenance stage accepts: exactly one of the two forms. */
export const TrustedKeySchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
  /** Base64 of the raw 32-byte Ed25519 public key (our own signatures). */
  publicKey: z.string().regex(
    /^[A-Za-z0-9+/]{43}=$/,
    "expected the base64 of a raw 32-byte Ed25519 public key (44 characters)",
  ).optional(),
  /** SPKI PEM of an EC key (P-256/384/521) that signs OpenSSF model signing bundles. */
  publicKeyPem: z.string().max(4096).regex(
    /^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n?$/,
    "expected an SPKI PEM public key",
  ).optional(),
}).refine((k) => (k.publicKey === undefined) !== (k.publicKeyPem === undefined), {
  message: "give exactly one of publicKey (Ed25519, base64) or publicKeyPem (EC, SPKI PEM)",
});

/** Config section `quarantine`. */
export const QuarantineConfigSchema = z.strictObject({
  /** Largest artifact accepted (spec 13 §6: ≤ 64 GiB). */
  maxArtifactBytes: z.number().int().min(1024).max(64 * 2 ** 30).default(64 * 2 ** 30),
  /** Formats admitted by the format gate (`models.allowed_formats`). */
  allowedFormats: z.array(ModelFormatSchema).min(1).max(2).default(["gguf", "safetensors"]),
  /** Unsigned artifacts fail the provenance stage. */
  requireSignature: z.boolean().default(false),
  trustedKeys: z.array(TrustedKeySchema).max(64).default([]),
  /** Remote origins; an empty list refuses every remote source. */
  sources: z.array(SourceRuleSchema).max(256).default([
    { urlPrefix: "https://huggingface.co", formats: ["gguf", "safetensors"] },
    { urlPrefix: "https://cas-bridge.xethub.hf.co", formats: ["gguf", "safetensors"] },
    { urlPrefix: "https://registry.ollama.ai", formats: ["gguf"] },
  ]),
  pins: z.array(PinSchema).max(10_000).default([]),
  /** Inbox poll period (spec 13 §2: 5 s). */
  inboxPollMs: z.number().int().min(200).max(600_000).default(5_000),
  /** Wall clock of one sandboxed stage job (the runner caps it at 10 min). */
  stageTimeoutMs: z.number().int().min(1_000).max(1_200_000).default(600_000),
  /** JS heap and extra address space of a sandboxed scan job. */
  scanHeapMb: z.number().int().min(64).max(8192).default(512),
  scanMemMb: z.number().int().min(256).max(65536).default(4096),
}).default({});
/** Quarantine config. */
export type QuarantineConfig = z.infer<typeof QuarantineConfigSchema>;
