/**
 * System-level numbers for the runtime foundation, each next to a baseline measured in the
 * same run: time from `./secai start` to "ready" vs a bare `deno run` printing a line, and
 * idle RSS of the whole tree vs that bare Deno process. Targets (issue #3): ready ≤ 1.5 s,
 * idle RSS ≤ 250 MB.
 *   tools/deno task bench:system [rounds]
 */
const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const rounds = Number(Deno.args[0] ?? 5);

async function timeToLine(
  cmd: string,
  args: string[],
  pattern: RegExp,
  env: Record<string, string>,
): Promise<{ ms: number; rssMb: number }> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).spawn();
  let text = "";
  const streams = [child.stdout, child.stderr].map((s) => s.pipeThrough(new TextDecoderStream()));
  const readers = streams.map((s) => s.getReader());
  await new Promise<void>((resolve, reject) => {
    for (const r of readers) {
      (async () => {
        for (;;) {
          const { value, done } = await r.read();
          if (done) return;
          text += value;
          if (pattern.test(text)) resolve();
        }
      })().catch(reject);
    }
  });
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 2000)); // idle
  // Deno reads /proc/<pid> only with --allow-all; ps reports the same VmRSS.
  const ps = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(child.pid)] })
    .output();
  const rssKb = Number(new TextDecoder().decode(ps.stdout).trim());
  child.kill("SIGTERM");
  await child.status;
  for (const r of readers) await r.cancel();
  return { ms, rssMb: rssKb / 1024 };
}

const deno = `${ROOT}/tools/deno-npm/node_modules/deno/deno`;
const base = await Deno.makeTempFile({ suffix: ".ts" });
await Deno.writeTextFile(base, 'console.log("ready"); setTimeout(() => {}, 60_000);');
const results: { system: { ms: number; rssMb: number }[]; bare: { ms: number; rssMb: number }[] } =
  {
    system: [],
    bare: [],
  };
for (let i = 0; i < rounds; i++) {
  results.bare.push(
    await timeToLine(deno, ["run", "--no-config", base], /ready/, { NO_COLOR: "1" }),
  );
  const home = await Deno.makeTempDir({ prefix: "secai-bench-" });
  results.system.push(
    await timeToLine(
      `${ROOT}/secai`,
      ["start", "--home", home, "--port", "0"],
      /SecAI Runtime ready/,
      {
        NO_COLOR: "1",
      },
    ),
  );
  await Deno.remove(home, { recursive: true });
}
await Deno.remove(base);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN;
const sys = {
  ms: median(results.system.map((r) => r.ms)),
  rss: median(results.system.map((r) => r.rssMb)),
};
const bare = {
  ms: median(results.bare.map((r) => r.ms)),
  rss: median(results.bare.map((r) => r.rssMb)),
};
// deno-lint-ignore no-console -- a bench script reports on stdout
console.log(
  [
    `rounds: ${rounds} (median)`,
    `ready:    secai start ${sys.ms.toFixed(0)} ms  vs bare deno run ${bare.ms.toFixed(0)} ms  (${
      (sys.ms / bare.ms).toFixed(2)
    }x; target ≤ 1500 ms)`,
    `idle RSS: secai tree ${sys.rss.toFixed(0)} MB  vs bare deno ${bare.rss.toFixed(0)} MB  (${
      (sys.rss / bare.rss).toFixed(2)
    }x; target ≤ 250 MB)`,
  ].join("\n"),
);
