/// <reference lib="deno.worker" />
/**
 * Worker entry of the gateway control: the only listener of the system (ARCHITECTURE.md,
 * principle 5). Builds {@link GatewayState} from the clients the manifest grants (system,
 * policy, audit-query, audit-append, auth, …), serves the app with `Deno.serve` on the
 * configured host and port (or unix socket), emits `gateway.listening` once bound, and drains
 * on stop. Every request but health and static files is authenticated by asking the auth
 * control (`auth.ts`); the gateway itself stores no session and no secret.
 *
 * Its Deno permissions are net to host:port and read of `<project>/static/`; routes are
 * imported statically, so nothing else is read at runtime.
 * @example
 * ```ts
 * // Spawned by the supervisor, never imported:
 * new Worker(new URL("./workers/gateway/mod.ts", root), { type: "module", deno: { permissions } });
 * ```
 * @module
 */
import { RpcError } from "../../runtime/kit/errors.ts";
import { systemApi } from "../../runtime/kit/system_api.ts";
import { describeZodError } from "../../runtime/kit/validate.ts";
import { runControl } from "../../runtime/kit/worker.ts";
import { auditAppendApi, auditQueryApi } from "../audit/api.ts";
import { authApi } from "../auth/api.ts";
import { policyApi, policyViewApi } from "../policy/api.ts";
import { toolFirewallApi } from "../tool-firewall/api.ts";
import { quarantineApi } from "../quarantine/api.ts";
import { registryApi } from "../registry/api.ts";
import { inferenceApi } from "../inference/api.ts";
import { GatewayConfigSchema } from "./api.ts";
import { createApp } from "./app.ts";
import { createGatewayState } from "./state.ts";

/** Longest graceful drain on stop (spec 10 §1: drain ≤ 10 s). */
const DRAIN_MS = 10_000;

const LOOPBACK_NAMES: ReadonlySet<string> = new Set(["127.0.0.1", "::1", "localhost"]);

runControl((ctx) => {
  const parsed = GatewayConfigSchema.safeParse(ctx.config);
  if (!parsed.success) {
    throw new RpcError(
      "INVALID_CONFIG",
      `Invalid gateway config ${describeZodError(parsed.error)}`,
    );
  }
  const config = parsed.data;
  const state = createGatewayState({
    system: ctx.client(systemApi),
    policy: ctx.client(policyApi),
    auditQuery: ctx.client(auditQueryApi),
    auditAppend: ctx.client(auditAppendApi),
    auth: ctx.client(authApi),
    policyView: ctx.client(policyViewApi),
    toolFirewall: ctx.client(toolFirewallApi),
    quarantine: ctx.client(quarantineApi),
    registry: ctx.client(registryApi),
    ...(ctx.has(inferenceApi) ? { inference: ctx.client(inferenceApi) } : {}),
  });

  // Filled once bound (port 0 picks one). Only a loopback gateway restricts Host: names
  // that resolve to 127.0.0.1 are how DNS rebinding reaches it from a web page.
  const allowedHosts = new Set<string>();
  const isLoopback = config.unixSocket === null && LOOPBACK_NAMES.has(config.host);

  const app = createApp(state, {
    maxJsonBytes: config.maxJsonBytes,
    staticDir: new URL("../../static/", import.meta.url),
    signal: ctx.signal,
    ...(isLoopback ? { isAllowedHost: (host: string) => allowedHosts.has(host) } : {}),
    onError(error, requestId) {
      // Events reach the UI: name the failure, never its message (it may hold paths).
      ctx.emit("gateway.error", {
        requestId,
        error: error instanceof Error ? error.name : typeof error,
        ...(error instanceof RpcError ? { code: error.code } : {}),
      });
    },
  });

  const serveOptions = {
    onListen() {}, // the default prints to the console; the event below reports it
    onError() {
      return new Response(null, { status: 500 });
    },
  };
  let server: Deno.HttpServer;
  if (config.unixSocket !== null) {
    // Resolved as runtime/permissions.ts resolves the grant, so the two name the same path.
    const path = config.unixSocket.startsWith("/")
      ? config.unixSocket
      : `${ctx.home}/${config.unixSocket}`;
    server = Deno.serve({ ...serveOptions, path }, app.fetch);
    ctx.emit("gateway.listening", { path });
  } else {
    server = Deno.serve({ ...serveOptions, hostname: config.host, port: config.port }, app.fetch);
    const port = (server.addr as Deno.NetAddr).port;
    for (const name of LOOPBACK_NAMES) {
      allowedHosts.add(new URL(`http://${name.includes(":") ? `[${name}]` : name}:${port}/`).host);
    }
    ctx.emit("gateway.listening", { host: config.host, port });
  }

  return {
    serves: [],
    async stop() {
      // ctx.signal is aborted before stop(): event streams end, in-flight requests finish.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<void>((done) => {
        timer = setTimeout(done, DRAIN_MS);
      });
      try {
        await Promise.race([server.shutdown(), deadline]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
});
