/**
 * Audit log benchmarks, each against a baseline measured in the same run (issue 4):
 *
 * 1. Appends/s with 64 concurrent writers through the real log (canonical encoding, group
 *    commit, fsync, Merkle hashing, a signed head per batch) vs the same 64 writers on a
 *    bare group commit that writes the same lines with one write and one fsync per batch.
 *    Target: ≥ 0.7× the baseline and ≥ 50k entries/s.
 * 2. Full verification of a log of 1M entries vs `sha256sum` of the same segment bytes.
 *    Target: ≤ 3×.
 *
 * Run: `tools/deno task bench:audit` (`AUDIT_BENCH_ENTRIES` scales part 2; default 1M).
 * @module
 */
import { type AppendEntry, AuditLog } from "../../workers/audit/log.ts";
import { verifyLog } from "../../workers/audit/offline/verify.ts";
import { listSegments } from "../../workers/audit/offline/segments.ts";

const WRITERS = 64;
const APPENDS = 100_000;
const VERIFY_ENTRIES = Number(Deno.env.get("AUDIT_BENCH_ENTRIES") ?? 1_000_000);

/** A policy decision as the policy control records it (~300 bytes canonical). */
function entry(i: number): AppendEntry {
  return {
    control: "policy",
    type: "policy.decision",
    actor: "agent",
    subject: `egress api.example.com:443 #${i}`,
    decision: i % 3 === 0 ? "deny" : "allow",
    evidence: { rule: "egress.allowlist", matched: i % 3 !== 0, policyDigest: "3f2a9c1e5b7d" },
    data: { requestId: `req-${i}`, latencyUs: 120 + (i % 50) },
  };
}

async function runWriters(append: (e: AppendEntry) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: WRITERS }, async () => {
    while (next < APPENDS) await append(entry(next++));
  }));
  return APPENDS / ((performance.now() - started) / 1000);
}

/** The baseline: group commit of pre-encoded lines, one write and one fsync per batch. */
class BareGroupCommit {
  #queue: { line: string; resolve: () => void }[] = [];
  #draining: Promise<void> | null = null;
  constructor(readonly file: Deno.FsFile) {}
  append(line: string): Promise<void> {
    return new Promise((resolve) => {
      this.#queue.push({ line, resolve });
      this.#draining ??= this.#drain();
    });
  }
  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, 1024);
      const bytes = new TextEncoder().encode(batch.map((w) => w.line).join("\n") + "\n");
      let written = 0;
      while (written < bytes.length) written += await this.file.write(bytes.subarray(written));
      await this.file.sync();
      for (const w of batch) w.resolve();
    }
    this.#draining = null;
  }
}

export async function benchAppends(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "audit-bench-", dir: "." });
  try {
    // Lines as the log writes them, so the baseline writes the same bytes.
    const lines = Array.from(
      { length: APPENDS },
      (_, i) => JSON.stringify({ seq: i, ts: new Date().toISOString(), ...entry(i) }),
    );
    const file = await Deno.open(`${dir}/bare.jsonl`, { append: true, create: true });
    const bare = new BareGroupCommit(file);
    let k = 0;
    const baseline = await runWriters(() => bare.append(lines[k++] as string));
    file.close();
    const { log } = await AuditLog.open(`${dir}/audit`);
    const ours = await runWriters((e) => log.append(e));
    await log.close();
    const report = await verifyLog(`${dir}/audit`);
    if (!report.isIntact || report.entries !== APPENDS) {
      throw new Error(`The benchmark log does not verify: ${report.detail}`);
    }
    print("appends, 64 writers", {
      "audit log entries/s": Math.round(ours),
      "bare group commit entries/s": Math.round(baseline),
      ratio: Number((ours / baseline).toFixed(2)),
      heads: report.heads,
      "target": "≥ 0.7× and ≥ 50000/s",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function benchVerify(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "audit-bench-", dir: "." });
  try {
    const { log } = await AuditLog.open(`${dir}/audit`);
    const window = 4096;
    for (let i = 0; i < VERIFY_ENTRIES; i += window) {
      const n = Math.min(window, VERIFY_ENTRIES - i);
      await Promise.all(Array.from({ length: n }, (_, j) => log.append(entry(i + j))));
    }
    await log.close();
    const { segments } = await listSegments(`${dir}/audit`);
    const paths = segments.map((s) => s.path);
    const bytes = segments.reduce((n, s) => n + s.size, 0);
    // Warm the page cache for both sides alike.
    await new Deno.Command("cat", { args: paths, stdout: "null" }).output();
    let started = performance.now();
    const sum = await new Deno.Command("sha256sum", { args: paths, stdout: "null" }).output();
    const shaMs = performance.now() - started;
    if (!sum.success) throw new Error("sha256sum failed");
    started = performance.now();
    const report = await verifyLog(`${dir}/audit`);
    const verifyMs = performance.now() - started;
    if (!report.isIntact || report.entries !== VERIFY_ENTRIES) {
      throw new Error(`The benchmark log does not verify: ${report.detail}`);
    }
    print(`verify ${VERIFY_ENTRIES} entries`, {
      "verify ms": Math.round(verifyMs),
      "sha256sum ms": Math.round(shaMs),
      ratio: Number((verifyMs / shaMs).toFixed(2)),
      "MiB": Math.round(bytes / 1048576),
      heads: report.heads,
      target: "≤ 3×",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function print(name: string, values: Record<string, unknown>): void {
  // deno-lint-ignore no-console -- a benchmark script reports on stdout
  console.log(`${name}: ${JSON.stringify(values)}`);
}

if (import.meta.main) {
  await benchAppends();
  await benchVerify();
}
