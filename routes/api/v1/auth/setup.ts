/**
 * `POST /api/v1/auth/setup` with `{setupCode, passphrase}` (public, same-origin only, once):
 * sets the first passphrase and signs the caller in. The setup code is in
 * `<home>/auth/setup-code`, so only someone who can read the state dir can claim the
 * appliance (spec 31 §2). 403 SETUP_CODE_INVALID, 400 WEAK_PASSPHRASE (the reason names the
 * rule), 409 ALREADY_CONFIGURED.
 * @module
 */
import { z } from "zod";
import { MAX_PASSPHRASE_CHARS } from "../../../../workers/auth/api.ts";
import type { Handlers } from "../../../../workers/gateway/routing.ts";
import { AUTH_DEADLINE_MS, respondToOutcome } from "./_respond.ts";

/** The body. The passphrase rules are checked by the auth control (one place). */
export const SetupBodySchema = z.strictObject({
  setupCode: z.string().min(1, "enter the setup code").max(64),
  passphrase: z.string().min(1, "enter a passphrase").max(MAX_PASSPHRASE_CHARS * 4),
});

/** Sets the first passphrase. */
export const handler: Handlers = {
  async POST(_req, ctx) {
    const { setupCode, passphrase } = ctx.json(SetupBodySchema);
    const outcome = await ctx.state.auth.setup(
      { setupCode, passphrase, device: ctx.auth.deviceToken, client: ctx.auth.client },
      { signal: ctx.signal, deadlineMs: AUTH_DEADLINE_MS },
    );
    return respondToOutcome(outcome, ctx);
  },
};
