/**
 * Crash safety of the audit log (issue 4): a child process appending in a loop is killed
 * with SIGKILL at a random point, 50 times over one log. After each kill the log recovers,
 * verifies, and holds every entry the child was told was durable, with its content.
 */
import { equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { AuditLog } from "../workers/audit/log.ts";
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
