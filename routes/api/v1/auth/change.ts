/**
 * `POST /api/v1/auth/change` with `{current, next}` (session and CSRF token required):
 * changes the passphrase after checking the current one (same lockout as login), ends every
 * session and signs the caller in again with new cookies.
 * @module
 */
import { z } from "zod";
import { MAX_PASSPHRASE_CHARS } from "../../../../workers/auth/api.ts";
import { GatewayError } from "../../../../workers/gateway/errors.ts";
import type { Handlers } from "../../../../workers/gateway/routing.ts";
import { AUTH_DEADLINE_MS, respondToOutcome } from "./_respond.ts";

/** The body. */
export const ChangeBodySchema = z.strictObject({
  current: z.string().min(1, "enter the current passphrase").max(MAX_PASSPHRASE_CHARS * 4),
  next: z.string().min(1, "enter a new passphrase").max(MAX_PASSPHRASE_CHARS * 4),
});

/** Changes the passphrase. */
export const handler: Handlers = {
  async POST(_req, ctx) {
    const { current, next } = ctx.json(ChangeBodySchema);
    const token = ctx.auth.sessionToken;
    if (token === null) {
      throw new GatewayError("UNAUTHENTICATED", "Only a signed-in browser session can change it");
    }
    const outcome = await ctx.state.auth.change(
      { token, current, next, device: ctx.auth.deviceToken, client: ctx.auth.client },
      { signal: ctx.signal, deadlineMs: AUTH_DEADLINE_MS },
    );
    return respondToOutcome(outcome, ctx);
  },
};
