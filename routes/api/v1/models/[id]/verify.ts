/**
 * `POST /api/v1/models/:id/verify`: re-hashes a model now (SHA-256 and fs-verity digest).
 * `{status: "verified"}`, or `{status: "tampered"}` — and the model is revoked.
 * @module
 */
import type { Handlers } from "../../../../../workers/gateway/routing.ts";
import { answer } from "../../(_models)/respond.ts";
import { modelIdOf } from "./index.ts";

/** Re-hashing a large model takes a while: at least 50 MB/s, plus a margin. */
const VERIFY_DEADLINE_MS = 30 * 60_000;

/** Re-verifies a model. */
export const handler: Handlers = {
  POST: (_req, ctx) =>
    answer(ctx, () =>
      ctx.state.registry.verify({ id: modelIdOf(ctx) }, {
        signal: ctx.signal,
        deadlineMs: VERIFY_DEADLINE_MS,
      })),
};
