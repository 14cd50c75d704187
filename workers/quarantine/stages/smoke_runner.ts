/**
 * Stage 6's work (spec 13 §3), for the smoke-test stage to call: the candidate model (still
 * in quarantine, not in the registry) is loaded in the sandboxed engine from its processing
 * path, asked every prompt of the policy's suite (`policy/smoke_tests.yaml`) as a fresh
 * conversation, unloaded, and scored by `policy/smoke.ts`. Any engine or transport error
 * throws: the stage fails closed. The report becomes findings the user can read: every
 * prompt, what the model said and why it scored so.
 * @module
 */
import {
  loadSmokeSuite,
  type PromptResult,
  scoreSmokeTest,
  type SmokeReport,
  type SmokeSuite,
  type Transcript,
} from "../../../policy/smoke.ts";
import type { engineApi } from "../../../runtime/kit/engine_api.ts";
import { generateText } from "../../../runtime/kit/engine_client.ts";
import { RpcError } from "../../../runtime/kit/errors.ts";
import type { RpcClient } from "../../../runtime/kit/rpc.ts";
import type { Finding } from "../api.ts";

/** Memory the candidate may take in the engine when the caller names no budget (MiB). */
export const DEFAULT_SMOKE_MEMORY_MB = 16_384;
/** Time the engine may take to load the candidate (spec 13 §3: ready within 120 s). */
const LOAD_DEADLINE_MS = 120_000;
/** Longest answer excerpt in an informational finding. */
const INFO_EXCERPT = 300;

/** Options of {@link runSmokeTest}. */
export interface SmokeRunOptions {
  /** The `engine` port of the quarantine control. */
  engine: RpcClient<typeof engineApi>;
  /** The candidate's absolute path (inside the control's engine roots), hash and size. */
  model: { path: string; sha256: string; size: number };
  /** The suite; default the shipped `policy/smoke_tests.yaml`. */
  suite?: SmokeSuite;
  /** Decoding threads; default CPU cores − 1. */
  threads?: number;
  /** The candidate's memory budget (weights + context), MiB. */
  memoryBudgetMb?: number;
  /** Cancels the run (the job was cancelled, or the control stops). */
  signal: AbortSignal;
  /** Called after each answer. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Runs the suite against a candidate model in the sandboxed engine.
 * @returns the scored report (passed or not)
 * @throws {RpcError} when the engine cannot load the model or an answer fails (the stage
 * must then fail: an untested model is never reported as tested)
 */
export async function runSmokeTest(options: SmokeRunOptions): Promise<SmokeReport> {
  const suite = options.suite ?? await loadSmokeSuite();
  const generation = suite.generation;
  const loaded = await options.engine.call("load", {
    model: options.model,
    options: {
      contextSize: generation.context_size,
      threads: options.threads ?? Math.max(1, (navigator.hardwareConcurrency || 2) - 1),
      batchSize: 512,
      memoryBudgetMb: options.memoryBudgetMb ?? DEFAULT_SMOKE_MEMORY_MB,
    },
  }, { deadlineMs: LOAD_DEADLINE_MS, signal: options.signal });
  const transcripts: Transcript[] = [];
  try {
    for (const prompt of suite.prompts) {
      options.signal.throwIfAborted();
      const signal = AbortSignal.any([options.signal, AbortSignal.timeout(generation.timeout_ms)]);
      let answer;
      try {
        answer = await generateText(options.engine, {
          engineId: loaded.engineId,
          prompt: { kind: "chat", messages: prompt.messages },
          options: {
            maxTokens: generation.max_tokens,
            temperature: generation.temperature,
            topP: 1,
            topK: 40,
            seed: 0,
            stop: [],
          },
        }, { signal });
      } catch (error) {
        if (options.signal.aborted) throw error;
        const why = error instanceof RpcError ? `${error.code}: ${error.message}` : String(error);
        throw new RpcError(
          error instanceof RpcError && error.code === "CANCELLED"
            ? "SMOKE_TEST_TIMEOUT"
            : "SMOKE_TEST_ERROR",
          `The model did not answer prompt "${prompt.id}" (${why.slice(0, 300)})`,
          { cause: error },
        );
      }
      transcripts.push({ id: prompt.id, answer: answer.text });
      options.onProgress?.(transcripts.length, suite.prompts.length);
    }
  } finally {
    await options.engine.call("unload", { engineId: loaded.engineId }).catch(() => undefined);
  }
  return scoreSmokeTest(suite, transcripts);
}

/**
 * The report as quarantine findings: each flagged or unanswered prompt as a finding of its
 * severity (critical categories: critical), every other prompt as an informational finding,
 * so the job's findings say for each prompt what the model said and why it scored so.
 */
export function smokeFindings(report: SmokeReport): Finding[] {
  const critical = new Set(report.categories.filter((c) => c.critical).map((c) => c.category));
  return report.results.map((r) => ({
    stage: "smoke_test",
    rule: `smoke_test.${r.category}.${r.verdict}`,
    severity: severityOf(r, critical),
    message: describeResult(r).slice(0, 2000),
  }));
}

/** The facts stage 6 establishes (the registry keeps them; policy decides on them). */
export function smokeFacts(report: SmokeReport): {
  smokeTest: {
    status: "passed" | "failed";
    score: number;
    critical: number;
    reason: string;
  };
} {
  return {
    smokeTest: {
      status: report.isPassed ? "passed" : "failed",
      score: report.score,
      critical: report.critical,
      reason: report.summary.slice(0, 1000),
    },
  };
}

function severityOf(r: PromptResult, critical: ReadonlySet<string>): Finding["severity"] {
  if (r.verdict === "empty" || r.verdict === "missing") return "high";
  if (r.verdict !== "flagged") return "info";
  return critical.has(r.category) ? "critical" : "medium";
}

function describeResult(r: PromptResult): string {
  const answer = r.verdict === "flagged" ? r.answer : r.answer.slice(0, INFO_EXCERPT);
  const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();
  const match = r.match === null
    ? ""
    : ` Matched ${r.match.family} pattern /${r.match.pattern}/ at "${oneLine(r.match.excerpt)}".`;
  return `[${r.verdict}] ${r.id} (${r.category}). Asked: "${oneLine(r.prompt).slice(0, 300)}". ` +
    `Answered: "${oneLine(answer)}". ${r.reason}.${match}`;
}
