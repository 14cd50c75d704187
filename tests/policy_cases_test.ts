/**
 * The policy tests as data (`policy/tests/*.yaml`), run by the test suite as they are by
 * `secai policy test`: one test per suite, failing with every case that did not decide as
 * expected. Under the shipped defaults only (no state-dir overrides).
 */
import { deepEqual, ok } from "node:assert/strict";
import { DEFAULTS_DIR } from "../policy/loader.ts";
import { loadPolicySuites, POLICY_TESTS_DIR, runPolicySuite } from "../runtime/policy_cases.ts";

const suites = await loadPolicySuites(POLICY_TESTS_DIR);

Deno.test("policy tests as data cover every decision domain", () => {
  const domains = new Set(suites.flatMap((s) => s.suite.cases.map((c) => c.domain)));
  deepEqual([...domains].sort(), [
    "agent_risk",
    "egress",
    "model_promotion",
    "path_access",
    "sensitivity",
    "tool_access",
  ]);
});

for (const entry of suites) {
  Deno.test(`policy tests: ${entry.suite.name}`, async () => {
    const results = await runPolicySuite(entry, { defaultsDir: DEFAULTS_DIR, overrideDir: null });
    const failures = results.filter((r) => !r.isPassed).map((r) =>
      `${r.name}: expected ${r.expected.decision}${
        r.expected.rule ? ` (${r.expected.rule})` : ""
      }, got ${r.actual.decision} (${r.actual.rule}): ${r.actual.reasons[0]}`
    );
    ok(
      failures.length === 0,
      `${failures.length} of ${results.length} cases failed:\n${failures.join("\n")}`,
    );
  });
}
