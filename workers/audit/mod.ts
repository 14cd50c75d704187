/// <reference lib="deno.worker" />
/**
 * Audit control worker: the write-only `audit-append` capability for every control and
 * `audit-query` (query, head, proofs, verification, export) for the gateway. The entry's
 * `control` comes from the port it arrived on. The log is verified in full shortly after
 * start and every `verifyIntervalMinutes`; each result is itself an entry
 * (`audit.verified`), and a broken log raises the `audit.tampered` event while the control
 * keeps recording (spec 11 §9.4: report, do not take the system down). Retention deletes the
 * oldest segments past `retainMaxBytes`, leaving a signed anchor (`retention.ts`).
 * @module
 */
import { runControl, serve } from "../../runtime/kit/worker.ts";
import { auditAppendApi, AuditConfigSchema, auditQueryApi } from "./api.ts";
import { AuditLog, type Recovery } from "./log.ts";
import { queryLog } from "./query.ts";
import { AuditError } from "./offline/errors.ts";
import { buildBundle } from "./offline/bundle.ts";
import { proveConsistency, proveInclusion, readHeadOfSize } from "./offline/read.ts";
import { verifyLog, type VerifyReport } from "./offline/verify.ts";

const SELF = "audit";

function recoveryEvidence(r: Recovery): Record<string, unknown> {
  return {
    truncatedBytes: r.truncatedBytes,
    droppedLines: r.droppedLines,
    quarantined: r.quarantined,
    sealedEntries: r.sealedEntries,
    rehashed: r.rehashed,
    mismatchedHeads: r.mismatchedHeads,
    isTreeRebuilt: r.isTreeRebuilt,
    isPublicKeyRepaired: r.isPublicKeyRepaired,
    prunedSegments: r.prunedSegments,
  };
}

runControl(async (ctx) => {
  const config = AuditConfigSchema.parse(ctx.config);
  const dir = `${ctx.home}/audit`;
  let onRotate = () => {};
  const { log, recovery } = await AuditLog.open(dir, {
    segmentMaxBytes: config.segmentMaxBytes,
    onRotate: () => onRotate(),
  });
  const record = (type: string, subject: string, evidence: Record<string, unknown>) =>
    log.append({ control: SELF, type, actor: SELF, subject, evidence, data: {} });
  if (recovery.isKeyNew) {
    await record("audit.key_created", "signing key", { keyId: log.publicKey.id });
  }
  const isRepaired = recovery.truncatedBytes > 0 || recovery.sealedEntries > 0 ||
    recovery.isTreeRebuilt || recovery.mismatchedHeads > 0 || recovery.isPublicKeyRepaired ||
    recovery.prunedSegments > 0;
  if (isRepaired) {
    await record("audit.recovered", "audit log", recoveryEvidence(recovery));
    ctx.emit("audit.recovered", recoveryEvidence(recovery));
  }

  let running: Promise<VerifyReport> | null = null;
  const stopping = new AbortController();
  /** Verification and retention never overlap (retention deletes files verify reads). */
  let maintenance: Promise<unknown> = Promise.resolve();
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = maintenance.then(fn, fn);
    maintenance = next.catch(() => undefined);
    return next;
  }
  /** One verification at a time; concurrent requests share it. */
  function verify(reason: string): Promise<VerifyReport> {
    running ??= serial(async () => {
      try {
        const head = await log.settledHead();
        const report = await verifyLog(dir, {
          publicKey: log.publicKey,
          ...(head ? { untilSize: head.head.size } : {}),
          signal: stopping.signal,
        });
        await record("audit.verified", "audit log", { reason, ...report });
        if (!report.isIntact) ctx.emit("audit.tampered", { ...report });
        return report;
      } finally {
        running = null;
      }
    });
    return running;
  }
  function retain(): void {
    if (config.retainMaxBytes === 0 || stopping.signal.aborted) return;
    serial(() => log.prune(config.retainMaxBytes)).then((pruned) => {
      if (pruned) ctx.emit("audit.pruned", { ...pruned });
    }).catch((err) => {
      if (stopping.signal.aborted) return;
      ctx.emit("audit.retention_failed", { error: String(err).slice(0, 500) });
    });
  }
  function verifyInBackground(reason: string): void {
    verify(reason).catch((err) => {
      if (stopping.signal.aborted) return;
      ctx.emit("audit.verify_failed", { reason, error: String(err).slice(0, 500) });
    });
  }
  const timers: ReturnType<typeof setTimeout>[] = [];
  if (config.verifyOnStart) timers.push(setTimeout(() => verifyInBackground("start"), 1_000));
  // Checked at start and whenever a segment is sealed (only then can the total pass the
  // budget by more than the segment being written).
  onRotate = retain;
  timers.push(setTimeout(retain, 2_000));
  if (config.verifyIntervalMinutes > 0) {
    timers.push(setInterval(
      () => verifyInBackground("timer"),
      config.verifyIntervalMinutes * 60_000,
    ));
  }

  async function latestHead() {
    const head = await log.settledHead();
    if (!head) throw new AuditError("AUDIT_NOT_FOUND", "The audit log has no signed head yet");
    return head;
  }

  /** The latest head, or the signed head of an earlier size. */
  async function headOf(size: number | undefined) {
    const latest = await latestHead();
    if (size === undefined || size === latest.head.size) return latest;
    if (size > latest.head.size) {
      throw new AuditError(
        "AUDIT_RANGE_INVALID",
        `Tree size ${size} is beyond the latest signed head (${latest.head.size})`,
      );
    }
    return readHeadOfSize(dir, { size, publicKey: log.publicKey });
  }

  return {
    serves: [
      serve(auditAppendApi, {
        append: async (input, call) => ({
          seq: await log.append({ control: call.caller, ...input }),
        }),
      }),
      serve(auditQueryApi, {
        query: (input) => queryLog(dir, input, { size: log.size }),
        head: async () => ({
          head: await log.settledHead(),
          publicKey: log.publicKey.pem,
          keyId: log.publicKey.id,
        }),
        proof: async ({ seq, size }) => proveInclusion(dir, { seq, head: await headOf(size) }),
        consistency: async ({ from, to }) =>
          proveConsistency(dir, { from, head: await headOf(to) }),
        verify: () => verify("request"),
        export: async ({ from, to }) =>
          buildBundle(dir, { from, to, head: await latestHead(), publicKeyPem: log.publicKey.pem }),
      }),
    ],
    stop: async () => {
      for (const t of timers) clearTimeout(t);
      stopping.abort();
      await (running as Promise<unknown> | null)?.catch(() => undefined);
      await log.close();
    },
  };
});
