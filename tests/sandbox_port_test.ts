/**
 * Sandboxed jobs reached the only way controls can reach them: through the `sandbox` port the
 * supervisor hands to controls whose manifest entry lists jobs, for those jobs only.
 */
import assert, { deepEqual, equal } from "node:assert/strict";
import { PROJECT_ROOT, startSystem } from "./_system.ts";
import { runnerApi } from "./fixtures/controls/probe_api.ts";
import { JobRunner } from "../runtime/sandbox/mod.ts";
import { RpcError } from "../runtime/kit/errors.ts";
import type { ControlSpecInput } from "../runtime/manifest.ts";

function runnerControls(jobs: Record<string, string>): ControlSpecInput[] {
  return [{
    name: "runner",
    description: "test job runner",
    entry: "tests/fixtures/controls/runner.ts",
    provides: ["runner"],
    jobs,
    restart: { backoffMs: 20, maxRestarts: 1 },
  }];
}

async function withRunnerSystem(
  jobs: Record<string, string>,
  fn: (call: (job: string) => Promise<unknown>) => Promise<void>,
): Promise<void> {
  let runner: JobRunner | undefined;
  const sys = await startSystem({
    controls: runnerControls(jobs),
    jobRunner: {
      run: (spec, options) => {
        runner ??= new JobRunner({
          home: sys.home,
          codeRoots: [PROJECT_ROOT],
          configPath: `${PROJECT_ROOT}/deno.json`,
        });
        return runner.run(spec, options);
      },
    },
  });
  try {
    const client = sys.supervisor.client(runnerApi);
    await fn((job) => client.call("run", { job, text: "hello" }, { deadlineMs: 30_000 }));
  } finally {
    await sys.stop();
  }
}

Deno.test("a control runs its declared job in the sandbox and gets the result with its layers", async () => {
  await withRunnerSystem({ echo: "tests/fixtures/jobs/echo.ts" }, async (call) => {
    const result = await call("echo") as {
      status: string;
      result: unknown;
      layers: { seccomp: boolean; landlockAbi: number; noNewPrivs: boolean };
    };
    equal(result.status, "ok");
    deepEqual(result.result, { text: "hello", fromFile: false, args: ["a1"] });
    assert(result.layers.noNewPrivs);
    assert(result.layers.seccomp);
    assert(result.layers.landlockAbi > 0);
  });
});

Deno.test("a control cannot run a job its manifest entry does not list", async () => {
  await withRunnerSystem({ echo: "tests/fixtures/jobs/echo.ts" }, async (call) => {
    const err = await call("hog").then(() => null, (e: unknown) => e);
    assert(err instanceof RpcError);
    equal(err.code, "JOB_NOT_ALLOWED");
  });
});

Deno.test("a control without jobs has no sandbox port at all", async () => {
  await withRunnerSystem({}, async (call) => {
    const err = await call("echo").then(() => null, (e: unknown) => e);
    assert(err instanceof RpcError);
    equal(err.code, "NO_CAPABILITY");
    assert(err.message.includes('no capability for "sandbox"'), err.message);
  });
});
