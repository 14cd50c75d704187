import { deepEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type ApiContract,
  type Handlers,
  RpcClient,
  type RpcClientOptions,
  serveRpc,
} from "../../runtime/kit/rpc.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import { systemApi, type SystemEvent } from "../../runtime/kit/system_api.ts";
import { type Decision, policyApi } from "../policy/api.ts";
import { auditAppendApi, type AuditEntry, auditQueryApi } from "../audit/api.ts";
import { authApi, type CheckResult } from "../auth/api.ts";
import { csrfTokenFor } from "./auth.ts";
import { ISLAND_DATA_ID } from "../../islands/hydration.ts";
import { manifest } from "../../routes/_manifest.ts";
import { type AppOptions, createApp } from "./app.ts";
import { CONTENT_SECURITY_POLICY, SECURITY_HEADERS } from "./http.ts";
import { escapeJsonForScript } from "./render.tsx";
import { formatSseComment, formatSseMessage } from "./sse.ts";
import {
  type AuditQuery,
  type AuditRecord,
  createGatewayState,
  type GatewayState,
  type SystemStatus,
} from "./state.ts";

// ---------------------------------------------------------------------------------------
// Harness: GatewayState over real RpcClients, each on a MessageChannel served by serveRpc.

const ORIGIN = "http://127.0.0.1:8480";
const SAME_ORIGIN = { origin: ORIGIN };
/** The session every request of {@link request} presents (the harness's auth accepts it). */
const TEST_SESSION = "test-session-token-0123456789abcdefghijklmn";
/** Cookies of a signed-in browser. */
const SIGNED_IN = `secai_session=${TEST_SESSION}; secai_csrf=${csrfTokenFor(TEST_SESSION)}`;

/** The harness's auth control: one valid session, nothing else. */
function testCheck(input: { credential: { kind: string; token?: string } }): CheckResult {
  if (input.credential.kind === "session" && input.credential.token === TEST_SESSION) {
    return {
      ok: true,
      configured: true,
      principal: {
        kind: "session",
        id: "0123456789ab",
        createdAt: "2026-11-25T10:00:00.000Z",
        idleExpiresAt: "2999-01-01T00:00:00.000Z",
        expiresAt: "2999-01-01T00:00:00.000Z",
      },
    };
  }
  return { ok: false, configured: true, reason: "NO_CREDENTIAL" };
}
const EVIL_DESCRIPTION = "</script><script>alert(1)</script><!-- x";

const STATUS: SystemStatus = {
  ready: true,
  state: "ready",
  version: "0.1.0",
  startedAt: "2026-11-25T10:00:00.000Z",
  controls: [
    {
      name: "policy",
      description: "Decides every request",
      state: "ready",
      required: true,
      restarts: 0,
      lastError: null,
      since: "2026-11-25T10:00:01.000Z",
      permissions: {
        read: ["/state/policy"],
        write: ["/state/logs"],
        net: [],
        env: [],
        sys: [],
        run: false,
        ffi: false,
        import: false,
      },
      provides: ["policy"],
      uses: [{ api: "audit-append", control: "audit" }],
      jobs: [],
    },
    {
      name: "audit",
      description: EVIL_DESCRIPTION,
      state: "failed",
      required: true,
      restarts: 5,
      lastError: "Cannot open segment",
      since: "2026-11-25T10:05:00.000Z",
      permissions: {
        read: ["/state/audit"],
        write: ["/state/audit"],
        net: [],
        env: [],
        sys: [],
        run: false,
        ffi: false,
        import: false,
      },
      provides: ["audit-append", "audit-query"],
      uses: [],
      jobs: ["verify-segment"],
    },
    {
      name: "gateway",
      description: "HTTP gateway",
      state: "ready",
      required: true,
      restarts: 1,
      lastError: null,
      since: "2026-11-25T10:00:02.000Z",
      permissions: {
        read: ["/project/static"],
        write: [],
        net: ["127.0.0.1:8480"],
        env: [],
        sys: [],
        run: false,
        ffi: false,
        import: false,
      },
      provides: [],
      uses: [
        { api: "system", control: "supervisor" },
        { api: "policy", control: "policy" },
      ],
      jobs: [],
    },
  ],
};

const DECISION: Decision = {
  decision: "deny",
  domain: "egress",
  rule: "default-deny",
  reasons: ['Host "example.com" is not allowed'],
  evidence: { host: "example.com" },
  policy_version: "1",
};

/** The supervisor's event ring, long-poll included. */
class EventRing {
  readonly events: SystemEvent[] = [];
  readonly #waiters = new Set<() => void>();
  #onWait = Promise.withResolvers<void>();
  #onAbort = Promise.withResolvers<void>();

  push(type: string): void {
    this.events.push({
      seq: this.events.length,
      ts: new Date(0).toISOString(),
      source: "supervisor",
      type,
      data: { n: this.events.length },
    });
    for (const wake of this.#waiters) wake();
  }

  /** Resolves when the next long-poll starts waiting. */
  waiting(): Promise<void> {
    return this.#onWait.promise;
  }

  /** Resolves when a waiting long-poll was cancelled by the caller. */
  aborted(): Promise<void> {
    return this.#onAbort.promise;
  }

  async handle(
    query: { after: number; waitMs: number; limit: number },
    signal: AbortSignal,
  ): Promise<{ events: SystemEvent[]; last: number; gap: boolean }> {
    const pick = () => this.events.filter((e) => e.seq > query.after).slice(0, query.limit);
    if (pick().length === 0 && query.waitMs > 0 && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          done();
          this.#onAbort.resolve();
        };
        const timer = setTimeout(done, query.waitMs);
        this.#waiters.add(done);
        signal.addEventListener("abort", onAbort, { once: true });
        const onWait = this.#onWait;
        this.#onWait = Promise.withResolvers<void>();
        onWait.resolve();
      });
    }
    // As the supervisor: `last` is the last seq returned, or the newest when none is.
    const events = pick();
    return { events, last: events.at(-1)?.seq ?? this.events.length - 1, gap: false };
  }
}

