/**
 * `/login` (public): the passphrase form. Signed-in callers go on to `next`; before the
 * first-run setup the setup page is shown instead.
 * @module
 */
import type { JSX } from "preact";
import AuthForm from "../islands/AuthForm.tsx";
import { MIN_PASSPHRASE_CHARS } from "../workers/auth/api.ts";
import { safeNextPath } from "../workers/gateway/auth.ts";
import { Island } from "../workers/gateway/render.tsx";
import type { Handlers, PageProps } from "../workers/gateway/routing.ts";

/** What the page renders. */
interface LoginData {
  next: string;
}

/** Redirects when there is nothing to log in to, else renders the form. */
export const handler: Handlers<LoginData> = {
  GET(_req, ctx) {
    const next = safeNextPath(ctx.url.searchParams.get("next"));
    if (!ctx.auth.isConfigured) return redirect("/setup");
    if (ctx.auth.principal?.kind === "session") return redirect(next);
    return ctx.render({ next });
  },
};

function redirect(location: string): Response {
  return new Response(null, { status: 303, headers: { location } });
}

/**
 * The login page.
 * @param props where to go afterwards
 * @returns the page content
 */
export default function LoginPage({ data }: PageProps<LoginData>): JSX.Element {
  return (
    <section class="auth-page" aria-labelledby="login-title">
      <h1 id="login-title">Sign in</h1>
      <p>Enter the passphrase of this SecAI Runtime.</p>
      <Island
        name="AuthForm"
        component={AuthForm}
        props={{ mode: "login" as const, next: data.next, minChars: MIN_PASSPHRASE_CHARS }}
      />
      <noscript>
        <p class="form-error">
          Signing in needs JavaScript: the passphrase is sent as JSON with cross-site protection.
        </p>
      </noscript>
      <p class="hint">
        Repeated wrong passphrases lock this browser out for a minute, then for 15 minutes.
      </p>
    </section>
  );
}
