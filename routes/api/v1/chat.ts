/**
 * `POST /api/v1/chat` with `{model, messages, max_tokens?, temperature?}`: the dashboard's
 * Chat page talks to a promoted model. Signed-in users only, with the CSRF token like every
 * state-changing request; the inference control checks the session itself (the browser
 * holds no client token). The answer always streams as server-sent events, one JSON object
 * per `data:` line — `{text}` pieces, then `{finish, usage}` — ending with `data: [DONE]`;
 * a failure inside the stream is `{error: {message, type, code}}`. A refusal before the
 * first token keeps its HTTP status (no model: 404, engine or inference unavailable: 503,
 * with the reason). The browser going away, or the Stop button, cancels the generation.
 *
 * The generation and streaming are the OpenAI routes' own (`routes/v1/(_openai)/`); only
 * the body and the event shape differ.
 * @module
 */
import { z } from "zod";
import type { Handlers } from "../../../workers/gateway/routing.ts";
import { GatewayError } from "../../../workers/gateway/errors.ts";
import {
  errorResponse,
  generateOptions,
  type Generation,
  respond,
  type Shape,
} from "../../v1/(_openai)/openai.ts";

/** Longest message accepted from the page. */
export const MAX_CHAT_MESSAGE_CHARS = 32_768;
/** Most messages of one conversation. */
export const MAX_CHAT_MESSAGES = 64;

/** The request body. */
export const ChatRequestSchema = z.strictObject({
  /** Registry id or name of a promoted model (or an external model's name). */
  model: z.string().min(1).max(512),
  messages: z.array(z.strictObject({
    role: z.enum(["system", "user", "assistant"]),
    content: z.string().max(MAX_CHAT_MESSAGE_CHARS),
  })).min(1).max(MAX_CHAT_MESSAGES),
  max_tokens: z.number().int().min(1).max(131_072).optional(),
  temperature: z.number().min(0).max(2).optional(),
});
/** A chat request from the page. */
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

/** The page's event shape: small, only what it shows. */
const shape: Shape = {
  chunk: (_gen, text) => ({ text }),
  finalChunk: (_gen, finish) => ({ finish }),
  usageChunk: (_gen, usage) => ({
    usage: { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens },
  }),
  whole: (gen: Generation) => ({ model: gen.model }),
};

/** Starts a generation for the signed-in user and streams it. */
export const handler: Handlers = {
  async POST(_req, ctx) {
    const body = ctx.json(ChatRequestSchema);
    const session = ctx.auth.sessionToken;
    if (session === null) {
      // The CLI token passes the gateway's check but is no dashboard session.
      throw new GatewayError("TOKEN_READ_ONLY", "Chat is for signed-in dashboard sessions");
    }
    const auth = { session };
    let started;
    try {
      started = await ctx.state.inference.start({
        auth,
        model: body.model,
        prompt: { kind: "chat", messages: body.messages },
        options: generateOptions(body),
        client: ctx.auth.client,
      }, { signal: ctx.signal });
    } catch (error) {
      return errorResponse(ctx, error);
    }
    return await respond(ctx, { ...started, auth }, { stream: true, includeUsage: true, shape });
  },
};
