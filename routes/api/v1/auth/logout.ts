/**
 * `POST /api/v1/auth/logout` (session and CSRF token required): ends the session in the
 * auth control and clears the cookies.
 * @module
 */
import { clearedCookies } from "../../../../workers/gateway/auth.ts";
import type { Handlers } from "../../../../workers/gateway/routing.ts";

/** Logs out. */
export const handler: Handlers = {
  async POST(_req, ctx) {
    const token = ctx.auth.sessionToken;
    const ended = token === null
      ? false
      : (await ctx.state.auth.logout({ token, client: ctx.auth.client }, { signal: ctx.signal }))
        .ended;
    const headers = new Headers({ "content-type": "application/json" });
    for (const value of clearedCookies(ctx.auth.isSecure)) headers.append("set-cookie", value);
    return new Response(JSON.stringify({ ok: true, ended }), { headers });
  },
};
