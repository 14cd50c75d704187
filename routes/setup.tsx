/**
 * `/setup` (public, first run only): choose the passphrase. The one-time setup code, written
 * to `auth/setup-code` in the state dir at start, proves the person at the browser owns the
 * installation (another local user cannot claim it by reaching the page first).
 * @module
 */
import type { JSX } from "preact";
import AuthForm from "../islands/AuthForm.tsx";
import { MIN_PASSPHRASE_CHARS } from "../workers/auth/api.ts";
import { Island } from "../workers/gateway/render.tsx";
import type { Handlers, PageProps } from "../workers/gateway/routing.ts";

/** Once a passphrase exists the page is gone: log in instead. */
export const handler: Handlers<undefined> = {
  GET(_req, ctx) {
    if (ctx.auth.isConfigured) {
      return new Response(null, { status: 303, headers: { location: "/login" } });
    }
    return ctx.render(undefined);
  },
};

/**
 * The setup page.
 * @param _props no data
 * @returns the page content
 */
export default function SetupPage(_props: PageProps<undefined>): JSX.Element {
  return (
    <section class="auth-page" aria-labelledby="setup-title">
      <h1 id="setup-title">Set up SecAI Runtime</h1>
      <p>
        Choose the passphrase that protects this dashboard. It is stored only as a slow scrypt hash;
        there is no recovery, so keep it safe.
      </p>
      <p>
        The setup code is in the file <code>auth/setup-code</code> of the state dir (for example
        {" "}
        <code>cat ~/.local/share/secai/auth/setup-code</code>).
      </p>
      <Island
        name="AuthForm"
        component={AuthForm}
        props={{ mode: "setup" as const, next: "/", minChars: MIN_PASSPHRASE_CHARS }}
      />
      <noscript>
        <p class="form-error">Setting the passphrase needs JavaScript.</p>
      </noscript>
    </section>
  );
}
