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
import * as audit from "./api/v1/audit.ts";
import * as controls from "./api/v1/controls.ts";
import * as events from "./api/v1/events.ts";
import * as evidence from "./api/v1/evidence.ts";
import * as health from "./api/v1/health.ts";
import * as ready from "./api/v1/ready.ts";
import * as policyDecide from "./api/v1/policy/decide.ts";

/** Layout and routes served by the gateway. */
export const manifest: RouteManifest = {
  layout,
  routes: [
    route("/", index),
    route("/metrics", metrics),
    route("/api/v1/audit", audit),
    route("/api/v1/controls", controls),
    route("/api/v1/events", events),
    route("/api/v1/evidence", evidence),
    route("/api/v1/health", health),
    route("/api/v1/ready", ready),
    route("/api/v1/policy/decide", policyDecide),
  ],
};
