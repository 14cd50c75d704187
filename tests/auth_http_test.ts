/**
 * Authentication, sessions and CSRF at the HTTP level: the gateway app (`app.fetch`, no port)
 * in front of the real auth logic (`AuthService` on a temp dir, served over a MessageChannel
 * with the real `auth` contract at both ends). Only the KDF is cheaper than in production.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { RpcClient, serveRpc } from "../runtime/kit/rpc.ts";
import { systemApi, type SystemEvent } from "../runtime/kit/system_api.ts";
import { policyApi } from "../workers/policy/api.ts";
import { auditAppendApi, auditQueryApi } from "../workers/audit/api.ts";
import { authApi, AuthConfigSchema } from "../workers/auth/api.ts";
import { AUTH_FILES, AuthService } from "../workers/auth/service.ts";
import { createApp } from "../workers/gateway/app.ts";
import { createGatewayState } from "../workers/gateway/state.ts";
import { cookiesOf, type SessionHeaders, sessionOf, TEST_PASSPHRASE } from "./_auth.ts";

const ORIGIN = "http://127.0.0.1:8480";
const MINUTE = 60_000;

interface Harness {
  app: ReturnType<typeof createApp>;
  home: string;
  clock: { offsetMs: number };
  audited: { type: string; decision?: string | undefined; evidence: Record<string, unknown> }[];
  service: AuthService;
  close(): Promise<void>;
}

async function harness(): Promise<Harness> {
  const home = await Deno.makeTempDir({ prefix: "secai-authhttp-" });
  const clock = { offsetMs: 0 };
  const audited: Harness["audited"] = [];
  const service = await AuthService.open({
    dir: `${home}/auth`,
    config: AuthConfigSchema.parse({}),
    kdf: { n: 1 << 14, r: 1, p: 1, keyLength: 32 },
    now: () => Date.now() + clock.offsetMs,
    record: (entry) => audited.push(entry),
  });
  const closers: (() => void)[] = [];
  function connect<C extends Parameters<typeof serveRpc>[1]>(
    contract: C,
    handlers: Parameters<typeof serveRpc<C>>[2],
  ): RpcClient<C> {
    const channel = new MessageChannel();
    const server = serveRpc(channel.port2, contract, handlers, { caller: "gateway", self: "t" });
    const client = new RpcClient(contract, channel.port1, { peer: contract.name });
    closers.push(() => {
      client.close();
      server.close();
    });
    return client;
  }
  const events: SystemEvent[] = [];
  const state = createGatewayState({
    system: connect(systemApi, {
      status: () => ({
        ready: true,
        state: "ready",
        version: "test",
        startedAt: new Date(0).toISOString(),
        controls: [],
      }),
      metrics: () => ({ text: "secai_up 1\n" }),
      evidence: () => ({ summary: { planned: 0, partial: 0, working: 0 }, controls: [] }),
      events: async (query, call) => {
        if (query.waitMs > 0) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, query.waitMs);
            call.signal.addEventListener("abort", () => {
              clearTimeout(timer);
              resolve();
            }, { once: true });
          });
        }
        return { events: [], last: events.length - 1, gap: false };
      },
    }),
    policy: connect(policyApi, {
      decide: (input) => ({
        decision: "deny",
        domain: input.domain,
        rule: "default-deny",
        reasons: ["test"],
        evidence: {},
        policy_version: "1",
      }),
    }),
    auditQuery: connect(auditQueryApi, {
      query: () => ({ entries: [], next: null, total: 0 }),
    } as never),
    auditAppend: connect(auditAppendApi, {
      append: (entry) => {
        audited.push(entry);
        return { seq: audited.length };
      },
    }),
    auth: connect(authApi, {
      check: (input) => service.check(input.credential, input.touch),
      setup: (input) => service.setup(input),
      login: (input) => service.login(input),
      logout: (input) => service.logout(input),
      change: (input) => service.change(input),
    }),
  });
  const app = createApp(state, { heartbeatMs: 50 });
  return {
    app,
    home,
    clock,
    audited,
    service,
    async close() {
      for (const close of closers) close();
      service.close();
      await Deno.remove(home, { recursive: true });
    },
  };
}

function req(path: string, init: RequestInit & { base?: string } = {}): Request {
  return new Request(`${init.base ?? ORIGIN}${path}`, init);
}

function post(path: string, body: unknown, headers: Record<string, string>): Request {
  return req(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

async function json(res: Response): Promise<Record<string, unknown>> {
  return await res.json();
}

async function codeOf(res: Response): Promise<string> {
  return ((await json(res)).error as { code: string }).code;
}

async function setUp(h: Harness, base = ORIGIN): Promise<SessionHeaders> {
  const setupCode = (await Deno.readTextFile(`${h.home}/auth/${AUTH_FILES.setupCode}`)).trim();
  const res = await h.app.fetch(
    new Request(`${base}/api/v1/auth/setup`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: base },
      body: JSON.stringify({ setupCode, passphrase: TEST_PASSPHRASE }),
    }),
  );
  equal(res.status, 200);
  await res.body?.cancel();
  return sessionOf(res, base);
}

const protectedRequests: { name: string; request: () => Request }[] = [
  { name: "GET /api/v1/controls", request: () => req("/api/v1/controls") },
  { name: "GET /metrics", request: () => req("/metrics") },
  { name: "GET /api/v1/audit", request: () => req("/api/v1/audit") },
  { name: "GET /api/v1/events", request: () => req("/api/v1/events") },
  {
    name: "POST /api/v1/policy/decide",
    request: () =>
      post("/api/v1/policy/decide", { domain: "egress", input: {} }, { origin: ORIGIN }),
  },
  {
    name: "POST /api/v1/auth/logout",
    request: () => post("/api/v1/auth/logout", {}, { origin: ORIGIN }),
  },
];
for (const c of protectedRequests) {
  Deno.test(`before setup ${c.name} answers 401 with setup_required`, async () => {
    const h = await harness();
    try {
      const res = await h.app.fetch(c.request());
      equal(res.status, 401);
      const body = await json(res);
      equal(body.setup_required, true);
      equal((body.error as { code: string }).code, "SETUP_REQUIRED");
    } finally {
      await h.close();
    }
  });
}

Deno.test("before setup pages redirect to /setup and health and auth status stay public", async () => {
  const h = await harness();
  try {
    for (const path of ["/", "/audit", "/login", "/settings"]) {
      const res = await h.app.fetch(req(path));
      equal(res.status, 303, path);
      equal(res.headers.get("location"), "/setup", path);
    }
    equal((await h.app.fetch(req("/setup"))).status, 200);
    deepEqual(await json(await h.app.fetch(req("/api/v1/health"))), { status: "ok" });
    const status = await json(await h.app.fetch(req("/api/v1/auth/status")));
    deepEqual(status, {
      configured: false,
      authenticated: false,
      setup_required: true,
      session: null,
    });
  } finally {
    await h.close();
  }
});

Deno.test("the CLI token reads before and after setup but may not change anything", async () => {
  const h = await harness();
  try {
    const token = (await Deno.readTextFile(`${h.home}/auth/${AUTH_FILES.cliToken}`)).trim();
    const bearer = { authorization: `Bearer ${token}` };
    equal((await h.app.fetch(req("/api/v1/controls", { headers: bearer }))).status, 200);
    await setUp(h);
    equal((await h.app.fetch(req("/api/v1/controls", { headers: bearer }))).status, 200);
    const write = await h.app.fetch(
      post("/api/v1/policy/decide", { domain: "egress", input: {} }, bearer),
    );
    equal(write.status, 403);
    equal(await codeOf(write), "TOKEN_READ_ONLY");
    const bad = await h.app.fetch(
      req("/api/v1/controls", { headers: { authorization: "Basic x" } }),
    );
    equal(bad.status, 401);
    const forged = { authorization: `Bearer ${"A".repeat(43)}` };
    equal((await h.app.fetch(req("/api/v1/controls", { headers: forged }))).status, 401);
  } finally {
    await h.close();
  }
});

const setupRefusals: {
  name: string;
  body: (code: string) => unknown;
  headers: Record<string, string>;
  status: number;
  code: string;
}[] = [
  {
    name: "without Origin or Sec-Fetch-Site (login CSRF)",
    body: (setupCode) => ({ setupCode, passphrase: TEST_PASSPHRASE }),
    headers: {},
    status: 403,
    code: "CROSS_SITE_REQUEST",
  },
  {
    name: "from another origin",
    body: (setupCode) => ({ setupCode, passphrase: TEST_PASSPHRASE }),
    headers: { origin: "http://evil.example" },
    status: 403,
    code: "CROSS_SITE_REQUEST",
  },
  {
    name: "with a wrong setup code",
    body: () => ({ setupCode: "AAAAA-AAAAA-AAAAA-AAAAA", passphrase: TEST_PASSPHRASE }),
    headers: { origin: ORIGIN },
    status: 403,
    code: "SETUP_CODE_INVALID",
  },
  {
    name: "with a short passphrase",
    body: (setupCode) => ({ setupCode, passphrase: "too short" }),
    headers: { origin: ORIGIN },
    status: 400,
    code: "WEAK_PASSPHRASE",
  },
  {
    name: "with an extra field",
    body: (setupCode) => ({ setupCode, passphrase: TEST_PASSPHRASE, admin: true }),
    headers: { origin: ORIGIN },
    status: 400,
    code: "INVALID_BODY",
  },
  {
    name: "with a body over 4 KiB",
    body: (setupCode) => ({ setupCode, passphrase: "x".repeat(5000) }),
    headers: { origin: ORIGIN },
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  },
];
for (const c of setupRefusals) {
  Deno.test(`POST /api/v1/auth/setup ${c.name} answers ${c.status} ${c.code}`, async () => {
    const h = await harness();
    try {
      const code = (await Deno.readTextFile(`${h.home}/auth/${AUTH_FILES.setupCode}`)).trim();
      const res = await h.app.fetch(post("/api/v1/auth/setup", c.body(code), c.headers));
      equal(res.status, c.status);
      equal(await codeOf(res), c.code);
      equal(res.headers.getSetCookie().length, 0, "no cookie on a refusal");
      equal(h.service.isConfigured, false);
    } finally {
      await h.close();
    }
  });
}

Deno.test("setup sets HttpOnly SameSite=Strict cookies, Secure only over TLS", async () => {
  for (const base of [ORIGIN, "https://127.0.0.1:8480"]) {
    const h = await harness();
    try {
      const setupCode = (await Deno.readTextFile(`${h.home}/auth/${AUTH_FILES.setupCode}`)).trim();
      const res = await h.app.fetch(
        new Request(`${base}/api/v1/auth/setup`, {
          method: "POST",
          headers: { "content-type": "application/json", origin: base },
          body: JSON.stringify({ setupCode, passphrase: TEST_PASSPHRASE }),
        }),
      );
      equal(res.status, 200);
      const body = await json(res);
      equal(body.ok, true);
      ok(
        !JSON.stringify(body).includes(cookiesOf(res).split("=")[1] ?? "-"),
        "no token in the body",
      );
      const cookies = res.headers.getSetCookie();
      const isTls = base.startsWith("https:");
      const session = cookies.find((c) => c.startsWith("secai_session="));
      const csrf = cookies.find((c) => c.startsWith("secai_csrf="));
      const device = cookies.find((c) => c.startsWith("secai_device="));
      match(session ?? "", /; Path=\/; Max-Age=43200; SameSite=Strict; HttpOnly/);
      match(csrf ?? "", /; Path=\/; Max-Age=43200; SameSite=Strict/);
      ok(!/HttpOnly/.test(csrf ?? ""), "the CSRF cookie is readable by our scripts");
      match(device ?? "", /; Path=\/api\/v1\/auth; .*HttpOnly/);
      for (const c of cookies) equal(/; Secure/.test(c), isTls, `${c.split("=")[0]} on ${base}`);
    } finally {
      await h.close();
    }
  }
});

Deno.test("login counts failures, answers 423 with locked_until, and audits without secrets", async () => {
  const h = await harness();
  try {
    await setUp(h);
    const statuses: number[] = [];
    let last: Response | null = null;
    for (let i = 0; i < 6; i++) {
      last = await h.app.fetch(
        post("/api/v1/auth/login", { passphrase: "a wrong guess here" }, { origin: ORIGIN }),
      );
      statuses.push(last.status);
      if (i < 5) await last.body?.cancel();
    }
    deepEqual(statuses, [401, 401, 401, 401, 401, 423]);
    ok(last);
    const body = await json(last);
    equal((body.error as { code: string }).code, "LOGIN_LOCKED");
    ok(typeof body.locked_until === "string");
    const retryAfter = Number(last.headers.get("retry-after"));
    ok(retryAfter >= 1 && retryAfter <= 60, `retry-after ${retryAfter}`);
    const right = await h.app.fetch(
      post("/api/v1/auth/login", { passphrase: TEST_PASSPHRASE }, { origin: ORIGIN }),
    );
    equal(right.status, 423, "the right passphrase waits out the lock too");
    const logins = h.audited.filter((e) => e.type === "auth.login");
    equal(logins.length, 7);
    ok(logins.every((e) => e.decision === "deny"));
    const text = JSON.stringify(h.audited);
    ok(!text.includes("a wrong guess here") && !text.includes(TEST_PASSPHRASE));
  } finally {
    await h.close();
  }
});

Deno.test("a cross-site login is refused before the passphrase is checked, and audited", async () => {
  const h = await harness();
  try {
    await setUp(h);
    const res = await h.app.fetch(
      post("/api/v1/auth/login", { passphrase: TEST_PASSPHRASE }, {
        origin: "http://evil.example",
        "sec-fetch-site": "cross-site",
      }),
    );
    equal(res.status, 403);
    equal(await codeOf(res), "CROSS_SITE_REQUEST");
    ok(h.audited.some((e) => e.type === "gateway.request_denied"));
    ok(
      !h.audited.some((e) => e.type === "auth.login"),
      "no login attempt reached the auth control",
    );
  } finally {
    await h.close();
  }
});

const csrfCases: {
  name: string;
  headers: (s: SessionHeaders, other: SessionHeaders) => Record<string, string>;
  status: number;
}[] = [
  { name: "with the session's token", headers: (s) => s.post, status: 200 },
  {
    name: "without X-CSRF-Token",
    headers: (s) => ({ cookie: s.cookie, origin: ORIGIN }),
    status: 403,
  },
  {
    name: "with another session's token",
    headers: (s, o) => ({ ...s.post, "x-csrf-token": o.csrf }),
    status: 403,
  },
  {
    name: "with a token but no CSRF cookie",
    headers: (s) => ({ ...s.post, cookie: s.cookie.replace(/secai_csrf=[^;]+;? ?/, "") }),
    status: 403,
  },
  {
    name: "with a planted CSRF cookie matching the header",
    headers: (s) => ({
      ...s.post,
      cookie: s.cookie.replace(/secai_csrf=[^;]+/, `secai_csrf=${"x".repeat(43)}`),
      "x-csrf-token": "x".repeat(43),
    }),
    status: 403,
  },
  {
    name: "with the right token from another origin",
    headers: (s) => ({ ...s.post, origin: "http://evil.example" }),
    status: 403,
  },
];
for (const c of csrfCases) {
  Deno.test(`a session POST ${c.name} answers ${c.status}`, async () => {
    const h = await harness();
    try {
      const session = await setUp(h);
      const login = await h.app.fetch(
        post("/api/v1/auth/login", { passphrase: TEST_PASSPHRASE }, { origin: ORIGIN }),
      );
      await login.body?.cancel();
      const other = sessionOf(login, ORIGIN);
      const res = await h.app.fetch(
        post("/api/v1/policy/decide", { domain: "egress", input: {} }, c.headers(session, other)),
      );
      equal(res.status, c.status);
      if (c.status === 403) {
        ok(["CSRF_TOKEN_INVALID", "CROSS_SITE_REQUEST"].includes(await codeOf(res)));
        ok(h.audited.some((e) => e.type === "gateway.request_denied"), "the refusal is audited");
      } else {
        await res.body?.cancel();
      }
    } finally {
      await h.close();
    }
  });
}

Deno.test("reading pages does not extend a session; a change does", async () => {
  const h = await harness();
  try {
    const session = await setUp(h);
    h.clock.offsetMs = 20 * MINUTE;
    equal(
      (await h.app.fetch(req("/api/v1/controls", { headers: { cookie: session.cookie } }))).status,
      200,
    );
    h.clock.offsetMs = 30 * MINUTE + 1;
    const expired = await h.app.fetch(
      req("/api/v1/controls", { headers: { cookie: session.cookie } }),
    );
    equal(expired.status, 401, "the GET at 20 min did not extend it");
    equal(await codeOf(expired), "UNAUTHENTICATED");

    h.clock.offsetMs = 0;
    const login = await h.app.fetch(
      post("/api/v1/auth/login", { passphrase: TEST_PASSPHRASE }, { origin: ORIGIN }),
    );
    await login.body?.cancel();
    const second = sessionOf(login, ORIGIN);
    h.clock.offsetMs = 20 * MINUTE;
    const refresh = await h.app.fetch(post("/api/v1/auth/refresh", {}, second.post));
    equal(refresh.status, 200);
    const { session: ends } = await json(refresh) as { session: { idleExpiresAt: string } };
    equal(Date.parse(ends.idleExpiresAt) > Date.now() + 49 * MINUTE, true);
    h.clock.offsetMs = 45 * MINUTE;
    equal(
      (await h.app.fetch(req("/api/v1/controls", { headers: { cookie: second.cookie } }))).status,
      200,
    );
  } finally {
    await h.close();
  }
});

Deno.test("logout ends the session and clears its cookies", async () => {
  const h = await harness();
  try {
    const session = await setUp(h);
    const res = await h.app.fetch(post("/api/v1/auth/logout", {}, session.post));
    equal(res.status, 200);
    deepEqual(await json(res), { ok: true, ended: true });
    const cleared = res.headers.getSetCookie();
    ok(cleared.some((c) => /^secai_session=; .*Max-Age=0/.test(c)));
    ok(cleared.some((c) => /^secai_csrf=; .*Max-Age=0/.test(c)));
    const after = await h.app.fetch(
      req("/api/v1/controls", { headers: { cookie: session.cookie } }),
    );
    equal(after.status, 401);
    const page = await h.app.fetch(req("/audit?type=x", { headers: { cookie: session.cookie } }));
    equal(page.status, 303);
    equal(page.headers.get("location"), "/login?next=%2Faudit%3Ftype%3Dx");
  } finally {
    await h.close();
  }
});

Deno.test("the login page sends a signed-in browser only to a path on this site", async () => {
  const h = await harness();
  try {
    const session = await setUp(h);
    const cases = [
      ["/audit", "/audit"],
      ["//evil.example/", "/"],
      ["/\\evil.example", "/"],
      ["https://evil.example/", "/"],
    ];
    for (const [next, expected] of cases) {
      const res = await h.app.fetch(
        req(`/login?next=${encodeURIComponent(next as string)}`, {
          headers: { cookie: session.cookie },
        }),
      );
      equal(res.status, 303);
      equal(res.headers.get("location"), expected, next);
    }
  } finally {
    await h.close();
  }
});

Deno.test("a repeated session cookie is refused rather than resolved by order", async () => {
  const h = await harness();
  try {
    const session = await setUp(h);
    const res = await h.app.fetch(
      req("/api/v1/controls", {
        headers: { cookie: `${session.cookie}; secai_session=${"B".repeat(43)}` },
      }),
    );
    equal(res.status, 400);
    equal(await codeOf(res), "INVALID_HEADER");
  } finally {
    await h.close();
  }
});

Deno.test("an event stream ends with session_expired when its session's idle time runs out", async () => {
  const h = await harness();
  try {
    const session = await setUp(h);
    // The session was created 30 minutes minus 300 ms "ago": it ends 300 ms from now.
    h.clock.offsetMs = 0;
    const login = await (async () => {
      h.clock.offsetMs = -(30 * MINUTE - 300);
      const res = await h.app.fetch(
        post("/api/v1/auth/login", { passphrase: TEST_PASSPHRASE }, { origin: ORIGIN }),
      );
      await res.body?.cancel();
      return sessionOf(res, ORIGIN);
    })();
    h.clock.offsetMs = 0;
    ok(session.cookie !== login.cookie);
    const res = await h.app.fetch(req("/api/v1/events", { headers: { cookie: login.cookie } }));
    equal(res.status, 200);
    const text = await res.text(); // ends by itself
    match(text, /event: session_expired\ndata: \{"code":"UNAUTHENTICATED"\}\n\n$/);
  } finally {
    await h.close();
  }
});
