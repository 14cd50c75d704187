/**
 * `/settings`: the session (when it ends, log out), passphrase change, and how the CLI is
 * authenticated. Runtime profiles and the vault do not exist yet: marked as not available.
 * @module
 */
import type { JSX } from "preact";
import AuthForm from "../islands/AuthForm.tsx";
import { MIN_PASSPHRASE_CHARS } from "../workers/auth/api.ts";
import { Island } from "../workers/gateway/render.tsx";
import type { Handlers, PageProps, RequestAuth } from "../workers/gateway/routing.ts";
import { NotAvailable, Time } from "./(_components)/ui.tsx";

/** Renders with the caller's session. */
export const handler: Handlers<RequestAuth["principal"]> = {
  GET(_req, ctx) {
    return ctx.render(ctx.auth.principal);
  },
};

/**
 * The settings page.
 * @param props the session
 * @returns the page content
 */
export default function SettingsPage({ data }: PageProps<RequestAuth["principal"]>): JSX.Element {
  return (
    <>
      <h1>Settings</h1>
      <section class="panel" aria-labelledby="session-title">
        <h2 id="session-title">This session</h2>
        {data === null ? null : (
          <dl class="summary">
            <div>
              <dt>Session</dt>
              <dd>
                <code>{data.id}</code>
              </dd>
            </div>
            <div>
              <dt>Signed in</dt>
              <dd>
                <Time iso={data.createdAt} />
              </dd>
            </div>
            <div>
              <dt>Ends if idle</dt>
              <dd>
                <Time iso={data.idleExpiresAt} />
              </dd>
            </div>
            <div>
              <dt>Ends at the latest</dt>
              <dd>
                <Time iso={data.expiresAt} />
              </dd>
            </div>
          </dl>
        )}
        <p class="hint">
          A session ends after 30 minutes without a change (reading pages does not count; use "Stay
          signed in") and 12 hours after login at the latest (config section <code>auth</code>).
        </p>
      </section>
      <section class="panel" aria-labelledby="change-title">
        <h2 id="change-title">Change the passphrase</h2>
        <p>Every other session is signed out; this one continues with new cookies.</p>
        {data?.kind === "session"
          ? (
            <Island
              name="AuthForm"
              component={AuthForm}
              props={{ mode: "change" as const, next: "/settings", minChars: MIN_PASSPHRASE_CHARS }}
            />
          )
          : <p class="none">Sign in with the passphrase to change it.</p>}
      </section>
      <section class="panel" aria-labelledby="cli-title">
        <h2 id="cli-title">Command line</h2>
        <p>
          <code>secai status</code> reads the runtime with the token in <code>auth/cli-token</code>
          {" "}
          of the state dir (readable only by you, renewed at every start). That token may only read.
        </p>
      </section>
      <NotAvailable feature="Runtime profiles, vault and updates">
        <p>
          Profile selection, the encrypted vault and update controls arrive with their controls
          (spec 31); nothing here changes them yet.
        </p>
      </NotAvailable>
    </>
  );
}
