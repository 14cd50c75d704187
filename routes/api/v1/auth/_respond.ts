/**
 * Shared by the auth routes: turns the auth control's outcome into the HTTP answer. A grant
 * sets the session, CSRF and device cookies and answers with the session's end times only
 * (the token stays in the HttpOnly cookie, out of reach of page scripts); a refusal becomes
 * the matching error (401 wrong passphrase, 423 locked with `locked_until`, 400 weak, …).
 * @module
 */
import type { Outcome } from "../../../../workers/auth/api.ts";
import { grantCookies } from "../../../../workers/gateway/auth.ts";
import { GatewayError } from "../../../../workers/gateway/errors.ts";
import type { RouteContext } from "../../../../workers/gateway/routing.ts";

/** Login, setup and change wait this long: a KDF slot may be busy (≤ 2 run at once). */
export const AUTH_DEADLINE_MS = 20_000;

/**
 * Answers an auth outcome.
 * @param outcome what the auth control decided
 * @param ctx the route context (TLS decides the cookies' Secure flag)
 * @returns 200 with cookies
 * @throws {GatewayError} the refusal's code
 */
export function respondToOutcome(outcome: Outcome, ctx: RouteContext): Response {
  if (!outcome.ok) {
    const isLocked = outcome.lockedUntil !== null;
    const retryAfter = isLocked
      ? Math.max(1, Math.ceil((Date.parse(outcome.lockedUntil ?? "") - Date.now()) / 1000))
      : null;
    throw new GatewayError(outcome.code, outcome.message, {
      extra: { locked_until: outcome.lockedUntil },
      headers: retryAfter === null ? {} : { "retry-after": String(retryAfter) },
    });
  }
  const headers = new Headers({ "content-type": "application/json" });
  for (const value of grantCookies(outcome.grant, ctx.auth.isSecure)) {
    headers.append("set-cookie", value);
  }
  return new Response(
    JSON.stringify({
      ok: true,
      session: {
        idleExpiresAt: outcome.grant.session.idleExpiresAt,
        expiresAt: outcome.grant.session.expiresAt,
      },
    }),
    { headers },
  );
}
