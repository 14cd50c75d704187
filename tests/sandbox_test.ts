/**
 * The sandboxed job runner against the real kernel: each layer is shown to hold, where it
 * matters on its own (the job's Deno permissions widened through the test-only hook, so
 * only Landlock, seccomp, rlimits and capabilities stand in the way).
 * Needs Linux with Landlock and seccomp. Run with
 * `deno test --allow-read --allow-write --allow-net --allow-env --allow-run --allow-sys
 * --allow-ffi tests/sandbox_test.ts`.
 * @module
 */
import assert from "node:assert/strict";
import {
  type JobRunnerOptions,
  type JobSpec,
  resolveLimits,
  SandboxError,
} from "../runtime/sandbox/mod.ts";
import { JobRunner } from "../runtime/sandbox/mod.ts";
import type { JobResult } from "../runtime/kit/sandbox_api.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const JOBS = `${ROOT}/tests/fixtures/jobs`;
const HOME = await Deno.realPath(await Deno.makeTempDir({ prefix: "secai_sandbox_home_" }));
const OUTSIDE = await Deno.realPath(await Deno.makeTempDir({ prefix: "secai_sandbox_out_" }));
const INPUT = "in/input.txt";
const SIBLING = `${HOME}/in/sibling.txt`;
const SECRET = `${OUTSIDE}/secret.txt`;

await Deno.mkdir(`${HOME}/in`);
await Deno.writeTextFile(`${HOME}/${INPUT}`, "input text");
await Deno.writeTextFile(SIBLING, "another file of the state dir");
await Deno.writeTextFile(SECRET, "outside the state dir");
await Deno.symlink(SECRET, `${HOME}/in/link-out`);
await Deno.mkdir(`${HOME}/jobs/planted`, { recursive: true });
await Deno.writeTextFile(`${HOME}/jobs/planted/out.txt`, "another job's output");
const mkfifo = await new Deno.Command("/usr/bin/mkfifo", { args: [`${HOME}/in/fifo`] }).output();
assert.ok(mkfifo.success, "mkfifo failed");

globalThis.addEventListener("unload", () => {
  Deno.removeSync(HOME, { recursive: true });
  Deno.removeSync(OUTSIDE, { recursive: true });
});

const BASE: JobRunnerOptions = {
  home: HOME,
  codeRoots: [`${ROOT}/runtime/kit`, JOBS, `${ROOT}/node_modules`],
  configPath: `${ROOT}/deno.json`,
};
const runner = new JobRunner(BASE);
/** Deno lets the job do anything here; only the kernel layers remain. */
const WIDE_PERMISSIONS = ["--allow-read", "--allow-write", "--allow-net", "--allow-run"];
const wideRunner = new JobRunner({ ...BASE, testOnly: { denoPermissions: WIDE_PERMISSIONS } });

function job(module: string, overrides: Partial<JobSpec> = {}): JobSpec {
  return {
    module: `${JOBS}/${module}`,
    input: { kind: "inline", data: "" },
    args: [],
    limits: {},
    ...overrides,
  };
}

function hog(mode: string, limits: JobSpec["limits"] = {}): JobSpec {
  return job("hog.ts", { args: [mode], limits });
}

async function shell(script: string): Promise<string> {
  const output = await new Deno.Command("/bin/sh", { args: ["-c", script] }).output();
  return new TextDecoder().decode(output.stdout);
}

