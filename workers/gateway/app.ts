/**
 * The gateway's HTTP application: middleware, the file-based routes of `routes/`, static
 * files and the one error mapping. Pure: it opens no port (`workers/gateway/mod.ts` serves
 * it) and gets live data only through {@link GatewayState}, so tests call `app.fetch`.
 *
 * Order of checks for every request: request id and security headers (set last, on every
 * response), Host allowlist, then authentication (`auth.ts`): for mutating methods the
 * cross-site check (403, skipped only for a bearer token, which browsers never send on
 * their own), the CSRF token of a cookie session (403), the credential itself, asked of the
 * auth control (401, or a redirect to the login page for a page; before the first-run setup
 * `setup_required`), then the content type (415) and the body limit while reading (413),
 * and only then routing and zod validation in the handler (400). `/api/v1/health` and
 * `/static/*` skip authentication; the login and setup routes are public but still get the
 * cross-site check.
 * @module
 */
import { type Context, Hono } from "hono";
import type { CheckResult, Principal } from "../auth/api.ts";
import {
  assertCsrf,
  credentialOf,
  deviceOf,
  isUnauthenticatedPath,
  loginRedirect,
  PUBLIC_PATHS,
  readCookies,
} from "./auth.ts";
import { errorAnswer, GatewayError, isUnexpected } from "./errors.ts";
import {
  assertJsonContentType,
  assertSameOrigin,
  isMutating,
  parseJsonBody,
  parseQuery,
  readBodyLimited,
  REQUEST_ID_HEADER,
  SECURITY_HEADERS,
} from "./http.ts";
import { renderPage } from "./render.tsx";
import {
  type HandlerFn,
  type RequestAuth,
  ROUTE_METHODS,
  type RouteContext,
  type RouteEntry,
  type RouteManifest,
  type RouteMethod,
} from "./routing.ts";
import type { GatewayState } from "./state.ts";
import { serveStatic } from "./static.ts";
import { manifest as defaultManifest } from "../../routes/_manifest.ts";

/** Options of {@link createApp}. */
export interface AppOptions {
  /** Largest request body, in bytes (config `gateway.maxJsonBytes`). Default 1 MiB. */
  maxJsonBytes?: number;
  /** Time a client has to send its body. Default 10 s (spec 10 §1: read timeout). */
  bodyTimeoutMs?: number;
  /** Keep-alive interval of event streams. Default 15 s. */
  heartbeatMs?: number;
  /** Event streams open at once; each holds a long-poll on the system port. Default 16. */
  maxEventStreams?: number;
  /** The `static/` directory as a `file:` URL ending in `/`; without it `/static/*` is 404. */
  staticDir?: URL;
  /**
   * Accepts the request's `Host` (host[:port]). Without it any host is served. A loopback
   * gateway should pass one: without auth, DNS rebinding would let any web page read the
   * API through a name that resolves to 127.0.0.1.
   */
  isAllowedHost?: (host: string) => boolean;
  /** Aborted when the gateway stops: event streams end so shutdown can drain. */
  signal?: AbortSignal;
  /**
   * Observes errors the client sees only as a plain 500 (or a generic stream error), and
   * audit entries that could not be written.
   */
  onError?: (error: unknown, requestId: string) => void;
  /** Route table; defaults to `routes/_manifest.ts`. */
  manifest?: RouteManifest;
}

/** Per-request values the middleware hands to the routes. */
interface GatewayEnv {
  /** What `Deno.serve` passes as the handler's second argument (absent under tests). */
  Bindings: { remoteAddr?: { hostname?: string } };
  Variables: { requestId: string; body: Uint8Array; auth: RequestAuth };
}

