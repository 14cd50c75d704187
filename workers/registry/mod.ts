/// <reference lib="deno.worker" />
/**
 * Registry control worker (spec 13 §6–§7): the trusted store of promoted models. Serves
 * `registry-promote` (quarantine), `registry` (gateway) and `registry-resolve` (inference),
 * re-verifies every model on a timer and keeps a signed manifest in `registry/manifest.json`.
 *
 * Permissions: read/write `registry/` and `promotion-staging/` under the state dir; no
 * network; ports: policy, audit-append, and sandbox for its one job (`tensor_manifest`: the
 * per-tensor manifest of a model file is parsed in the sandbox, never here).
 * @example
 * ```ts
 * // Spawned by the supervisor from the manifest, never imported:
 * new Worker(new URL("./workers/registry/mod.ts", root), { type: "module", deno: { permissions } });
 * ```
 * @module
 */
import { RpcError } from "../../runtime/kit/errors.ts";
import { sandboxApi } from "../../runtime/kit/sandbox_api.ts";
import { describeZodError } from "../../runtime/kit/validate.ts";
import { runControl, serve } from "../../runtime/kit/worker.ts";
import { auditAppendApi } from "../audit/api.ts";
import { policyApi } from "../policy/api.ts";
import {
  registryApi,
  RegistryConfigSchema,
  registryPromoteApi,
  registryResolveApi,
} from "./api.ts";
import { MODELS_DIR, Registry, STAGING_DIR, TAMPERED_DIR } from "./registry.ts";
import { loadOrCreateKey } from "./signing.ts";
import { ModelStore } from "./store.ts";
import { MANIFESTS_DIR } from "./tensor_manifest.ts";

runControl(async (ctx) => {
  const parsed = RegistryConfigSchema.safeParse(ctx.config);
  if (!parsed.success) {
    throw new RpcError(
      "INVALID_CONFIG",
      `Invalid registry config ${describeZodError(parsed.error)}`,
    );
  }
  const config = parsed.data;
  const dirs = [
    "registry",
    "registry/keys",
    `registry/${MANIFESTS_DIR}`,
    MODELS_DIR,
    TAMPERED_DIR,
    STAGING_DIR,
  ];
  for (const dir of dirs) {
    await Deno.mkdir(`${ctx.home}/${dir}`, { recursive: true, mode: 0o700 });
  }
  // A promotion interrupted between taking the staged file and recording it leaves an
  // `.incoming-*` file that no manifest row names: it is never served, so remove it.
  for await (const entry of Deno.readDir(`${ctx.home}/${MODELS_DIR}`)) {
    if (entry.name.startsWith(".incoming-")) {
      await Deno.remove(`${ctx.home}/${MODELS_DIR}/${entry.name}`);
    }
  }
  // Likewise the temp file of a manifest write cut short (writeFileAtomic's `.tmp-` name).
  for await (const entry of Deno.readDir(`${ctx.home}/registry/${MANIFESTS_DIR}`)) {
    if (entry.name.includes(".tmp-")) {
      await Deno.remove(`${ctx.home}/registry/${MANIFESTS_DIR}/${entry.name}`);
    }
  }
  const store = ModelStore.open(`${ctx.home}/registry/registry.db`);
  const key = await loadOrCreateKey(`${ctx.home}/registry/keys/manifest-ed25519.pkcs8`);
  const registry = new Registry({
    home: ctx.home,
    store,
    key,
    policy: () => ctx.client(policyApi),
    audit: () => ctx.client(auditAppendApi),
    sandbox: () => ctx.client(sandboxApi),
    emit: ctx.emit,
  });
  await registry.publish();

  // Re-verification of every model (spec 13 §7): first pass after a delay, then periodic.
  const stop = new AbortController();
  let verifying: Promise<unknown> | null = null;
  const verifyAll = () => {
    if (verifying !== null || stop.signal.aborted) return;
    verifying = registry.verifyAll({ signal: stop.signal })
      .catch((error: unknown) => {
        if (!stop.signal.aborted) {
          ctx.emit("registry.verify_error", {
            error: error instanceof Error ? error.message.slice(0, 500) : String(error),
          });
        }
      })
      .finally(() => {
        verifying = null;
      });
  };
  const first = setTimeout(verifyAll, config.firstVerifyDelayMs);
  const timer = setInterval(verifyAll, config.verifyIntervalMinutes * 60_000);

  return {
    serves: [
      serve(registryPromoteApi, {
        promote: (input, call) =>
          registry.promote(input, call.caller, { signal: call.signal, deadline: call.deadline }),
      }),
      serve(registryApi, {
        list: (input) => ({ models: registry.list(input.includeRevoked) }),
        get: (input) => registry.get(input.id),
        revoke: (input, call) => registry.revoke(input.id, input.reason, call.caller),
        verify: (input, call) => registry.verify(input.id, { signal: call.signal }),
        verifyManifest: (input, call) =>
          registry.verifyManifest(input.id, { signal: call.signal, deadline: call.deadline }),
        exportManifest: () => registry.exportManifest(),
      }),
      serve(registryResolveApi, {
        resolve: (input, call) => registry.resolve(input.id, { signal: call.signal }),
        list: () => ({
          models: registry.list(false).map((m) => ({
            id: m.id,
            name: m.name,
            format: m.format,
            size: m.size,
            promotedAt: m.promotedAt,
          })),
        }),
      }),
    ],
    async stop() {
      clearTimeout(first);
      clearInterval(timer);
      stop.abort();
      await verifying;
      store.close();
    },
  };
});
