/// <reference lib="deno.worker" />
/**
 * Tool firewall control worker (M4): `tool-firewall.check` answers whether one proposed tool
 * call may run. Shape, size and rate limits are checked here; everything else is decided by
 * the policy control (`tool_access`); every answer is audited (see `firewall.ts`).
 *
 * Permissions (runtime/manifest.ts): none. Its ports: `policy`, `policy-view` (rate limits
 * and redaction rules of the policy in force) and `audit-append`.
 * @example
 * ```ts
 * // Spawned by the supervisor, never imported:
 * new Worker(new URL("./workers/tool-firewall/mod.ts", root), { type: "module", deno: { permissions } });
 * ```
 * @module
 */
import { runControl, serve } from "../../runtime/kit/worker.ts";
import { auditAppendApi } from "../audit/api.ts";
import { policyApi, policyViewApi } from "../policy/api.ts";
import { toolFirewallApi } from "./api.ts";
import { ToolFirewall } from "./firewall.ts";

runControl((ctx) => {
  const policy = ctx.client(policyApi);
  const view = ctx.client(policyViewApi);
  const audit = ctx.client(auditAppendApi);
  const firewall = new ToolFirewall({
    decide: (input, options) => policy.call("decide", { domain: "tool_access", input }, options),
    view: (options) => view.call("current", {}, options),
    audit: async (entry, options) => {
      await audit.call("append", entry, options);
    },
    now: () => performance.now(),
  });
  return {
    serves: [
      serve(toolFirewallApi, {
        check: (input, call) =>
          firewall.check(input, {
            caller: call.caller,
            deadlineMs: Math.max(1, call.deadline - Date.now()),
          }),
      }),
    ],
  };
});