const DEFAULT_MAX_JSON_BYTES = 1 << 20;
const DEFAULT_BODY_TIMEOUT_MS = 10_000;
const DEFAULT_HEARTBEAT_MS = 15_000;
const DEFAULT_MAX_EVENT_STREAMS = 16;
/** A refusal waits this long for its audit entry, so a slow audit control cannot stall it. */
const AUDIT_DEADLINE_MS = 1_000;
/** Largest body of an auth route (spec 10 §7: auth bodies ≤ 4 KiB). */
const AUTH_MAX_BODY_BYTES = 4096;
const AUTH_PATH_PREFIX = "/api/v1/auth/";
/** The auth control answers a credential check within this (a SQLite lookup by hash). */
const AUTH_CHECK_DEADLINE_MS = 2_000;
/** Sent on an event stream when the session behind it ends; the page goes to the login. */
const SESSION_EXPIRED_EVENT = new TextEncoder().encode(
  'event: session_expired\ndata: {"code":"UNAUTHENTICATED"}\n\n',
);
const EMPTY_BODY: Uint8Array = new Uint8Array(0);

/**
 * Builds the gateway app.
 * @param state live data for the routes
 * @param options limits, static directory, host check, stop signal, error observer
 * @returns a Hono app; serve it with `Deno.serve(app.fetch)` or call `app.fetch(request)`
 * @example
 * ```ts
 * const app = createApp(state, { maxJsonBytes: 1 << 20 });
 * const res = await app.fetch(new Request("http://127.0.0.1/api/v1/health"));
 * ```
 */
