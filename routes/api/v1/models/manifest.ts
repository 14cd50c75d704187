/**
 * `GET /api/v1/models/manifest`: the manifest of active models, signed by the registry's
 * Ed25519 key: `{manifest, signature, publicKey, keyId}` (the signature covers the exact
 * UTF-8 bytes of `manifest`).
 * @module
 */
import type { Handlers } from "../../../../workers/gateway/routing.ts";
import { answer } from "../(_models)/respond.ts";

/** Exports the signed manifest. */
export const handler: Handlers = {
  GET: (_req, ctx) =>
    answer(ctx, () => ctx.state.registry.exportManifest({}, { signal: ctx.signal })),
};
