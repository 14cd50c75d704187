/**
 * The trusted registry (spec 13 §6–§7): promotion transaction, content-addressed store,
 * revocation, re-verification and the signed manifest.
 *
 * Promotion, in order (each step fails closed): the content is not revoked and not promoted
 * already, the name is free; the policy control decides `model_promotion` (`deny` ⇒ denied,
 * `ask` ⇒ awaiting approval unless a person approved, no answer ⇒ POLICY_UNAVAILABLE); the
 * staged file (a bare name in `promotion-staging/`, single-link regular file) is moved into
 * the store and re-hashed there, so what is stored is exactly what was scanned (else
 * INTEGRITY_MISMATCH, spec 13 §2 "artifact_changed_during_scan"); the promotion is written
 * to the audit log, then the manifest row, then the signed manifest export.
 *
 * Inside the same transaction, after the re-hash, the sandboxed `tensor_manifest` job lists
 * the stored file's tensors; the registry validates that list, computes the structural
 * fingerprint and writes the manifest file (spec 13 §6, weakness 2). No manifest, no
 * promotion: a job failure gives the staged file back (a retry may follow); only a file
 * with more tensors than a manifest may list is promoted with the manifest `skipped`.
 *
 * Loading: `resolve` re-hashes the blob (SHA-256 and fs-verity) before it hands out a path;
 * a mismatch revokes the model as tampered and moves the blob aside for forensics, naming
 * the tensors that changed (from the stored manifest's byte ranges). The same runs for every
 * model on a timer (spec 13 §7). `verifyManifest` also derives the manifest again in the
 * sandbox and compares it tensor by tensor.
 * @module
 */
import { digestFile } from "../../runtime/kit/digest.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import { ignoreNotFound, syncDir } from "../../runtime/kit/fs.ts";
import type { RpcClient } from "../../runtime/kit/rpc.ts";
import type { sandboxApi } from "../../runtime/kit/sandbox_api.ts";
import type { auditAppendApi } from "../audit/api.ts";
import type { Decision, policyApi } from "../policy/api.ts";
import type { PromotionDecision } from "../quarantine/api.ts";
import type {
  ManifestCheck,
  Model,
  PromoteRequest,
  PromoteResult,
  TensorCheck,
  TensorManifestRef,
} from "./api.ts";
import { RegistryError } from "./errors.ts";
import { type SignedManifest, type SigningKey, signManifest, writeManifest } from "./signing.ts";
import { type ModelStore, publicModel, type StoredModel } from "./store.ts";
import {
  compareManifests,
  locateChanges,
  manifestFromFacts,
  readTensorManifest,
  type TensorManifest,
  writeTensorManifest,
} from "./tensor_manifest.ts";

/** The store of blobs, relative to the state dir. */
export const MODELS_DIR = "registry/models";
/** Blobs of tampered models, kept as evidence and never served. */
export const TAMPERED_DIR = "registry/tampered";
/** Where the quarantine stages artifacts for promotion. */
export const STAGING_DIR = "promotion-staging";
/** Quantisation suffixes dropped from a model's name (spec 13 §5). */
const QUANT_SUFFIXES = [".Q4_K_M", ".Q5_K_M", ".Q8_0", ".Q4_0", ".Q6_K", ".f16", ".f32"];
/** Time the policy control has to decide. */
const POLICY_DEADLINE_MS = 5_000;
const AUDIT_DEADLINE_MS = 5_000;
/** The sandbox job that lists a model's tensors (runtime/manifest.ts, registry's `jobs`). */
const MANIFEST_JOB = "tensor_manifest";
/** Its wall clock: a base plus one read of the file at a slow 50 MB/s, at most 10 min. */
const MANIFEST_JOB_BASE_MS = 30_000;
const MANIFEST_JOB_BYTES_PER_MS = 50_000;
const MANIFEST_JOB_MAX_MS = 600_000;
/** Left of the caller's deadline after the job, for the rest of the call: up to 10 s. */
const MANIFEST_JOB_DEADLINE_MARGIN_MS = 10_000;
/** …and never more than this share of the time left. */
const MANIFEST_JOB_DEADLINE_MARGIN_SHARE = 0.25;
/** Time beyond the job's own limit before the sandbox call itself times out. */
const SANDBOX_CALL_MARGIN_MS = 15_000;
/** Names of changed tensors kept in an audit entry and a revocation reason. */
const AUDIT_TENSOR_NAMES = 50;

