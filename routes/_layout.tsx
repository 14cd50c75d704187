/**
 * Shared layout of every page: document head with our stylesheet, navigation, main content.
 * @module
 */
import type { JSX } from "preact";
import type { LayoutProps } from "../workers/gateway/routing.ts";

const NAV: readonly { href: string; label: string }[] = [
  { href: "/", label: "Status" },
  { href: "/api/v1/controls", label: "Capability matrix (JSON)" },
  { href: "/metrics", label: "Metrics" },
];

/**
 * Wraps a page in the document.
 * @param props the page component and the request URL
 * @returns the `<html>` element
 */
export default function Layout({ Component, url }: LayoutProps): JSX.Element {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <title>SecAI Runtime</title>
        <link rel="icon" href="/static/favicon.svg" type="image/svg+xml" />
        <link rel="stylesheet" href="/static/style.css" />
      </head>
      <body>
        <a class="skip-link" href="#main">Skip to content</a>
        <header class="site-header">
          <span class="brand">SecAI Runtime</span>
          <nav aria-label="Main">
            <ul>
              {NAV.map((item) => (
                <li key={item.href}>
                  <a
                    href={item.href}
                    aria-current={item.href === url.pathname ? "page" : undefined}
                  >
                    {item.label}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        </header>
        <main id="main">
          <Component />
        </main>
      </body>
    </html>
  );
}
