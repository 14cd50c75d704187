/// <reference lib="deno.worker" />
/**
 * Audit control worker: the write-only `audit-append` capability for every control and
 * `audit-query` (query, head, proofs, verification, export) for the gateway. The entry's
 * `control` comes from the port it arrived on. The log is verified in full shortly after
 * start and every `verifyIntervalMinutes`; each result is itself an entry
 * (`audit.verified`), and a broken log raises the `audit.tampered` event while the control
 * keeps recording (spec 11 §9.4: report, do not take the system down).
 * @module
 */
import { runControl, serve } from "../../runtime/kit/worker.ts";
import { auditAppendApi, AuditConfigSchema, auditQueryApi } from "./api.ts";
import { AuditLog, type Recovery } from "./log.ts";
import { queryLog } from "./query.ts";
import { AuditError } from "./offline/errors.ts";
import { buildBundle } from "./offline/bundle.ts";
import { proveConsistency, proveInclusion } from "./offline/read.ts";
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
  };
}

runControl(async (ctx) => {
  const config = AuditConfigSchema.parse(ctx.config);
  const dir = `${ctx.home}/audit`;
  const { log, recovery } = await AuditLog.open(dir, { segmentMaxBytes: config.segmentMaxBytes });
  const record = (type: string, subject: string, evidence: Record<string, unknown>) =>
    log.append({ control: SELF, type, actor: SELF, subject, evidence, data: {} });
  if (recovery.isKeyNew) {
    await record("audit.key_created", "signing key", { keyId: log.publicKey.id });
  }
  const isRepaired = recovery.truncatedBytes > 0 || recovery.sealedEntries > 0 ||
    recovery.isTreeRebuilt || recovery.mismatchedHeads > 0 || recovery.isPublicKeyRepaired;
  if (isRepaired) {
    await record("audit.recovered", "audit log", recoveryEvidence(recovery));
    ctx.emit("audit.recovered", recoveryEvidence(recovery));
  }

  let running: Promise<VerifyReport> | null = null;
  const stopping = new AbortController();
  /** One verification at a time; concurrent requests share it. */
  function verify(reason: string): Promise<VerifyReport> {
    running ??= (async () => {
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
    })();
    return running;
  }
  function verifyInBackground(reason: string): void {
    verify(reason).catch((err) => {
      if (stopping.signal.aborted) return;
      ctx.emit("audit.verify_failed", { reason, error: String(err).slice(0, 500) });
    });
  }
  const timers: ReturnType<typeof setTimeout>[] = [];
  if (config.verifyOnStart) timers.push(setTimeout(() => verifyInBackground("start"), 1_000));
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
        proof: async ({ seq }) => proveInclusion(dir, { seq, head: await latestHead() }),
        consistency: async ({ from }) => proveConsistency(dir, { from, head: await latestHead() }),
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
