/**
 * Seeded fuzzing of the real gateway: every route of the manifest, signed in as a browser and
 * as the CLI, with random methods, path parameters, query strings, content types and bodies
 * (valid JSON of the wrong shape, broken JSON, huge, binary). Whatever arrives, the answer is
 * a deliberate one: never a 5xx (every control is up), a JSON error body with a code for
 * every API error, the security headers on every response, no request that hangs, and
 * afterwards every control still running without a restart. Set GATEWAY_FUZZ_SEED to replay
 * a run.
 * @module
 */
import { equal, ok } from "node:assert/strict";
import { manifest } from "../routes/_manifest.ts";
import { SECURITY_HEADERS } from "../workers/gateway/http.ts";
import { cliHeaders, setUpSession } from "./_auth.ts";
import { seededRandom } from "./_random.ts";
import { startSystem } from "./_system.ts";

const SEED = Number(Deno.env.get("GATEWAY_FUZZ_SEED") ?? 20261126);
const REQUESTS = 1500;

/** Routes left out: logging out ends the session the rest of the run needs; event streams
 * stay open by design. */
const SKIPPED = new Set(["/api/v1/auth/logout", "/api/v1/events", "/api/v1/quarantine/:id/events"]);

const PARAMS = [
  "1",
  "0",
  "-1",
  "999999999999",
  "abc",
  "..",
  "%2e%2e",
  "..%2f..%2fetc",
  "a".repeat(5000),
  "%00",
  "%ff",
  "ﬀ",
  "\u202e",
  "0123456789abcdef",
  "sha256:" + "0".repeat(64),
  "[]",
];
const QUERIES = [
  "",
  "?limit=0",
  "?limit=-5",
  "?limit=1e9",
  "?before=x",
  "?from=yesterday",
  "?size=NaN",
  "?to=%00",
  "?type=" + "x".repeat(3000),
  "?a=1&a=2",
  "?%zz",
  "?next=https://evil.example/",
];
const CONTENT_TYPES = [
  "application/json",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data",
  "application/json; charset=utf-16",
  "",
];

function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)] as T;
}

function randomJson(rnd: () => number, depth = 0): unknown {
  const r = rnd();
  if (depth > 4 || r < 0.35) {
    return pick(rnd, [null, true, 0, -1, 1e308, "", "x", "../../etc/passwd", "<script>", []]);
  }
  if (r < 0.55) {
    return Array.from({ length: Math.floor(rnd() * 4) }, () => randomJson(rnd, depth + 1));
  }
  const names = [
    "domain",
    "input",
    "url",
    "path",
    "tool",
    "args",
    "session",
    "passphrase",
    "setupCode",
    "candidate",
    "policy",
    "entries",
    "model",
    "messages",
    "prompt",
    "__proto__",
    "constructor",
    "reason",
    "confirm",
    "limit",
  ];
  const out: Record<string, unknown> = {};
  for (let k = Math.floor(rnd() * 5); k > 0; k--) {
    out[pick(rnd, names)] = randomJson(rnd, depth + 1);
  }
  return out;
}

function randomBody(rnd: () => number): BodyInit | null {
  const r = rnd();
  if (r < 0.15) return null;
  if (r < 0.6) return JSON.stringify(randomJson(rnd));
  if (r < 0.75) return pick(rnd, ["{", '{"a":', "[1,2", "nul", '"\\u12"', "{}{}", "\u0000"]);
  if (r < 0.85) return new Uint8Array(Array.from({ length: 64 }, () => Math.floor(rnd() * 256)));
  return JSON.stringify({ big: "x".repeat(2 * 1024 * 1024) });
}

function fillPattern(rnd: () => number, pattern: string): string {
  return pattern.replace(/:[a-z]+/g, () => encodeURIComponent(pick(rnd, PARAMS)));
}

Deno.test("the gateway answers every fuzzed request deliberately: no 500, no hang, no crashed control", async () => {
  const rnd = seededRandom(SEED);
  const sys = await startSystem();
  try {
    const addr = await sys.supervisor.gatewayAddress();
    if (addr.transport !== "tcp") throw new Error("expected a TCP gateway");
    const base = `http://127.0.0.1:${addr.port}`;
    const browser = await setUpSession(base, sys.home);
    const cli = await cliHeaders(sys.home);
    const routes = manifest.routes.filter((r) => !SKIPPED.has(r.path));
    const statuses = new Map<number, number>();
    for (let i = 0; i < REQUESTS; i++) {
      const route = pick(rnd, routes);
      const pattern = route.path;
      // Mostly a method the route serves, so that most requests reach its validation.
      const handler = (route.module as { handler?: Record<string, unknown> }).handler ?? {};
      const served = Object.keys(handler);
      const method = rnd() < 0.8 && served.length > 0
        ? pick(rnd, served)
        : pick(rnd, ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]);
      const url = `${base}${fillPattern(rnd, pattern)}${pick(rnd, QUERIES)}`;
      const who = rnd();
      // Mostly the signed-in browser: the CLI token may only read, and a stranger is refused
      // before any validation.
      const headers: Record<string, string> = who < 0.65
        ? { ...browser.post }
        : who < 0.85
        ? { ...cli }
        : { origin: pick(rnd, [base, "https://evil.example", "null"]) };
      const type = rnd() < 0.7 ? "application/json" : pick(rnd, CONTENT_TYPES);
      if (type) headers["content-type"] = type;
      else delete headers["content-type"];
      const body = method === "GET" || method === "HEAD" ? null : randomBody(rnd);
      const context = `seed ${SEED} request ${i}: ${method} ${url.slice(0, 200)} (${type})`;
      const res = await fetch(url, {
        method,
        headers,
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(20_000),
      });
      const text = await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      ok(res.status < 500, `${context}: answered ${res.status}: ${text}`);
      for (const name of Object.keys(SECURITY_HEADERS)) {
        ok(res.headers.has(name), `${context}: no ${name} header`);
      }
      const isApi = pattern.startsWith("/api/") || pattern.startsWith("/v1/");
      if (isApi && res.status >= 400 && method !== "HEAD") {
        const error = JSON.parse(text) as { error?: { code?: unknown } };
        ok(typeof error.error?.code === "string", `${context}: error without a code: ${text}`);
      }
    }
    ok((statuses.get(200) ?? 0) > 0, `some requests succeed: ${JSON.stringify([...statuses])}`);
    ok([...statuses.keys()].some((s) => s >= 400 && s < 500), "some requests are refused");
    const controls = sys.supervisor.status();
    for (const c of controls) {
      equal(c.restarts, 0, `${c.name} restarted during the run`);
    }
  } finally {
    await sys.stop();
  }
});
