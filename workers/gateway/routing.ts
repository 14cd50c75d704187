/**
 * Shapes of Fresh-style route modules (`routes/`): `export const handler = { GET(req, ctx) }`
 * and an optional `export default function Page(props)`. Keeping Fresh's shape makes a later
 * move to Fresh mechanical (ARCHITECTURE.md).
 * @module
 */
import type { ComponentType } from "preact";
import type { z } from "zod";
import type { ClientInfo, Principal } from "../auth/api.ts";
import type { GatewayState } from "./state.ts";

/** Who is asking, as established by the gateway's auth middleware before any route runs. */
export interface RequestAuth {
  /**
   * The authenticated caller. Never null on a protected route (the middleware answered
   * 401 or redirected to the login page); null on a public route without a valid session.
   */
  principal: Principal | null;
  /** Whether a passphrase is set (false before the first-run setup). */
  isConfigured: boolean;
  /** The session cookie's token when it is valid (for logout and passphrase change). */
  sessionToken: string | null;
  /** The device cookie's token (the lockout key), or null. */
  deviceToken: string | null;
  /** Whether the request came over TLS: cookies are then `Secure`. */
  isSecure: boolean;
  /** Address and user agent, for audit entries. */
  client: ClientInfo;
}

/** What a handler gets besides the request. */
export interface RouteContext<Data = unknown> {
  /** Live data from the controls. */
  state: GatewayState;
  /** The parsed request URL. */
  url: URL;
  /** Path parameters (`[id]` segments). */
  params: Readonly<Record<string, string>>;
  /** Id of this request, also in the `x-request-id` response header. */
  requestId: string;
  /** The caller, checked by the auth control before the route runs. */
  auth: RequestAuth;
  /**
   * Whether the route table serves a path pattern (e.g. `/api/v1/audit/verify`): pages use
   * it to offer an action only once the API behind it exists.
   */
  hasRoute(path: string): boolean;
  /** Aborted when the client goes away: pass it to RPC calls. */
  signal: AbortSignal;
  /** Aborted when the gateway stops: long-lived responses must end on it. */
  stopSignal: AbortSignal;
  /** Interval of keep-alive comments on event streams, in milliseconds. */
  heartbeatMs: number;
  /** Renders the route's page inside the layout with `data`. */
  render(data: Data, init?: ResponseInit): Response;
  /**
   * The JSON body, validated. Size (413) and content type (415) were checked before the
   * body was read.
   * @throws {GatewayError} INVALID_JSON, INVALID_BODY (the message names the field)
   */
  json<S extends z.ZodTypeAny>(schema: S): z.output<S>;
  /**
   * The query string, validated.
   * @throws {GatewayError} INVALID_QUERY
   */
  query<S extends z.ZodTypeAny>(schema: S): z.output<S>;
  /**
   * Takes one of the gateway's event-stream slots; call the returned function once the
   * stream ends. Bounded because each open stream holds a long-poll on the system port.
   * @throws {GatewayError} TOO_MANY_STREAMS
   */
  openStream(): () => void;
  /** Reports an error the client is not told about in detail (e.g. inside a stream). */
  reportError(error: unknown): void;
}

/** A handler answers one method. */
export type HandlerFn<Data = unknown> = (
  req: Request,
  ctx: RouteContext<Data>,
) => Response | Promise<Response>;

/** Methods a route may implement (HEAD is served by GET, without the body). */
export const ROUTE_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;
/** A method a route may implement. */
export type RouteMethod = typeof ROUTE_METHODS[number];

/** A route's handlers, keyed by method (Fresh's `Handlers`). */
export type Handlers<Data = unknown> = { [M in RouteMethod]?: HandlerFn<Data> };

/** Props of a page component (Fresh's `PageProps`). */
export interface PageProps<Data = unknown> {
  data: Data;
  url: URL;
  params: Readonly<Record<string, string>>;
}

/** Props of `routes/_layout.tsx`. */
export interface LayoutProps {
  /** The page, already bound to its props. */
  Component: ComponentType;
  url: URL;
  /** The signed-in caller (navigation and session controls show only then). */
  session: Principal | null;
}

/** What a route module exports. */
export interface RouteModule<Data = unknown> {
  handler?: Handlers<Data>;
  default?: ComponentType<PageProps<Data>>;
  config?: RouteConfig;
}

/** Per-route options (Fresh's `export const config`). */
export interface RouteConfig {
  /**
   * `"stream"`: the handler reads the request body itself (uploads), so the gateway neither
   * buffers it nor applies the JSON content type and `maxJsonBytes`; the handler enforces its
   * own type, size and time limits. Authentication, CSRF and the cross-site check still run
   * first. Only for routes without path parameters. Default `"json"`.
   */
  body?: "json" | "stream";
  /**
   * `"client-token"`: the route authenticates its callers itself, through the control it
   * calls (the OpenAI-compatible `/v1` API: the inference control checks per-client bearer
   * tokens). The gateway requires an `Authorization` header and skips sessions, CSRF and the
   * cross-site check (browsers never send that header cross-site without a CORS preflight,
   * which the gateway never grants). Only for routes without path parameters. Default
   * `"session"`.
   */
  auth?: "session" | "client-token";
}

/** One entry of the route table. */
export interface RouteEntry {
  /** Path pattern (hono syntax: `/api/v1/items/:id`). */
  path: string;
  module: RouteModule;
}

/** The route table `routes/_manifest.ts` exports. */
export interface RouteManifest {
  layout: ComponentType<LayoutProps>;
  routes: readonly RouteEntry[];
}

/**
 * Declares a route. Checks the module's handlers and page against one `Data` type, then
 * erases it so modules with different data fit one table.
 * @param path the URL pattern the file name maps to
 * @param module the route module (`import * as m from "./x.ts"`)
 * @returns the table entry
 */
export function route<Data>(path: string, module: RouteModule<Data>): RouteEntry {
  return { path, module: module as unknown as RouteModule };
}
