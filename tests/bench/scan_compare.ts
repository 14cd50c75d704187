/**
 * Scanner benchmarks (issue #6), each against a baseline measured in the same run:
 *
 * 1. `secai scan` of a 2 GiB safetensors and a 2 GiB GGUF file vs `sha256sum` of the same
 *    file (target ≤ 1.3×), with the peak RSS of the whole `secai scan` process tree
 *    (target ≤ 200 MB), read from `/usr/bin/time -f %M`.
 * 2. Pickle scanning throughput vs picklescan (../shared/peers/picklescan.sh, Python; never
 *    part of the product) on the same files (target ≥ 2× faster), and the detections of both
 *    on the malicious pickle corpus (target: no fewer), with every difference listed.
 *
 * Run: `tools/deno task bench:scan` (`-- --pickle-only` skips the 2 GiB files) (writes ~4.2 GiB under $TMPDIR and removes it).
 * @module
 */
import { PickleWriter, safetensorsOf, torchZip, writeGguf } from "../quarantine/_corpus.ts";
import { concat, f16Weights, le } from "../quarantine/_writers.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const PICKLESCAN = `${ROOT}/../shared/peers/picklescan.sh`;
const GIB = 2 ** 30;

/** Benchmark output goes to stdout. */
function report(line: string): void {
  // deno-lint-ignore no-console -- a bench script reports on stdout
  console.log(line);
}
const deno = Deno.execPath();

async function timed(
  cmd: string,
  args: string[],
): Promise<{ ms: number; code: number; stdout: string; stderr: string }> {
  const started = performance.now();
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    ms: performance.now() - started,
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

function secaiArgs(files: string[]): string[] {
  return [
    "run",
    "--quiet",
    "--no-prompt",
    "--no-check",
    "--config",
    `${ROOT}/deno.json`,
    "--allow-read",
    "--allow-write",
    "--allow-env=SECAI_HOME,SECAI_PORT,HOME,XDG_DATA_HOME,LOG_TOKENS,LOG_STREAM",
    `--allow-run=${deno},/usr/bin/kill`,
    `${ROOT}/runtime/cli.ts`,
    "scan",
    "--json",
    ...files,
  ];
}

/** `secai scan` under /usr/bin/time: wall time and peak RSS (KiB) of the process tree. */
async function secaiScan(
  files: string[],
): Promise<
  {
    ms: number;
    rssMb: number;
    lines: { file: string; verdict: string; findings: { rule: string }[] }[];
  }
> {
  const run = await timed("/usr/bin/time", ["-f", "%M", deno, ...secaiArgs(files)]);
  const rssKb = Number(run.stderr.trim().split("\n").pop());
  const lines = run.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) =>
    JSON.parse(l)
  );
  return { ms: run.ms, rssMb: rssKb / 1024, lines };
}

/** Writes a 2 GiB model: 128 F16 tensors of 16 MiB, streamed from one generated block. */
async function writeBigModel(path: string, kind: "safetensors" | "gguf"): Promise<void> {
  const tensors = 128;
  const rows = 4096;
  const cols = 2048;
  const block = f16Weights(rows * cols, 11);
  let header: Uint8Array;
  if (kind === "safetensors") {
    const entries: Record<string, unknown> = { __metadata__: { format: "pt" } };
    for (let i = 0; i < tensors; i++) {
      entries[`layers.${i}.weight`] = {
        dtype: "F16",
        shape: [rows, cols],
        data_offsets: [i * block.length, (i + 1) * block.length],
      };
    }
    const text = new TextEncoder().encode(JSON.stringify(entries));
    header = concat(le(text.length, 8), text);
  } else {
    const specs = Array.from(
      { length: tensors },
      (_, i) => ({
        name: `blk.${i}.ffn.weight`,
        dims: [cols, rows],
        type: 1,
        data: new Uint8Array(0),
      }),
    );
    // Header only: tensor data offsets follow each other, 16 MiB apart.
    const head = writeGguf({
      kv: [["general.architecture", [8, "llama"]], ["general.alignment", [4, 32]]],
      tensors: specs.map((s, i) => ({ ...s, offset: i * block.length })),
    });
    header = head;
  }
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    await file.write(header);
    for (let i = 0; i < tensors; i++) {
      // Vary each tensor a little (lowest mantissa bit of one element) so no two are equal.
      block[2 * i] = (block[2 * i] ?? 0) ^ 1;
      let done = 0;
      while (done < block.length) done += await file.write(block.subarray(done));
    }
  } finally {
    file.close();
  }
}