/** Polls a condition (not a sleep standing in for one) until it holds or time runs out. */
async function waitFor(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Whether a pid is gone or a zombie. */
async function isDead(pid: number): Promise<boolean> {
  const state = (await shell(`awk '{print $3}' /proc/${pid}/stat 2>/dev/null`)).trim();
  return state === "" || state === "Z" || state === "X";
}

function assertOk(result: JobResult): void {
  assert.equal(result.status, "ok", `${JSON.stringify(result.error)} ${result.stderrTail}`);
}

// ---- the probe job: every forbidden operation, once per permission set -----------------

const READ_TARGETS: [label: string, path: string][] = [
  ["a sibling of its input", SIBLING],
  ["a file outside the state dir", SECRET],
  ["/etc/hostname", "/etc/hostname"],
  // Mapped into the launcher (SQLite), so it would slip in with the launcher's libraries.
  ["the launcher's cache", `${HOME}/jobs/.launcher-cache/dep_analysis_cache_v2`],
];
const WRITE_TARGETS: [label: string, path: string][] = [
  ["beside its input", `${HOME}/in/planted.txt`],
  ["in another job's directory", `${HOME}/jobs/planted/x.txt`],
  ["outside the state dir", `${OUTSIDE}/x.txt`],
];

interface ProbeRun {
  result: JobResult;
  report: Record<string, string>;
  connections: number;
}

async function runProbe(target: JobRunner): Promise<ProbeRun> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let connections = 0;
  const accepting = (async () => {
    for await (const connection of listener) {
      connections++;
      connection.close();
    }
  })();
  try {
    const targets = {
      readPaths: READ_TARGETS.map(([, path]) => path),
      writePaths: WRITE_TARGETS.map(([, path]) => path),
      port: listener.addr.port,
    };
    const result = await target.run(
      job("probe.ts", {
        input: { kind: "file", path: INPUT },
        args: [JSON.stringify(targets)],
      }),
    );
    assertOk(result);
    return { result, report: result.result as Record<string, string>, connections };
  } finally {
    listener.close();
    await accepting;
  }
}

function once<T>(make: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | null = null;
  return () => (value ??= make());
}

const wideProbe = once(() => runProbe(wideRunner));
const defaultProbe = once(() => runProbe(runner));

const EACCES = /PermissionDenied: .*os error 13/;
const EPERM = /PermissionDenied: .*(os error 1\b|EPERM)/;
const NOT_CAPABLE = /NotCapable/;

const kernelCases: { name: string; checks: string[]; expect: RegExp }[] = [
  { name: "reads its input file", checks: ["read input"], expect: /^ALLOWED$/ },
  { name: "writes its out dir", checks: ["write out dir"], expect: /^ALLOWED$/ },
  ...READ_TARGETS.flatMap(([label, path]) => [
    { name: `cannot read ${label} (sync)`, checks: [`read sync ${path}`], expect: EACCES },
    { name: `cannot read ${label} (async)`, checks: [`read async ${path}`], expect: EACCES },
    { name: `cannot read ${label} from a Worker`, checks: [`read worker ${path}`], expect: EACCES },
  ]),
  ...WRITE_TARGETS.map(([label, path]) => ({
    name: `cannot write or mkdir ${label}`,
    checks: [`write ${path}`, `mkdir ${path}.d`],
    expect: EACCES,
  })),
  { name: "cannot spawn a process", checks: ["spawn deno", "spawn sync"], expect: EPERM },
  { name: "cannot signal its parent", checks: ["signal parent"], expect: EPERM },
  { name: "cannot call native code after boot", checks: ["dlopen libc"], expect: NOT_CAPABLE },
  { name: "cannot read the environment after boot", checks: ["read env"], expect: NOT_CAPABLE },
];

for (const c of kernelCases) {
  Deno.test(`a job with wide Deno permissions ${c.name}`, async () => {
    const { report } = await wideProbe();
    for (const check of c.checks) assert.match(report[check] ?? "missing", c.expect, check);
  });
}

Deno.test("a job with wide Deno permissions cannot open a TCP socket to 127.0.0.1", async () => {
  const { report, connections } = await wideProbe();
  // EPERM: seccomp refuses socket(2) itself (Landlock would refuse connect with EACCES).
  assert.match(report["tcp connect"] ?? "missing", EPERM);
  assert.equal(connections, 0);
});

Deno.test("a job with wide Deno permissions left no file outside its out dir", async () => {
  await wideProbe();
  for (const [, path] of WRITE_TARGETS) {
    assert.equal(await exists(path), false, path);
    assert.equal(await exists(`${path}.d`), false, `${path}.d`);
  }
});

Deno.test("a job with wide Deno permissions reports its Deno layer as off", async () => {
  const { result } = await wideProbe();
  assert.equal(result.layers.denoPermissions, false);
  assert.ok(result.layers.landlockAbi > 0);
  assert.equal(result.layers.seccomp, true);
});

const denoCases: { name: string; check: string }[] = [
  { name: "a sibling file (async)", check: `read async ${SIBLING}` },
  { name: "/etc/hostname from a Worker", check: "read worker /etc/hostname" },
  { name: "a TCP socket", check: "tcp connect" },
  { name: "a process", check: "spawn deno" },
  { name: "a write outside its out dir", check: `write ${OUTSIDE}/x.txt` },
];