/** What the registry needs from its control. */
export interface RegistryOptions {
  home: string;
  store: ModelStore;
  key: SigningKey;
  policy: () => RpcClient<typeof policyApi>;
  audit: () => RpcClient<typeof auditAppendApi>;
  /** Runs the `tensor_manifest` job (the registry never parses a model file itself). */
  sandbox: () => RpcClient<typeof sandboxApi>;
  emit(type: string, data: Record<string, unknown>): void;
}

/** Cancellation and the caller's deadline (epoch ms), which bound the manifest job. */
export interface CallOptions {
  signal?: AbortSignal;
  deadline?: number;
}

/** A verified blob. */
export interface Resolved {
  id: string;
  path: string;
  format: Model["format"];
  size: number;
  sha256: string;
  fsverity: string;
  verifiedAt: string;
}

/** Result of re-hashing one model. */
export interface Verification {
  id: string;
  status: "verified" | "tampered";
  expected: { sha256: string; fsverity: string; size: number };
  actual: { sha256: string | null; fsverity: string | null; size: number | null };
  verifiedAt: string;
  error: string | null;
  tensors: TensorCheck;
}

/**
 * The model's name: file stem without a quantisation suffix.
 * @param filename e.g. `phi-3.Q4_K_M.gguf`
 * @returns e.g. `phi-3`
 */
export function modelName(filename: string): string {
  let stem = filename.replace(/\.(gguf|safetensors)$/i, "");
  for (const suffix of QUANT_SUFFIXES) {
    if (stem.endsWith(suffix)) {
      stem = stem.slice(0, -suffix.length);
      break;
    }
  }
  return stem || filename;
}

/** The registry's logic. */
export class Registry {
  readonly #o: RegistryOptions;
  /** Content being promoted right now (one transaction per hash). */
  readonly #promoting = new Set<string>();

  /** @param options store, key, clients and event sink */
  constructor(options: RegistryOptions) {
    this.#o = options;
  }

  /** Active (or all) models. */
  list(includeRevoked: boolean): Model[] {
    return this.#o.store.list({ includeRevoked }).map(publicModel);
  }