const EVIDENCE = {
  summary: { planned: 1, partial: 0, working: 1 },
  controls: [
    {
      id: "RT1",
      title: "Supervisor & capabilities",
      status: "working" as const,
      issue: 3,
      note: null,
      proofs: [{ file: "tests/supervisor_test.ts", test: "supervisor starts <everything>" }],
    },
    {
      id: "M4",
      title: "Tool firewall",
      status: "planned" as const,
      issue: 5,
      note: null,
      proofs: [],
    },
  ],
};

interface HarnessOptions {
  system?: Partial<Handlers<typeof systemApi>>;
  policy?: Handlers<typeof policyApi>["decide"];
  /** Policy peer is down: the client holds no port. */
  isPolicyDown?: boolean;
  policyClient?: RpcClientOptions;
  auth?: Partial<Handlers<typeof authApi>>;
  app?: AppOptions;
}

interface Harness {
  app: ReturnType<typeof createApp>;
  state: GatewayState;
  ring: EventRing;
  audited: AuditRecord[];
  auditQueries: AuditQuery[];
  errors: { error: unknown; requestId: string }[];
  close(): void;
}

function connect<C extends ApiContract>(
  contract: C,
  handlers: Handlers<C>,
  closers: (() => void)[],
  options: RpcClientOptions = {},
): RpcClient<C> {
  const channel = new MessageChannel();
  const server = serveRpc(channel.port2, contract, handlers, { caller: "gateway", self: "test" });
  const client = new RpcClient(contract, channel.port1, { peer: contract.name, ...options });
  closers.push(() => {
    client.close();
    server.close();
  });
  return client;
}

function harness(options: HarnessOptions = {}): Harness {
  const closers: (() => void)[] = [];
  const ring = new EventRing();
  const audited: AuditRecord[] = [];
  const auditQueries: AuditQuery[] = [];
  const errors: { error: unknown; requestId: string }[] = [];
  const system = connect(systemApi, {
    status: () => structuredClone(STATUS),
    metrics: () => ({ text: "# TYPE secai_up gauge\nsecai_up 1\n" }),
    evidence: () => structuredClone(EVIDENCE),
    events: (query, ctx) => ring.handle(query, ctx.signal),
    ...options.system,
  }, closers);
  const policy = options.isPolicyDown
    ? new RpcClient(policyApi, null, { peer: "policy" })
    : connect(
      policyApi,
      { decide: options.policy ?? (() => structuredClone(DECISION)) },
      closers,
      options.policyClient,
    );
  const auditQuery = connect(auditQueryApi, {
    query(query) {
      auditQueries.push(query);
      return { entries: [] as AuditEntry[], next: null, total: 0 };
    },
    // The audit log's proofs and verification are tested against the real audit control
    // (tests/audit_system_test.ts); here the log is empty.
    head: () => Promise.reject(new RpcError("AUDIT_NOT_FOUND", "The audit log is empty")),
    proof: () => Promise.reject(new RpcError("AUDIT_NOT_FOUND", "The audit log is empty")),
    consistency: () => Promise.reject(new RpcError("AUDIT_NOT_FOUND", "The audit log is empty")),
    verify: () => Promise.reject(new RpcError("AUDIT_NOT_FOUND", "The audit log is empty")),
    export: () => Promise.reject(new RpcError("AUDIT_NOT_FOUND", "The audit log is empty")),
  }, closers);
  const auditAppend = connect(auditAppendApi, {
    append(entry) {
      audited.push(entry);
      return { seq: audited.length - 1 };
    },
  }, closers);
  const refused = {
    ok: false as const,
    code: "NOT_CONFIGURED" as const,
    message: "Not in this harness",
    lockedUntil: null,
  };
  const auth = connect(authApi, {
    check: testCheck,
    setup: () => refused,
    login: () => refused,
    logout: () => ({ ended: true }),
    change: () => refused,
    ...options.auth,
  }, closers);
  const state = createGatewayState({ system, policy, auditQuery, auditAppend, auth });
  const app = createApp(state, {
    staticDir: new URL("../../static/", import.meta.url),
    onError: (error, requestId) => errors.push({ error, requestId }),
    ...options.app,
  });
  return {
    app,
    state,
    ring,
    audited,
    auditQueries,
    errors,
    close() {
      policy.close();
      for (const close of closers) close();
    },
  };
}

/**
 * A request from a signed-in browser: the session cookie, and on a mutating method the CSRF
 * header. A request that names its own `cookie` or `authorization` header keeps it as is.
 */
function request(path: string, init: RequestInit = {}): Request {
  const headers = new Headers(init.headers);
  if (!headers.has("cookie") && !headers.has("authorization")) {
    headers.set("cookie", SIGNED_IN);
    const method = (init.method ?? "GET").toUpperCase();
    if (!["GET", "HEAD"].includes(method)) {
      headers.set("x-csrf-token", csrfTokenFor(TEST_SESSION));
    }
  }
  return new Request(`${ORIGIN}${path}`, { ...init, headers });
}