for (const c of denoCases) {
  Deno.test(`a job with default permissions is refused ${c.name} by Deno`, async () => {
    const { report } = await defaultProbe();
    assert.match(report[c.check] ?? "missing", NOT_CAPABLE);
  });
}

Deno.test("a job with default permissions reports every layer in force", async () => {
  const { result } = await defaultProbe();
  assert.deepEqual(result.layers, {
    ...await runner.layers(),
    landlockAbi: result.layers.landlockAbi,
  });
  assert.ok(result.layers.landlockAbi > 0);
});

// ---- layers of the kernel and of each thread --------------------------------------------

Deno.test("layers() reports Landlock ABI > 0 and seccomp on this kernel", async () => {
  const layers = await runner.layers();
  assert.ok(layers.landlockAbi > 0, `landlockAbi ${layers.landlockAbi}`);
  assert.equal(layers.seccomp, true);
  assert.equal(layers.noNewPrivs, true);
});

Deno.test("every thread of a job shows NoNewPrivs 1, Seccomp 2 and CapEff 0", async () => {
  let spawned: { pid: number; outDir: string } | null = null;
  const lingering = new JobRunner({
    ...BASE,
    testOnly: { onSpawn: (info) => (spawned = info) },
  });
  const controller = new AbortController();
  let settled = false;
  const running = lingering.run(hog("linger"), { signal: controller.signal })
    .finally(() => (settled = true));
  let statuses = "";
  let descriptors = "";
  try {
    const ready = async (): Promise<boolean> => {
      if (settled) throw new Error(`The job ended early: ${JSON.stringify(await running)}`);
      const info = spawned as { outDir: string } | null;
      return info !== null && await exists(`${info.outDir}/ready`);
    };
    await waitFor("the job's threads", ready);
    const { pid } = spawned as unknown as { pid: number };
    statuses = await shell(`cat /proc/${pid}/task/*/status`);
    descriptors = await shell(
      `cd /proc/${pid}/fd && for fd in *; do echo "$fd $(readlink $fd)"; done`,
    );
  } finally {
    controller.abort();
  }
  const result = await running;
  assert.equal(result.status, "killed");
  assert.equal(result.error?.code, "CANCELLED");
  const threads = statuses.split(/^(?=Name:)/m).filter((block) => block.trim() !== "");
  assert.ok(threads.length >= 4, `only ${threads.length} threads`);
  for (const thread of threads) {
    const name = /^Name:\s*(.*)$/m.exec(thread)?.[1];
    assert.match(thread, /^NoNewPrivs:\s*1$/m, `NoNewPrivs of ${name}`);
    assert.match(thread, /^Seccomp:\s*2$/m, `Seccomp of ${name}`);
    assert.match(thread, /^CapEff:\s*0+$/m, `CapEff of ${name}`);
  }
  // Nothing inherited: no file but /dev/null, no pipe but its own stdin/stdout/stderr.
  const fds = new Map(
    descriptors.trim().split("\n").map((line) => {
      const [fd = "", target = ""] = line.split(" ");
      return [fd, target] as const;
    }),
  );
  const stdio = new Set(["0", "1", "2"].map((fd) => fds.get(fd)));
  for (const [fd, target] of fds) {
    if (target.startsWith("/")) assert.equal(target, "/dev/null", `fd ${fd}`);
    if (target.startsWith("pipe:")) assert.ok(stdio.has(target), `fd ${fd} is ${target}`);
  }
});

// ---- limits -------------------------------------------------------------------------------

Deno.test("run() kills a job at its timeout, with its whole process group", async () => {
  // Seccomp off and /usr/bin/sleep executable, so the job can start a grandchild.
  const forking = new JobRunner({
    ...BASE,
    testOnly: {
      denoPermissions: ["--allow-run=/usr/bin/sleep"],
      seccomp: false,
      extraRules: [{ path: "/usr/bin/sleep", access: "rx" }],
    },
  });
  const result = await forking.run(hog("fork-spin", { timeoutMs: 1000 }));
  assert.equal(result.status, "timeout");
  assert.equal(result.error?.code, "TIMEOUT");
  assert.equal(result.signal, "SIGKILL");
  assert.ok(result.durationMs < 10_000, `${result.durationMs} ms`);
  assert.equal(result.layers.seccomp, false, "a filter that was not loaded is not reported");
  const grandchild = Number(/grandchild (\d+)/.exec(result.stderrTail)?.[1]);
  assert.ok(grandchild > 0, result.stderrTail);
  await waitFor("the grandchild to die", () => isDead(grandchild), 3000);
});

