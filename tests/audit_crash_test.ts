/**
 * Crash safety of the audit log (issue 4): a child process appending in a loop is killed
 * with SIGKILL at a random point, 50 times over one log. After each kill the log recovers,
 * verifies, and holds every entry the child was told was durable, with its content.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { AuditLog } from "../workers/audit/log.ts";
import { AuditError } from "../workers/audit/offline/errors.ts";
import { readEntries } from "../workers/audit/offline/read.ts";
import { verifyLog } from "../workers/audit/offline/verify.ts";

const CHILD = fileURLToPath(new URL("./fixtures/audit/append_loop.ts", import.meta.url));
const KILLS = 50;

/** Runs the child until it has acknowledged something, then kills it after a random delay. */
async function runAndKill(dir: string, run: number): Promise<Map<number, string>> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-check",
      "--no-prompt",
      "--quiet",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      CHILD,
      dir,
      String(run),
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let text = "";
  let wake: () => void = () => undefined;
  const firstAck = new Promise<void>((resolve) => (wake = resolve));
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (text.includes("\n")) wake();
    }
    wake();
  })();
  await firstAck;
  // The random kill point: somewhere in the next 0–60 ms of appending.
  await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 60)));
  child.kill("SIGKILL");
  await child.status;
  await reading;
  const acked = new Map<number, string>();
  // Only complete lines are acknowledgements; a torn last line was never fully printed.
  for (const line of text.split("\n").slice(0, -1)) {
    const [seq, subject] = line.split(" ");
    acked.set(Number(seq), subject as string);
  }
  return acked;
}

Deno.test({
  name: "the audit log survives kill -9 at 50 random points and keeps every acknowledged entry",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "secai-audit-crash-" });
    try {
      let total = 0;
      for (let run = 0; run < KILLS; run++) {
        const acked = await runAndKill(dir, run);
        ok(acked.size > 0, `run ${run} acknowledged nothing`);
        // Restart: recovery seals or cuts the tail, as the audit control does at start.
        const { log } = await AuditLog.open(dir, { segmentMaxBytes: 64 * 1024 });
        const size = log.size;
        await log.close();
        const report = await verifyLog(dir);
        ok(report.isIntact, `after kill ${run}: ${report.detail}`);
        equal(report.entries, size);
        const seqs = [...acked.keys()];
        const from = Math.min(...seqs);
        const to = Math.max(...seqs);
        ok(to < size, `after kill ${run}: acknowledged seq ${to} is missing (log has ${size})`);
        const entries = await readEntries(dir, { from, to });
        for (const e of entries) {
          const subject = acked.get(e.entry.seq);
          if (subject !== undefined) equal(e.entry.subject, subject, `seq ${e.entry.seq}`);
        }
        total += acked.size;
      }
      ok(total >= KILLS);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

async function mountCommand(args: string[]): Promise<void> {
  const out = await new Deno.Command(args[0] as string, { args: args.slice(1), stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/**
 * One run on a full tmpfs: a few entries, then a filler file takes every free page, then
 * entries until one is refused. Returns how many were acknowledged (the refused one took no
 * seq; one more is appended once there is room again) and whether the write that failed was
 * a batch or the head after one (a head not yet published).
 */
async function fillUp(dir: string, pad: number): Promise<{ acked: number; isHeadFailed: boolean }> {
  const { log } = await AuditLog.open(dir);
  const entry = (subject: string) => ({
    control: "policy",
    type: "policy.decision",
    actor: "test",
    subject: subject + "p".repeat(pad * 37),
    evidence: {},
    data: {},
  });
  try {
    let acked = 0;
    for (let i = 0; i < 3; i++) equal(await log.append(entry(`#${i}`)), acked++);
    const filler = await Deno.open(`${dir}/filler`, { write: true, create: true });
    for (const size of [4096, 1]) {
      try {
        for (;;) filler.writeSync(new Uint8Array(size));
      } catch (err) {
        if (!(err instanceof Error && /No space left/.test(err.message))) throw err;
      }
    }
    filler.close();
    let refused: unknown = null;
    for (let i = 0; i < 1000 && refused === null; i++) {
      await log.append(entry(`full ${i}`)).then(
        (seq) => equal(seq, acked++),
        (err: unknown) => (refused = err),
      );
    }
    ok(refused instanceof AuditError, "the disk filled up");
    equal(refused.code, "AUDIT_UNAVAILABLE");
    ok(/No space left/.test(refused.message), refused.message);
    const isHeadFailed = (log.head?.head.size ?? 0) < acked;
    if (isHeadFailed) {
      // A proof of the latest entries cannot be had yet, and says so instead of waiting.
      await rejects(log.settledHead(), /signed head of the latest entries cannot be written/);
    }
    // Room again: the missing head is written when asked for, and the next entry takes the
    // seq the refused one never got.
    await Deno.remove(`${dir}/filler`);
    equal((await log.settledHead())?.head.size, acked);
    equal(await log.append(entry("after")), acked);
    return { acked: acked + 1, isHeadFailed };
  } finally {
    await log.close();
  }
}

Deno.test({
  name:
    "a full disk refuses what it cannot write, leaves nothing half-written, and the log goes on once there is room",
  ignore: Deno.uid() !== 0, // mounting a tmpfs needs root; CI runs as root
  async fn() {
    const seen = new Set<boolean>();
    // Entry sizes decide whether a batch or the head after it meets the full disk first;
    // both must recover.
    for (let pad = 0; pad < 24 && seen.size < 2; pad++) {
      const base = await Deno.makeTempDir({ prefix: "secai-audit-full-" });
      const dir = `${base}/audit`;
      await Deno.mkdir(dir);
      await mountCommand(["mount", "-t", "tmpfs", "-o", "size=512k", "none", dir]);
      try {
        const { acked, isHeadFailed } = await fillUp(dir, pad);
        seen.add(isHeadFailed);
        const { log, recovery } = await AuditLog.open(dir);
        equal(log.size, acked);
        equal(recovery.truncatedBytes, 0, `pad ${pad}: no partial line was left behind`);
        equal(recovery.sealedEntries, 0, `pad ${pad}: every entry was sealed by a head`);
        await log.close();
        const report = await verifyLog(dir);
        ok(report.isIntact, report.detail);
        equal(report.entries, acked);
      } finally {
        await mountCommand(["umount", dir]);
        await Deno.remove(base, { recursive: true });
      }
    }
    deepEqual([...seen].sort(), [false, true], "both a batch and a head met the full disk");
  },
});
