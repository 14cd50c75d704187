/**
 * `/api/v1/health` latency under 64 concurrent clients through the real gateway worker (real
 * supervisor, real permissions) vs a bare `Deno.serve` answering the same JSON in this
 * process (baseline), measured in the same run with the same client loop.
 *   tools/deno task bench:gateway [requestsPerClient]
 */
import { startSystem } from "../_system.ts";

const CLIENTS = 64;
const perClient = Number(Deno.args[0] ?? 50);

async function load(url: string): Promise<{ p50: number; p99: number; rps: number }> {
  const times: number[] = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    for (let i = 0; i < perClient; i++) {
      const started = performance.now();
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      times.push(performance.now() - started);
    }
  }));
  const total = performance.now() - t0;
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), rps: (times.length / total) * 1000 };
}

const bare = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen() {} },
  () => Response.json({ status: "ok" }),
);
const sys = await startSystem();
try {
  const addr = await sys.supervisor.gatewayAddress();
  if (addr.transport !== "tcp") throw new Error("expected TCP");
  const gatewayUrl = `http://127.0.0.1:${addr.port}/api/v1/health`;
  const bareUrl = `http://127.0.0.1:${bare.addr.port}/`;
  await load(bareUrl); // warm-up both
  await load(gatewayUrl);
  const base = await load(bareUrl);
  const gw = await load(gatewayUrl);
  const line = (name: string, r: typeof base) =>
    `${name.padEnd(26)} p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  ${
      r.rps.toFixed(0)
    } req/s`;
  // deno-lint-ignore no-console -- a bench script reports on stdout
  console.log([
    `${CLIENTS} concurrent clients × ${perClient} requests`,
    line("bare Deno.serve (baseline)", base),
    line("gateway /api/v1/health", gw),
    `ratio p50 ${(gw.p50 / base.p50).toFixed(2)}x  p99 ${
      (gw.p99 / base.p99).toFixed(2)
    }x  throughput ${(base.rps / gw.rps).toFixed(2)}x lower`,
  ].join("\n"));
} finally {
  await sys.stop();
  await bare.shutdown();
}