Deno.test("run() kills a sandboxed job at its timeout", async () => {
  const result = await runner.run(hog("spin", { timeoutMs: 500 }));
  assert.equal(result.status, "timeout");
  assert.equal(result.signal, "SIGKILL");
  assert.ok(result.durationMs >= 500 && result.durationMs < 10_000, `${result.durationMs} ms`);
});

Deno.test("a 4 GiB allocation fails only the job, and the next job runs", async () => {
  const result = await runner.run(hog("buffer", { memMb: 1024 }));
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "JOB_FAILED");
  assert.match(result.error?.message ?? "", /allocation failed|invalid (typed )?array length/i);
  assertOk(await runner.run(job("noop.ts")));
});

Deno.test("a JS heap bomb is killed at its heap limit", async () => {
  const result = await runner.run(hog("heap", { heapMb: 64, timeoutMs: 20_000 }));
  assert.equal(result.status, "killed");
  assert.equal(result.error?.code, "OUT_OF_MEMORY");
  assertOk(await runner.run(job("noop.ts")));
});

Deno.test("RLIMIT_CPU ends a spinning job with SIGXCPU", async () => {
  const result = await runner.run(hog("spin", { cpuSec: 1, timeoutMs: 10_000 }));
  assert.equal(result.status, "killed");
  assert.equal(result.signal, "SIGXCPU");
  assert.equal(result.error?.code, "CPU_LIMIT");
});

Deno.test("an AbortSignal cancels a running job", async () => {
  const result = await runner.run(hog("spin"), { signal: AbortSignal.timeout(300) });
  assert.equal(result.status, "killed");
  assert.equal(result.error?.code, "CANCELLED");
  assert.equal(result.signal, "SIGKILL");
});

Deno.test("an aborted signal never starts the job", async () => {
  const result = await runner.run(job("noop.ts"), { signal: AbortSignal.abort() });
  assert.equal(result.status, "killed");
  assert.equal(result.error?.code, "CANCELLED");
  assert.equal(result.exitCode, null);
});

Deno.test("resolveLimits() clamps requests to the maxima and fills defaults", () => {
  const max = { timeoutMs: 1000, heapMb: 64, memMb: 512, cpuSec: 5 };
  assert.deepEqual(resolveLimits({ timeoutMs: 50_000, heapMb: 32 }, max), {
    timeoutMs: 1000,
    heapMb: 32,
    memMb: 512,
    cpuSec: 5,
  });
  assert.deepEqual(resolveLimits({}), { timeoutMs: 30_000, heapMb: 256, memMb: 1024, cpuSec: 30 });
});

// ---- input, output, module ----------------------------------------------------------------

const rejectedInputs: { name: string; path: string }[] = [
  { name: "a path escaping with ../", path: `../${OUTSIDE.split("/").pop()}/secret.txt` },
  { name: "an absolute path", path: SECRET },
  { name: "a symlink out of the state dir", path: "in/link-out" },
  { name: "a missing file", path: "in/missing.txt" },
  { name: "a directory", path: "in" },
  { name: "a FIFO", path: "in/fifo" },
  { name: "a file in a job directory", path: "jobs/planted/out.txt" },
  { name: "a path with a comma", path: "in/input.txt,/etc" },
];

for (const c of rejectedInputs) {
  Deno.test(`run() refuses ${c.name} as input`, async () => {
    const error = await runner.run(job("echo.ts", { input: { kind: "file", path: c.path } }))
      .then(() => null, (error: unknown) => error);
    assert.ok(error instanceof SandboxError, String(error));
    assert.equal(error.code, "INPUT_REJECTED");
  });
}

Deno.test("run() passes a file input inside the state dir", async () => {
  const result = await runner.run(job("echo.ts", { input: { kind: "file", path: INPUT } }));
  assertOk(result);
  assert.deepEqual(result.result, { text: "input text", fromFile: true, args: [] });
});

const rejectedDirectories: { name: string; path: string }[] = [
  { name: "a regular file", path: INPUT },
  { name: "the state dir itself", path: "." },
  { name: "the job directories", path: "jobs" },
  { name: "a symlink out of the state dir", path: "in/link-out" },
];

