/**
 * `POST /api/v1/auth/login` with `{passphrase}` (public, but same-origin only): 200 and the
 * session cookies; 401 WRONG_PASSPHRASE; 423 LOGIN_LOCKED with `locked_until`; 409
 * NOT_CONFIGURED before setup. The lockout is keyed by the browser's device cookie, not its
 * address (see `workers/auth/lockout.ts`).
 * @module
 */
import { z } from "zod";
import { MAX_PASSPHRASE_CHARS } from "../../../../workers/auth/api.ts";
import type { Handlers } from "../../../../workers/gateway/routing.ts";
import { AUTH_DEADLINE_MS, respondToOutcome } from "./_respond.ts";

/** The body. Rules for new passphrases do not apply here: any stored one may be typed. */
export const LoginBodySchema = z.strictObject({
  passphrase: z.string().min(1, "enter the passphrase").max(MAX_PASSPHRASE_CHARS * 4),
});

/** Logs in. */
export const handler: Handlers = {
  async POST(_req, ctx) {
    const { passphrase } = ctx.json(LoginBodySchema);
    const outcome = await ctx.state.auth.login(
      { passphrase, device: ctx.auth.deviceToken, client: ctx.auth.client },
      { signal: ctx.signal, deadlineMs: AUTH_DEADLINE_MS },
    );
    return respondToOutcome(outcome, ctx);
  },
};