export function createApp(state: GatewayState, options: AppOptions = {}): Hono<GatewayEnv> {
  const maxJsonBytes = options.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES;
  const bodyTimeoutMs = options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
  const maxEventStreams = options.maxEventStreams ?? DEFAULT_MAX_EVENT_STREAMS;
  const stopSignal = options.signal ?? new AbortController().signal;
  const manifest = options.manifest ?? defaultManifest;
  let openStreams = 0;

  function reportError(error: unknown, requestId: string): void {
    if (isUnexpected(error)) options.onError?.(error, requestId);
  }

  /**
   * Records a refused cross-site request (ARCHITECTURE.md principle 6). The refusal stands
   * whether or not the entry is written; a lost entry goes to `onError`.
   */
  async function recordDenial(request: Request, error: unknown, requestId: string): Promise<void> {
    if (!(error instanceof GatewayError)) return;
    if (error.code !== "CROSS_SITE_REQUEST" && error.code !== "CSRF_TOKEN_INVALID") return;
    const entry = {
      type: "gateway.request_denied",
      actor: "http-client",
      subject: `${request.method.slice(0, 20)} ${new URL(request.url).pathname.slice(0, 200)}`,
      decision: "deny" as const,
      evidence: {
        code: error.code,
        origin: request.headers.get("origin")?.slice(0, 200) ?? null,
        secFetchSite: request.headers.get("sec-fetch-site")?.slice(0, 40) ?? null,
        requestId,
      },
    };
    await state.recordAudit(entry, { deadlineMs: AUDIT_DEADLINE_MS }).then(
      undefined,
      (auditError: unknown) => options.onError?.(auditError, requestId),
    );
  }

  function openStream(): () => void {
    if (openStreams >= maxEventStreams) {
      throw new GatewayError(
        "TOO_MANY_STREAMS",
        `Too many event streams open (${maxEventStreams})`,
        {
          headers: { "retry-after": "5" },
        },
      );
    }
    openStreams++;
    let isReleased = false;
    return () => {
      if (isReleased) return;
      isReleased = true;
      openStreams--;
    };
  }

  function contextFor(c: Context<GatewayEnv>, entry: RouteEntry): RouteContext {
    const requestId = c.get("requestId");
    const url = new URL(c.req.url);
    const params = c.req.param() as Record<string, string>;
    const page = entry.module.default;
    const auth = c.get("auth");
    return {
      state,
      url,
      params,
      requestId,
      auth,
      hasRoute: (path) => routePaths.has(path),
      signal: c.req.raw.signal,
      stopSignal,
      heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
      render(data, init) {
        if (page === undefined) throw new TypeError(`Route "${entry.path}" has no page to render`);
        return renderPage(page, { data, url, params }, {
          layout: manifest.layout,
          session: auth.principal,
          ...(init === undefined ? {} : { init }),
        });
      },
      json: (schema) => parseJsonBody(c.get("body"), schema),
      query: (schema) => parseQuery(url, schema),
      openStream,
      reportError: (error) => reportError(error, requestId),
    };
  }

  const routePaths: ReadonlySet<string> = new Set(manifest.routes.map((r) => r.path));
  /** Routes whose handlers read (stream) the request body themselves: uploads. */
  const streamingPaths = streamingBodyPaths(manifest);
  /** Routes that authenticate their callers themselves (`config.auth: "client-token"`). */
  const clientTokenPaths = clientTokenRoutePaths(manifest);

  /**
   * Establishes who is asking (see the module comment for the order of checks). Returns a
   * redirect for a page requested without a session; throws for every other refusal.
   */
  async function authenticate(c: Context<GatewayEnv>): Promise<Response | null> {
    const request = c.req.raw;
    const url = new URL(request.url);
    const isSecure = url.protocol === "https:";
    const client = {
      address: ((c.env as GatewayEnv["Bindings"] | undefined)?.remoteAddr?.hostname ?? "unknown")
        .slice(0, 64),
      userAgent: (request.headers.get("user-agent") ?? "").slice(0, 200),
    };
    const isWrite = isMutating(request.method);
    if (clientTokenPaths.has(url.pathname)) {
      // The OpenAI-compatible API: the inference control checks the client's own token.
      if (request.headers.get("authorization") === null) {
        throw new GatewayError(
          "UNAUTHENTICATED",
          'Missing "Authorization: Bearer <token>" header (create a token with `secai tokens create NAME`)',
        );
      }
      const anonymous = { principal: null, isConfigured: true, sessionToken: null };
      c.set("auth", { ...anonymous, deviceToken: null, isSecure, client });
      return null;
    }
    if (isUnauthenticatedPath(url.pathname)) {
      if (isWrite) await assertSameOriginAudited(request, c.get("requestId"));
      const anonymous = { principal: null, isConfigured: false, sessionToken: null };
      c.set("auth", { ...anonymous, deviceToken: null, isSecure, client });
      return null;
    }
    const cookies = readCookies(request);
    const credential = credentialOf(request, cookies);
    const isPublic = PUBLIC_PATHS.has(url.pathname);
    if (isWrite && credential.kind !== "bearer") {
      await assertSameOriginAudited(request, c.get("requestId"));
    }
    if (isWrite && credential.kind === "session" && !isPublic) {
      try {
        assertCsrf(request, cookies, credential.token);
      } catch (err) {
        await recordDenial(request, err, c.get("requestId"));
        throw err;
      }
    }
    const result: CheckResult = await state.auth.check(
      { credential, touch: isWrite && credential.kind === "session" && !isPublic },
      { signal: request.signal, deadlineMs: AUTH_CHECK_DEADLINE_MS },
    );
    const principal = result.ok ? result.principal : null;
    const isConfigured = result.configured;
    c.set("auth", {
      principal,
      isConfigured,
      sessionToken: principal?.kind === "session" && credential.kind === "session"
        ? credential.token
        : null,
      deviceToken: deviceOf(cookies),
      isSecure,
      client,
    });
    if (isPublic) return null;
    if (principal === null) {
      const isPage = !url.pathname.startsWith("/api/") && url.pathname !== "/metrics";
      if (isPage && (request.method === "GET" || request.method === "HEAD")) {
        return new Response(null, {
          status: 303,
          headers: { location: loginRedirect(url, isConfigured) },
        });
      }
      throw isConfigured
        ? new GatewayError(
          "UNAUTHENTICATED",
          result.ok ? "Not signed in" : UNAUTHENTICATED_MESSAGES[result.reason],
          { extra: { setup_required: false } },
        )
        : new GatewayError(
          "SETUP_REQUIRED",
          "No passphrase is set yet: finish the setup at /setup first",
          { extra: { setup_required: true } },
        );
    }
    if (isWrite && principal.kind === "cli") {
      throw new GatewayError(
        "TOKEN_READ_ONLY",
        `The CLI token may only read; ${request.method.slice(0, 20)} needs a signed-in session`,
      );
    }
    return null;
  }

  async function assertSameOriginAudited(request: Request, requestId: string): Promise<void> {
    try {
      assertSameOrigin(request);
    } catch (err) {
      await recordDenial(request, err, requestId);
      throw err;
    }
  }

  const app = new Hono<GatewayEnv>();

  app.use("*", async (c, next) => {
    const requestId = crypto.randomUUID();
    c.set("requestId", requestId);
    await next();
    // After next(): error and not-found responses pass through here too.
    const headers = c.res.headers;
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) headers.set(name, value);
    headers.set(REQUEST_ID_HEADER, requestId);
    if (!headers.has("cache-control")) headers.set("cache-control", "no-store");
  });

  app.use("*", async (c, next) => {
    const request = c.req.raw;
    if (options.isAllowedHost) {
      const host = new URL(request.url).host;
      if (!options.isAllowedHost(host)) {
        throw new GatewayError(
          "HOST_NOT_ALLOWED",
          `Host "${host.slice(0, 100)}" is not served here`,
        );
      }
    }
    const redirect = await authenticate(c);
    if (redirect !== null) return redirect;
    let body: Uint8Array = EMPTY_BODY;
    if (isMutating(request.method) && !streamingPaths.has(new URL(request.url).pathname)) {
      if (request.body !== null || request.headers.has("content-type")) {
        assertJsonContentType(request);
        // Auth bodies hold a passphrase or two: 4 KiB (spec 10 §7), so nothing larger
        // reaches a KDF.
        const isAuth = new URL(request.url).pathname.startsWith(AUTH_PATH_PREFIX);
        const maxBytes = isAuth ? Math.min(AUTH_MAX_BODY_BYTES, maxJsonBytes) : maxJsonBytes;
        body = await readBodyLimited(request, { maxBytes, timeoutMs: bodyTimeoutMs });
      }
    }
    c.set("body", body);
    await next();
    const principal = c.get("auth").principal;
    if (principal?.kind === "session") c.res = endStreamAtExpiry(c.res, principal);
  });

  app.all("/static/*", async (c) => {
    if (options.staticDir === undefined) throw notFound(c);
    const method = c.req.method;
    if (method !== "GET" && method !== "HEAD") {
      throw methodNotAllowed(method, "/static/*", ["GET", "HEAD"]);
    }
    const path = new URL(c.req.url).pathname.slice("/static/".length);
    return headOrFull(method, await serveStatic(path, { root: options.staticDir }));
  });

  for (const entry of manifest.routes) {
    app.all(entry.path, async (c) => {
      const method = c.req.method;
      const handler = handlerFor(entry, method === "HEAD" ? "GET" : method);
      if (handler === undefined) throw methodNotAllowed(method, entry.path, allowedMethods(entry));
      return headOrFull(method, await handler(c.req.raw, contextFor(c, entry)));
    });
  }

  app.notFound((c) => errorResponse(notFound(c), c.get("requestId")));

  app.onError((error, c) => {
    const requestId = c.get("requestId");
    reportError(error, requestId);
    return errorResponse(error, requestId);
  });

  return app;
}

