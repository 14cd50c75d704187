/**
 * `GET /v1/models` (OpenAI-compatible): the models a client may name — promoted GGUF models
 * of the trusted registry (by id; the name is in `name`), then the external backend's.
 * Authenticated by the client's own bearer token.
 * @module
 */
import type { Handlers, RouteConfig } from "../../workers/gateway/routing.ts";
import { bearerToken, errorResponse } from "./(_openai)/openai.ts";

/** The inference control checks the client's token; the gateway's session does not apply. */
export const config: RouteConfig = { auth: "client-token" };

/** The model list. */
export const handler: Handlers = {
  async GET(req, ctx) {
    try {
      const { models } = await ctx.state.inference.models(
        { auth: { token: bearerToken(req) } },
        { signal: ctx.signal },
      );
      return Response.json({
        object: "list",
        data: models.map((m) => ({
          id: m.id,
          object: "model",
          created: m.created,
          owned_by: m.ownedBy === "local" ? "secai-local" : "secai-external",
          name: m.name,
          loaded: m.isLoaded,
        })),
      });
    } catch (error) {
      return errorResponse(ctx, error);
    }
  },
};
