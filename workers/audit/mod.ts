/// <reference lib="deno.worker" />
/**
 * Audit control worker: the write-only `audit-append` capability for every control and
 * `audit-query` for the gateway. The entry's `control` comes from the port it arrived on.
 * @module
 */
import { runControl, serve } from "../../runtime/kit/worker.ts";
import { auditAppendApi, AuditConfigSchema, auditQueryApi } from "./api.ts";
import { AuditStore } from "./store.ts";

runControl(async (ctx) => {
  AuditConfigSchema.parse(ctx.config);
  const { store, truncatedBytes } = await AuditStore.open(`${ctx.home}/audit/log.jsonl`);
  if (truncatedBytes > 0) {
    await store.append({
      ts: new Date().toISOString(),
      control: "audit",
      type: "audit.recovered",
      actor: "audit",
      subject: "log.jsonl",
      evidence: { truncatedBytes },
      data: {},
    });
    ctx.emit("audit.recovered", { truncatedBytes });
  }
  return {
    serves: [
      serve(auditAppendApi, {
        append: async (input, call) => ({
          seq: await store.append({ ts: new Date().toISOString(), control: call.caller, ...input }),
        }),
      }),
      serve(auditQueryApi, {
        query: (input) => store.query(input),
      }),
    ],
    stop: () => store.close(),
  };
});
