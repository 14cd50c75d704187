/**
 * Shared layout of every page: document head with our stylesheet, the navigation and the
 * session controls (only when signed in), then the page. No inline script or style (CSP).
 * @module
 */
import type { JSX } from "preact";
import SessionControls from "../islands/SessionControls.tsx";
import { Island } from "../workers/gateway/render.tsx";
import type { LayoutProps } from "../workers/gateway/routing.ts";

/** The sections of the dashboard, in navigation order. */
export const NAV: readonly { href: string; label: string }[] = [
  { href: "/", label: "Overview" },
  { href: "/models", label: "Models" },
  { href: "/chat", label: "Chat" },
  { href: "/policy", label: "Policy" },
  { href: "/audit", label: "Audit" },
  { href: "/incidents", label: "Incidents" },
  { href: "/settings", label: "Settings" },
];

function isCurrent(href: string, path: string): boolean {
  return href === "/" ? path === "/" : path === href || path.startsWith(`${href}/`);
}

/**
 * Wraps a page in the document.
 * @param props the page component, the request URL and the signed-in caller
 * @returns the `<html>` element
 */
export default function Layout({ Component, url, session }: LayoutProps): JSX.Element {
  const section = NAV.find((item) => isCurrent(item.href, url.pathname));
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <title>{section ? `${section.label} · SecAI Runtime` : "SecAI Runtime"}</title>
        <link rel="icon" href="/static/favicon.svg" type="image/svg+xml" />
        <link rel="stylesheet" href="/static/style.css" />
      </head>
      <body>
        <a class="skip-link" href="#main">Skip to content</a>
        <header class="site-header">
          <a class="brand" href="/">SecAI Runtime</a>
          {session === null ? null : (
            <nav aria-label="Main">
              <ul>
                {NAV.map((item) => (
                  <li key={item.href}>
                    <a
                      href={item.href}
                      aria-current={isCurrent(item.href, url.pathname) ? "page" : undefined}
                    >
                      {item.label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
          )}
          {session === null ? null : (
            <Island
              name="SessionControls"
              component={SessionControls}
              props={{ idleExpiresAt: session.idleExpiresAt, expiresAt: session.expiresAt }}
            />
          )}
        </header>
        <main id="main">
          <Component />
        </main>
      </body>
    </html>
  );
}
