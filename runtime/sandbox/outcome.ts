/**
 * Turns what the runner observed about a finished job process into the fields of a
 * `JobResult`. Pure: no I/O, so every mapping is unit-testable. Everything the job produced
 * (stdout, stderr lines) is untrusted and parsed with zod here.
 * @module
 */
import { z } from "zod";
import { ERROR_CODE_PATTERN } from "../kit/errors.ts";
import type { JobResult, SandboxLayers } from "../kit/sandbox_api.ts";
import { describeZodError } from "../kit/validate.ts";
import { LAYERS_MARKER, SETUP_FAILED_MARKER } from "./_protocol.ts";

const ErrorBodySchema = z.strictObject({
  code: z.string().regex(ERROR_CODE_PATTERN),
  message: z.string().max(4000),
});

/** The one JSON object a job writes to stdout (see runtime/kit/job.ts). */
export const JobOutputSchema = z.discriminatedUnion("ok", [
  z.strictObject({ ok: z.literal(true), result: z.unknown() }),
  z.strictObject({ ok: z.literal(false), error: ErrorBodySchema }),
]);

/** The layers line boot.ts writes to stderr before the job module runs. */
export const LayersReportSchema = z.strictObject({
  rlimits: z.boolean(),
  noNewPrivs: z.boolean(),
  nonDumpable: z.boolean(),
  capabilitiesDropped: z.boolean(),
  landlockAbi: z.number().int().min(0).max(1000),
  seccomp: z.boolean(),
});

/** How the sandbox itself started, read from the first sandbox line on stderr. */
export type SandboxStart =
  | { kind: "layers"; layers: z.infer<typeof LayersReportSchema> }
  | { kind: "setup_failed"; code: string; message: string }
  | { kind: "none" };

/**
 * Finds the sandbox's own report in the start of stderr. Only the first marker line counts:
 * the launcher or boot writes exactly one before any job code runs, so a later one could be
 * forged by the job.
 */
export function parseSandboxStart(stderrHead: string): SandboxStart {
  for (const line of stderrHead.split("\n")) {
    if (line.startsWith(LAYERS_MARKER)) {
      const parsed = LayersReportSchema.safeParse(safeJson(line.slice(LAYERS_MARKER.length)));
      return parsed.success ? { kind: "layers", layers: parsed.data } : { kind: "none" };
    }
    if (line.startsWith(SETUP_FAILED_MARKER)) {
      const parsed = z.strictObject({ code: z.string().max(64), message: z.string().max(2000) })
        .safeParse(safeJson(line.slice(SETUP_FAILED_MARKER.length)));
      return parsed.success
        ? { kind: "setup_failed", ...parsed.data }
        : { kind: "setup_failed", code: "SETUP_FAILED", message: "Sandbox setup failed" };
    }
  }
  return { kind: "none" };
}

/** Removes the sandbox's own report lines from stderr shown to callers. */
export function stripMarkers(stderr: string): string {
  return stderr.split("\n").filter((line) =>
    !line.startsWith(LAYERS_MARKER) && !line.startsWith(SETUP_FAILED_MARKER)
  ).join("\n");
}

/** The layers of a job, from its report and the runner's own knowledge. */
export function layersOf(
  start: SandboxStart,
  runner: { denoPermissions: boolean; processGroup: boolean },
): SandboxLayers {
  if (start.kind !== "layers") {
    return {
      ...runner,
      rlimits: false,
      noNewPrivs: false,
      nonDumpable: false,
      capabilitiesDropped: false,
      landlockAbi: 0,
      seccomp: false,
    };
  }
  return { ...runner, ...start.layers };
}

/** What the runner observed about one job process. */
export interface Observation {
  exitCode: number;
  signal: Deno.Signal | null;
  timedOut: boolean;
  cancelled: boolean;
  stdoutOverflow: boolean;
  stdout: Uint8Array;
  start: SandboxStart;
  stderrTail: string;
  timeoutMs: number;
}

/** The fields of a JobResult that depend on how the job ended. */
export type Outcome = Pick<JobResult, "status" | "exitCode" | "signal" | "result" | "error">;

/**
 * Maps an observation to an outcome. Order matters: the runner's own verdicts (cancel,
 * timeout, output too large) win over whatever the job printed; a signal wins over stdout;
 * only a clean exit with a valid `{"ok":true}` object is `ok`.
 */
export function decideOutcome(seen: Observation): Outcome {
  const signal = seen.signal;
  const ended = { exitCode: signal === null ? seen.exitCode : null, signal };
  const fail = (status: JobResult["status"], code: string, message: string): Outcome => ({
    ...ended,
    status,
    result: null,
    error: { code, message },
  });
  if (seen.cancelled) return fail("killed", "CANCELLED", "Job cancelled by the caller");
  if (seen.timedOut) {
    return fail("timeout", "TIMEOUT", `Job exceeded its wall-clock limit of ${seen.timeoutMs} ms`);
  }
  if (seen.stdoutOverflow) {
    return fail("invalid_output", "OUTPUT_TOO_LARGE", "Job wrote more than the stdout limit");
  }
  if (seen.start.kind === "setup_failed") {
    return fail("failed", "SANDBOX_SETUP_FAILED", `Sandbox setup failed: ${seen.start.message}`);
  }
  if (signal !== null) return killedBy(signal, seen.stderrTail, fail);
  if (seen.start.kind === "none") {
    return fail("failed", "SANDBOX_SETUP_FAILED", "Sandbox did not report its layers");
  }
  const text = new TextDecoder().decode(seen.stdout).trim();
  const json = safeJson(text);
  const parsed = JobOutputSchema.safeParse(json);
  if (!parsed.success) {
    if (seen.exitCode !== 0) {
      return fail("failed", "EXIT_NONZERO", `Job exited with status ${seen.exitCode}`);
    }
    const why = text === ""
      ? "no output"
      : json === NOT_JSON
      ? "not JSON"
      : describeZodError(parsed.error);
    return fail("invalid_output", "INVALID_OUTPUT", `Job output is not a result: ${why}`);
  }
  if (!parsed.data.ok) {
    return { ...ended, status: "failed", result: null, error: parsed.data.error };
  }
  if (seen.exitCode !== 0) {
    return fail("failed", "EXIT_NONZERO", `Job exited with status ${seen.exitCode}`);
  }
  return { ...ended, status: "ok", result: parsed.data.result ?? null, error: null };
}

const OOM = /heap limit|out of memory|allocation failed/i;

function killedBy(
  signal: Deno.Signal,
  stderrTail: string,
  fail: (status: JobResult["status"], code: string, message: string) => Outcome,
): Outcome {
  if (signal === "SIGXCPU") return fail("killed", "CPU_LIMIT", "Job exceeded its CPU time limit");
  if (OOM.test(stderrTail)) return fail("killed", "OUT_OF_MEMORY", `Job ran out of memory`);
  return fail("killed", "KILLED", `Job killed by ${signal}`);
}

/** Stands for text that is not JSON; no schema accepts it. */
const NOT_JSON: unique symbol = Symbol("not JSON");

/** JSON.parse that answers a syntax error with {@link NOT_JSON}. */
function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    if (error instanceof SyntaxError) return NOT_JSON;
    throw error;
  }
}
