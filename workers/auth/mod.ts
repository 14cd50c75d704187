/// <reference lib="deno.worker" />
/**
 * Worker entry of the auth control: serves the `auth` contract to the gateway. Its only
 * permissions are read and write of `<home>/auth`; it holds every auth secret so the
 * internet-facing gateway needs no file access at all (see `service.ts` for the files).
 * Login and setup outcomes go to the audit log without secrets.
 * @example
 * ```ts
 * // Spawned by the supervisor, never imported:
 * new Worker(new URL("./workers/auth/mod.ts", root), { type: "module", deno: { permissions } });
 * ```
 * @module
 */
import { RpcError } from "../../runtime/kit/errors.ts";
import { describeZodError } from "../../runtime/kit/validate.ts";
import { runControl, serve } from "../../runtime/kit/worker.ts";
import { auditAppendApi } from "../audit/api.ts";
import { authApi, authCheckApi, AuthConfigSchema } from "./api.ts";
import { AuthError, AuthService } from "./service.ts";

/** An audit entry gets this long before the login answer stops waiting for it. */
const AUDIT_DEADLINE_MS = 2_000;

runControl(async (ctx) => {
  const parsed = AuthConfigSchema.safeParse(ctx.config);
  if (!parsed.success) {
    throw new RpcError("INVALID_CONFIG", `Invalid auth config ${describeZodError(parsed.error)}`);
  }
  const audit = ctx.has(auditAppendApi) ? ctx.client(auditAppendApi) : null;
  let service: AuthService;
  try {
    service = await AuthService.open({
      dir: `${ctx.home}/auth`,
      config: parsed.data,
      record(entry) {
        // The outcome stands whether or not the entry is written (an audit outage must not
        // lock the owner out of the dashboard that shows it); a lost entry is reported.
        audit?.call("append", entry, { deadlineMs: AUDIT_DEADLINE_MS }).catch((err: unknown) => {
          ctx.emit("auth.audit_failed", {
            type: entry.type,
            code: err instanceof RpcError ? err.code : "INTERNAL",
          });
        });
      },
    });
  } catch (err) {
    if (err instanceof AuthError) throw new RpcError(err.code, err.message);
    throw err;
  }
  if (!service.isConfigured) ctx.emit("auth.setup_required", {});
  return {
    serves: [
      serve(authApi, {
        check: (input) => service.check(input.credential, input.touch),
        setup: (input) => service.setup(input),
        login: (input) => service.login(input),
        logout: (input) => service.logout(input),
        change: (input) => service.change(input),
      }),
      serve(authCheckApi, {
        check: (input) => service.check(input.credential, false),
      }),
    ],
    stop: () => service.close(),
  };
});
