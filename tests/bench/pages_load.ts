/**
 * Server-rendered dashboard pages through the real gateway worker with a signed-in session
 * (real auth check on every request, real controls behind each page), one request at a
 * time, against `/api/v1/health` (no auth, no control asked) in the same run as the
 * baseline. Target (issue #8): p95 ≤ 20 ms per page on this machine.
 *   tools/deno task bench:pages [requestsPerPage]
 */
import { startPipeline } from "../quarantine/_system.ts";
import { DEFAULT_CONTROLS } from "../../runtime/manifest.ts";
import { setUpSession } from "../_auth.ts";

const perPage = Number(Deno.args[0] ?? 200);
const PAGES = ["/", "/audit", "/audit/0", "/policy", "/models", "/settings", "/incidents"];

async function measure(
  url: string,
  headers: Record<string, string>,
): Promise<{ p50: number; p95: number; max: number; bytes: number }> {
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < perPage; i++) {
    const started = performance.now();
    const res = await fetch(url, { headers });
    const body = await res.arrayBuffer();
    times.push(performance.now() - started);
    if (res.status !== 200) throw new Error(`${url}: status ${res.status}`);
    bytes = body.byteLength;
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? NaN;
  return { p50: at(0.5), p95: at(0.95), max: times.at(-1) ?? NaN, bytes };
}

const sys = await startPipeline({ controls: DEFAULT_CONTROLS });
try {
  const addr = await sys.supervisor.gatewayAddress();
  if (addr.transport !== "tcp") throw new Error("expected TCP");
  const base = `http://127.0.0.1:${addr.port}`;
  const session = await setUpSession(base, sys.home);
  const headers = { cookie: session.cookie };
  for (const path of ["/api/v1/health", ...PAGES]) await measure(`${base}${path}`, headers); // warm-up
  const baseline = await measure(`${base}/api/v1/health`, headers);
  const lines = [
    `${perPage} sequential requests per page, signed in`,
    `${"/api/v1/health (baseline)".padEnd(28)} p50 ${baseline.p50.toFixed(2)} ms  p95 ${
      baseline.p95.toFixed(2)
    } ms`,
  ];
  let worst = 0;
  for (const path of PAGES) {
    const r = await measure(`${base}${path}`, headers);
    worst = Math.max(worst, r.p95);
    lines.push(
      `${path.padEnd(28)} p50 ${r.p50.toFixed(2)} ms  p95 ${r.p95.toFixed(2)} ms  max ${
        r.max.toFixed(1)
      } ms  ${(r.bytes / 1024).toFixed(1)} KiB  p95 ratio ${(r.p95 / baseline.p95).toFixed(1)}x`,
    );
  }
  lines.push(`worst page p95 ${worst.toFixed(2)} ms (target ≤ 20 ms)`);
  // deno-lint-ignore no-console -- a bench script reports on stdout
  console.log(lines.join("\n"));
} finally {
  await sys.stop();
}
