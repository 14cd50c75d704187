/**
 * Server rendering of pages: the route's page inside `routes/_layout.tsx`, rendered with
 * preact-render-to-string, plus partial hydration. An {@link Island} renders its component
 * on the server (the page is complete without JavaScript) and records its props; the props
 * go into one JSON data element, escaped so the text cannot leave the element, and the
 * islands bundle is loaded as an external module script (the CSP allows no inline script).
 * @module
 */
import { type ComponentType, createContext, h, type JSX } from "preact";
import { useContext } from "preact/hooks";
import { renderToString } from "preact-render-to-string";
import { ISLAND_DATA_ID, type IslandRecord } from "../../islands/hydration.ts";
import type { Principal } from "../auth/api.ts";
import type { LayoutProps, PageProps } from "./routing.ts";

/** URL of the islands bundle built by `runtime/bundle.ts`. */
export const ISLANDS_BUNDLE_URL = "/static/build/islands.js";

const IslandsContext = createContext<IslandRecord[] | null>(null);

/** Props of {@link Island}. */
export interface IslandProps<P> {
  /** Name under which `islands/client.ts` registers the component. */
  name: string;
  /** The island component (from `islands/`). */
  component: ComponentType<P>;
  /** Its props: plain JSON data the user may see (they are public in the page). */
  props: P;
}

/**
 * Marks a component as an island: rendered here, hydrated in the browser.
 * @param props island name, component and its props
 * @returns the wrapper element holding the server-rendered island
 */
export function Island<P>({ name, component, props }: IslandProps<P>): JSX.Element {
  const islands = useContext(IslandsContext);
  if (islands === null) throw new TypeError(`Island "${name}" rendered outside renderPage()`);
  const id = islands.push({ name, props }) - 1;
  return (
    <div data-island={name} data-island-id={String(id)}>
      {h(component as ComponentType<object>, props as object)}
    </div>
  );
}

/**
 * Escapes JSON for the content of a `<script>` element. In the HTML tokenizer's script data
 * state only `<` can start `</script`, `<!--` or `<script` (WHATWG HTML §4.12.1.3,
 * "Restrictions for contents of script elements"; Fresh's `escapeScript` guards the same
 * sequences), so every `<` becomes the JSON escape `\u003c`, which parses back to `<`.
 * @param json output of `JSON.stringify`
 * @returns text that cannot end or nest the element
 */
export function escapeJsonForScript(json: string): string {
  return json.replaceAll("<", "\\u003c");
}

/** Options of {@link renderPage}. */
export interface RenderPageOptions {
  /** The shared layout (`routes/_layout.tsx`). */
  layout: ComponentType<LayoutProps>;
  /** Status and extra headers. */
  init?: ResponseInit;
  /** The signed-in caller, for the layout. */
  session?: Principal | null;
}

/**
 * Renders a page to a complete HTML response.
 * @param page the route's default export
 * @param props the page's props
 * @param options layout and response init
 * @returns `text/html` response
 */
export function renderPage<Data>(
  page: ComponentType<PageProps<Data>>,
  props: PageProps<Data>,
  options: RenderPageOptions,
): Response {
  const islands: IslandRecord[] = [];
  const Component = () => h(page, props);
  let html = renderToString(
    h(
      IslandsContext.Provider,
      { value: islands },
      h(options.layout, { Component, url: props.url, session: options.session ?? null }),
    ),
  );
  if (islands.length > 0) {
    const tail = `<script type="application/json" id="${ISLAND_DATA_ID}">${
      escapeJsonForScript(JSON.stringify(islands))
    }</script><script type="module" src="${ISLANDS_BUNDLE_URL}"></script>`;
    // Every `<` of rendered text is escaped, so the last `</body>` is the layout's own.
    const end = html.lastIndexOf("</body>");
    html = end === -1 ? html + tail : html.slice(0, end) + tail + html.slice(end);
  }
  const headers = new Headers(options.init?.headers);
  headers.set("content-type", "text/html; charset=utf-8");
  return new Response(`<!doctype html>${html}`, {
    status: options.init?.status ?? 200,
    headers,
  });
}
