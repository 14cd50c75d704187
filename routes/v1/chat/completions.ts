/**
 * `POST /v1/chat/completions` (OpenAI-compatible): a conversation answered by a promoted
 * local model in the sandboxed engine (or the configured external backend), rendered with
 * the model's own chat template inside the engine. `stream: true` answers with server-sent
 * `chat.completion.chunk` events and `data: [DONE]`; the client disconnecting cancels the
 * generation. Authenticated by the client's own bearer token (`secai tokens create NAME`).
 * @module
 */
import type { Handlers, RouteConfig } from "../../../workers/gateway/routing.ts";
import {
  ChatBodySchema,
  chatPrompt,
  generate,
  type Generation,
  type Shape,
  usageOf,
} from "../(_openai)/openai.ts";

/** The inference control checks the client's token; the gateway's session does not apply. */
export const config: RouteConfig = { auth: "client-token" };

const shape: Shape = {
  chunk: (gen, text, isFirst) =>
    envelope(gen, [{
      index: 0,
      delta: isFirst ? { role: "assistant", content: text } : { content: text },
      finish_reason: null,
    }]),
  finalChunk: (gen, finish) => envelope(gen, [{ index: 0, delta: {}, finish_reason: finish }]),
  usageChunk: (gen, usage) => ({ ...envelope(gen, []), usage: usageOf(usage) }),
  whole: (gen, text, finish, usage) => ({
    id: `chatcmpl-${gen.streamId}`,
    object: "chat.completion",
    created: gen.created,
    model: gen.model,
    choices: [{
      index: 0,
      message: { role: "assistant", content: text },
      logprobs: null,
      finish_reason: finish,
    }],
    usage: usageOf(usage),
  }),
};

function envelope(gen: Generation, choices: unknown[]): Record<string, unknown> {
  return {
    id: `chatcmpl-${gen.streamId}`,
    object: "chat.completion.chunk",
    created: gen.created,
    model: gen.model,
    choices,
  };
}

/** Chat completions. */
export const handler: Handlers = {
  async POST(req, ctx) {
    const body = ctx.json(ChatBodySchema);
    return await generate(ctx, { request: req, body, prompt: chatPrompt(body), shape });
  },
};