for (const c of rejectedDirectories) {
  Deno.test(`run() refuses ${c.name} as a directory input`, async () => {
    const error = await runner.run(job("echo.ts", { input: { kind: "directory", path: c.path } }))
      .then(() => null, (error: unknown) => error);
    assert.ok(error instanceof SandboxError, String(error));
    assert.equal(error.code, "INPUT_REJECTED");
  });
}

Deno.test("a directory input is readable below it, read-only, and a link inside it leads nowhere", async () => {
  await Deno.mkdir(`${HOME}/dir-input/sub`, { recursive: true });
  await Deno.writeTextFile(`${HOME}/dir-input/sub/a.txt`, "below the input");
  await Deno.symlink(SECRET, `${HOME}/dir-input/sub/link-out`);
  const inside = `${HOME}/dir-input/sub/a.txt`;
  const link = `${HOME}/dir-input/sub/link-out`;
  const write = `${HOME}/dir-input/new.txt`;
  // Wide Deno permissions: Landlock alone holds.
  const result = await wideRunner.run(job("probe.ts", {
    input: { kind: "directory", path: "dir-input" },
    args: [JSON.stringify({ readPaths: [inside, link], writePaths: [write], port: 9 })],
  }));
  assertOk(result);
  const report = result.result as Record<string, string>;
  for (const how of ["sync", "async", "worker"]) {
    assert.equal(report[`read ${how} ${inside}`], "ALLOWED", how);
    assert.match(report[`read ${how} ${link}`] ?? "missing", EACCES, how);
  }
  assert.match(report[`write ${write}`] ?? "missing", EACCES);
  assert.match(report[`mkdir ${write}.d`] ?? "missing", EACCES);
  assert.equal(await exists(write), false);
});

Deno.test("run() hands a batch of files to the job, each read-only, and nothing beside them", async () => {
  await Deno.writeTextFile(`${HOME}/in/batch-a.txt`, "first");
  await Deno.writeTextFile(`${HOME}/in/batch-b.txt`, "second");
  const spec = job("read_files.ts", {
    input: { kind: "files", paths: ["in/batch-a.txt", INPUT, "in/batch-b.txt"] },
    args: [SIBLING, "--x"],
  });
  const result = await runner.run(spec);
  assertOk(result);
  assert.deepEqual(result.result, {
    texts: ["first", "input text", "second"],
    other: "NotCapable",
    args: ["--x"],
  });
  // With Deno's permissions widened, Landlock still allows only the listed files.
  const wide = await wideRunner.run(spec);
  assertOk(wide);
  assert.equal((wide.result as { other: string }).other, "PermissionDenied");
});

for (const c of rejectedInputs) {
  Deno.test(`run() refuses a batch of files that holds ${c.name}`, async () => {
    const error = await runner.run(
      job("read_files.ts", { input: { kind: "files", paths: [INPUT, c.path] } }),
    ).then(() => null, (error: unknown) => error);
    assert.ok(error instanceof SandboxError, String(error));
    assert.equal(error.code, "INPUT_REJECTED");
  });
}

Deno.test("run() refuses an empty batch of files", async () => {
  const error = await runner.run(job("read_files.ts", { input: { kind: "files", paths: [] } }))
    .then(() => null, (error: unknown) => error);
  assert.ok(error instanceof SandboxError, String(error));
  assert.equal(error.code, "INVALID_JOB");
});

Deno.test("run() passes inline input on stdin to a job that imports zod", async () => {
  const result = await runner.run(
    job("echo.ts", { input: { kind: "inline", data: "hello ✓" }, args: ["a", "--b"] }),
  );
  assertOk(result);
  assert.deepEqual(result.result, { text: "hello ✓", fromFile: false, args: ["a", "--b"] });
  assert.equal(result.exitCode, 0);
});

const outputCases: { name: string; mode: string; status: JobResult["status"]; code: string }[] = [
  {
    name: "malformed stdout",
    mode: "bad-output",
    status: "invalid_output",
    code: "INVALID_OUTPUT",
  },
  {
    name: "stdout over the limit",
    mode: "flood",
    status: "invalid_output",
    code: "OUTPUT_TOO_LARGE",
  },
  { name: "a job's own error", mode: "fail", status: "failed", code: "UNSAFE_PICKLE" },
  { name: "an unknown mode (uncaught error)", mode: "nope", status: "failed", code: "JOB_FAILED" },
];

