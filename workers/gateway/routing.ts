/**
 * Shapes of Fresh-style route modules (`routes/`): `export const handler = { GET(req, ctx) }`
 * and an optional `export default function Page(props)`. Keeping Fresh's shape makes a later
 * move to Fresh mechanical (ARCHITECTURE.md).
 * @module
 */
import type { ComponentType } from "preact";
import type { z } from "zod";
import type { GatewayState } from "./state.ts";

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
}

/** What a route module exports. */
export interface RouteModule<Data = unknown> {
  handler?: Handlers<Data>;
  default?: ComponentType<PageProps<Data>>;
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
