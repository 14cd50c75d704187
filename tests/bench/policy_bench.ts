/**
 * In-process policy decisions per domain against a baseline that only parses the same input
 * (JSON.parse and the domain's strict schema), measured in the same run. A decision is
 * JSON.parse + validation + the domain's rules (for paths: the real filesystem walk) +
 * evidence (timestamp, SHA-256 input hash, timing). Run: `tools/deno task bench`; the
 * percentiles and decisions/s per domain come from `tools/deno task bench:policy`.
 * @module
 */
import { compilePolicy } from "../../policy/compile.ts";
import type { PolicyDomain } from "../../policy/decision.ts";
import { PolicyEngine } from "../../policy/engine.ts";
import { DEFAULTS_DIR, readPolicySources } from "../../policy/loader.ts";
import { DOMAIN_INPUTS } from "../../policy/schema.ts";
import { BENCH_INPUTS, benchPolicyText, makeBenchWorkspace } from "./_policy_inputs.ts";

const workspace = await makeBenchWorkspace();
const [policySource, agentSource] = await readPolicySources({
  defaultsDir: DEFAULTS_DIR,
  overrideDir: null,
});
if (!policySource || !agentSource) throw new Error("policy files missing");
const policy = compilePolicy(
  { ...policySource, text: benchPolicyText(policySource.text) },
  agentSource,
);
const engine = new PolicyEngine(policy, { workspace });

for (const [domain, lines] of Object.entries(BENCH_INPUTS) as [PolicyDomain, string[]][]) {
  let i = 0;
  Deno.bench({
    name: `${domain}: parse input only (baseline)`,
    group: domain,
    baseline: true,
    fn() {
      const line = lines[i++ % lines.length] as string;
      if (!DOMAIN_INPUTS[domain].safeParse(JSON.parse(line)).success) throw new Error("bad input");
    },
  });
  let j = 0;
  Deno.bench({
    name: `${domain}: decide`,
    group: domain,
    fn() {
      const line = lines[j++ % lines.length] as string;
      engine.decide({ domain, input: JSON.parse(line) });
    },
  });
}

globalThis.addEventListener("unload", () => {
  Deno.removeSync(workspace.replace(/\/ws$/, ""), { recursive: true });
});
