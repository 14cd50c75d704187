/// <reference lib="deno.worker" />
/**
 * Inference control worker (issue #7, spec 14 §1): serves `inference` to the gateway, which
 * exposes it as the OpenAI-compatible API at `/v1/*`. Local models come from the trusted
 * registry only (`registry-resolve` re-hashes before it hands out a path) and run in the
 * sandboxed engine the supervisor starts (`engine` port); an optional external backend is
 * reached only when the policy's `egress` domain allows it.
 *
 * Permissions: read/write `inference/` under the state dir (client token hashes, the local
 * CLI token), system memory info (the memory budget), net only to the configured external
 * backend; ports: registry-resolve, policy, audit-append, engine.
 * @example
 * ```ts
 * // Spawned by the supervisor from the manifest, never imported:
 * new Worker(new URL("./workers/inference/mod.ts", root), { type: "module", deno: { permissions } });
 * ```
 * @module
 */
import {
  CLI_TOKEN_FILE,
  hashToken,
  newToken,
  type TokenOwner,
  TOKENS_FILE,
  TokenVerifier,
} from "../../runtime/kit/api_tokens.ts";
import { engineApi } from "../../runtime/kit/engine_api.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import { writeFileAtomic } from "../../runtime/kit/fs.ts";
import { describeZodError } from "../../runtime/kit/validate.ts";
import { runControl, serve } from "../../runtime/kit/worker.ts";
import { auditAppendApi } from "../audit/api.ts";
import { authCheckApi } from "../auth/api.ts";
import { policyApi } from "../policy/api.ts";
import { registryResolveApi } from "../registry/api.ts";
import { type ClientAuth, inferenceApi, InferenceConfigSchema } from "./api.ts";
import { InferenceError } from "./errors.ts";
import { availableMemoryMb, InferenceService } from "./service.ts";

runControl(async (ctx) => {
  const parsed = InferenceConfigSchema.safeParse(ctx.config);
  if (!parsed.success) {
    throw new RpcError(
      "INVALID_CONFIG",
      `Invalid inference config ${describeZodError(parsed.error)}`,
    );
  }
  const config = parsed.data;
  await Deno.mkdir(`${ctx.home}/inference`, { recursive: true, mode: 0o700 });
  const tokens = new TokenVerifier(`${ctx.home}/${TOKENS_FILE}`);
  // A fresh token for the local CLI each run, readable only by the state dir's owner (like
  // the auth control's CLI token); only its hash stays in memory.
  const cliToken = newToken();
  await writeFileAtomic(`${ctx.home}/${CLI_TOKEN_FILE}`, `${cliToken}\n`, { mode: 0o600 });
  tokens.addEphemeral(cliToken, { id: hashToken(cliToken).slice(0, 12), name: "local-cli" });

  let externalApiKey: string | null = null;
  if (config.external?.apiKeyFile) {
    try {
      externalApiKey = (await Deno.readTextFile(`${ctx.home}/${config.external.apiKeyFile}`))
        .trim();
    } catch (error) {
      throw new RpcError(
        "INVALID_CONFIG",
        `Cannot read inference.external.apiKeyFile "${config.external.apiKeyFile}": ${
          error instanceof Error ? error.name : "error"
        }`,
      );
    }
  }

  const service = new InferenceService({
    config,
    engine: () => ctx.client(engineApi),
    registry: () => ctx.client(registryResolveApi),
    policy: () => ctx.client(policyApi),
    audit: () => ctx.client(auditAppendApi),
    tokens,
    metrics: ctx.metrics,
    emit: ctx.emit,
    availableMemoryMb,
    externalApiKey,
  });

  /** A client token, or a dashboard session the auth control vouches for. */
  async function authenticate(auth: ClientAuth): Promise<TokenOwner> {
    if ("token" in auth) return await service.authenticate(auth.token);
    const checked = await ctx.client(authCheckApi).call("check", {
      credential: { kind: "session", token: auth.session },
      touch: false,
    });
    if (!checked.ok || checked.principal.kind !== "session") {
      throw new InferenceError(
        "UNAUTHENTICATED",
        "The dashboard session is not valid (signed out or expired): sign in again",
      );
    }
    return { id: `session-${checked.principal.id}`, name: "dashboard" };
  }

  return {
    serves: [
      serve(inferenceApi, {
        models: async (input) => {
          await authenticate(input.auth);
          return { models: await service.models() };
        },
        start: async (input) =>
          service.start({
            owner: await authenticate(input.auth),
            model: input.model,
            prompt: input.prompt,
            options: input.options,
            client: input.client,
          }),
        poll: async (input, call) =>
          service.poll(await authenticate(input.auth), input, call.signal),
        cancel: async (input) => ({
          isCancelled: service.cancel(await authenticate(input.auth), input.streamId),
        }),
        status: () => service.status(),
        unload: async () => ({ isUnloaded: await service.unload() }),
      }),
    ],
    async stop() {
      await service.stop();
      await Deno.remove(`${ctx.home}/${CLI_TOKEN_FILE}`).catch(() => undefined);
    },
  };
});