for (const c of outputCases) {
  Deno.test(`run() maps ${c.name} to ${c.status} ${c.code}`, async () => {
    const result = await runner.run(hog(c.mode));
    assert.equal(result.status, c.status);
    assert.equal(result.error?.code, c.code);
    assert.equal(result.result, null);
  });
}

Deno.test("console.log in a job does not corrupt its result", async () => {
  const result = await runner.run(hog("chatty"));
  assertOk(result);
  assert.equal(result.result, "quiet");
  assert.match(result.stderrTail, /chatter/);
});

const rejectedJobs: { name: string; spec: JobSpec; code: string }[] = [
  {
    name: "a module outside the code roots",
    spec: { ...job(""), module: SECRET },
    code: "MODULE_REJECTED",
  },
  {
    name: "a relative module path",
    spec: { ...job(""), module: "hog.ts" },
    code: "MODULE_REJECTED",
  },
  { name: "a timeout below the minimum", spec: hog("spin", { timeoutMs: 5 }), code: "INVALID_JOB" },
  {
    name: "an argument with NUL",
    spec: job("noop.ts", { args: ["a\0b"] }),
    code: "INVALID_JOB",
  },
];

for (const c of rejectedJobs) {
  Deno.test(`run() refuses ${c.name}`, async () => {
    const error = await runner.run(c.spec).then(() => null, (error: unknown) => error);
    assert.ok(error instanceof SandboxError, String(error));
    assert.equal(error.code, c.code);
  });
}

Deno.test("a runner refuses a code root that overlaps its state dir", async () => {
  for (const root of [HOME, `${HOME}/in`, "/tmp"]) {
    const overlapping = new JobRunner({ ...BASE, codeRoots: [...BASE.codeRoots, root] });
    const error = await overlapping.layers().then(() => null, (error: unknown) => error);
    assert.ok(error instanceof SandboxError, String(error));
    assert.equal(error.code, "SANDBOX_UNAVAILABLE");
  }
});

Deno.test("run() removes every job directory it created", async () => {
  assertOk(await runner.run(job("noop.ts")));
  const left = [];
  for await (const entry of Deno.readDir(`${HOME}/jobs`)) {
    if (!entry.name.startsWith(".")) left.push(entry.name);
  }
  assert.deepEqual(left, ["planted"]);
});

Deno.test("run() queues jobs beyond maxConcurrent", async () => {
  let firstDone = false;
  const startedWhileFirstRan: boolean[] = [];
  const serial = new JobRunner({
    ...BASE,
    maxConcurrent: 1,
    testOnly: { onSpawn: () => startedWhileFirstRan.push(!firstDone) },
  });
  const first = serial.run(job("noop.ts")).finally(() => (firstDone = true));
  const second = serial.run(job("noop.ts"));
  assertOk(await first);
  assertOk(await second);
  assert.deepEqual(startedWhileFirstRan, [true, false]);
});

Deno.test("a runner with only scoped permissions kills a job's group through /usr/bin/kill", async () => {
  // No unscoped run (so no Deno.kill(-pgid)), no ffi, env, net or sys: what a supervisor
  // grants its runner.
  const script = `${HOME}/scoped_runner.ts`;
  await Deno.writeTextFile(
    script,
    `import { JobRunner } from ${JSON.stringify(`${ROOT}/runtime/sandbox/mod.ts`)};
const runner = new JobRunner(${JSON.stringify(BASE)});
const result = await runner.run(${JSON.stringify(hog("spin", { timeoutMs: 500 }))});
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(result)));`,
  );
  const deno = Deno.execPath();
  const output = await new Deno.Command(deno, {
    args: [
      "run",
      "--no-prompt",
      `--config=${ROOT}/deno.json`,
      "--cached-only",
      "--allow-read",
      `--allow-write=${HOME}`,
      `--allow-run=${deno},/usr/bin/kill`,
      script,
    ],
    env: { NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.ok(output.success, stderr);
  const result = JSON.parse(new TextDecoder().decode(output.stdout)) as JobResult;
  assert.equal(result.status, "timeout");
  assert.equal(result.signal, "SIGKILL");
  assert.ok(result.layers.landlockAbi > 0 && result.layers.seccomp);
});
