/**
 * `POST /v1/completions` (OpenAI-compatible, legacy): raw text continued by a promoted local
 * model in the sandboxed engine (or the configured external backend). `stream: true`
 * answers with server-sent `text_completion` chunks and `data: [DONE]`; the client
 * disconnecting cancels the generation. Authenticated by the client's own bearer token.
 * @module
 */
import type { Handlers, RouteConfig } from "../../workers/gateway/routing.ts";
import {
  CompletionBodySchema,
  generate,
  type Generation,
  type Shape,
  usageOf,
} from "./(_openai)/openai.ts";

/** The inference control checks the client's token; the gateway's session does not apply. */
export const config: RouteConfig = { auth: "client-token" };

const shape: Shape = {
  chunk: (gen, text) => envelope(gen, [{ index: 0, text, logprobs: null, finish_reason: null }]),
  finalChunk: (gen, finish) =>
    envelope(gen, [{ index: 0, text: "", logprobs: null, finish_reason: finish }]),
  usageChunk: (gen, usage) => ({ ...envelope(gen, []), usage: usageOf(usage) }),
  whole: (gen, text, finish, usage) => ({
    ...envelope(gen, [{ index: 0, text, logprobs: null, finish_reason: finish }]),
    usage: usageOf(usage),
  }),
};

function envelope(gen: Generation, choices: unknown[]): Record<string, unknown> {
  return {
    id: `cmpl-${gen.streamId}`,
    object: "text_completion",
    created: gen.created,
    model: gen.model,
    choices,
  };
}

/** Text completions. */
export const handler: Handlers = {
  async POST(req, ctx) {
    const body = ctx.json(CompletionBodySchema);
    return await generate(ctx, {
      request: req,
      body,
      prompt: {
        kind: "text",
        text: typeof body.prompt === "string" ? body.prompt : body.prompt[0] ?? "",
      },
      shape,
    });
  },
};
