/**
 * Policy decision latency and throughput, each against a baseline in the same run.
 *
 * 1. In process, per domain: p50/p99 of one decision (JSON line → decision with evidence)
 *    and decisions/s on one core, vs the same loop that only parses the input (JSON.parse +
 *    the domain's strict schema). Targets (issue #5): p99 ≤ 50 µs, ≥ 100 000 decisions/s.
 *    Path decisions also against a second baseline: the very `lstat`/`readlink` calls they
 *    made, replayed on their own (the floor any evaluator on Deno's file API pays).
 * 2. Over HTTP, 64 concurrent clients, vs a bare `Deno.serve` answering a fixed decision in
 *    this process: (a) a bare `Deno.serve` that asks the real policy control over RPC (policy
 *    + audit with fsync per group commit, no gateway middleware) and (b) `POST
 *    /api/v1/policy/decide` through the real gateway (real supervisor, workers, permissions).
 *    Target: p99 ≤ 2 ms. Each also with one client (the latency of one request without
 *    queueing: the hops between isolates and the audit fsync). The gateway needs a
 *    signed-in session for a POST: the script claims the fresh instance with its setup code,
 *    as a user would.
 *
 *   tools/deno task bench:policy [decisionsPerDomain] [requestsPerClient]
 * @module
 */
import process from "node:process";
import { compilePolicy } from "../../policy/compile.ts";
import type { PolicyDomain } from "../../policy/decision.ts";
import { PolicyEngine } from "../../policy/engine.ts";
import { DEFAULTS_DIR, readPolicySources } from "../../policy/loader.ts";
import { DOMAIN_INPUTS } from "../../policy/schema.ts";
import { policyApi } from "../../workers/policy/api.ts";
import { startSystem } from "../_system.ts";
import { BENCH_INPUTS, benchPolicyText, makeBenchWorkspace } from "./_policy_inputs.ts";

const PER_DOMAIN = Number(Deno.args[0] ?? 200_000);
const CLIENTS = 64;
const PER_CLIENT = Number(Deno.args[1] ?? 100);

// deno-lint-ignore no-console -- a bench script reports on stdout
const say = (line: string) => console.log(line);

interface Stats {
  p50: number;
  p99: number;
  perSecond: number;
  /** CPU time (user + system, every thread of this process) per request, in µs. */
  cpuPerRequest?: number;
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/** Times `n` calls one by one (hrtime, ns) and the whole loop. */
function measure(n: number, fn: (i: number) => void): Stats {
  for (let i = 0; i < Math.min(n, 20_000); i++) fn(i); // warm-up (JIT)
  const times = new Float64Array(n);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    fn(i);
    times[i] = Number(process.hrtime.bigint() - s) / 1000;
  }
  const total = Number(process.hrtime.bigint() - t0) / 1e9;
  times.sort();
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99), perSecond: n / total };
}

const fmt = (s: Stats, unit = "µs") =>
  `p50 ${s.p50.toFixed(1).padStart(6)} ${unit}  p99 ${s.p99.toFixed(1).padStart(6)} ${unit}  ${
    Math.round(s.perSecond).toLocaleString("en").padStart(9)
  }/s`;

/** One filesystem call a decision made: which call, on which path. */
interface FsCall {
  fn: "lstatSync" | "readLinkSync";
  path: string;
}

/**
 * The filesystem calls `run` makes, in order (Deno's sync calls wrapped while it runs). Path
 * decisions are bound by these calls: a second baseline replays exactly them.
 */
function recordFsCalls(run: () => void): FsCall[] {
  const calls: FsCall[] = [];
  const lstat = Deno.lstatSync;
  const readLink = Deno.readLinkSync;
  Deno.lstatSync = (path) => {
    calls.push({ fn: "lstatSync", path: String(path) });
    return lstat(path);
  };
  Deno.readLinkSync = (path) => {
    calls.push({ fn: "readLinkSync", path: String(path) });
    return readLink(path);
  };
  try {
    run();
  } finally {
    Deno.lstatSync = lstat;
    Deno.readLinkSync = readLink;
  }
  return calls;
}