function ratioLine(name: string, scanMs: number, baseMs: number, target: string): string {
  return `${name}: secai scan ${scanMs.toFixed(0)} ms, baseline ${baseMs.toFixed(0)} ms, ratio ${
    (scanMs / baseMs).toFixed(2)
  }× (target ${target})`;
}

async function bigFiles(dir: string): Promise<void> {
  for (const kind of ["safetensors", "gguf"] as const) {
    const path = `${dir}/big.${kind}`;
    await writeBigModel(path, kind);
    const size = (await Deno.stat(path)).size;
    await timed("sh", ["-c", 'cat "$1" > /dev/null', "sh", path]); // page cache warm for both
    const sha = await timed("sha256sum", [path]);
    const scan = await secaiScan([path]);
    const line = scan.lines[0];
    report(
      `${kind} ${(size / GIB).toFixed(2)} GiB: verdict ${line?.verdict} ${
        line?.findings.map((f) => f.rule).join(",") ?? ""
      }`,
    );
    report(ratioLine(`  ${kind}`, scan.ms, sha.ms, "≤ 1.3× sha256sum"));
    report(`  peak RSS of secai scan: ${scan.rssMb.toFixed(0)} MB (target ≤ 200 MB)`);
    await Deno.remove(path);
  }
}

/** Pickle files for throughput: a big raw pickle and a checkpoint with many tensors. */
function throughputFiles(): Record<string, Uint8Array> {
  const p = new PickleWriter().proto(4).emptyList().memoize().mark();
  for (let i = 0; i < 400_000; i++) {
    p.emptyDict().str(`key${i % 1000}`).int(i).str("value").binfloat(i / 3).setitem().setitem();
    if (i % 1000 === 999) p.appends().mark();
  }
  const big = p.appends().stop().done();
  return { "big.pkl": big };
}

function threatCorpus(): Record<string, Uint8Array> {
  const w = () => new PickleWriter();
  return {
    "global_os_system.pkl": w().global("os", "system").mark().stringLine("'id'").tupleMark()
      .reduce().stop().done(),
    "inst_posix.pkl": w().mark().stringLine("'id'").inst("posix", "system").stop().done(),
    "stack_global_eval.pkl": w().proto(4).str("builtins").str("eval").raw(0x93).str("1").tuple(1)
      .reduce().stop().done(),
    "memo_subprocess.pkl": w().proto(4).str("subprocess").put(5).pop().get(5).str("check_output")
      .raw(0x93).stop().done(),
    "computed_operands.pkl": w().proto(4).global("_codecs", "encode").str("os").str("latin1").tuple(
      2,
    ).reduce().str("system").raw(0x93).stop().done(),
    "ext_code.pkl": w().proto(2).ext1(7).emptyTuple().reduce().stop().done(),
    "build_on_global.pkl": w().proto(3).global("collections", "OrderedDict").emptyDict().str(
      "update",
    ).none().setitem().build().stop().done(),
    "unknown_class.pkl": w().proto(2).global("evil_pkg", "Payload").emptyTuple().newobj().stop()
      .done(),
    "webbrowser.pkl": w().proto(4).str("webbrowser").str("open").raw(0x93).emptyTuple().emptyDict()
      .newobjEx().stop().done(),
    "dotted_name.pkl": w().proto(4).str("collections").str("OrderedDict.__init__.__globals__").raw(
      0x93,
    ).stop().done(),
    "runpy.pkl": w().proto(4).str("runpy").str("_run_code").raw(0x93).stop().done(),
    "stacked_second.pkl": w().proto(2).emptyDict().stop().global("os", "system").mark().stringLine(
      "'id'",
    ).tupleMark().reduce().stop().done(),
    "malicious_data_pkl.pt": torchZip({
      pickle: w().proto(2).global("os", "system").str("id").tuple(1).reduce().stop().done(),
    }).file,
    "hidden_member.pt": torchZip({
      extra: [{
        name: "archive/data/99",
        data: w().proto(2).global("os", "system").str("id").tuple(1).reduce().stop().done(),
      }],
    }).file,
    "benign_checkpoint.pt": torchZip().file,
    "benign.safetensors": safetensorsOf([{
      name: "a",
      dtype: "F16",
      shape: [4],
      data: f16Weights(4, 1),
    }]),
  };
}

