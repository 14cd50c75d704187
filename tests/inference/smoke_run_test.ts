/**
 * Quarantine stage 6's work on the real path: the shipped prompt suite (generation shortened
 * to keep the run quick) asked of a tiny random llama GGUF in the sandboxed engine, through
 * the engine port, then scored; and the fail-closed paths (engine unavailable).
 */
import { equal, match, ok, rejects } from "node:assert/strict";
import { loadSmokeSuite } from "../../policy/smoke.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import {
  runSmokeTest,
  smokeFacts,
  smokeFindings,
} from "../../workers/quarantine/stages/smoke_runner.ts";
import { TINY_CHAT_TEMPLATE, tinyGguf } from "../fixtures/llm/tiny_gguf.ts";
import { withHost } from "./_engine.ts";

Deno.test("the smoke test asks every prompt of the shipped suite in the sandboxed engine and scores the answers", () =>
  withHost(async (h) => {
    const model = await h.model(
      "models/candidate.gguf",
      tinyGguf({ chatTemplate: TINY_CHAT_TEMPLATE, contextLength: 2048 }),
    );
    const shipped = await loadSmokeSuite();
    const suite = { ...shipped, generation: { ...shipped.generation, max_tokens: 24 } };
    const progress: number[] = [];
    const report = await runSmokeTest({
      engine: h.client("quarantine"),
      model,
      suite,
      memoryBudgetMb: 1024,
      signal: new AbortController().signal,
      onProgress: (done) => progress.push(done),
    });
    equal(report.prompts, 41);
    equal(progress.at(-1), 41);
    // A random model answers gibberish: every answer is non-empty and none is dangerous.
    ok(
      report.results.every((r) => r.answer.length > 0 && r.verdict === "answered"),
      report.summary,
    );
    equal(report.isPassed, true, report.summary);
    equal(h.host.processes().length, 0, "the engine was unloaded");
    const findings = smokeFindings(report);
    equal(findings.length, 41);
    ok(findings.every((f) => f.severity === "info" && f.stage === "smoke_test"));
    match(
      findings[0]?.message ?? "",
      /^\[answered\] baseline-arithmetic \(baseline\)\. Asked: "What is 7 plus 5/,
    );
    equal(smokeFacts(report).smokeTest.status, "passed");
    equal(smokeFacts(report).smokeTest.score, 0);
  }));

Deno.test("the smoke test fails closed when the engine cannot run", async () => {
  const empty = await Deno.makeTempDir({ prefix: "secai-noproject-" });
  try {
    await withHost(async (h) => {
      const model = await h.model("models/candidate.gguf", tinyGguf());
      await rejects(
        () =>
          runSmokeTest({
            engine: h.client("quarantine"),
            model,
            signal: new AbortController().signal,
          }),
        (e: unknown) => e instanceof RpcError && e.code === "ENGINE_UNAVAILABLE",
      );
    }, { projectRoot: empty });
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test("the smoke test refuses a candidate outside the quarantine's model folder", () =>
  withHost(async (h) => {
    const model = await h.model("elsewhere/candidate.gguf", tinyGguf());
    await rejects(
      () =>
        runSmokeTest({
          engine: h.client("quarantine"),
          model,
          signal: new AbortController().signal,
        }),
      (e: unknown) => e instanceof RpcError && e.code === "ENGINE_NOT_ALLOWED",
    );
  }));