/** Makes the recorded calls again (a missing name throws, as it did in the decision). */
function replayFsCalls(calls: readonly FsCall[]): void {
  for (const call of calls) {
    try {
      if (call.fn === "lstatSync") Deno.lstatSync(call.path);
      else Deno.readLinkSync(call.path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------
// 1. In process

const workspace = await makeBenchWorkspace();
const [policySource, agentSource] = await readPolicySources({
  defaultsDir: DEFAULTS_DIR,
  overrideDir: null,
});
if (!policySource || !agentSource) throw new Error("policy files missing");
const policy = compilePolicy(
  { ...policySource, text: benchPolicyText(policySource.text) },
  agentSource,
);
const engine = new PolicyEngine(policy, { workspace });

say(`In-process decisions, ${PER_DOMAIN.toLocaleString("en")} per domain (one core)`);
for (const [domain, lines] of Object.entries(BENCH_INPUTS) as [PolicyDomain, string[]][]) {
  const schema = DOMAIN_INPUTS[domain];
  const base = measure(PER_DOMAIN, (i) => {
    schema.safeParse(JSON.parse(lines[i % lines.length] as string));
  });
  const decide = measure(PER_DOMAIN, (i) => {
    engine.decide({ domain, input: JSON.parse(lines[i % lines.length] as string) });
  });
  say(
    `  ${domain.padEnd(16)} parse only ${fmt(base)}   decide ${fmt(decide)}   p99 ×${
      (decide.p99 / base.p99).toFixed(1)
    }  rate ÷${(base.perSecond / decide.perSecond).toFixed(1)}`,
  );
  const calls = lines.map((line) =>
    recordFsCalls(() => engine.decide({ domain, input: JSON.parse(line) }))
  );
  if (calls.some((c) => c.length > 0)) {
    const floor = measure(PER_DOMAIN, (i) => replayFsCalls(calls[i % calls.length] as FsCall[]));
    say(
      `  ${"".padEnd(16)} its ${calls.reduce((n, c) => n + c.length, 0)} filesystem calls alone ${
        fmt(floor)
      }   decide rate ÷${(floor.perSecond / decide.perSecond).toFixed(2)}`,
    );
  }
}
await Deno.remove(workspace.replace(/\/ws$/, ""), { recursive: true });

// ---------------------------------------------------------------------------------------
// 2. HTTP, 64 concurrent clients

async function load(
  url: string,
  init: () => RequestInit,
  clients = CLIENTS,
  perClient = PER_CLIENT,
): Promise<Stats> {
  const times: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    for (let i = 0; i < perClient; i++) {
      const started = performance.now();
      const res = await fetch(url, init());
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      times.push(performance.now() - started);
    }
  }));
  const total = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const sorted = Float64Array.from(times).sort();
  return {
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    perSecond: (times.length / total) * 1000,
    cpuPerRequest: (cpu.user + cpu.system) / times.length,
  };
}

/** A load line: latency, rate and the CPU time of the whole process per request. */
const fmtLoad = (s: Stats) => `${fmt(s, "ms")}  cpu ${Math.round(s.cpuPerRequest ?? 0)} µs/req`;

/** Claims a fresh instance with its setup code; returns the session's request headers. */
async function signIn(base: string, home: string): Promise<Record<string, string>> {
  const setupCode = (await Deno.readTextFile(`${home}/auth/setup-code`)).trim();
  const res = await fetch(`${base}/api/v1/auth/setup`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: base },
    body: JSON.stringify({ setupCode, passphrase: "correct horse battery staple 42" }),
  });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`setup answered ${res.status}`);
  const cookies = res.headers.getSetCookie().map((c) => c.split(";")[0] as string);
  const csrf = cookies.find((c) => c.startsWith("secai_csrf="))?.slice("secai_csrf=".length);
  if (!csrf) throw new Error("no CSRF cookie after setup");
  return { cookie: cookies.join("; "), "x-csrf-token": csrf, origin: base };
}

const body = JSON.stringify({
  domain: "egress",
  input: { url: "https://huggingface.co/meta-llama/Llama-3-8B/resolve/main/model.gguf" },
});
const fixed = JSON.stringify(engine.decide({ domain: "egress", input: JSON.parse(body).input }));
const bare = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
  await req.arrayBuffer();
  return new Response(fixed, { headers: { "content-type": "application/json" } });
});
const sys = await startSystem();
// The policy control behind a bare HTTP server in this process: HTTP + RPC + policy + audit,
// without the gateway's middleware (for comparison with the gateway line).
const policyClient = sys.supervisor.client(policyApi);
const direct = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
  const request = await req.json();
  return Response.json(await policyClient.call("decide", request));
});
try {
  const addr = await sys.supervisor.gatewayAddress();
  if (addr.transport !== "tcp") throw new Error("expected TCP");
  const base = `http://127.0.0.1:${addr.port}`;
  const plain = { "content-type": "application/json" };
  const bareUrl = `http://127.0.0.1:${bare.addr.port}/`;
  const directUrl = `http://127.0.0.1:${direct.addr.port}/`;
  const post = (headers: Record<string, string>) => () => ({ method: "POST", headers, body });
  await load(bareUrl, post(plain)); // warm-up
  await load(directUrl, post(plain));
  let session: Record<string, string> | null = null;
  try {
    session = await signIn(base, sys.home);
  } catch (err) {
    say(`  gateway POST /policy/decide: not measured, cannot sign in (${(err as Error).message})`);
  }
  const gatewayUrl = `${base}/api/v1/policy/decide`;
  const gatewayPost = session ? post({ ...plain, ...session }) : null;
  if (gatewayPost) await load(gatewayUrl, gatewayPost);
  // One client first (latency without queueing: hops, fsync), then 64 at once (capacity).
  const runs: [number, number][] = [[1, (CLIENTS * PER_CLIENT) / 4], [CLIENTS, PER_CLIENT]];
  for (const [clients, perClient] of runs) {
    const b = await load(bareUrl, post(plain), clients, perClient);
    const d = await load(directUrl, post(plain), clients, perClient);
    say(`HTTP, ${clients} concurrent client${clients > 1 ? "s" : ""} × ${perClient} requests`);
    const ratios = (x: Stats) =>
      `p99 ×${(x.p99 / b.p99).toFixed(2)}  cpu ×${
        ((x.cpuPerRequest ?? 0) / (b.cpuPerRequest ?? 1)).toFixed(1)
      }`;
    say(`  bare Deno.serve (baseline)      ${fmtLoad(b)}`);
    say(`  Deno.serve → RPC policy+audit   ${fmtLoad(d)}   ${ratios(d)}`);
    if (gatewayPost) {
      const g = await load(gatewayUrl, gatewayPost, clients, perClient);
      say(`  gateway POST /policy/decide     ${fmtLoad(g)}   ${ratios(g)}`);
    }
  }
} finally {
  await sys.stop();
  await bare.shutdown();
  await direct.shutdown();
}
