/**
 * `secai scan` of many small files (issue #6): batched jobs vs one job per file (the
 * baseline, measured in the same run on the same files with the same sandboxed runner),
 * with the lines of both runs compared (they must be the same but for `ms`).
 *
 * Run: `tools/deno task bench:scan-many` (`-- N` for N files, default 200; a third are
 * benign pickles, a third PyTorch zip checkpoints, a third safetensors files, which also go
 * through the template renderer).
 * @module
 */
import { openScanSession, scanFiles, type ScanLine } from "../../runtime/cli_scan.ts";
import type { JobSpec } from "../../runtime/sandbox/mod.ts";
import { benignSafetensors, PickleWriter, torchZip } from "../quarantine/_corpus.ts";

/** Benchmark output goes to stdout. */
function report(line: string): void {
  // deno-lint-ignore no-console -- a bench script reports on stdout
  console.log(line);
}

const count = Number(Deno.args[0] ?? 200);
if (!Number.isSafeInteger(count) || count < 2 || count > 10_000) {
  throw new RangeError(`Invalid file count "${Deno.args[0]}": 2 to 10000`);
}

const dir = await Deno.makeTempDir({ prefix: "secai-scan-many-" });
try {
  const makers = [
    (i: number) => ({
      name: `p${i}.pkl`,
      bytes: new PickleWriter().proto(2).emptyDict().str(`k${i}`).int(i).setitem().stop().done(),
    }),
    (i: number) => ({ name: `t${i}.pt`, bytes: torchZip().file }),
    (i: number) => ({ name: `s${i}.safetensors`, bytes: benignSafetensors() }),
  ];
  const files: string[] = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const { name, bytes: data } = (makers[i % makers.length] as (typeof makers)[0])(i);
    await Deno.writeFile(`${dir}/${name}`, data);
    files.push(`${dir}/${name}`);
    bytes += data.length;
  }
  report(
    `scan_many: ${count} files, ${
      (bytes / 1024).toFixed(0)
    } KiB (pickles, torch zips, safetensors)`,
  );

  const runs: { label: string; ms: number; jobs: number; lines: ScanLine[] }[] = [];
  for (const batch of [false, true]) {
    const session = await openScanSession();
    let jobs = 0;
    const run = session.runner.run.bind(session.runner);
    session.runner.run = (spec: JobSpec, options) => {
      jobs++;
      return run(spec, options);
    };
    try {
      // The runner probes the kernel once per session: done before the clock starts.
      await session.runner.layers();
      const started = performance.now();
      const lines = await scanFiles(session, files, { batch });
      const ms = performance.now() - started;
      runs.push({ label: batch ? "batched" : "one job per file", ms, jobs, lines });
      report(
        `  ${batch ? "batched:         " : "one job per file:"} ${(ms / 1000).toFixed(2)} s, ${
          (ms / count).toFixed(1)
        } ms/file, ${jobs} jobs`,
      );
    } finally {
      await session.close();
    }
  }
  const [alone, batched] = runs as [typeof runs[0], typeof runs[0]];
  const strip = (lines: ScanLine[]) => JSON.stringify(lines.map(({ ms: _ms, ...rest }) => rest));
  const same = strip(alone.lines) === strip(batched.lines);
  const clean = batched.lines.filter((l) => l.verdict === "clean").length;
  report(`  ratio: batched is ${(alone.ms / batched.ms).toFixed(1)}× faster`);
  report(`  lines identical (but ms): ${same}; clean: ${clean}/${count}`);
  if (!same) Deno.exitCode = 1;
} finally {
  await Deno.remove(dir, { recursive: true });
}
