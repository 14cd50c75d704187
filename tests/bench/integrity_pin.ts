/**
 * Integrity pin throughput (stage 3 of the quarantine and the registry's re-verification):
 * one streaming pass computing SHA-256 and the fs-verity digest of a file, against
 * coreutils `sha256sum` of the same file in the same run (and `fsverity digest` when the
 * fsverity tool is installed). The file is read once first so every tool reads it from the
 * page cache. Prints medians, MB/s and the ratios; the digests are cross-checked.
 *   tools/deno task bench:integrity [MiB] [rounds]
 * @module
 */
import { digestFile } from "../../runtime/kit/digest.ts";

const mib = Number(Deno.args[0] ?? 1024);
const rounds = Number(Deno.args[1] ?? 5);

async function writeFile(path: string): Promise<void> {
  const block = new Uint8Array(1 << 20);
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    for (let i = 0; i < mib; i++) {
      // Distinct blocks, so no layer can shortcut repeated content.
      for (let j = 0; j < block.length; j += 65536) {
        crypto.getRandomValues(block.subarray(j, j + 65536));
      }
      for (let at = 0; at < block.length;) at += await file.write(block.subarray(at));
    }
  } finally {
    file.close();
  }
}

async function time(fn: () => Promise<string>): Promise<{ ms: number; out: string }> {
  const t0 = performance.now();
  const out = await fn();
  return { ms: performance.now() - t0, out };
}

async function tool(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (out.code !== 0) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

const dir = await Deno.makeTempDir({ prefix: "secai-integrity-bench-" });
const path = `${dir}/model.bin`;
try {
  await writeFile(path);
  // Warm the page cache (output discarded, never buffered here).
  await new Deno.Command("cat", { args: [path], stdout: "null", stderr: "null" }).output();
  const hasFsverity = await Deno.stat("/usr/bin/fsverity").then(() => true, () => false);
  const runs: Record<string, number[]> = { sha256sum: [], ours: [], fsverity: [] };
  let ours = { sha256: "", fsverity: "" };
  let peakRss = Deno.memoryUsage().rss;
  for (let i = 0; i < rounds; i++) {
    const base = await time(() => tool("sha256sum", [path]));
    runs.sha256sum?.push(base.ms);
    const mine = await time(async () => {
      const d = await digestFile(path);
      ours = d;
      return d.sha256;
    });
    peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
    runs.ours?.push(mine.ms);
    if (base.out.split(" ")[0] !== ours.sha256) throw new Error("SHA-256 differs from sha256sum");
    if (hasFsverity) {
      const fv = await time(() =>
        tool("/usr/bin/fsverity", ["digest", "--hash-alg=sha256", "--block-size=4096", path])
      );
      runs.fsverity?.push(fv.ms);
      if (fv.out.split(" ")[0] !== `sha256:${ours.fsverity}`) {
        throw new Error("fs-verity digest differs");
      }
    }
  }
  const mbps = (ms: number) => (mib * 1.048576) / (ms / 1000);
  const base = median(runs.sha256sum ?? []);
  const mine = median(runs.ours ?? []);
  const lines = [
    `integrity pin of a ${mib} MiB file, median of ${rounds} (page cache warm):`,
    `  sha256sum (baseline)             ${base.toFixed(0).padStart(7)} ms  ${
      mbps(base).toFixed(0).padStart(6)
    } MB/s`,
    `  SHA-256 + fs-verity (one pass)   ${mine.toFixed(0).padStart(7)} ms  ${
      mbps(mine).toFixed(0).padStart(6)
    } MB/s  ratio ${(mine / base).toFixed(2)}x`,
  ];
  if (hasFsverity) {
    const fv = median(runs.fsverity ?? []);
    lines.push(
      `  fsverity digest (fs-verity only) ${fv.toFixed(0).padStart(7)} ms  ${
        mbps(fv).toFixed(0).padStart(6)
      } MB/s  ratio ${(fv / base).toFixed(2)}x`,
    );
  }
  lines.push(
    `  peak RSS of the hashing process: ${
      (peakRss / 2 ** 20).toFixed(0)
    } MB; digests cross-checked`,
  );
  // deno-lint-ignore no-console -- a benchmark script prints its result
  console.log(lines.join("\n"));
} finally {
  await Deno.remove(dir, { recursive: true });
}
