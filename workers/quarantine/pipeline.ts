/**
 * The quarantine pipeline: one job at a time, seven stages in order, the first failure
 * stops the run. Every stage start and end is written to the job store before the next
 * step, so a restart resumes each unfinished job at the stage that was interrupted (the
 * stages that finished are kept, with their facts). Anything a stage cannot complete fails
 * the job closed. Progress (stage, bytes) goes out as control events; a job can be
 * cancelled at any point before its promotion request.
 *
 * After the stages: the artifact moves to `promotion-staging/` and the registry is asked to
 * promote it; the registry asks the policy control (`model_promotion`) and re-hashes the
 * file. Denied ⇒ rejected; `ask` ⇒ awaiting a person's approval; registry or policy
 * unreachable ⇒ `promotion_failed`, the artifact kept for a retry (spec 13 §1).
 *
 * A directory artifact (diffusion model, spec 13 §4) runs the same seven stages; the
 * registry stores single files only, so its promotion is put to the policy control directly,
 * which refuses local directories (spec 13 §4: only remote sources pinned in the diffusion
 * lock are ever promoted). Whatever the policy answers, a directory is never promoted here.
 * @module
 */
import type { RpcClient } from "../../runtime/kit/rpc.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import { ignoreNotFound } from "../../runtime/kit/fs.ts";
import type { sandboxApi } from "../../runtime/kit/sandbox_api.ts";
import type { engineApi } from "../../runtime/kit/engine_api.ts";
import { treeIdentityOf, walkTree } from "../../runtime/kit/tree.ts";
import type { auditAppendApi } from "../audit/api.ts";
import type { policyApi } from "../policy/api.ts";
import type { PromoteRequest, registryPromoteApi } from "../registry/api.ts";
import {
  type Finding,
  type JobSummary,
  type QuarantineConfig,
  STAGE_NAMES,
  type StageName,
} from "./api.ts";
import { QuarantineError, StageFailure } from "./errors.ts";
import { STAGES } from "./stages/mod.ts";
import { type Facts, FactsSchema, type StageContext, type StageOutcome } from "./stages/stage.ts";
import { boundFindings } from "./stages/static_scan.ts";
import { fileIdOf } from "./stages/integrity_pin.ts";
import type { JobStore, StoredJob } from "./store.ts";

/** Where artifacts live while their job runs (private to the quarantine control). */
export const PROCESSING_DIR = "quarantine/processing";
/** Where an artifact waits for the registry's promotion transaction. */
export const STAGING_DIR = "promotion-staging";
/** Least time between two progress events of one job. */
const PROGRESS_INTERVAL_MS = 250;
/** Time the registry may take on top of re-hashing the artifact. */
const PROMOTE_BASE_DEADLINE_MS = 60_000;
/** Slowest read rate assumed when giving the registry a deadline (bytes per ms). */
const PROMOTE_MIN_BYTES_PER_MS = 50_000;
/** Passes the registry makes over the artifact: copy into its store, re-hash, and the
 * sandboxed per-tensor manifest job. */
const PROMOTE_PASSES = 3;
/** Registry refusals that no retry can change: the job is rejected. */
const TERMINAL_REGISTRY_CODES: ReadonlySet<string> = new Set([
  "CONFLICT",
  "REVOKED_CONTENT",
  "INTEGRITY_MISMATCH",
  "INVALID_STAGED",
]);
/** Time beyond a sandbox job's own limit before the call itself times out. */
const SANDBOX_DEADLINE_MARGIN_MS = 15_000;

/** What the pipeline needs from its control. */
export interface PipelineOptions {
  home: string;
  store: JobStore;
  config: QuarantineConfig;
  sandbox: () => RpcClient<typeof sandboxApi>;
  /** The `engine` port (stage 6 runs the candidate in the sandboxed inference engine). */
  engine: () => RpcClient<typeof engineApi>;
  registry: () => RpcClient<typeof registryPromoteApi>;
  /** The `policy` port: the promotion decision of a directory artifact. */
  policy: () => RpcClient<typeof policyApi>;
  audit: () => RpcClient<typeof auditAppendApi>;
  emit(type: string, data: Record<string, unknown>): void;
  /** Aborted when the control stops: the running stage is interrupted, not failed. */
  signal: AbortSignal;
}

