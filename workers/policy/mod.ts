/// <reference lib="deno.worker" />
/**
 * Policy control worker: every decision in the system is asked here (`policy.decide`),
 * evaluated by the policy language's engine under the policy in force, recorded in the audit
 * log with its evidence and a redacted copy of its input, and only then answered (a decision
 * that cannot be audited is not given: the caller gets an error, which it treats as deny).
 * `policy-view` serves the policy in force and what-if replays. The policy files are watched
 * and hot-reloaded with validation (see `service.ts`).
 *
 * Permissions (runtime/manifest.ts): read `<project>/policy/defaults` (shipped policy), read
 * `<state dir>/policy` (operator overrides; `Deno.watchFs` needs read on what it watches) and
 * read `<state dir>/vault` (the agent workspace the path gate resolves against). No write,
 * no net.
 * @example
 * ```ts
 * // Spawned by the supervisor, never imported:
 * new Worker(new URL("./workers/policy/mod.ts", root), { type: "module", deno: { permissions } });
 * ```
 * @module
 */
import { DEFAULTS_DIR } from "../../policy/loader.ts";
import { PolicyLoadError } from "../../policy/errors.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import { describeZodError } from "../../runtime/kit/validate.ts";
import { runControl, serve } from "../../runtime/kit/worker.ts";
import { auditAppendApi } from "../audit/api.ts";
import { type Decision, policyApi, PolicyConfigSchema, policyViewApi } from "./api.ts";
import { PolicyService } from "./service.ts";

/** The operator's override folder, under the state dir. */
const OVERRIDE_DIR = "policy";
/** The agent workspace, under the state dir (spec 20: `vault/user_docs`, `vault/outputs`). */
const WORKSPACE_DIR = "vault";

runControl(async (ctx) => {
  const parsed = PolicyConfigSchema.safeParse(ctx.config);
  if (!parsed.success) {
    throw new RpcError("INVALID_CONFIG", `Invalid policy config ${describeZodError(parsed.error)}`);
  }
  const audit = ctx.client(auditAppendApi);
  let service: PolicyService;
  try {
    service = await PolicyService.start({
      dirs: { defaultsDir: DEFAULTS_DIR, overrideDir: `${ctx.home}/${OVERRIDE_DIR}` },
      workspace: `${ctx.home}/${WORKSPACE_DIR}`,
      audit: async (entry, options) => {
        await audit.call("append", entry, options);
      },
      emit: (type, data) => ctx.emit(type, data),
      debounceMs: parsed.data.reloadDebounceMs,
    });
  } catch (err) {
    // No policy, no decisions: the control does not start and every caller fails closed.
    if (err instanceof PolicyLoadError) throw new RpcError(err.code, err.message);
    throw err;
  }
  service.watch();
  return {
    serves: [
      serve(policyApi, {
        decide: (input, call): Promise<Decision> =>
          // The audit call inherits the caller's deadline (not its signal: creating one per
          // call costs a timer, and the deadline bounds the work the same way).
          service.decide(input, {
            caller: call.caller,
            deadlineMs: Math.max(1, call.deadline - Date.now()),
          }),
      }),
      serve(policyViewApi, {
        current: () => service.view(),
        whatif: (input) => service.whatif(input.candidate, input.entries),
      }),
    ],
    stop: () => service.close(),
  };
});