function handlerFor(entry: RouteEntry, method: string): HandlerFn | undefined {
  const handlers = entry.module.handler;
  if (handlers !== undefined && Object.hasOwn(handlers, method)) {
    return handlers[method as RouteMethod];
  }
  // A page without a GET handler renders without data, as in Fresh.
  if (method === "GET" && entry.module.default !== undefined) {
    return (_req, ctx) => ctx.render(undefined);
  }
  return undefined;
}

function allowedMethods(entry: RouteEntry): string[] {
  const methods: string[] = ROUTE_METHODS.filter((m) => handlerFor(entry, m) !== undefined);
  if (methods.includes("GET")) methods.splice(1, 0, "HEAD");
  return methods;
}

const UNAUTHENTICATED_MESSAGES: Record<Extract<CheckResult, { ok: false }>["reason"], string> = {
  NO_CREDENTIAL: "Not signed in: log in at /login",
  UNKNOWN: "The session is not known (logged out or replaced): log in again",
  EXPIRED: "The session has expired: log in again",
};

/**
 * An event stream outlives the request that opened it: end it when its session ends
 * (idle or absolute), with a `session_expired` event, so a passive dashboard tab does not
 * keep receiving data after the session is gone. Reconnecting then needs a new login.
 */
function endStreamAtExpiry(response: Response, principal: Principal): Response {
  const type = response.headers.get("content-type") ?? "";
  if (response.body === null || !type.startsWith("text/event-stream")) return response;
  const ends = Math.min(
    Date.parse(principal.idleExpiresAt ?? ""),
    Date.parse(principal.expiresAt ?? ""),
  );
  if (!Number.isFinite(ends)) return response;
  const reader = response.body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"expired">((resolve) => {
    // setTimeout caps at 2^31-1 ms; sessions end well before that.
    timer = setTimeout(
      () => resolve("expired"),
      Math.max(0, Math.min(ends - Date.now(), 2 ** 31 - 1)),
    );
  });
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await Promise.race([reader.read(), expired]);
      if (next === "expired") {
        controller.enqueue(SESSION_EXPIRED_EVENT);
        controller.close();
        await reader.cancel("session expired");
        return;
      }
      if (next.done) {
        clearTimeout(timer);
        controller.close();
      } else {
        controller.enqueue(next.value);
      }
    },
    cancel(reason) {
      clearTimeout(timer);
      return reader.cancel(reason);
    },
  });
  return new Response(body, response);
}