function postJson(path: string, body: unknown, headers: Record<string, string> = SAME_ORIGIN) {
  return request(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function errorOf(
  res: Response,
): Promise<{ code: string; message: string; requestId: string }> {
  equal(res.headers.get("content-type"), "application/json");
  const body = await res.json();
  return body.error;
}

function assertSecurityHeaders(res: Response): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    equal(res.headers.get(name), value, name);
  }
  match(res.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
}

/** Reads an event stream until `done` holds for the text so far. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  done: (text: string) => boolean,
): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  while (!done(text)) {
    const chunk = await reader.read();
    if (chunk.done) break;
    text += decoder.decode(chunk.value, { stream: true });
  }
  return text;
}

// ---------------------------------------------------------------------------------------
// Headers on every response

const HEADER_CASES: {
  name: string;
  status: number;
  options?: HarnessOptions;
  req: () => Request;
}[] = [
  { name: "a 200", status: 200, req: () => request("/api/v1/health") },
  { name: "a 404", status: 404, req: () => request("/no/such/route") },
  {
    name: "a 413",
    status: 413,
    options: { app: { maxJsonBytes: 1024 } },
    req: () =>
      postJson("/api/v1/policy/decide", { domain: "egress", input: { pad: "x".repeat(2000) } }),
  },
  {
    name: "a 500",
    status: 500,
    options: {
      system: {
        status() {
          throw new Error("Cannot read /etc/secret");
        },
      },
    },
    req: () => request("/api/v1/controls"),
  },
  { name: "a 403", status: 403, req: () => postJson("/api/v1/policy/decide", {}, {}) },
  { name: "a 405", status: 405, req: () => request("/api/v1/policy/decide") },
  { name: "an HTML page", status: 200, req: () => request("/") },
];

for (const c of HEADER_CASES) {
  Deno.test(`createApp() sets every security header and a request id on ${c.name}`, async () => {
    const h = harness(c.options);
    try {
      const res = await h.app.fetch(c.req());
      await res.body?.cancel();
      equal(res.status, c.status);
      assertSecurityHeaders(res);
      equal(res.headers.get("cache-control"), "no-store");
    } finally {
      h.close();
    }
  });
}

Deno.test("createApp() sends a CSP without inline script or style", () => {
  equal(
    CONTENT_SECURITY_POLICY,
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
      "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; " +
      "object-src 'none'",
  );
  ok(!CONTENT_SECURITY_POLICY.includes("unsafe-inline"));
});

Deno.test("createApp() gives each request its own id", async () => {
  const h = harness();
  try {
    const a = await h.app.fetch(request("/api/v1/health"));
    const b = await h.app.fetch(request("/api/v1/health"));
    await a.body?.cancel();
    await b.body?.cancel();
    notEqual(a.headers.get("x-request-id"), b.headers.get("x-request-id"));
  } finally {
    h.close();
  }
});

// ---------------------------------------------------------------------------------------
// Health, readiness, controls, metrics

Deno.test("GET /api/v1/health answers ok and nothing about the installation", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(request("/api/v1/health"));
    equal(res.status, 200);
    deepEqual(await res.json(), { status: "ok" });
  } finally {
    h.close();
  }
});

Deno.test("HEAD /api/v1/health answers GET's status without a body", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(request("/api/v1/health", { method: "HEAD" }));
    equal(res.status, 200);
    equal(res.body, null);
  } finally {
    h.close();
  }
});

Deno.test("GET /api/v1/ready answers 200 with each control's state when the system is ready", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(request("/api/v1/ready"));
    equal(res.status, 200);
    const body = await res.json();
    equal(body.ready, true);
    deepEqual(body.controls.map((c: { name: string; state: string }) => `${c.name}:${c.state}`), [
      "policy:ready",
      "audit:failed",
      "gateway:ready",
    ]);
  } finally {
    h.close();
  }
});

Deno.test("GET /api/v1/ready answers 503 when the system is not ready", async () => {
  const h = harness({
    system: { status: () => ({ ...structuredClone(STATUS), ready: false, state: "starting" }) },
  });
  try {
    const res = await h.app.fetch(request("/api/v1/ready"));
    equal(res.status, 503);
    const body = await res.json();
    equal(body.ready, false);
    equal(body.state, "starting");
  } finally {
    h.close();
  }
});

Deno.test("GET /api/v1/ready answers 503 UNAVAILABLE when the supervisor port is gone", async () => {
  const h = harness();
  try {
    h.close(); // every client loses its port: calls fail closed with UNAVAILABLE
    const res = await h.app.fetch(request("/api/v1/ready"));
    equal(res.status, 503);
    equal((await errorOf(res)).code, "UNAVAILABLE");
  } finally {
    h.close();
  }
});

Deno.test("GET /api/v1/controls returns the capability matrix", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(request("/api/v1/controls"));
    equal(res.status, 200);
    const body = await res.json();
    deepEqual(body.controls, STATUS.controls);
    equal(body.state, "ready");
  } finally {
    h.close();
  }
});

Deno.test("GET /metrics returns the supervisor's text as Prometheus 0.0.4", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(request("/metrics"));
    equal(res.status, 200);
    match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    equal(await res.text(), "# TYPE secai_up gauge\nsecai_up 1\n");
  } finally {
    h.close();
  }
});

// ---------------------------------------------------------------------------------------
// Errors: 404, 405, 500

Deno.test("createApp() answers an unknown route with a 404 JSON error", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(request("/api/v1/nope"));
    equal(res.status, 404);
    const error = await errorOf(res);
    equal(error.code, "NOT_FOUND");
    equal(error.message, 'No route for GET "/api/v1/nope"');
    equal(error.requestId, res.headers.get("x-request-id"));
  } finally {
    h.close();
  }
});

Deno.test("createApp() answers a method the route lacks with 405 and Allow", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(request("/api/v1/policy/decide"));
    equal(res.status, 405);
    equal(res.headers.get("allow"), "POST");
    equal((await errorOf(res)).code, "METHOD_NOT_ALLOWED");
    const page = await h.app.fetch(request("/", { method: "DELETE", headers: SAME_ORIGIN }));
    equal(page.status, 405);
    equal(page.headers.get("allow"), "GET, HEAD");
    await page.body?.cancel();
  } finally {
    h.close();
  }
});

const UNEXPECTED_CASES: { name: string; options: HarnessOptions }[] = [
  {
    name: "a control throws",
    options: {
      system: {
        status() {
          throw new Error("Cannot read /etc/secret");
        },
      },
    },
  },
  {
    name: "a control answers outside its contract",
    options: {
      system: { status: () => ({ ...STATUS, ready: "/etc/secret" }) as unknown as SystemStatus },
    },
  },
];

for (const c of UNEXPECTED_CASES) {
  Deno.test(`createApp() answers a plain 500 with the request id when ${c.name}`, async () => {
    const h = harness(c.options);
    try {
      const res = await h.app.fetch(request("/api/v1/controls"));
      equal(res.status, 500);
      const text = await res.text();
      const id = res.headers.get("x-request-id") ?? "";
      deepEqual(JSON.parse(text), {
        error: { code: "INTERNAL", message: `Internal error (request ${id})`, requestId: id },
      });
      ok(!text.includes("secret") && !text.includes("at "), "no message or stack");
      equal(h.errors.length, 1);
      equal(h.errors[0]?.requestId, id);
    } finally {
      h.close();
    }
  });
}

Deno.test("createApp() answers a plain 500 when the state itself throws", async () => {
  const h = harness();
  try {
    const broken: GatewayState = {
      ...h.state,
      status: () =>
        Promise.reject(new TypeError("Cannot read properties of undefined (/srv/x.ts)")),
    };
    const app = createApp(broken, {
      onError: (error, requestId) => h.errors.push({ error, requestId }),
    });
    const res = await app.fetch(request("/api/v1/controls"));
    equal(res.status, 500);
    const error = await errorOf(res);
    equal(error.code, "INTERNAL");
    ok(!error.message.includes("/srv"));
    ok(h.errors[0]?.error instanceof TypeError);
  } finally {
    h.close();
  }
});

// ---------------------------------------------------------------------------------------
// Body checks: 413, 415, 400

Deno.test("createApp() refuses a declared body over the limit with 413 before reading it", async () => {
  const h = harness({ app: { maxJsonBytes: 1024 } });
  try {
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulls++;
        controller.enqueue(new Uint8Array(512));
      },
    });
    const res = await h.app.fetch(request("/api/v1/policy/decide", {
      method: "POST",
      headers: { ...SAME_ORIGIN, "content-type": "application/json", "content-length": "4096" },
      body,
      duplex: "half",
    } as RequestInit));
    equal(res.status, 413);
    const error = await errorOf(res);
    equal(error.code, "PAYLOAD_TOO_LARGE");
    equal(error.message, "Request body exceeds 1024 bytes");
    ok(pulls <= 1, `read ${pulls} chunks of a body refused by its Content-Length`);
  } finally {
    h.close();
  }
});

Deno.test("createApp() stops reading a streamed body once it passes the limit (413)", async () => {
  const h = harness({ app: { maxJsonBytes: 1024 } });
  try {
    let pulls = 0;
    let isCancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulls++;
        controller.enqueue(new Uint8Array(300)); // endless: only the limit stops it
      },
      cancel() {
        isCancelled = true;
      },
    });
    const res = await h.app.fetch(request("/api/v1/policy/decide", {
      method: "POST",
      headers: { ...SAME_ORIGIN, "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit));
    equal(res.status, 413);
    equal((await errorOf(res)).code, "PAYLOAD_TOO_LARGE");
    ok(pulls <= 6, `read ${pulls} chunks`);
    ok(isCancelled, "the sender is told to stop");
  } finally {
    h.close();
  }
});

Deno.test("createApp() accepts a body exactly at the limit", async () => {
  const h = harness({ app: { maxJsonBytes: 1024 } });
  try {
    const base = JSON.stringify({ domain: "egress", input: { pad: "" } });
    const body = JSON.stringify({
      domain: "egress",
      input: { pad: "x".repeat(1024 - base.length) },
    });
    equal(new TextEncoder().encode(body).byteLength, 1024);
    const res = await h.app.fetch(postJson("/api/v1/policy/decide", body));
    equal(res.status, 200);
    await res.body?.cancel();
  } finally {
    h.close();
  }
});

const MEDIA_CASES: { name: string; headers: Record<string, string> }[] = [
  { name: "text/plain", headers: { "content-type": "text/plain" } },
  { name: "a form", headers: { "content-type": "application/x-www-form-urlencoded" } },
  { name: "multipart", headers: { "content-type": "multipart/form-data; boundary=x" } },
  { name: "json look-alike", headers: { "content-type": "application/jsonp" } },
];

for (const c of MEDIA_CASES) {
  Deno.test(`createApp() refuses a ${c.name} body with 415`, async () => {
    const h = harness();
    try {
      const res = await h.app.fetch(request("/api/v1/policy/decide", {
        method: "POST",
        headers: { ...SAME_ORIGIN, ...c.headers },
        body: '{"domain":"egress","input":{}}',
      }));
      equal(res.status, 415);
      const error = await errorOf(res);
      equal(error.code, "UNSUPPORTED_MEDIA_TYPE");
      match(error.message, /expected "application\/json"/);
    } finally {
      h.close();
    }
  });
}

Deno.test("createApp() accepts application/json with a charset parameter", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(
      postJson("/api/v1/policy/decide", { domain: "egress", input: {} }, {
        ...SAME_ORIGIN,
        "content-type": "application/json; charset=utf-8",
      }),
    );
    equal(res.status, 200);
    await res.body?.cancel();
  } finally {
    h.close();
  }
});

const BAD_BODY_CASES: { name: string; body: string; code: string; message: RegExp }[] = [
  {
    name: "malformed JSON",
    body: '{"domain": "egress",',
    code: "INVALID_JSON",
    message: /^Request body is not valid JSON: /,
  },
  { name: "an empty body", body: "", code: "INVALID_JSON", message: /^Request body is empty$/ },
  {
    name: "an unknown domain",
    body: '{"domain":"nope","input":{}}',
    code: "INVALID_BODY",
    message: /^Invalid request body at "domain": /,
  },
  {
    name: "a missing field",
    body: '{"domain":"egress"}',
    code: "INVALID_BODY",
    message: /^Invalid request body at "input": Required/,
  },
  {
    name: "an unknown field",
    body: '{"domain":"egress","input":{},"admin":true}',
    code: "INVALID_BODY",
    message: /Unrecognized key.*'admin'/,
  },
  { name: "a JSON array", body: "[]", code: "INVALID_BODY", message: /at "\(root\)"/ },
];

for (const c of BAD_BODY_CASES) {
  Deno.test(`POST /api/v1/policy/decide answers 400 ${c.code} for ${c.name}`, async () => {
    const h = harness();
    try {
      const res = await h.app.fetch(postJson("/api/v1/policy/decide", c.body));
      equal(res.status, 400);
      const error = await errorOf(res);
      equal(error.code, c.code);
      match(error.message, c.message);
    } finally {
      h.close();
    }
  });
}

Deno.test("POST /api/v1/policy/decide answers 400 for a body that is not UTF-8", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(request("/api/v1/policy/decide", {
      method: "POST",
      headers: { ...SAME_ORIGIN, "content-type": "application/json" },
      body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
    }));
    equal(res.status, 400);
    equal((await errorOf(res)).code, "INVALID_JSON");
  } finally {
    h.close();
  }
});

// ---------------------------------------------------------------------------------------
// Cross-site requests and Host

const CROSS_SITE_CASES: { name: string; headers: Record<string, string>; status: number }[] = [
  { name: "without Origin or Sec-Fetch-Site", headers: {}, status: 403 },
  { name: "from another origin", headers: { origin: "http://evil.example" }, status: 403 },
  { name: "from another port", headers: { origin: "http://127.0.0.1:9999" }, status: 403 },
  { name: "with Origin null", headers: { origin: "null" }, status: 403 },
  { name: "marked cross-site", headers: { "sec-fetch-site": "cross-site" }, status: 403 },
  { name: "marked same-site", headers: { "sec-fetch-site": "same-site" }, status: 403 },
  { name: "marked none", headers: { "sec-fetch-site": "none" }, status: 403 },
  {
    name: "marked cross-site with a forged matching Origin",
    headers: { "sec-fetch-site": "cross-site", origin: ORIGIN },
    status: 200,
  },
  { name: "from our own origin", headers: { origin: ORIGIN }, status: 200 },
  { name: "marked same-origin", headers: { "sec-fetch-site": "same-origin" }, status: 200 },
];

for (const c of CROSS_SITE_CASES) {
  Deno.test(`POST ${c.name} answers ${c.status}`, async () => {
    const h = harness();
    try {
      const res = await h.app.fetch(
        postJson("/api/v1/policy/decide", { domain: "egress", input: {} }, c.headers),
      );
      equal(res.status, c.status);
      if (c.status === 403) {
        equal((await errorOf(res)).code, "CROSS_SITE_REQUEST");
        equal(h.audited.length, 1, "the denial is audited");
        equal(h.audited[0]?.type, "gateway.request_denied");
        equal(h.audited[0]?.decision, "deny");
      } else {
        await res.body?.cancel();
        equal(h.audited.length, 0);
      }
    } finally {
      h.close();
    }
  });
}

Deno.test("createApp() still refuses a cross-site request when the audit control is down", async () => {
  const h = harness();
  try {
    const state: GatewayState = {
      ...h.state,
      recordAudit: () =>
        Promise.reject(new RpcError("UNAVAILABLE", "audit-append peer is not available")),
    };
    const errors: unknown[] = [];
    const app = createApp(state, { onError: (error) => errors.push(error) });
    const res = await app.fetch(
      postJson("/api/v1/policy/decide", { domain: "egress", input: {} }, {}),
    );
    equal(res.status, 403);
    equal((await errorOf(res)).code, "CROSS_SITE_REQUEST");
    ok(errors[0] instanceof RpcError, "the lost audit entry is reported");
  } finally {
    h.close();
  }
});

Deno.test("createApp() refuses a Host the allowlist does not name (DNS rebinding)", async () => {
  const h = harness({ app: { isAllowedHost: (host) => host === "127.0.0.1:8480" } });
  try {
    const ok200 = await h.app.fetch(request("/api/v1/health"));
    equal(ok200.status, 200);
    await ok200.body?.cancel();
    const res = await h.app.fetch(new Request("http://rebound.example:8480/api/v1/audit"));
    equal(res.status, 403);
    equal((await errorOf(res)).code, "HOST_NOT_ALLOWED");
    equal(h.auditQueries.length, 0);
  } finally {
    h.close();
  }
});

// ---------------------------------------------------------------------------------------
// Policy: fail closed

Deno.test("POST /api/v1/policy/decide returns the policy control's decision", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(
      postJson("/api/v1/policy/decide", { domain: "egress", input: { host: "example.com" } }),
    );
    equal(res.status, 200);
    deepEqual(await res.json(), DECISION);
  } finally {
    h.close();
  }
});

const FAIL_CLOSED_CASES: { name: string; code: string; options: HarnessOptions }[] = [
  { name: "the policy control is down", code: "UNAVAILABLE", options: { isPolicyDown: true } },
  {
    name: "the policy control times out",
    code: "DEADLINE_EXCEEDED",
    options: {
      policyClient: { defaultDeadlineMs: 20 },
      policy: (_input, ctx) =>
        new Promise<Decision>((_resolve, reject) => {
          ctx.signal.addEventListener(
            "abort",
            () => reject(new RpcError("CANCELLED", "Cancelled")),
            {
              once: true,
            },
          );
        }),
    },
  },
  {
    name: "the policy control is overloaded",
    code: "OVERLOADED",
    options: {
      policy: () => {
        throw new RpcError("OVERLOADED", "policy has too many calls in flight");
      },
    },
  },
  {
    name: "the policy control crashes",
    code: "INTERNAL",
    options: {
      policy: () => {
        throw new Error("Cannot evaluate rule at /state/policy/a.yaml");
      },
    },
  },
  {
    name: "the policy control answers outside its contract",
    code: "INTERNAL",
    options: { policy: () => ({ ...DECISION, decision: "maybe" }) as unknown as Decision },
  },
];

for (const c of FAIL_CLOSED_CASES) {
  Deno.test(`POST /api/v1/policy/decide fails closed with 503 ${c.code} when ${c.name}`, async () => {
    const h = harness(c.options);
    try {
      const res = await h.app.fetch(
        postJson("/api/v1/policy/decide", { domain: "egress", input: {} }),
      );
      equal(res.status, 503);
      const body = await res.json();
      equal(body.decision, "deny");
      equal(body.error.code, c.code);
      ok(!JSON.stringify(body).includes("/state"), "no internal paths");
    } finally {
      h.close();
    }
  });
}

// ---------------------------------------------------------------------------------------
// Audit query

Deno.test("GET /api/v1/audit forwards typed query parameters to the audit control", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(
      request("/api/v1/audit?before=10&limit=5&control=policy&type=policy.decide"),
    );
    equal(res.status, 200);
    deepEqual(await res.json(), { entries: [], next: null, total: 0 });
    deepEqual(h.auditQueries, [{ before: 10, limit: 5, control: "policy", type: "policy.decide" }]);
    const plain = await h.app.fetch(request("/api/v1/audit"));
    await plain.body?.cancel();
    deepEqual(h.auditQueries[1], { limit: 50 });
  } finally {
    h.close();
  }
});

const BAD_QUERY_CASES: { name: string; query: string; message: RegExp }[] = [
  { name: "a non-numeric limit", query: "limit=abc", message: /at "limit"/ },
  { name: "a zero limit", query: "limit=0", message: /at "limit"/ },
  { name: "a limit over 500", query: "limit=501", message: /at "limit"/ },
  { name: "a signed number", query: "before=-1", message: /at "before"/ },
  { name: "an exponent", query: "before=1e3", message: /at "before"/ },
  { name: "an unknown parameter", query: "admin=1", message: /Unrecognized key.*'admin'/ },
  {
    name: "a repeated parameter",
    query: "limit=1&limit=2",
    message: /"limit" appears more than once/,
  },
  { name: "a malformed control name", query: "control=../x", message: /at "control"/ },
];

for (const c of BAD_QUERY_CASES) {
  Deno.test(`GET /api/v1/audit answers 400 INVALID_QUERY for ${c.name}`, async () => {
    const h = harness();
    try {
      const res = await h.app.fetch(request(`/api/v1/audit?${c.query}`));
      equal(res.status, 400);
      const error = await errorOf(res);
      equal(error.code, "INVALID_QUERY");
      match(error.message, c.message);
      equal(h.auditQueries.length, 0);
    } finally {
      h.close();
    }
  });
}

// ---------------------------------------------------------------------------------------
// Server-sent events

Deno.test("GET /api/v1/events streams events after Last-Event-ID with SSE framing", async () => {
  const h = harness({ app: { heartbeatMs: 10 } });
  for (const type of ["control.started", "control.ready", "control.failed"]) h.ring.push(type);
  try {
    const res = await h.app.fetch(request("/api/v1/events", { headers: { "last-event-id": "0" } }));
    equal(res.status, 200);
    equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
    equal(res.headers.get("cache-control"), "no-store");
    assertSecurityHeaders(res);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const text = await readUntil(reader, (t) => t.includes(": heartbeat\n\n"));
    await reader.cancel();
    ok(text.startsWith("retry: 3000\n\n: connected\n\n"), text);
    const messages = text.split("\n\n").filter((block) => block.startsWith("id:"));
    deepEqual(messages.map((m) => m.split("\n").slice(0, 2)), [
      ["id: 1", "event: system"],
      ["id: 2", "event: system"],
    ]);
    deepEqual(
      JSON.parse((messages[0] ?? "").split("\n")[2]?.slice("data: ".length) ?? ""),
      h.ring.events[1],
    );
  } finally {
    h.close();
  }
});

Deno.test("GET /api/v1/events starts a new client from now, not from the oldest event", async () => {
  const h = harness({ app: { heartbeatMs: 5_000 } });
  for (const type of ["old.one", "old.two"]) h.ring.push(type);
  try {
    const res = await h.app.fetch(request("/api/v1/events"));
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const waiting = h.ring.waiting();
    const first = reader.read(); // pulls: the stream asks where "now" is, then long-polls
    await waiting;
    h.ring.push("control.restarting");
    await first;
    const text = await readUntil(reader, (t) => t.includes("control.restarting"));
    await reader.cancel();
    ok(text.includes("id: 2\nevent: system\n"), text);
    ok(!text.includes("old.one") && !text.includes("old.two"), text);
  } finally {
    h.close();
  }
});

Deno.test("GET /api/v1/events stops polling when the client disconnects", async () => {
  const h = harness({ app: { heartbeatMs: 5_000, maxEventStreams: 1 } });
  try {
    const res = await h.app.fetch(
      request("/api/v1/events", { headers: { "last-event-id": "-1" } }),
    );
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const waiting = h.ring.waiting();
    await reader.read();
    await waiting;
    const busy = await h.app.fetch(request("/api/v1/events"));
    equal(busy.status, 503, "the only stream slot is taken");
    equal((await errorOf(busy)).code, "TOO_MANY_STREAMS");
    const aborted = h.ring.aborted();
    await reader.cancel();
    await aborted; // the long-poll on the system port was cancelled
    const again = await h.app.fetch(
      request("/api/v1/events", { headers: { "last-event-id": "-1" } }),
    );
    equal(again.status, 200, "the slot was released");
    await again.body?.cancel();
  } finally {
    h.close();
  }
});

Deno.test("GET /api/v1/events ends the stream when the gateway stops", async () => {
  const stop = new AbortController();
  const h = harness({ app: { heartbeatMs: 5_000, signal: stop.signal } });
  try {
    const res = await h.app.fetch(
      request("/api/v1/events", { headers: { "last-event-id": "-1" } }),
    );
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const waiting = h.ring.waiting();
    await reader.read();
    await waiting;
    stop.abort();
    await readUntil(reader, () => false); // returns at end of stream
    await h.ring.aborted();
  } finally {
    h.close();
  }
});

Deno.test("GET /api/v1/events sends `unavailable` and ends when events cannot be read", async () => {
  const h = harness({
    system: {
      events() {
        throw new RpcError("UNAVAILABLE", "system events are not available");
      },
    },
  });
  try {
    const res = await h.app.fetch(request("/api/v1/events", { headers: { "last-event-id": "3" } }));
    const text = await readUntil((res.body as ReadableStream<Uint8Array>).getReader(), () => false);
    ok(
      text.endsWith(
        'event: unavailable\ndata: {"code":"UNAVAILABLE","message":"system events are not available"}\n\n',
      ),
      text,
    );
  } finally {
    h.close();
  }
});

Deno.test("GET /api/v1/events sends `gap` before events that follow dropped ones", async () => {
  let calls = 0;
  const h = harness({
    system: {
      events() {
        if (++calls > 1) throw new RpcError("UNAVAILABLE", "system events are not available");
        const event = {
          seq: 9,
          ts: new Date(0).toISOString(),
          source: "supervisor",
          type: "x",
          data: {},
        };
        return { events: [event], last: 9, gap: true };
      },
    },
  });
  try {
    const res = await h.app.fetch(request("/api/v1/events", { headers: { "last-event-id": "2" } }));
    const text = await readUntil((res.body as ReadableStream<Uint8Array>).getReader(), () => false);
    ok(text.includes('event: gap\ndata: {"after":2,"last":9}\n\nid: 9\nevent: system\n'), text);
  } finally {
    h.close();
  }
});

for (const id of ["abc", "1e3", "-2", "1.5", "9".repeat(16)]) {
  Deno.test(`GET /api/v1/events refuses Last-Event-ID ${JSON.stringify(id)} with 400`, async () => {
    const h = harness();
    try {
      const res = await h.app.fetch(
        request("/api/v1/events", { headers: { "last-event-id": id } }),
      );
      equal(res.status, 400);
      equal((await errorOf(res)).code, "INVALID_HEADER");
    } finally {
      h.close();
    }
  });
}

Deno.test("formatSseMessage() splits data lines and refuses line breaks in fields", () => {
  equal(
    formatSseMessage({ id: "7", event: "system", data: "a\nb\r\nc" }),
    "id: 7\nevent: system\ndata: a\ndata: b\ndata: c\n\n",
  );
  equal(formatSseComment("x\ny"), ": x y\n\n");
  for (const bad of ["a\nb", "a\rb", "a\0b"]) {
    let error: unknown;
    try {
      formatSseMessage({ event: bad, data: "" });
    } catch (err) {
      error = err;
    }
    ok(error instanceof TypeError, JSON.stringify(bad));
  }
});

// ---------------------------------------------------------------------------------------
// Status page and islands

Deno.test("GET / renders the capability matrix completely without JavaScript", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(request("/"));
    equal(res.status, 200);
    equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    const html = await res.text();
    ok(html.startsWith('<!doctype html><html lang="en">'));
    ok(html.includes('<link rel="stylesheet" href="/static/style.css"'));
    for (const control of STATUS.controls) {
      ok(html.includes(`<span class="name">${control.name}</span>`), control.name);
      ok(html.includes(`class="state state-${control.state}"`), control.state);
      ok(
        html.includes(`<td class="number">${control.restarts}</td>`),
        `${control.restarts} restarts`,
      );
    }
    for (
      const text of [
        "/state/policy",
        "127.0.0.1:8480",
        "audit-append → audit",
        "verify-segment",
        "Cannot open segment",
      ]
    ) {
      ok(html.includes(text), text);
    }
  } finally {
    h.close();
  }
});

Deno.test("GET / carries island props as escaped JSON data and no inline script", async () => {
  const h = harness();
  try {
    const html = await (await h.app.fetch(request("/"))).text();
    const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    equal(scripts.length, 2);
    for (const [, attrs, content] of scripts) {
      const isData = (attrs ?? "").includes('type="application/json"');
      const isExternal = /src="\/static\/build\/islands\.js"/.test(attrs ?? "") && content === "";
      ok(isData || isExternal, `inline script: ${attrs}`);
    }
    ok(!html.includes("<script>alert"), "the description cannot break out of the data element");
    const data = html.match(
      new RegExp(`<script type="application/json" id="${ISLAND_DATA_ID}">([\\s\\S]*?)</script>`),
    );
    deepEqual(JSON.parse(data?.[1] ?? ""), [
      {
        name: "SessionControls",
        props: { idleExpiresAt: "2999-01-01T00:00:00.000Z", expiresAt: "2999-01-01T00:00:00.000Z" },
      },
      { name: "LiveControls", props: { initial: STATUS } },
    ]);
    ok(html.includes('data-island="LiveControls" data-island-id="1"'));
  } finally {
    h.close();
  }
});

Deno.test("escapeJsonForScript() leaves no way out of a script element and parses back", () => {
  const value = { a: "</script><!--<script>", b: "</SCRIPT >", c: "\u2028<" };
  const escaped = escapeJsonForScript(JSON.stringify(value));
  ok(!escaped.includes("<"));
  deepEqual(JSON.parse(escaped), value);
});

// ---------------------------------------------------------------------------------------
// Static files

Deno.test("GET /static/style.css serves our CSS with nosniff and no-cache", async () => {
  const h = harness();
  try {
    const res = await h.app.fetch(request("/static/style.css"));
    equal(res.status, 200);
    equal(res.headers.get("content-type"), "text/css; charset=utf-8");
    equal(res.headers.get("cache-control"), "no-cache");
    equal(res.headers.get("x-content-type-options"), "nosniff");
    match(await res.text(), /prefers-color-scheme: dark/);
    const head = await h.app.fetch(request("/static/style.css", { method: "HEAD" }));
    equal(head.status, 200);
    equal(head.body, null);
  } finally {
    h.close();
  }
});

const STATIC_MISS_CASES = [
  "/static/%2e%2e/deno.json",
  "/static/..%2fdeno.json",
  "/static/.hidden.css",
  "/static/build",
  "/static/missing.css",
  "/static/style.css.bak",
  "/static//style.css",
];

for (const path of STATIC_MISS_CASES) {
  Deno.test(`GET ${path} answers 404 without leaving static/`, async () => {
    const h = harness();
    try {
      const res = await h.app.fetch(request(path));
      equal(res.status, 404);
      equal((await errorOf(res)).code, "NOT_FOUND");
    } finally {
      h.close();
    }
  });
}

// ---------------------------------------------------------------------------------------
// Route table

Deno.test("routes/_manifest.ts lists exactly the route files, at the paths their names give", async () => {
  const root = new URL("../../routes/", import.meta.url);
  const files: string[] = [];
  const dirs = [fileURLToPath(root)];
  for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
    for await (const item of Deno.readDir(dir)) {
      const path = `${dir}/${item.name}`;
      // Fresh skips `_`-prefixed files and `(_group)` folders; tests are not routes.
      if (item.name.startsWith("_") || item.name.startsWith("(_")) continue;
      if (item.isDirectory) dirs.push(path);
      else if (/\.tsx?$/.test(item.name) && !/_test\.tsx?$/.test(item.name)) files.push(path);
    }
  }
  const expected = files.map((file) => {
    const path = "/" +
      relative(fileURLToPath(root), file).replace(/\.tsx?$/, "").replace(/(^|\/)index$/, "")
        .replaceAll(/\[([a-zA-Z0-9_]+)\]/g, ":$1");
    return path === "/" ? path : path.replace(/\/$/, "");
  });
  deepEqual(manifest.routes.map((r) => r.path).sort(), expected.sort());
});
