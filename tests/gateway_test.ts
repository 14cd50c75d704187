/**
 * The gateway worker under the real supervisor: served over loopback TCP with only the
 * permissions the manifest grants, wired to the real policy and audit controls.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { auditQueryApi } from "../workers/audit/api.ts";
import { PROJECT_ROOT, startSystem, type TestSystem } from "./_system.ts";
import { cliHeaders, setUpSession } from "./_auth.ts";

async function gatewayUrl(sys: TestSystem): Promise<string> {
  const addr = await sys.supervisor.gatewayAddress(5_000);
  if (addr.transport !== "tcp") throw new TypeError("Expected a TCP gateway");
  return `http://${addr.host}:${addr.port}`;
}

/** Sends one raw HTTP/1.1 request, so the Host header can be anything. */
async function rawGet(base: string, path: string, host: string): Promise<string> {
  const url = new URL(base);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  try {
    const request = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(request));
    return await new Response(conn.readable).text();
  } catch (err) {
    conn.close();
    throw err;
  }
}

Deno.test("the gateway worker serves the API and the page with its granted permissions", async () => {
  const sys = await startSystem();
  try {
    ok(sys.isReady);
    const base = await gatewayUrl(sys);
    const health = await fetch(`${base}/api/v1/health`);
    deepEqual(await health.json(), { status: "ok" });
    equal(health.headers.get("x-frame-options"), "DENY");
    const cli = await cliHeaders(sys.home);
    const { controls } = await (await fetch(`${base}/api/v1/controls`, { headers: cli })).json();
    const gateway = controls.find((c: { name: string }) => c.name === "gateway");
    equal(gateway.state, "ready");
    deepEqual(gateway.permissions.read, [`${PROJECT_ROOT}/static`]);
    deepEqual(gateway.permissions.write, []);
    equal(gateway.permissions.run, false);
    equal(gateway.permissions.ffi, false);
    const page = await fetch(`${base}/`, { headers: cli });
    equal(page.status, 200);
    const html = await page.text();
    match(html, /<span class="name">gateway<\/span>/);
    // The Overview shows the evidence matrix from policy/controls.yaml.
    match(html, /<h2 id="evidence">Evidence matrix<\/h2>/);
    match(html, /<span class="name">RT1<\/span>/);
    const evidence = await (await fetch(`${base}/api/v1/evidence`, { headers: cli })).json();
    ok(evidence.summary.working >= 1);
    ok(evidence.controls.some((c: { id: string }) => c.id === "M53"));
    const css = await fetch(`${base}/static/style.css`);
    equal(css.status, 200, "static/ is readable");
    await css.body?.cancel();
  } finally {
    await sys.stop();
  }
});

Deno.test("the gateway asks the real policy control and audits a refused cross-site POST", async () => {
  const sys = await startSystem();
  try {
    const base = await gatewayUrl(sys);
    const body = JSON.stringify({ domain: "egress", input: { url: "https://example.com/" } });
    const session = await setUpSession(base, sys.home);
    const headers = { "content-type": "application/json" };
    const allowed = await fetch(`${base}/api/v1/policy/decide`, {
      method: "POST",
      headers: session.post,
      body,
    });
    equal(allowed.status, 200);
    equal((await allowed.json()).decision, "deny");
    const refused = await fetch(`${base}/api/v1/policy/decide`, {
      method: "POST",
      headers: { ...headers, cookie: session.cookie, origin: "http://evil.example" },
      body,
    });
    equal(refused.status, 403);
    await refused.body?.cancel();
    const audit = sys.supervisor.client(auditQueryApi);
    const { entries } = await audit.call("query", { type: "gateway.request_denied", limit: 5 });
    equal(entries.length, 1);
    equal(entries[0]?.control, "gateway");
    equal(entries[0]?.decision, "deny");
    equal(entries[0]?.evidence.origin, "http://evil.example");
  } finally {
    await sys.stop();
  }
});

Deno.test("the loopback gateway refuses a Host it was not reached by (DNS rebinding)", async () => {
  const sys = await startSystem();
  try {
    const base = await gatewayUrl(sys);
    const port = new URL(base).port;
    match(await rawGet(base, "/api/v1/health", `localhost:${port}`), /^HTTP\/1\.1 200/);
    const answer = await rawGet(base, "/api/v1/controls", `rebound.example:${port}`);
    match(answer, /^HTTP\/1\.1 403/);
    match(answer, /"code":"HOST_NOT_ALLOWED"/);
  } finally {
    await sys.stop();
  }
});

Deno.test("stopping the system ends an open event stream instead of waiting on it", async () => {
  const sys = await startSystem();
  let isStopped = false;
  try {
    const base = await gatewayUrl(sys);
    const res = await fetch(`${base}/api/v1/events`, { headers: await cliHeaders(sys.home) });
    equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    ok(first.startsWith("retry: 3000\n\n"), first);
    const started = performance.now();
    await sys.stop();
    isStopped = true;
    const ms = performance.now() - started;
    ok(ms < 2_500, `stop took ${ms.toFixed(0)} ms with a stream open`);
    // The stream ends (rather than hanging) once the gateway is gone.
    let chunk = await reader.read();
    while (!chunk.done) chunk = await reader.read();
  } finally {
    if (!isStopped) await sys.stop();
  }
});
