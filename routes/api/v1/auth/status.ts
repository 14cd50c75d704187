/**
 * `GET /api/v1/auth/status` (public): whether a passphrase is set and whether the caller is
 * signed in, with the session's end times. Pages use it to tell an expired session from an
 * outage.
 * @module
 */
import type { Handlers } from "../../../../workers/gateway/routing.ts";

/** Reports the caller's authentication state. */
export const handler: Handlers = {
  GET(_req, ctx) {
    const principal = ctx.auth.principal;
    return Response.json({
      configured: ctx.auth.isConfigured,
      authenticated: principal !== null,
      setup_required: !ctx.auth.isConfigured,
      session: principal === null ? null : {
        kind: principal.kind,
        id: principal.id,
        createdAt: principal.createdAt,
        idleExpiresAt: principal.idleExpiresAt,
        expiresAt: principal.expiresAt,
      },
    });
  },
};
