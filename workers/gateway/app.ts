/**
 * The gateway's HTTP application: middleware, the file-based routes of `routes/`, static
 * files and the one error mapping. Pure: it opens no port (`workers/gateway/mod.ts` serves
 * it) and gets live data only through {@link GatewayState}, so tests call `app.fetch`.
 *
 * Order of checks for every request: request id and security headers (set last, on every
 * response), Host allowlist, then for mutating methods the cross-site check (403), the
 * content type (415) and the body limit while reading (413), and only then routing and
 * zod validation in the handler (400).
 * @module
 */
import { type Context, Hono } from "hono";
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
  Variables: { requestId: string; body: Uint8Array };
}

const DEFAULT_MAX_JSON_BYTES = 1 << 20;
const DEFAULT_BODY_TIMEOUT_MS = 10_000;
const DEFAULT_HEARTBEAT_MS = 15_000;
const DEFAULT_MAX_EVENT_STREAMS = 16;
/** A refusal waits this long for its audit entry, so a slow audit control cannot stall it. */
const AUDIT_DEADLINE_MS = 1_000;
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
    return {
      state,
      url,
      params,
      requestId,
      signal: c.req.raw.signal,
      stopSignal,
      heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
      render(data, init) {
        if (page === undefined) throw new TypeError(`Route "${entry.path}" has no page to render`);
        return renderPage(page, { data, url, params }, {
          layout: manifest.layout,
          ...(init === undefined ? {} : { init }),
        });
      },
      json: (schema) => parseJsonBody(c.get("body"), schema),
      query: (schema) => parseQuery(url, schema),
      openStream,
      reportError: (error) => reportError(error, requestId),
    };
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
    let body: Uint8Array = EMPTY_BODY;
    if (isMutating(request.method)) {
      try {
        assertSameOrigin(request);
      } catch (err) {
        await recordDenial(request, err, c.get("requestId"));
        throw err;
      }
      // TODO(#8): the dashboard issue adds login; until then any same-origin caller may mutate.
      if (request.body !== null || request.headers.has("content-type")) {
        assertJsonContentType(request);
        body = await readBodyLimited(request, { maxBytes: maxJsonBytes, timeoutMs: bodyTimeoutMs });
      }
    }
    c.set("body", body);
    await next();
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
    { error: { code: answer.code, message: answer.message, requestId } },
    { status: answer.status, headers: answer.headers },
  );
}
