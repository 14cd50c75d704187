/// <reference lib="deno.worker" />
/**
 * Policy control worker. Until the policy engine lands (issue #5) it knows no rules, so every
 * request is denied by default; each decision is recorded in the audit log, and a decision
 * that cannot be recorded is not given (fail closed).
 * @module
 */
import { runControl, serve } from "../../runtime/kit/worker.ts";
import { auditAppendApi } from "../audit/api.ts";
import { type Decision, policyApi, PolicyConfigSchema } from "./api.ts";
import { decideDefault } from "./decide.ts";

runControl((ctx) => {
  PolicyConfigSchema.parse(ctx.config);
  const audit = ctx.client(auditAppendApi);
  return {
    serves: [
      serve(policyApi, {
        decide: async (input, call): Promise<Decision> => {
          const decision = decideDefault(input);
          await audit.call("append", {
            type: "policy.decision",
            actor: call.caller,
            subject: input.domain,
            decision: decision.decision,
            evidence: decision.evidence,
            data: { rule: decision.rule },
          }, { signal: call.signal, deadlineMs: Math.max(1, call.deadline - Date.now()) });
          return decision;
        },
      }),
    ],
  };
});
