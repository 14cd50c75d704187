/**
 * `POST /api/v1/auth/refresh` (session and CSRF token required): "stay signed in". Like every
 * mutating request it extends the idle timeout (the middleware touched the session); it
 * answers the new end times. Passive reads never extend a session (spec 10 §8).
 * @module
 */
import type { Handlers } from "../../../../workers/gateway/routing.ts";

/** Answers the session's end times after the extension. */
export const handler: Handlers = {
  POST(_req, ctx) {
    const principal = ctx.auth.principal;
    return Response.json({
      ok: true,
      session: principal === null ? null : {
        idleExpiresAt: principal.idleExpiresAt,
        expiresAt: principal.expiresAt,
      },
    });
  },
};