/** Thrown inside a run when it must stop without a verdict (control stopping). */
class Interrupted extends Error {
  constructor() {
    super("The quarantine control is stopping");
    this.name = "Interrupted";
  }
}

/** Runs quarantine jobs. */
export class Pipeline {
  readonly #o: PipelineOptions;
  readonly #queue: { id: string; approval: PromoteRequest["approval"] }[] = [];
  #current: { id: string; controller: AbortController; done: Promise<void> } | null = null;
  #loop: Promise<void> | null = null;

  /** @param options store, config, clients and event sink */
  constructor(options: PipelineOptions) {
    this.#o = options;
  }

  /** Queues every job a restart must finish (interrupted stages run again). */
  resume(): string[] {
    const ids = this.#o.store.unfinished();
    for (const id of ids) {
      this.#o.store.resetInterrupted(id);
      this.#o.emit("quarantine.resumed", { jobId: id });
      this.#enqueue(id, null);
    }
    return ids;
  }

  /** Queues a new job. */
  submit(id: string): void {
    this.#enqueue(id, null);
  }

  /** Waits until the queue is empty (tests, stop). */
  async idle(): Promise<void> {
    while (this.#loop !== null) await this.#loop;
  }

  /**
   * Cancels a job that has not finished. Its artifact is deleted.
   * @throws {QuarantineError} JOB_NOT_FOUND, INVALID_STATE
   */
  async cancel(id: string, actor: string): Promise<JobSummary> {
    const job = this.#o.store.require(id);
    if (this.#current?.id === id && job.state !== "promoting") {
      const { controller, done } = this.#current;
      controller.abort(new CancelledError());
      // The run loop records the cancellation; wait for it so the answer is final.
      await done;
      return this.#o.store.summary(id);
    }
    if (!["queued", "awaiting_approval", "promotion_failed"].includes(job.state)) {
      throw new QuarantineError(
        "INVALID_STATE",
        `Cannot cancel job "${id}" in state "${job.state}"`,
      );
    }
    const index = this.#queue.findIndex((q) => q.id === id);
    if (index >= 0) this.#queue.splice(index, 1);
    await this.#finishCancelled(job, actor);
    return this.#o.store.summary(id);
  }

  /**
   * Approves a job awaiting approval, or retries a failed promotion request.
   * @throws {QuarantineError} JOB_NOT_FOUND, INVALID_STATE
   */
  approve(id: string, actor: string): JobSummary {
    const job = this.#o.store.require(id);
    if (job.state !== "awaiting_approval" && job.state !== "promotion_failed") {
      throw new QuarantineError(
        "INVALID_STATE",
        `Cannot promote job "${id}" in state "${job.state}": only a job awaiting approval or a failed promotion can`,
      );
    }
    this.#o.store.update(id, { state: "promoting", error: null });
    const approval = job.state === "awaiting_approval"
      ? { by: actor, at: new Date().toISOString() }
      : null;
    this.#enqueue(id, approval);
    return this.#o.store.summary(id);
  }

  #enqueue(id: string, approval: PromoteRequest["approval"]): void {
    if (this.#queue.some((q) => q.id === id) || this.#current?.id === id) return;
    this.#queue.push({ id, approval });
    this.#loop ??= this.#drain().finally(() => {
      this.#loop = null;
    });
  }

  async #drain(): Promise<void> {
    for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) {
      if (this.#o.signal.aborted) return;
      const controller = new AbortController();
      const onStop = () => controller.abort(new Interrupted());
      this.#o.signal.addEventListener("abort", onStop, { once: true });
      const run = this.#run(next.id, next.approval, controller.signal);
      this.#current = { id: next.id, controller, done: run.then(() => {}, () => {}) };
      try {
        await run;
      } catch (error) {
        // Stopping leaves the job as it is: the next start resumes it.
        if (error instanceof Interrupted) return;
        // A failure outside any stage (the store, a rename): the job cannot be judged, so
        // it is rejected; when even that fails the control reports it and stays up.
        this.#o.emit("quarantine.error", {
          jobId: next.id,
          error: error instanceof Error ? error.message.slice(0, 500) : String(error),
        });
        await this.#reject(next.id, null, {
          code: "STAGE_ERROR",
          message: `The pipeline could not complete: ${
            error instanceof Error ? error.message : String(error)
          }`.slice(0, 2000),
        }).catch((inner: unknown) =>
          this.#o.emit("quarantine.error", { jobId: next.id, error: String(inner).slice(0, 500) })
        );
      } finally {
        this.#o.signal.removeEventListener("abort", onStop);
        this.#current = null;
      }
    }
  }

  async #run(id: string, approval: PromoteRequest["approval"], signal: AbortSignal): Promise<void> {
    const job = this.#o.store.require(id);
    if (!["queued", "running", "promoting"].includes(job.state)) return;
    if (job.artifact === null) throw new Error("The job's artifact is gone");
    const facts: Facts = {};
    for (const record of job.stages) {
      if (record.status === "passed" || record.status === "skipped") {
        Object.assign(facts, FactsSchema.parse(record.facts));
      }
    }
    if (job.state !== "promoting") {
      const info = await Deno.lstat(`${this.#o.home}/${job.artifact}`);
      const kind = info.isDirectory ? "directory" : "file";
      if (facts.fileId !== undefined) {
        // Resumed after the integrity pin: the artifact must be the very one that was hashed.
        const id = info.isDirectory
          ? treeIdentityOf((await walkTree(`${this.#o.home}/${job.artifact}`)).entries)
          : fileIdOf(info);
        if (id !== facts.fileId) {
          await this.#reject(id, "integrity_pin", {
            code: "ARTIFACT_CHANGED",
            message: "The artifact changed while the job was interrupted",
          });
          return;
        }
      }
      this.#o.emit("quarantine.job", { jobId: id, state: "running" });
      for (const stage of STAGES) {
        if (signal.aborted && signal.reason instanceof Interrupted) throw signal.reason;
        const record = job.stages.find((s) => s.stage === stage.name);
        if (record?.status === "passed" || record?.status === "skipped") continue;
        const outcome = await this.#runStage(job, stage.name, facts, signal, kind);
        if (outcome === "cancelled") return;
        if (outcome.verdict === "fail") {
          await this.#reject(
            id,
            stage.name,
            outcome.failure ?? {
              code: "STAGE_ERROR",
              message: `Stage "${stage.name}" failed`,
            },
            outcome.findings,
          );
          return;
        }
        Object.assign(facts, outcome.facts);
      }
      this.#o.store.update(id, { state: "promoting", stage: null, bytesDone: 0 });
    }
    await this.#promote(this.#o.store.require(id), facts, approval);
  }

  async #runStage(
    job: StoredJob,
    name: StageName,
    facts: Facts,
    signal: AbortSignal,
    kind: "file" | "directory",
  ): Promise<StageOutcome | "cancelled"> {
    const stage = STAGES.find((s) => s.name === name);
    if (stage === undefined) throw new Error(`Unknown stage "${name}"`);
    const artifact = job.artifact as string;
    let lastProgress = 0;
    const ctx: StageContext = {
      jobId: job.id,
      filename: job.filename,
      source: job.sourceUrl,
      artifact: { rel: artifact, abs: `${this.#o.home}/${artifact}`, kind },
      signature: job.signature,
      facts: { ...facts },
      config: this.#o.config,
      signal,
      sandbox: (jobName, options = {}) => {
        const limits = options.limits ?? {};
        return this.#o.sandbox().call("run", {
          job: jobName,
          input: { kind, path: artifact },
          args: options.args ?? [],
          limits,
        }, {
          signal,
          deadlineMs: (limits.timeoutMs ?? this.#o.config.stageTimeoutMs) +
            SANDBOX_DEADLINE_MARGIN_MS,
        });
      },
      engine: () => this.#o.engine(),
      progress: (bytes) => {
        const now = Date.now();
        if (now - lastProgress < PROGRESS_INTERVAL_MS) return;
        lastProgress = now;
        this.#o.store.update(job.id, { bytesDone: bytes });
        this.#o.emit("quarantine.progress", {
          jobId: job.id,
          stage: name,
          bytes,
          total: job.size,
        });
      },
    };
    const started = performance.now();
    this.#o.store.startStage(job.id, name, stage.describeInput(ctx));
    this.#o.emit("quarantine.stage", { jobId: job.id, stage: name, status: "running" });
    let outcome: StageOutcome;
    try {
      outcome = await stage.run(ctx);
      signal.throwIfAborted();
    } catch (error) {
      if (signal.aborted) {
        if (signal.reason instanceof Interrupted) throw signal.reason;
        await this.#finishCancelled(this.#o.store.require(job.id), "user");
        return "cancelled";
      }
      outcome = failedToComplete(name, error);
    }
    const ms = performance.now() - started;
    const findings = boundFindings(outcome.findings, name);
    this.#o.store.finishStage(job.id, name, {
      status: outcome.verdict === "pass"
        ? "passed"
        : outcome.verdict === "skipped"
        ? "skipped"
        : "failed",
      verdict: outcome.verdict,
      findings,
      facts: outcome.facts,
      note: outcome.note,
      finishedAt: new Date().toISOString(),
      ms,
    });
    const patch: Parameters<JobStore["update"]>[1] = {};
    if (outcome.facts.format !== undefined) patch.format = outcome.facts.format;
    if (outcome.facts.sha256 !== undefined) patch.sha256 = outcome.facts.sha256;
    if (outcome.facts.fsverity !== undefined) patch.fsverity = outcome.facts.fsverity;
    if (outcome.facts.size !== undefined) patch.bytesDone = outcome.facts.size;
    if (Object.keys(patch).length > 0) this.#o.store.update(job.id, patch);
    this.#o.emit("quarantine.stage", {
      jobId: job.id,
      stage: name,
      status: "finished",
      verdict: outcome.verdict,
      findings: findings.length,
      ms: Math.round(ms),
    });
    return { ...outcome, findings };
  }

  async #promote(
    job: StoredJob,
    facts: Facts,
    approval: PromoteRequest["approval"],
  ): Promise<void> {
    if (facts.format === "diffusion-directory") {
      await this.#decideDirectory(job, facts);
      return;
    }
    const { format, sha256, fsverity, size, scan, smokeTest } = facts;
    if (
      format === undefined || sha256 === undefined || fsverity === undefined ||
      size === undefined || scan === undefined || smokeTest === undefined ||
      facts.provenance === undefined || facts.pinned === undefined
    ) {
      throw new Error("A stage's facts are missing: the job cannot be promoted");
    }
    const staged = `${job.id}.${format}`;
    const stagedRel = `${STAGING_DIR}/${staged}`;
    if (job.artifact !== stagedRel) {
      await Deno.rename(`${this.#o.home}/${job.artifact}`, `${this.#o.home}/${stagedRel}`);
      this.#o.store.update(job.id, { artifact: stagedRel });
    }
    const scanRecord = job.stages.find((s) => s.stage === "static_scan");
    const stages: Record<string, "pass" | "fail" | "skipped"> = {};
    for (const record of job.stages) {
      if (record.verdict !== null) stages[record.stage] = record.verdict;
    }
    const request: PromoteRequest = {
      jobId: job.id,
      staged,
      filename: job.filename,
      format,
      size,
      sha256,
      fsverity,
      source: job.source,
      provenance: { status: facts.provenance, signer: facts.signer ?? null, pinned: facts.pinned },
      signature: job.signature,
      scan: {
        verdict: scan.verdict,
        format: scan.format,
        bytesScanned: scan.bytesScanned,
        findingsTotal: scan.findingsTotal,
        bySeverity: scan.bySeverity,
        findings: (scanRecord?.findings ?? []).slice(0, 100),
      },
      smokeTest,
      stages,
      approval,
    };
    this.#o.emit("quarantine.job", { jobId: job.id, state: "promoting" });
    let result;
    try {
      result = await this.#o.registry().call("promote", request, {
        deadlineMs: PROMOTE_BASE_DEADLINE_MS +
          Math.ceil((PROMOTE_PASSES * size) / PROMOTE_MIN_BYTES_PER_MS),
      });
    } catch (error) {
      const code = error instanceof RpcError ? error.code : "PROMOTION_FAILED";
      const message = error instanceof Error ? error.message : String(error);
      if (TERMINAL_REGISTRY_CODES.has(code)) {
        // The registry refused this content for good (or it changed after its scan).
        await this.#reject(job.id, null, {
          code: code === "INTEGRITY_MISMATCH" ? "ARTIFACT_CHANGED" : code,
          message: `The registry refused the promotion: ${message}`.slice(0, 2000),
        });
        return;
      }
      // No answer is no promotion; the artifact stays staged for a retry (spec 13 §1).
      this.#o.store.update(job.id, {
        state: "promotion_failed",
        error: { code, message: `Promotion request failed: ${message}`.slice(0, 2000) },
      });
      this.#o.emit("quarantine.job", { jobId: job.id, state: "promotion_failed", code });
      await this.#audit({
        type: "quarantine.promotion_failed",
        subject: job.id,
        evidence: { code, sha256 },
        data: { filename: job.filename },
      });
      return;
    }
    const decision = "decision" in result ? result.decision : {
      decision: result.model.decision.decision,
      rule: result.model.decision.rule,
      reasons: result.model.decision.reasons,
      policy_version: result.model.decision.policy_version,
    };
    if (result.status === "promoted") {
      this.#o.store.update(job.id, { artifact: null });
      await this.#removeArtifact(job.id, null);
      await this.#audit({
        type: "quarantine.passed",
        subject: job.id,
        decision: "allow",
        evidence: { sha256, modelId: result.model.id, rule: decision.rule },
        data: { filename: job.filename },
      });
      this.#o.store.update(job.id, {
        state: "promoted",
        modelId: result.model.id,
        decision,
        error: null,
      });
      this.#o.emit("quarantine.job", {
        jobId: job.id,
        state: "promoted",
        modelId: result.model.id,
      });
      return;
    }
    if (result.status === "awaiting_approval") {
      await this.#audit({
        type: "quarantine.awaiting_approval",
        subject: job.id,
        decision: "ask",
        evidence: { sha256, rule: decision.rule },
        data: { filename: job.filename },
      });
      this.#o.store.update(job.id, { state: "awaiting_approval", decision, error: null });
      this.#o.emit("quarantine.job", { jobId: job.id, state: "awaiting_approval" });
      return;
    }
    this.#o.store.update(job.id, { decision });
    await this.#reject(job.id, null, {
      code: "PROMOTION_DENIED",
      message: `Promotion denied by policy rule "${decision.rule}": ${
        decision.reasons.join("; ") || "no reason given"
      }`.slice(0, 2000),
    });
  }

  /**
   * The promotion of a directory artifact: the policy control decides `model_promotion` on
   * what the stages established (format, origin, pin, scan verdict). The registry stores
   * single files only, so no answer promotes it: a deny rejects the job with the policy's
   * reason; an allow or ask rejects it as not storable; no answer is `promotion_failed`.
   */
  async #decideDirectory(job: StoredJob, facts: Facts): Promise<void> {
    const input = {
      model: job.filename,
      format: "diffusion-directory",
      source_kind: facts.sourceKind ?? "local",
      pinned: facts.pinned ?? false,
      ...(facts.scan === undefined ? {} : { scan_verdict: facts.scan.verdict }),
      ...(facts.smokeTest === undefined ? {} : { smoke_status: facts.smokeTest.status }),
    };
    this.#o.emit("quarantine.job", { jobId: job.id, state: "promoting" });
    let decision;
    try {
      decision = await this.#o.policy().call(
        "decide",
        { domain: "model_promotion", input },
        { deadlineMs: PROMOTE_BASE_DEADLINE_MS },
      );
    } catch (error) {
      const code = error instanceof RpcError ? error.code : "PROMOTION_FAILED";
      this.#o.store.update(job.id, {
        state: "promotion_failed",
        error: {
          code,
          message: `No model_promotion decision for the directory: ${
            error instanceof Error ? error.message : String(error)
          }`.slice(0, 2000),
        },
      });
      this.#o.emit("quarantine.job", { jobId: job.id, state: "promotion_failed", code });
      return;
    }
    const recorded = {
      decision: decision.decision,
      rule: decision.rule,
      reasons: decision.reasons.slice(0, 32),
      policy_version: decision.policy_version,
    };
    this.#o.store.update(job.id, { decision: recorded });
    await this.#reject(job.id, null, {
      code: "PROMOTION_DENIED",
      message: (decision.decision === "deny"
        ? `Promotion denied by policy rule "${decision.rule}": ${
          decision.reasons.join("; ") || "no reason given"
        }`
        : `The policy answered "${decision.decision}" (rule "${decision.rule}"), but the registry stores single model files only: a diffusion directory is never promoted`)
        .slice(0, 2000),
    });
  }

  async #reject(
    id: string,
    stage: StageName | null,
    failure: { code: string; message: string },
    findings: Finding[] = [],
  ): Promise<void> {
    const job = this.#o.store.require(id);
    // Rejection deletes the artifact (spec 13 §1): nothing of it stays runnable.
    this.#o.store.update(id, { artifact: null });
    await this.#removeArtifact(id, job.artifact);
    // Recorded before the state changes, so whoever sees "rejected" finds the entry.
    await this.#audit({
      type: "quarantine.rejected",
      subject: id,
      decision: "deny",
      evidence: {
        code: failure.code,
        stage,
        sha256: job.sha256,
        findings: findings.length,
        worst: findings.slice(0, 5).map((f) => ({
          rule: f.rule,
          severity: f.severity,
          ...(f.callable ? { callable: f.callable } : {}),
          ...(f.offset !== undefined ? { offset: f.offset } : {}),
        })),
      },
      data: { filename: job.filename, message: failure.message.slice(0, 500) },
    });
    this.#o.store.update(id, {
      state: "rejected",
      ...(stage === null ? {} : { stage }),
      error: failure,
    });
    this.#o.emit("quarantine.job", { jobId: id, state: "rejected", code: failure.code, stage });
  }

  async #finishCancelled(job: StoredJob, actor: string): Promise<void> {
    this.#o.store.resetInterrupted(job.id);
    this.#o.store.update(job.id, { artifact: null });
    await this.#removeArtifact(job.id, job.artifact);
    await this.#audit({
      type: "quarantine.cancelled",
      subject: job.id,
      evidence: { sha256: job.sha256 },
      data: { filename: job.filename, by: actor },
    });
    this.#o.store.update(job.id, {
      state: "cancelled",
      error: { code: "CANCELLED", message: `Cancelled by ${actor}` },
    });
    this.#o.emit("quarantine.job", { jobId: job.id, state: "cancelled" });
  }

  /** Deletes a job's processing directory and, when given, its staged artifact. */
  async #removeArtifact(id: string, artifact: string | null): Promise<void> {
    if (artifact !== null && artifact.startsWith(`${STAGING_DIR}/`)) {
      await Deno.remove(`${this.#o.home}/${artifact}`).catch(ignoreNotFound);
    }
    await Deno.remove(`${this.#o.home}/${PROCESSING_DIR}/${id}`, { recursive: true })
      .catch(ignoreNotFound);
  }

  async #audit(entry: {
    type: string;
    subject: string;
    decision?: "allow" | "deny" | "ask";
    evidence: Record<string, unknown>;
    data: Record<string, unknown>;
  }): Promise<void> {
    try {
      await this.#o.audit().call("append", { actor: "quarantine", ...entry });
    } catch (error) {
      // The verdict stands either way (it already fails closed); say the record is missing.
      this.#o.emit("quarantine.audit_failed", {
        type: entry.type,
        subject: entry.subject,
        code: error instanceof RpcError ? error.code : "UNKNOWN",
      });
    }
  }
}

/** Abort reason of a user's cancellation. */
class CancelledError extends Error {
  constructor() {
    super("Cancelled");
    this.name = "CancelledError";
  }
}

/** A stage that threw: fail closed, with the reason as a finding. */
function failedToComplete(stage: StageName, error: unknown): StageOutcome {
  if (error instanceof StageFailure) {
    return {
      verdict: "fail",
      findings: [{
        stage,
        rule: `${stage}.${error.code.toLowerCase()}`,
        severity: "high",
        message: error.message,
      }],
      facts: {},
      note: null,
      failure: { code: error.code, message: error.message },
    };
  }
  const reason = error instanceof RpcError
    ? `${error.code}: ${error.message}`
    : error instanceof Error
    ? error.message
    : String(error);
  const message = `Stage "${stage}" could not complete, so it fails closed: ${reason}`.slice(
    0,
    2000,
  );
  return {
    verdict: "fail",
    findings: [{ stage, rule: `${stage}.incomplete`, severity: "critical", message }],
    facts: {},
    note: null,
    failure: { code: "STAGE_ERROR", message },
  };
}

/** Stage names in order, for callers that show the pipeline. */
export const PIPELINE_STAGES: readonly StageName[] = STAGE_NAMES;
