/**
 * Job start overhead: a sandboxed job, start to result, against a plain `deno run` of the same
 * job module (same config, environment, argv protocol and stdin) in the same run. Deno's
 * group summary prints the ratio ("N.NNx faster than …").
 *   tools/deno task bench   (or: tools/deno bench --no-prompt --allow-read --allow-write
 *   --allow-run --allow-env tests/bench/sandbox_bench.ts)
 * @module
 */
import { JobRunner, type JobSpec } from "../../runtime/sandbox/mod.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const JOBS = `${ROOT}/tests/fixtures/jobs`;
const HOME = await Deno.makeTempDir({ prefix: "secai_sandbox_bench_" });
globalThis.addEventListener("unload", () => Deno.removeSync(HOME, { recursive: true }));

const runner = new JobRunner({
  home: HOME,
  codeRoots: [`${ROOT}/runtime/kit`, JOBS, `${ROOT}/node_modules`],
  configPath: `${ROOT}/deno.json`,
});
await runner.layers(); // the one-time probe is not part of a job's start
const deno = Deno.execPath();
const env = {
  NO_COLOR: "1",
  DENO_NO_UPDATE_CHECK: "1",
  DENO_DIR: "/dev/null/deno",
  DENO_EMIT_CACHE_MODE: "disable",
};
const input = new TextEncoder().encode("bench input");

/** The same job without the sandbox: one `deno run`, inline input on stdin. */
async function plainRun(module: string): Promise<void> {
  const child = new Deno.Command(deno, {
    args: [
      "run",
      "--no-prompt",
      `--config=${ROOT}/deno.json`,
      "--cached-only",
      "--no-remote",
      `--allow-write=${HOME}`,
      `--v8-flags=--max-old-space-size=256`,
      `${JOBS}/${module}`,
      "--secai-job",
      "-",
      HOME,
    ],
    clearEnv: true,
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(input);
  await writer.close();
  const output = await child.output();
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success || !text.startsWith('{"ok":true')) throw new Error(`Plain run failed`);
}

async function sandboxedRun(module: string): Promise<void> {
  const spec: JobSpec = {
    module: `${JOBS}/${module}`,
    input: { kind: "inline", data: "bench input" },
    args: [],
    limits: {},
  };
  const result = await runner.run(spec);
  if (result.status !== "ok") throw new Error(`Sandboxed run failed: ${result.stderrTail}`);
}

for (const [group, module] of [["trivial job", "noop.ts"], ["job importing zod", "echo.ts"]]) {
  Deno.bench({
    name: `plain deno run (${module})`,
    group: group as string,
    baseline: true,
    n: 20,
    warmup: 3,
    fn: async () => await plainRun(module as string),
  });
  Deno.bench({
    name: `sandboxed JobRunner.run (${module})`,
    group: group as string,
    n: 20,
    warmup: 3,
    fn: async () => await sandboxedRun(module as string),
  });
}