/**
 * Paths of routes declaring `config.body: "stream"`.
 * @throws {TypeError} for such a route with path parameters (the check is by exact path)
 */
function streamingBodyPaths(manifest: RouteManifest): ReadonlySet<string> {
  const paths = new Set<string>();
  for (const entry of manifest.routes) {
    if (entry.module.config?.body !== "stream") continue;
    if (entry.path.includes(":") || entry.path.includes("*")) {
      throw new TypeError(`Route "${entry.path}" streams its body but is not a static path`);
    }
    paths.add(entry.path);
  }
  return paths;
}

/**
 * Paths of routes declaring `config.auth: "client-token"`.
 * @throws {TypeError} for such a route with path parameters (the check is by exact path)
 */
function clientTokenRoutePaths(manifest: RouteManifest): ReadonlySet<string> {
  const paths = new Set<string>();
  for (const entry of manifest.routes) {
    if (entry.module.config?.auth !== "client-token") continue;
    if (entry.path.includes(":") || entry.path.includes("*")) {
      throw new TypeError(`Route "${entry.path}" checks client tokens but is not a static path`);
    }
    paths.add(entry.path);
  }
  return paths;
}

/** HEAD gets GET's status and headers; the body is cancelled so its source is released. */
async function headOrFull(method: string, response: Response): Promise<Response> {
  if (method !== "HEAD") return response;
  await response.body?.cancel();
  return new Response(null, response);
}

function methodNotAllowed(method: string, path: string, allowed: string[]): GatewayError {
  return new GatewayError(
    "METHOD_NOT_ALLOWED",
    `Method "${method.slice(0, 20)}" is not allowed on "${path}"`,
    { headers: { allow: allowed.join(", ") } },
  );
}

function notFound(c: Context<GatewayEnv>): GatewayError {
  return new GatewayError(
    "NOT_FOUND",
    `No route for ${c.req.method.slice(0, 20)} "${new URL(c.req.url).pathname.slice(0, 200)}"`,
  );
}

function errorResponse(error: unknown, requestId: string): Response {
  const answer = errorAnswer(error, requestId);
  return Response.json(
    { ...answer.extra, error: { code: answer.code, message: answer.message, requestId } },
    { status: answer.status, headers: answer.headers },
  );
}
