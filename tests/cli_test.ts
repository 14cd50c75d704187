/**
 * The `secai` launcher and CLI as a user runs them, and the README commands CI executes.
 */
import assert, { equal, match } from "node:assert/strict";
import { SECAI, secai } from "./_cli.ts";
import { PROJECT_ROOT } from "./_system.ts";

/** Reads a child's stderr until a line matches; returns the text so far. */
async function waitForLine(
  stream: ReadableStream<Uint8Array<ArrayBuffer>>,
  pattern: RegExp,
): Promise<string> {
  let text = "";
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  try {
    while (!pattern.test(text)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended before ${pattern}: ${text}`);
      text += value;
    }
    return text;
  } finally {
    reader.releaseLock();
  }
}

/** Whether the child has exited (its status promise already settled). */
async function isExited(child: Deno.ChildProcess): Promise<boolean> {
  const marker = Symbol("running");
  const first = await Promise.race([child.status, Promise.resolve(marker)]);
  return first !== marker;
}

Deno.test("secai version prints the version and exits 0", async () => {
  const r = await secai(["version", "--json"]);
  equal(r.code, 0);
  match(JSON.parse(r.stdout).version, /^\d+\.\d+\.\d+$/);
});

const usage: { args: string[]; mentions: string }[] = [
  { args: ["bogus"], mentions: 'Unknown command "bogus"' },
  { args: ["start", "--nope"], mentions: 'Unknown option "--nope"' },
  { args: ["start", "--port"], mentions: 'Option "--port" needs a value' },
  { args: ["start", "--port", "99999"], mentions: "must be a port number" },
];
for (const u of usage) {
  Deno.test(`secai ${u.args.join(" ")} is a usage error (exit 2)`, async () => {
    const r = await secai(u.args);
    equal(r.code, 2);
    assert(r.stderr.includes(u.mentions), r.stderr);
  });
}

Deno.test("secai start refuses an invalid config with the field path (exit 1)", async () => {
  const home = await Deno.makeTempDir({ prefix: "secai-cli-" });
  try {
    await Deno.writeTextFile(`${home}/config.yaml`, "gateway:\n  port: nope\n");
    const r = await secai(["start", "--home", home]);
    equal(r.code, 1);
    assert(r.stderr.includes('at "gateway.port"'), r.stderr);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("secai start serves the system; status sees it; SIGTERM stops it in order", async () => {
  const home = await Deno.makeTempDir({ prefix: "secai-cli-" });
  const child = new Deno.Command(SECAI, {
    args: ["start", "--home", home, "--json"],
    env: { NO_COLOR: "1", SECAI_PORT: "0" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    const log = await waitForLine(child.stderr, /"SecAI Runtime ready"|started degraded/);
    const ready = log.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => JSON.parse(l))
      .find((l) => l.message === "SecAI Runtime ready");
    assert(ready, log);
    const url = new URL(ready.url);
    const health = await fetch(new URL("/api/v1/health", url));
    equal(health.status, 200);
    await health.body?.cancel();

    const status = await secai(["status", "--home", home, "--json"]);
    equal(status.code, 0, status.stderr);
    const body = JSON.parse(status.stdout);
    equal(body.ready, true);
    assert(body.controls.some((c: { name: string }) => c.name === "policy"));

    const second = await secai(["start", "--home", home]);
    equal(second.code, 1);
    assert(second.stderr.includes("another instance"), second.stderr);

    const started = Date.now();
    child.kill("SIGTERM");
    const exit = await child.status;
    equal(exit.code, 0);
    assert(Date.now() - started < 5000);
    const after = await secai(["status", "--home", home]);
    equal(after.code, 1);
    assert(after.stdout.includes("not running"), after.stdout);
  } finally {
    if (!(await isExited(child))) child.kill("SIGKILL");
    await child.status;
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("CI runs exactly the README's test command", async () => {
  const readme = await Deno.readTextFile(`${PROJECT_ROOT}/README.md`);
  const blocks = [...readme.matchAll(/```sh\n([^`]+)```/g)].map((m) => m[1]?.trim());
  assert(blocks.includes("./secai start"), "README start command");
  assert(blocks.includes("./tools/test"), "README test command");
  const ci = await Deno.readTextFile(`${PROJECT_ROOT}/.ci/run`);
  match(ci, /^exec \.\/tools\/test$/m);
  const testScript = await Deno.readTextFile(`${PROJECT_ROOT}/tools/test`);
  match(testScript, /echo "\$passed passed, \$failed failed"/);
});
