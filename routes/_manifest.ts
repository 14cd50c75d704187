/**
 * The route table: what Fresh generates as `fresh.gen.ts`, written by hand. Each path is
 * the file's path under `routes/` (`index` is the folder itself, `[id]` a parameter);
 * `workers/gateway/app_test.ts` checks this table against the files.
 * @module
 */
import { route, type RouteManifest } from "../workers/gateway/routing.ts";
import layout from "./_layout.tsx";
import * as index from "./index.tsx";
import * as metrics from "./metrics.ts";
import * as auditPage from "./audit/index.tsx";
import * as auditEntryPage from "./audit/[seq].tsx";
import * as chatPage from "./chat.tsx";
import * as incidentsPage from "./incidents.tsx";
import * as loginPage from "./login.tsx";
import * as modelsPage from "./models.tsx";
import * as policyPage from "./policy.tsx";
import * as settingsPage from "./settings.tsx";
import * as setupPage from "./setup.tsx";
import * as authChange from "./api/v1/auth/change.ts";
import * as authLogin from "./api/v1/auth/login.ts";
import * as authLogout from "./api/v1/auth/logout.ts";
import * as authRefresh from "./api/v1/auth/refresh.ts";
import * as authSetup from "./api/v1/auth/setup.ts";
import * as authStatus from "./api/v1/auth/status.ts";
import * as audit from "./api/v1/audit.ts";
import * as auditConsistency from "./api/v1/audit/consistency.ts";
import * as auditExport from "./api/v1/audit/export.ts";
import * as auditHead from "./api/v1/audit/head.ts";
import * as auditProof from "./api/v1/audit/proof/[seq].ts";
import * as auditVerify from "./api/v1/audit/verify.ts";
import * as chat from "./api/v1/chat.ts";
import * as controls from "./api/v1/controls.ts";
import * as events from "./api/v1/events.ts";
import * as evidence from "./api/v1/evidence.ts";
import * as health from "./api/v1/health.ts";
import * as ready from "./api/v1/ready.ts";
import * as policyDecide from "./api/v1/policy/decide.ts";
import * as policyIndex from "./api/v1/policy/index.ts";
import * as policyWhatIf from "./api/v1/policy/whatif.ts";
import * as toolsCheck from "./api/v1/tools/check.ts";
import * as quarantineIndex from "./api/v1/quarantine/index.ts";
import * as quarantineJob from "./api/v1/quarantine/[id]/index.ts";
import * as quarantineEvents from "./api/v1/quarantine/[id]/events.ts";
import * as quarantineFindings from "./api/v1/quarantine/[id]/findings.ts";
import * as quarantineCancel from "./api/v1/quarantine/[id]/cancel.ts";
import * as quarantinePromote from "./api/v1/quarantine/[id]/promote.ts";
import * as modelsIndex from "./api/v1/models/index.ts";
import * as modelsManifest from "./api/v1/models/manifest.ts";
import * as modelsModel from "./api/v1/models/[id]/index.ts";
import * as modelsRevoke from "./api/v1/models/[id]/revoke.ts";
import * as modelsVerify from "./api/v1/models/[id]/verify.ts";
import * as modelsVerifyManifest from "./api/v1/models/[id]/verify-manifest.ts";
import * as openaiChat from "./v1/chat/completions.ts";
import * as openaiCompletions from "./v1/completions.ts";
import * as openaiModels from "./v1/models.ts";

/** Layout and routes served by the gateway. */
export const manifest: RouteManifest = {
  layout,
  routes: [
    route("/", index),
    route("/metrics", metrics),
    route("/audit", auditPage),
    route("/audit/:seq", auditEntryPage),
    route("/chat", chatPage),
    route("/incidents", incidentsPage),
    route("/login", loginPage),
    route("/models", modelsPage),
    route("/policy", policyPage),
    route("/settings", settingsPage),
    route("/setup", setupPage),
    route("/api/v1/auth/change", authChange),
    route("/api/v1/auth/login", authLogin),
    route("/api/v1/auth/logout", authLogout),
    route("/api/v1/auth/refresh", authRefresh),
    route("/api/v1/auth/setup", authSetup),
    route("/api/v1/auth/status", authStatus),
    route("/api/v1/audit", audit),
    route("/api/v1/audit/consistency", auditConsistency),
    route("/api/v1/audit/export", auditExport),
    route("/api/v1/audit/head", auditHead),
    route("/api/v1/audit/proof/:seq", auditProof),
    route("/api/v1/audit/verify", auditVerify),
    route("/api/v1/chat", chat),
    route("/api/v1/controls", controls),
    route("/api/v1/events", events),
    route("/api/v1/evidence", evidence),
    route("/api/v1/health", health),
    route("/api/v1/ready", ready),
    route("/api/v1/policy", policyIndex),
    route("/api/v1/policy/decide", policyDecide),
    route("/api/v1/policy/whatif", policyWhatIf),
    route("/api/v1/tools/check", toolsCheck),
    route("/api/v1/quarantine", quarantineIndex),
    route("/api/v1/quarantine/:id", quarantineJob),
    route("/api/v1/quarantine/:id/events", quarantineEvents),
    route("/api/v1/quarantine/:id/findings", quarantineFindings),
    route("/api/v1/quarantine/:id/cancel", quarantineCancel),
    route("/api/v1/quarantine/:id/promote", quarantinePromote),
    route("/api/v1/models", modelsIndex),
    // Before "/api/v1/models/:id", which would otherwise take "manifest" as an id.
    route("/api/v1/models/manifest", modelsManifest),
    route("/api/v1/models/:id", modelsModel),
    route("/api/v1/models/:id/revoke", modelsRevoke),
    route("/api/v1/models/:id/verify", modelsVerify),
    route("/api/v1/models/:id/verify-manifest", modelsVerifyManifest),
    // OpenAI-compatible inference API: per-client bearer tokens, checked by the inference
    // control (config.auth "client-token").
    route("/v1/chat/completions", openaiChat),
    route("/v1/completions", openaiCompletions),
    route("/v1/models", openaiModels),
  ],
};
