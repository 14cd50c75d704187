/**
 * `POST /api/v1/models/:id/verify-manifest`: the tensor-level check (spec 13 §6
 * `verify-manifest`). The model is re-hashed, then its per-tensor manifest is derived again
 * in the sandbox and compared with the one recorded at promotion: `{status: "verified"}`,
 * `"mismatch"` (with the changed, re-laid-out, added and removed tensors), `"tampered"` (the
 * hash failed: revoked, with the changed tensors named) or `"skipped"` (no manifest).
 * @module
 */
import type { Handlers } from "../../../../../workers/gateway/routing.ts";
import { answer } from "../../(_models)/respond.ts";
import { modelIdOf } from "./index.ts";

/** Two reads of a large model (re-hash, then the sandboxed job), plus a margin. */
const VERIFY_MANIFEST_DEADLINE_MS = 30 * 60_000;

/** Checks a model's tensors against its stored manifest. */
export const handler: Handlers = {
  POST: (_req, ctx) =>
    answer(ctx, () =>
      ctx.state.registry.verifyManifest({ id: modelIdOf(ctx) }, {
        signal: ctx.signal,
        deadlineMs: VERIFY_MANIFEST_DEADLINE_MS,
      })),
};