async function picklescan(
  path: string,
): Promise<{ ms: number; infected: number; scanned: number }> {
  const run = await timed(PICKLESCAN, ["-p", path]);
  const infected = Number(/Infected files: (\d+)/.exec(run.stdout)?.[1] ?? "NaN");
  const scanned = Number(/Scanned files: (\d+)/.exec(run.stdout)?.[1] ?? "NaN");
  return { ms: run.ms, infected, scanned };
}

async function pickles(dir: string): Promise<void> {
  for (const [name, bytes] of Object.entries(throughputFiles())) {
    const path = `${dir}/${name}`;
    await Deno.writeFile(path, bytes);
    const peer = await picklescan(path);
    const ours = await secaiScan([path]);
    const mb = bytes.length / 2 ** 20;
    report(
      `pickle throughput on ${name} (${mb.toFixed(1)} MiB): secai scan ${ours.ms.toFixed(0)} ms (${
        (mb / (ours.ms / 1000)).toFixed(1)
      } MiB/s), picklescan ${peer.ms.toFixed(0)} ms (${
        (mb / (peer.ms / 1000)).toFixed(1)
      } MiB/s): ${(peer.ms / ours.ms).toFixed(2)}× faster (target ≥ 2×)`,
    );
  }
  const corpus = `${dir}/corpus`;
  await Deno.mkdir(corpus);
  const files = threatCorpus();
  for (const [name, bytes] of Object.entries(files)) {
    await Deno.writeFile(`${corpus}/${name}`, bytes);
  }
  const ours = await secaiScan(Object.keys(files).map((n) => `${corpus}/${n}`));
  const peerAll = await picklescan(corpus);
  let ourCount = 0;
  let peerCount = 0;
  const differences: string[] = [];
  for (const name of Object.keys(files)) {
    const mine = ours.lines.find((l) => l.file.endsWith(`/${name}`));
    const peer = await picklescan(`${corpus}/${name}`);
    const mineHit = mine !== undefined && mine.verdict !== "clean";
    const peerHit = peer.infected > 0;
    if (mineHit) ourCount++;
    if (peerHit) peerCount++;
    if (mineHit !== peerHit) {
      differences.push(
        `${name}: secai ${mine?.verdict} (${
          mine?.findings.map((f) => f.rule).join(",")
        }), picklescan ${peerHit ? "infected" : "not infected"}`,
      );
    }
  }
  report(
    `detections on ${
      Object.keys(files).length
    } files (2 benign): secai ${ourCount}, picklescan ${peerCount} (one picklescan run over the folder: ${peerAll.infected} infected)`,
  );
  report(
    `corpus wall time: secai scan ${
      ours.ms.toFixed(0)
    } ms (one sandboxed job per file), picklescan ${peerAll.ms.toFixed(0)} ms`,
  );
  for (const line of differences) report(`  differs: ${line}`);
}

const dir = await Deno.makeTempDir({ prefix: "secai-scan-bench-" });
try {
  report(
    `machine: ${Deno.build.target}, ${navigator.hardwareConcurrency} CPUs, deno ${Deno.version.deno}`,
  );
  if (!Deno.args.includes("--pickle-only")) await bigFiles(dir);
  await pickles(dir);
} finally {
  await Deno.remove(dir, { recursive: true });
}
