/**
 * `GET /api/v1/health`: liveness of the gateway itself. Asks no control and says nothing
 * about the installation (spec 10 §9.10: the original leaked internal paths here).
 * @module
 */
import type { Handlers } from "../../../workers/gateway/routing.ts";

/** Answers `{status: "ok"}` while the gateway serves requests. */
export const handler: Handlers = {
  GET() {
    return Response.json({ status: "ok" });
  },
};