  /**
   * One model.
   * @throws {RegistryError} MODEL_NOT_FOUND
   */
  get(id: string): Model {
    return publicModel(this.#o.store.require(id));
  }

  /**
   * Runs the promotion transaction.
   * @param request what the quarantine established
   * @param caller the control that asked (from the port, not the request)
   * @param options the call's signal and deadline (they bound the tensor manifest job)
   * @throws {RegistryError} CONFLICT, REVOKED_CONTENT, INVALID_STAGED, INTEGRITY_MISMATCH,
   * POLICY_UNAVAILABLE, AUDIT_UNAVAILABLE, MANIFEST_FAILED
   */
  async promote(
    request: PromoteRequest,
    caller: string,
    options: CallOptions = {},
  ): Promise<PromoteResult> {
    const existing = this.#o.store.bySha256(request.sha256);
    if (existing !== null) {
      if (existing.revokedAt !== null) {
        throw new RegistryError(
          "REVOKED_CONTENT",
          `Content ${request.sha256} was revoked (${
            existing.revokedReason ?? "no reason"
          }) and cannot be promoted again`,
        );
      }
      // A retry of a promotion that completed before the quarantine recorded it.
      if (existing.jobId === request.jobId) {
        return { status: "promoted", model: publicModel(existing) };
      }
      throw new RegistryError(
        "CONFLICT",
        `Content ${request.sha256} is already promoted as "${existing.id}"`,
      );
    }
    const name = modelName(request.filename);
    const clash = this.#o.store.activeByName(name, request.filename)[0];
    if (clash !== undefined) {
      throw new RegistryError(
        "CONFLICT",
        `Model "${clash.id}" already uses the name "${name}" or file name "${request.filename}"`,
      );
    }
    if (this.#promoting.has(request.sha256)) {
      throw new RegistryError("CONFLICT", `Content ${request.sha256} is being promoted already`);
    }
    this.#promoting.add(request.sha256);
    try {
      return await this.#transaction(request, name, caller, options);
    } finally {
      this.#promoting.delete(request.sha256);
    }
  }

  async #transaction(
    request: PromoteRequest,
    name: string,
    caller: string,
    options: CallOptions,
  ): Promise<PromoteResult> {
    const decision = await this.#decide(request, name);
    const summary: PromotionDecision = {
      decision: decision.decision,
      rule: decision.rule,
      reasons: decision.reasons,
      policy_version: decision.policy_version,
    };
    if (decision.decision === "deny") {
      this.#o.emit("registry.promotion_denied", { jobId: request.jobId, rule: decision.rule });
      await this.#auditBestEffort({
        type: "registry.promotion_denied",
        subject: request.sha256,
        decision: "deny",
        evidence: { rule: decision.rule, policy_version: decision.policy_version },
        data: { jobId: request.jobId, filename: request.filename },
      });
      return { status: "denied", decision: summary };
    }
    if (decision.decision === "ask" && request.approval === null) {
      this.#o.emit("registry.awaiting_approval", { jobId: request.jobId, rule: decision.rule });
      return { status: "awaiting_approval", decision: summary };
    }
    if (decision.decision !== "allow" && decision.decision !== "ask") {
      throw new RegistryError("POLICY_UNAVAILABLE", "The policy answered with an unknown decision");
    }

    const { home } = this.#o;
    const staged = `${home}/${STAGING_DIR}/${request.staged}`;
    const info = await Deno.lstat(staged).catch((error: unknown) => {
      if (error instanceof Deno.errors.NotFound) {
        throw new RegistryError(
          "INVALID_STAGED",
          `Staged artifact "${request.staged}" does not exist`,
        );
      }
      throw error;
    });
    if (!info.isFile || (info.nlink ?? 1) !== 1) {
      throw new RegistryError(
        "INVALID_STAGED",
        `Staged artifact "${request.staged}" is not a single-link regular file`,
      );
    }
    // Move first, then hash: once in the store nobody else can write it, so the hash holds.
    const id = `m${request.sha256.slice(0, 24)}`;
    const incoming = `${home}/${MODELS_DIR}/.incoming-${id}`;
    await Deno.rename(staged, incoming);
    const giveBack = () => Deno.rename(incoming, staged);
    let digests;
    try {
      digests = await digestFile(incoming);
    } catch (error) {
      await giveBack();
      throw error;
    }
    if (
      digests.sha256 !== request.sha256 || digests.fsverity !== request.fsverity ||
      digests.size !== request.size
    ) {
      await Deno.remove(incoming);
      await this.#auditBestEffort({
        type: "registry.artifact_changed",
        subject: request.sha256,
        decision: "deny",
        evidence: { expected: request.sha256, actual: digests.sha256 },
        data: { jobId: request.jobId },
      });
      throw new RegistryError(
        "INTEGRITY_MISMATCH",
        `Staged artifact changed after its scan: SHA-256 ${digests.sha256}, expected ${request.sha256}`,
      );
    }
    // The tensor manifest of exactly the content just hashed (spec 13 §6, weakness 2).
    let tensorManifest: TensorManifestRef;
    let manifestFile: string | null = null;
    try {
      const derived = await this.#deriveManifest(`${MODELS_DIR}/.incoming-${id}`, request, options);
      if ("skipped" in derived) {
        tensorManifest = {
          status: "skipped",
          fingerprint: null,
          path: null,
          sha256: null,
          tensors: null,
          reason: derived.skipped.slice(0, 1000),
        };
      } else {
        const written = await writeTensorManifest(`${home}/registry`, derived);
        manifestFile = `${home}/registry/${written.path}`;
        tensorManifest = {
          status: "recorded",
          fingerprint: derived.fingerprint,
          path: written.path,
          sha256: written.sha256,
          tensors: derived.tensors.length,
          reason: null,
        };
      }
    } catch (error) {
      await giveBack();
      throw error;
    }
    const dropManifest = () =>
      manifestFile === null ? Promise.resolve() : Deno.remove(manifestFile).catch(() => undefined);
    const blob = `${MODELS_DIR}/${request.sha256}.${request.format}`;
    const now = new Date().toISOString();
    const model: StoredModel = {
      id,
      name,
      filename: request.filename,
      format: request.format,
      size: request.size,
      sha256: request.sha256,
      fsverity: request.fsverity,
      source: request.source,
      provenance: request.provenance,
      signature: request.signature,
      scan: request.scan,
      smokeTest: request.smokeTest,
      decision: { ...summary, approvedBy: request.approval?.by ?? null },
      jobId: request.jobId,
      promotedAt: now,
      promotedBy: caller,
      lastVerifiedAt: now,
      revokedAt: null,
      revokedReason: null,
      tensorManifest,
      blob,
    };
    try {
      await this.#o.audit().call("append", {
        type: "registry.promoted",
        actor: caller,
        subject: id,
        decision: "allow",
        evidence: {
          sha256: request.sha256,
          fsverity: request.fsverity,
          rule: decision.rule,
          policy_version: decision.policy_version,
          approvedBy: request.approval?.by ?? null,
          provenance: request.provenance,
          scan: {
            verdict: request.scan.verdict,
            findings: request.scan.findingsTotal,
            ...request.scan.bySeverity,
          },
          smokeTest: request.smokeTest.status,
          stages: request.stages,
          tensorManifest: {
            status: tensorManifest.status,
            fingerprint: tensorManifest.fingerprint,
            sha256: tensorManifest.sha256,
            tensors: tensorManifest.tensors,
          },
        },
        data: { filename: request.filename, jobId: request.jobId, source: request.source },
      }, { deadlineMs: AUDIT_DEADLINE_MS });
    } catch (error) {
      // An unrecorded promotion does not happen (ARCHITECTURE.md principle 6).
      await dropManifest();
      await giveBack();
      throw new RegistryError(
        "AUDIT_UNAVAILABLE",
        "The promotion cannot be recorded in the audit log",
        {
          cause: error,
        },
      );
    }
    await Deno.chmod(incoming, 0o444);
    await Deno.rename(incoming, `${home}/${blob}`);
    await syncDir(`${home}/${MODELS_DIR}`);
    try {
      this.#o.store.insert(model);
    } catch (error) {
      await Deno.remove(`${home}/${blob}`).catch(() => undefined);
      await dropManifest();
      throw error;
    }
    await this.#publish();
    this.#o.emit("registry.promoted", { id, jobId: request.jobId, sha256: request.sha256 });
    return { status: "promoted", model: publicModel(model) };
  }

  /**
   * Asks the policy control; no decision is an error, never an allow. The input is the
   * `model_promotion` schema of the policy language (policy/schema.ts, strict): the model's
   * name and format and, when the smoke test ran (stage 6, GGUF), its score and critical count.
   * Only a clean scan reaches this point (threat and invalid fail stage 5), and the full
   * request — scan summary, provenance, pin, approval — goes into the audit entry.
   */
  async #decide(request: PromoteRequest, name: string): Promise<Decision> {
    const input: Record<string, unknown> = {
      model: name,
      format: request.format,
      scan_verdict: request.scan.verdict,
      smoke_status: request.smokeTest.status,
      ...(request.smokeTest.score === null ? {} : { smoke_score: request.smokeTest.score }),
      ...(request.smokeTest.critical === null
        ? {}
        : { smoke_critical: request.smokeTest.critical }),
    };
    try {
      return await this.#o.policy().call(
        "decide",
        { domain: "model_promotion", input },
        { deadlineMs: POLICY_DEADLINE_MS },
      );
    } catch (error) {
      const code = error instanceof RpcError ? error.code : "UNKNOWN";
      throw new RegistryError(
        "POLICY_UNAVAILABLE",
        `No model_promotion decision (${code}): the promotion is not made`,
        { cause: error },
      );
    }
  }

  /**
   * Revokes a model: never served again, its blob deleted, its content refused from now on.
   * @throws {RegistryError} MODEL_NOT_FOUND, MODEL_REVOKED
   */
  async revoke(id: string, reason: string, actor: string): Promise<Model> {
    const model = this.#o.store.require(id);
    if (model.revokedAt !== null) {
      throw new RegistryError("MODEL_REVOKED", `Model "${id}" is revoked already`);
    }
    await this.#o.audit().call("append", {
      type: "registry.revoked",
      actor,
      subject: id,
      decision: "deny",
      evidence: { sha256: model.sha256 },
      data: { reason },
    }, { deadlineMs: AUDIT_DEADLINE_MS }).catch((error: unknown) => {
      throw new RegistryError(
        "AUDIT_UNAVAILABLE",
        "The revocation cannot be recorded in the audit log",
        {
          cause: error,
        },
      );
    });
    this.#o.store.revoke(id, reason, new Date().toISOString());
    await Deno.remove(`${this.#o.home}/${model.blob}`).catch(ignoreNotFound);
    await this.#publish();
    this.#o.emit("registry.revoked", { id, reason: reason.slice(0, 200) });
    return this.get(id);
  }

  /**
   * Re-hashes a model's blob; a mismatch (or a missing blob) revokes it as tampered. On a
   * mismatch the stored manifest's byte ranges say which tensors changed; on a match the
   * stored manifest file is checked against its recorded SHA-256.
   * @throws {RegistryError} MODEL_NOT_FOUND, MODEL_REVOKED
   */
  async verify(id: string, options: { signal?: AbortSignal } = {}): Promise<Verification> {
    const model = this.#o.store.require(id);
    if (model.revokedAt !== null) {
      throw new RegistryError("MODEL_REVOKED", `Model "${id}" is revoked: ${model.revokedReason}`);
    }
    const expected = { sha256: model.sha256, fsverity: model.fsverity, size: model.size };
    const at = new Date().toISOString();
    let actual: Verification["actual"] = { sha256: null, fsverity: null, size: null };
    let error: string | null = null;
    let isBlobFile = false;
    try {
      const info = await Deno.lstat(`${this.#o.home}/${model.blob}`);
      if (!info.isFile) throw new Error("the blob is not a regular file");
      isBlobFile = true;
      const d = await digestFile(`${this.#o.home}/${model.blob}`, {
        maxBytes: model.size + 1,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      actual = { sha256: d.sha256, fsverity: d.fsverity, size: d.size };
    } catch (err) {
      if (options.signal?.aborted) throw err;
      error = err instanceof Deno.errors.NotFound
        ? "the blob is missing"
        : err instanceof Error
        ? err.message.slice(0, 500)
        : String(err);
    }
    const isIntact = error === null && actual.sha256 === expected.sha256 &&
      actual.fsverity === expected.fsverity && actual.size === expected.size;
    if (isIntact) {
      const tensors = await this.#checkStoredManifest(model);
      this.#o.store.markVerified(id, at);
      return { id, status: "verified", expected, actual, verifiedAt: at, error: null, tensors };
    }
    const tensors = isBlobFile
      ? await this.#locateChanges(model, options)
      : tensorCheck("unknown", error ?? "the blob cannot be read");
    const located = describeChanges(tensors);
    const join = (first: string) => [first, located].filter((p) => p !== "").join("; ");
    await this.#tampered(
      model,
      actual,
      join(error ?? "content does not match the promoted hash"),
      tensors,
    );
    return {
      id,
      status: "tampered",
      expected,
      actual,
      verifiedAt: at,
      error: join(error ?? "hash mismatch").slice(0, 1000),
      tensors,
    };
  }

  /**
   * The tensor-level manifest check: re-hashes the blob (a mismatch revokes it as tampered
   * and names the changed tensors), then derives the manifest again in the sandbox and
   * compares it with the stored one tensor by tensor.
   * @throws {RegistryError} MODEL_NOT_FOUND, MODEL_REVOKED, MANIFEST_FAILED (the job could
   * not run)
   */
  async verifyManifest(id: string, options: CallOptions = {}): Promise<ManifestCheck> {
    const model = this.#o.store.require(id);
    if (model.revokedAt !== null) {
      throw new RegistryError("MODEL_REVOKED", `Model "${id}" is revoked: ${model.revokedReason}`);
    }
    const ref = model.tensorManifest;
    const result = (
      status: ManifestCheck["status"],
      fields: Partial<Omit<ManifestCheck, "id" | "status" | "checkedAt">>,
    ): ManifestCheck => ({
      id,
      status,
      fingerprint: { expected: ref?.fingerprint ?? null, actual: null },
      tensors: 0,
      changed: [],
      layoutChanged: [],
      added: [],
      removed: [],
      headerChanged: false,
      otherBytesChanged: false,
      reason: null,
      ...fields,
      checkedAt: new Date().toISOString(),
    });
    if (ref === null || ref.status !== "recorded" || ref.path === null || ref.sha256 === null) {
      return result("skipped", {
        reason: ref?.reason ??
          "No tensor manifest was recorded: the model was promoted before manifests were kept",
      });
    }
    const verification = await this.verify(id, options);
    if (verification.status === "tampered") {
      const t = verification.tensors;
      return result("tampered", {
        tensors: ref.tensors ?? 0,
        changed: t.changed,
        headerChanged: t.headerChanged,
        otherBytesChanged: t.otherBytesChanged,
        reason: verification.error,
      });
    }
    let stored: TensorManifest;
    try {
      stored = await readTensorManifest(`${this.#o.home}/registry`, ref.path, ref.sha256);
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error;
      return result("mismatch", { reason: error.message.slice(0, 1000) });
    }
    const derived = await this.#deriveManifest(model.blob, model, options);
    if ("skipped" in derived) {
      return result("mismatch", { tensors: stored.tensors.length, reason: derived.skipped });
    }
    const diff = compareManifests(stored, derived);
    const check = result(diff.isIdentical ? "verified" : "mismatch", {
      fingerprint: { expected: stored.fingerprint, actual: derived.fingerprint },
      tensors: stored.tensors.length,
      changed: diff.changed,
      layoutChanged: diff.layoutChanged,
      added: diff.added,
      removed: diff.removed,
      headerChanged: diff.headerChanged,
      otherBytesChanged: diff.otherBytesChanged,
      reason: diff.isIdentical ? null : "The derived tensor manifest differs from the stored one",
    });
    if (!diff.isIdentical) {
      this.#o.emit("registry.manifest_mismatch", {
        id,
        fingerprintMatches: diff.fingerprintMatches,
      });
      await this.#auditBestEffort({
        type: "registry.manifest_mismatch",
        subject: id,
        decision: "deny",
        evidence: {
          severity: "high",
          expected: stored.fingerprint,
          actual: derived.fingerprint,
          changed: diff.changed.slice(0, AUDIT_TENSOR_NAMES),
          layoutChanged: diff.layoutChanged.slice(0, AUDIT_TENSOR_NAMES),
          added: diff.added.slice(0, AUDIT_TENSOR_NAMES),
          removed: diff.removed.slice(0, AUDIT_TENSOR_NAMES),
        },
        data: {},
      });
    }
    return check;
  }

  /**
   * Runs the sandboxed `tensor_manifest` job on a file of the store and validates its result
   * against what the registry hashed itself.
   * @param rel the file, relative to the state dir
   * @returns the manifest, or why none can be listed (too many tensors, another format)
   * @throws {RegistryError} MANIFEST_FAILED when the job cannot run, fails or answers nonsense
   */
  async #deriveManifest(
    rel: string,
    expected: { format: string; sha256: string; size: number },
    options: CallOptions,
  ): Promise<TensorManifest | { skipped: string }> {
    if (expected.format !== "gguf" && expected.format !== "safetensors") {
      return { skipped: `No tensor manifest for format "${expected.format}"` };
    }
    let timeoutMs = Math.min(
      MANIFEST_JOB_MAX_MS,
      MANIFEST_JOB_BASE_MS + Math.ceil(expected.size / MANIFEST_JOB_BYTES_PER_MS),
    );
    if (options.deadline !== undefined) {
      const left = options.deadline - Date.now();
      const margin = Math.min(
        MANIFEST_JOB_DEADLINE_MARGIN_MS,
        left * MANIFEST_JOB_DEADLINE_MARGIN_SHARE,
      );
      timeoutMs = Math.floor(Math.min(timeoutMs, left - margin));
      if (timeoutMs < 1_000) {
        throw new RegistryError(
          "MANIFEST_FAILED",
          "No time is left of the request to list the model's tensors",
        );
      }
    }
    let job;
    try {
      job = await this.#o.sandbox().call("run", {
        job: MANIFEST_JOB,
        input: { kind: "file", path: rel },
        args: [expected.format],
        limits: { timeoutMs, cpuSec: Math.ceil(timeoutMs / 1_000), heapMb: 512 },
      }, {
        deadlineMs: timeoutMs + SANDBOX_CALL_MARGIN_MS,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const code = error instanceof RpcError ? error.code : "UNKNOWN";
      throw new RegistryError(
        "MANIFEST_FAILED",
        `The tensor manifest job cannot run (${code}): ${
          error instanceof Error ? error.message.slice(0, 300) : String(error)
        }`,
        { cause: error },
      );
    }
    if (job.status !== "ok") {
      if (job.error?.code === "MANIFEST_TOO_LARGE") return { skipped: job.error.message };
      throw new RegistryError(
        "MANIFEST_FAILED",
        `The tensor manifest job ended ${job.status}${
          job.error ? ` (${job.error.code}): ${job.error.message.slice(0, 500)}` : ""
        }`,
      );
    }
    return manifestFromFacts(job.result, expected);
  }

  /** On an intact blob: the stored manifest must still be the one recorded. */
  async #checkStoredManifest(model: StoredModel): Promise<TensorCheck> {
    const ref = model.tensorManifest;
    if (ref === null || ref.status !== "recorded" || ref.path === null || ref.sha256 === null) {
      return tensorCheck("skipped", ref?.reason ?? "no tensor manifest was recorded");
    }
    try {
      await readTensorManifest(`${this.#o.home}/registry`, ref.path, ref.sha256);
      return tensorCheck("intact", null);
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error;
      this.#o.emit("registry.manifest_altered", { id: model.id });
      await this.#auditBestEffort({
        type: "registry.manifest_altered",
        subject: model.id,
        decision: "deny",
        evidence: { severity: "high", manifest: ref.path, recorded: ref.sha256 },
        data: { reason: error.message.slice(0, 500) },
      });
      return tensorCheck("manifest_altered", error.message);
    }
  }

  /** On a hash mismatch: which tensors changed, from the stored manifest's byte ranges. */
  async #locateChanges(
    model: StoredModel,
    options: { signal?: AbortSignal },
  ): Promise<TensorCheck> {
    const ref = model.tensorManifest;
    if (ref === null || ref.status !== "recorded" || ref.path === null || ref.sha256 === null) {
      return tensorCheck("skipped", ref?.reason ?? "no tensor manifest was recorded");
    }
    try {
      const manifest = await readTensorManifest(`${this.#o.home}/registry`, ref.path, ref.sha256);
      const changes = await locateChanges(`${this.#o.home}/${model.blob}`, manifest, options);
      return { status: "changed", ...changes, reason: null };
    } catch (error) {
      if (options.signal?.aborted) throw error;
      if (error instanceof Deno.errors.NotCapable) throw error;
      return tensorCheck(
        "unknown",
        `cannot locate the change: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  /**
   * A verified path for loading: re-hashed now, or refused.
   * @throws {RegistryError} MODEL_NOT_FOUND, MODEL_REVOKED, INTEGRITY_MISMATCH
   */
  async resolve(id: string, options: { signal?: AbortSignal } = {}): Promise<Resolved> {
    const result = await this.verify(id, options);
    if (result.status !== "verified") {
      throw new RegistryError(
        "INTEGRITY_MISMATCH",
        `Model "${id}" failed re-verification (${result.error ?? "hash mismatch"}) and was revoked`,
      );
    }
    const model = this.#o.store.require(id);
    return {
      id,
      path: `${this.#o.home}/${model.blob}`,
      format: model.format,
      size: model.size,
      sha256: model.sha256,
      fsverity: model.fsverity,
      verifiedAt: result.verifiedAt,
    };
  }

  /**
   * Re-hashes every active model (timer and operator), with the tensor checks of `verify`:
   * changed tensors named on a mismatch, stored manifests checked on a match. (Deriving the
   * manifest again, as `verifyManifest` does, could only disagree with a matching hash if
   * the stored manifest were altered, which its recorded SHA-256 already catches.)
   */
  async verifyAll(options: { signal?: AbortSignal } = {}): Promise<Verification[]> {
    const results: Verification[] = [];
    for (const model of this.#o.store.list({ includeRevoked: false })) {
      options.signal?.throwIfAborted();
      results.push(await this.verify(model.id, options));
    }
    const failed = results.filter((r) => r.status !== "verified").length;
    const manifestsAltered = results.filter((r) => r.tensors.status === "manifest_altered").length;
    this.#o.emit("registry.verified_all", { checked: results.length, failed, manifestsAltered });
    return results;
  }

  /** The signed manifest of active models. */
  exportManifest(): Promise<SignedManifest> {
    return signManifest(this.list(false), this.#o.key);
  }

  /** Writes the signed manifest files (after every change and at start). */
  async #publish(): Promise<void> {
    await writeManifest(`${this.#o.home}/registry`, await this.exportManifest());
  }

  /** Writes the manifest at start. */
  publish(): Promise<void> {
    return this.#publish();
  }

  /** Tamper response (spec 13 §7, weakness 4): revoke, move the blob aside, record. */
  async #tampered(
    model: StoredModel,
    actual: Verification["actual"],
    reason: string,
    tensors: TensorCheck,
  ): Promise<void> {
    const at = new Date().toISOString();
    this.#o.store.revoke(model.id, `tampered: ${reason}`.slice(0, 1000), at);
    const evidence = `${TAMPERED_DIR}/${model.sha256}-${Date.now()}.${model.format}`;
    await Deno.rename(`${this.#o.home}/${model.blob}`, `${this.#o.home}/${evidence}`)
      .catch(ignoreNotFound);
    await this.#publish();
    const changes = {
      tensorCheck: tensors.status,
      changedTensors: tensors.changed.slice(0, AUDIT_TENSOR_NAMES),
      changedTensorCount: tensors.changedCount,
      headerChanged: tensors.headerChanged,
      otherBytesChanged: tensors.otherBytesChanged,
    };
    this.#o.emit("registry.tampered", {
      id: model.id,
      severity: "critical",
      expected: model.sha256,
      actual: actual.sha256,
      ...changes,
    });
    await this.#auditBestEffort({
      type: "registry.tampered",
      subject: model.id,
      decision: "deny",
      evidence: {
        severity: "critical",
        expected: model.sha256,
        actual: actual.sha256,
        reason: reason.slice(0, 1000),
        ...changes,
      },
      data: { moved_to: evidence },
    });
  }

  async #auditBestEffort(entry: {
    type: string;
    subject: string;
    decision?: "allow" | "deny" | "ask";
    evidence: Record<string, unknown>;
    data: Record<string, unknown>;
  }): Promise<void> {
    try {
      await this.#o.audit().call("append", { actor: "registry", ...entry }, {
        deadlineMs: AUDIT_DEADLINE_MS,
      });
    } catch (error) {
      this.#o.emit("registry.audit_failed", {
        type: entry.type,
        code: error instanceof RpcError ? error.code : "UNKNOWN",
      });
    }
  }
}

function tensorCheck(status: TensorCheck["status"], reason: string | null): TensorCheck {
  return {
    status,
    changed: [],
    changedCount: 0,
    headerChanged: false,
    otherBytesChanged: false,
    reason: reason === null ? null : reason.slice(0, 1000),
  };
}

/** One line for a revocation reason: which parts of the file changed. */
function describeChanges(check: TensorCheck): string {
  if (check.status !== "changed") return "";
  const parts: string[] = [];
  if (check.changedCount > 0) {
    const names = check.changed.slice(0, AUDIT_TENSOR_NAMES).map((n) => `"${n}"`).join(", ");
    const more = check.changedCount - Math.min(check.changed.length, AUDIT_TENSOR_NAMES);
    parts.push(
      `changed tensor${check.changedCount === 1 ? "" : "s"}: ${names}${
        more > 0 ? ` and ${more} more` : ""
      }`,
    );
  }
  if (check.headerChanged) parts.push("the header (metadata or tensor infos) changed");
  if (check.otherBytesChanged) parts.push("bytes outside the tensors or the size changed");
  return parts.length === 0 ? "no tensor or header range changed" : parts.join("; ");
}
