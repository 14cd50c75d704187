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
 * Loading: `resolve` re-hashes the blob (SHA-256 and fs-verity) before it hands out a path;
 * a mismatch revokes the model as tampered and moves the blob aside for forensics. The same
 * runs for every model on a timer (spec 13 §7).
 * @module
 */
import { digestFile } from "../../runtime/kit/digest.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import { syncDir } from "../../runtime/kit/fs.ts";
import type { RpcClient } from "../../runtime/kit/rpc.ts";
import type { auditAppendApi } from "../audit/api.ts";
import type { Decision, policyApi } from "../policy/api.ts";
import type { PromotionDecision } from "../quarantine/api.ts";
import type { Model, PromoteRequest, PromoteResult } from "./api.ts";
import { RegistryError } from "./errors.ts";
import { type SignedManifest, type SigningKey, signManifest, writeManifest } from "./signing.ts";
import { type ModelStore, publicModel, type StoredModel } from "./store.ts";

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

/** What the registry needs from its control. */
export interface RegistryOptions {
  home: string;
  store: ModelStore;
  key: SigningKey;
  policy: () => RpcClient<typeof policyApi>;
  audit: () => RpcClient<typeof auditAppendApi>;
  emit(type: string, data: Record<string, unknown>): void;
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
   * @throws {RegistryError} CONFLICT, REVOKED_CONTENT, INVALID_STAGED, INTEGRITY_MISMATCH,
   * POLICY_UNAVAILABLE, AUDIT_UNAVAILABLE
   */
  async promote(request: PromoteRequest, caller: string): Promise<PromoteResult> {
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
      return await this.#transaction(request, name, caller);
    } finally {
      this.#promoting.delete(request.sha256);
    }
  }

  async #transaction(
    request: PromoteRequest,
    name: string,
    caller: string,
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
        },
        data: { filename: request.filename, jobId: request.jobId, source: request.source },
      }, { deadlineMs: AUDIT_DEADLINE_MS });
    } catch (error) {
      // An unrecorded promotion does not happen (ARCHITECTURE.md principle 6).
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
   * Re-hashes a model's blob; a mismatch (or a missing blob) revokes it as tampered.
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
    try {
      const info = await Deno.lstat(`${this.#o.home}/${model.blob}`);
      if (!info.isFile) throw new Error("the blob is not a regular file");
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
      this.#o.store.markVerified(id, at);
      return { id, status: "verified", expected, actual, verifiedAt: at, error: null };
    }
    await this.#tampered(model, actual, error ?? "content does not match the promoted hash");
    return {
      id,
      status: "tampered",
      expected,
      actual,
      verifiedAt: at,
      error: error ?? "hash mismatch",
    };
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

  /** Re-hashes every active model (timer and operator). */
  async verifyAll(options: { signal?: AbortSignal } = {}): Promise<Verification[]> {
    const results: Verification[] = [];
    for (const model of this.#o.store.list({ includeRevoked: false })) {
      options.signal?.throwIfAborted();
      results.push(await this.verify(model.id, options));
    }
    const failed = results.filter((r) => r.status !== "verified").length;
    this.#o.emit("registry.verified_all", { checked: results.length, failed });
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
  ): Promise<void> {
    const at = new Date().toISOString();
    this.#o.store.revoke(model.id, `tampered: ${reason}`.slice(0, 1000), at);
    const evidence = `${TAMPERED_DIR}/${model.sha256}-${Date.now()}.${model.format}`;
    await Deno.rename(`${this.#o.home}/${model.blob}`, `${this.#o.home}/${evidence}`)
      .catch(ignoreNotFound);
    await this.#publish();
    this.#o.emit("registry.tampered", {
      id: model.id,
      severity: "critical",
      expected: model.sha256,
      actual: actual.sha256,
    });
    await this.#auditBestEffort({
      type: "registry.tampered",
      subject: model.id,
      decision: "deny",
      evidence: { severity: "critical", expected: model.sha256, actual: actual.sha256, reason },
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

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}
