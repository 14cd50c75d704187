/**
 * Cost of the gateway's middleware and routing on the cheapest route, against a bare
 * handler that builds the same response. Run: `tools/deno task bench`.
 * @module
 */
import { RpcClient } from "../../runtime/kit/rpc.ts";
import { systemApi } from "../../runtime/kit/system_api.ts";
import { auditAppendApi, auditQueryApi } from "../../workers/audit/api.ts";
import { policyApi } from "../../workers/policy/api.ts";
import { authApi } from "../../workers/auth/api.ts";
import { createApp } from "../../workers/gateway/app.ts";
import { createGatewayState } from "../../workers/gateway/state.ts";

// /api/v1/health asks no control, so clients without ports (failing closed) suffice.
const state = createGatewayState({
  system: new RpcClient(systemApi, null),
  policy: new RpcClient(policyApi, null),
  auditQuery: new RpcClient(auditQueryApi, null),
  auditAppend: new RpcClient(auditAppendApi, null),
  auth: new RpcClient(authApi, null),
});
const app = createApp(state);
const URL_HEALTH = "http://127.0.0.1:8480/api/v1/health";

function bare(_req: Request): Response {
  return Response.json({ status: "ok" });
}

Deno.bench({
  name: "bare handler: new Response",
  group: "health",
  baseline: true,
  async fn() {
    await bare(new Request(URL_HEALTH)).arrayBuffer();
  },
});

Deno.bench({
  name: "gateway app.fetch GET /api/v1/health",
  group: "health",
  async fn() {
    await (await app.fetch(new Request(URL_HEALTH))).arrayBuffer();
  },
});

Deno.bench({
  // Unknown paths are authenticated first (no route map for strangers); with the auth
  // control unreachable this is the fail-closed 503.
  name: "gateway app.fetch GET /no/such/route (auth down: 503)",
  group: "health",
  async fn() {
    await (await app.fetch(new Request("http://127.0.0.1:8480/no/such/route"))).arrayBuffer();
  },
});
