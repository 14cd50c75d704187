/**
 * The policy and tool-firewall HTTP API through the real gateway (real supervisor, workers,
 * permissions and auth): `GET /api/v1/policy`, `POST /api/v1/policy/decide`,
 * `POST /api/v1/policy/whatif`, `POST /api/v1/tools/check`, each failing closed.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { PROJECT_ROOT, startSystem, type TestSystem } from "./_system.ts";

const DEFAULT_POLICY = await Deno.readTextFile(`${PROJECT_ROOT}/policy/defaults/policy.yaml`);

interface Client {
  base: string;
  get(path: string): Promise<Response>;
  post(path: string, body: unknown): Promise<Response>;
}

/**
 * Claims the fresh instance as a user would (setup code from the state dir, first
 * passphrase), keeping the session and CSRF cookies; reads with the CLI token.
 */
async function client(sys: TestSystem): Promise<Client> {
  const addr = await sys.supervisor.gatewayAddress(5_000);
  if (addr.transport !== "tcp") throw new TypeError("Expected a TCP gateway");
  const base = `http://${addr.host}:${addr.port}`;
  const setupCode = (await Deno.readTextFile(`${sys.home}/auth/setup-code`)).trim();
  const res = await fetch(`${base}/api/v1/auth/setup`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: base },
    body: JSON.stringify({ setupCode, passphrase: "correct horse battery staple 42" }),
  });
  equal(res.status, 200, await res.clone().text());
  await res.body?.cancel();
  const cookies = res.headers.getSetCookie().map((c) => c.split(";")[0] as string);
  const csrf = cookies.find((c) => c.startsWith("secai_csrf="))?.slice("secai_csrf=".length) ?? "";
  const token = (await Deno.readTextFile(`${sys.home}/auth/cli-token`)).trim();
  return {
    base,
    get: (path) => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } }),
    post: (path, body) =>
      fetch(`${base}${path}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          origin: base,
          cookie: cookies.join("; "),
          "x-csrf-token": csrf,
        },
        body: JSON.stringify(body),
      }),
  };
}

Deno.test("GET /api/v1/policy shows the policy in force, its files and the tool registry", async () => {
  const sys = await startSystem();
  try {
    const c = await client(sys);
    const res = await c.get("/api/v1/policy");
    equal(res.status, 200);
    const view = await res.json();
    match(view.policy_version, /^sha256:[0-9a-f]{64}$/);
    deepEqual(view.sources.map((s: { name: string; origin: string }) => [s.name, s.origin]), [
      ["policy.yaml", "default"],
      ["agent.yaml", "default"],
    ]);
    equal(view.policy.tools.default, "deny");
    equal(view.workspace, `${sys.home}/vault`);
    ok(view.tools.some((t: { name: string }) => t.name === "filesystem.read"));
    equal(view.last_reload_error, null);
  } finally {
    await sys.stop();
  }
});

Deno.test("GET /api/v1/policy counts the decisions given since start, by domain and effect", async () => {
  const sys = await startSystem();
  try {
    const c = await client(sys);
    const counts = async () => (await (await c.get("/api/v1/policy")).json()).decisions;
    const before = await counts();
    ok(!Number.isNaN(Date.parse(before.since)));
    for (const url of ["https://0x7f.1/", "http://huggingface.co/"]) {
      const r = await c.post("/api/v1/policy/decide", { domain: "egress", input: { url } });
      equal((await r.json()).decision, "deny");
    }
    const ask = await c.post("/api/v1/policy/decide", {
      domain: "agent_risk",
      input: { action: "batch_delete" },
    });
    equal((await ask.json()).decision, "ask");
    const after = await counts();
    equal(after.total - before.total, 3);
    equal(after.by_domain.egress.deny - before.by_domain.egress.deny, 2);
    equal(after.by_domain.agent_risk.ask - before.by_domain.agent_risk.ask, 1);
    equal(after.by_domain.egress.allow, before.by_domain.egress.allow);
    equal(after.since, before.since);
  } finally {
    await sys.stop();
  }
});

Deno.test("POST /api/v1/policy/decide answers with the decision, and 503 deny while policy is down", async () => {
  const sys = await startSystem();
  try {
    const c = await client(sys);
    const ok200 = await c.post("/api/v1/policy/decide", {
      domain: "egress",
      input: { url: "https://0x7f.1/" },
    });
    equal(ok200.status, 200);
    const d = await ok200.json();
    equal(d.decision, "deny");
    equal(d.rule, "egress.url.ip_literal");
    // An own "__proto__" key is refused, not dropped before the input is judged.
    const proto = await c.post("/api/v1/policy/decide", {
      domain: "path_access",
      input: JSON.parse('{"path":"user_docs/a.txt","op":"read","__proto__":{"op":"write"}}'),
    });
    equal(proto.status, 400);
    match(await proto.text(), /__proto__/);
    sys.supervisor.kill("policy");
    const down = await c.post("/api/v1/policy/decide", {
      domain: "egress",
      input: { url: "https://huggingface.co/" },
    });
    equal(down.status, 503);
    const body = await down.json();
    equal(body.decision, "deny");
    equal(body.error.code, "UNAVAILABLE");
  } finally {
    await sys.stop();
  }
});

Deno.test("POST /api/v1/policy/whatif replays the logged decisions under a candidate", async () => {
  const sys = await startSystem();
  try {
    const c = await client(sys);
    for (const url of ["https://huggingface.co/x", "https://10.0.0.1/"]) {
      await (await c.post("/api/v1/policy/decide", { domain: "egress", input: { url } })).body
        ?.cancel();
    }
    const res = await c.post("/api/v1/policy/whatif", {
      policy: DEFAULT_POLICY.replace("enabled: false", "enabled: true"),
    });
    equal(res.status, 200);
    const report = await res.json();
    equal(report.replayed, 2);
    deepEqual(
      report.changed.map((x: { input: { url: string }; after: { decision: string } }) => [
        x.input.url,
        x.after.decision,
      ]),
      [["https://huggingface.co/x", "allow"]],
    );
    const bad = await c.post("/api/v1/policy/whatif", {
      policy: DEFAULT_POLICY.replace("runtime_egress: deny", "runtime_egress: allow"),
    });
    equal(bad.status, 422);
    const err = await bad.json();
    equal(err.error.code, "POLICY_INVALID");
    match(err.error.message, /defaults\.network\.runtime_egress/);
    const empty = await c.post("/api/v1/policy/whatif", {});
    equal(empty.status, 400);
    await empty.body?.cancel();
  } finally {
    await sys.stop();
  }
});

Deno.test("POST /api/v1/tools/check answers 200 for decisions, 429 for a rate limit, 503 deny when down", async () => {
  const sys = await startSystem();
  try {
    await Deno.mkdir(`${sys.home}/vault/user_docs`, { recursive: true });
    await Deno.writeTextFile(`${sys.home}/vault/user_docs/a.txt`, "a");
    const c = await client(sys);
    const call = { tool: "filesystem.read", args: { path: "user_docs/a.txt" }, session: "web-1" };
    const allowed = await c.post("/api/v1/tools/check", call);
    equal(allowed.status, 200);
    equal((await allowed.json()).allowed, true);
    const denied = await c.post("/api/v1/tools/check", {
      ...call,
      tool: "shell.exec",
      args: { command: "id" },
    });
    equal(denied.status, 200);
    equal((await denied.json()).rule, "tools.deny.shell.exec");
    const malformed = await c.post("/api/v1/tools/check", { ...call, extra: 1 });
    equal(malformed.status, 400);
    await malformed.body?.cancel();
    // An own "__proto__" argument is refused, not dropped and then allowed without it.
    const proto = await c.post("/api/v1/tools/check", {
      ...call,
      args: JSON.parse('{"path":"user_docs/a.txt","__proto__":{"path":"outputs/x"}}'),
    });
    equal(proto.status, 400);
    match(await proto.text(), /__proto__/);
    let limited: Response | null = null;
    for (let i = 0; i < 25 && limited === null; i++) {
      const r = await c.post("/api/v1/tools/check", call);
      if (r.status === 429) limited = r;
      else await r.body?.cancel();
    }
    ok(limited, "the session's burst of 20 runs out");
    match(limited.headers.get("retry-after") ?? "", /^\d+$/);
    equal((await limited.json()).rule, "tools.rate_limit.session");
    sys.supervisor.kill("tool-firewall");
    const down = await c.post("/api/v1/tools/check", { ...call, session: "web-2" });
    equal(down.status, 503);
    const body = await down.json();
    equal(body.allowed, false);
    equal(body.decision, "deny");
  } finally {
    await sys.stop();
  }
});
