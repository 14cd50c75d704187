/**
 * Helpers of the inference tests: the whole shipped system (every control of the manifest,
 * the real gateway) with a real sandboxed job runner and the real engine host, a tiny random
 * llama GGUF promoted through the real quarantine into the registry, client tokens, and
 * small HTTP helpers for the OpenAI-compatible API.
 * @module
 */
import { createToken } from "../../runtime/kit/api_tokens.ts";
import { engineHostFactory } from "../../runtime/engine/mod.ts";
import { JobRunner } from "../../runtime/sandbox/mod.ts";
import { quarantineApi } from "../../workers/quarantine/api.ts";
import { ConfigSchema } from "../../runtime/config.ts";
import { prepareHome } from "../../runtime/home.ts";
import { Supervisor } from "../../runtime/supervisor.ts";
import { PROJECT_ROOT } from "../_system.ts";
import { settle, upload } from "../quarantine/_system.ts";
import { TINY_CHAT_TEMPLATE, tinyGguf, type TinyGgufOptions } from "../fixtures/llm/tiny_gguf.ts";

/** A running system and its gateway origin. */
export interface InferenceSystem {
  supervisor: Supervisor;
  home: string;
  base: string;
  stop(): Promise<void>;
}

/** Options of {@link startInferenceSystem}. */
export interface InferenceSystemOptions {
  /** The `inference` config section. */
  inference?: Record<string, unknown>;
  /** No engine host: the engine port answers ENGINE_UNAVAILABLE. */
  withoutEngineHost?: boolean;
  /** Reuse this state dir (kept on stop) instead of a fresh temp dir. */
  home?: string;
}

/** Starts the shipped system on a temp state dir, wired as `secai start` wires it. */
export async function startInferenceSystem(
  options: InferenceSystemOptions = {},
): Promise<InferenceSystem> {
  const home = await prepareHome(
    options.home ?? await Deno.makeTempDir({ prefix: "secai-inference-" }),
  );
  const config = ConfigSchema.parse({
    gateway: { port: 0 },
    supervisor: { heartbeatMs: 1000, shutdownTimeoutMs: 8000 },
    quarantine: { inboxPollMs: 200 },
    inference: { idleUnloadMinutes: 0, ...options.inference },
  });
  const supervisor = new Supervisor({
    home,
    projectRoot: PROJECT_ROOT,
    config,
    version: "test",
    jobRunner: new JobRunner({
      home,
      codeRoots: [PROJECT_ROOT],
      configPath: `${PROJECT_ROOT}/deno.json`,
      libraries: ["libyara.so.9"],
    }),
    ...(options.withoutEngineHost
      ? {}
      : { engineHost: engineHostFactory({ home, projectRoot: PROJECT_ROOT }) }),
  });
  const stop = async () => {
    await supervisor.stop();
    if (options.home === undefined) await Deno.remove(home, { recursive: true });
  };
  if (!await supervisor.start({ timeoutMs: 30_000 })) {
    const status = supervisor.status().map((c) => `${c.name}=${c.state} ${c.lastError ?? ""}`);
    await stop();
    throw new Error(`System not ready: ${status.join("; ")}`);
  }
  const addr = await supervisor.gatewayAddress();
  if (addr.transport !== "tcp") throw new Error("Expected a TCP gateway");
  return { supervisor, home, base: `http://${addr.host}:${addr.port}`, stop };
}

/** The tiny model's bytes with its chat template (a few hundred KB). */
export function tinyModel(options: TinyGgufOptions = {}): Uint8Array {
  return tinyGguf({ chatTemplate: TINY_CHAT_TEMPLATE, ...options });
}

/**
 * Promotes a model through the real quarantine (upload, seven stages, registry).
 * @returns the registry id
 */
export async function promote(
  system: { supervisor: Supervisor },
  filename: string,
  bytes: Uint8Array,
): Promise<string> {
  const q = system.supervisor.client(quarantineApi);
  const job = await settle(q, await upload(q, filename, bytes), 120_000);
  if (job.state !== "promoted" || job.modelId === null) {
    throw new Error(`Not promoted: ${job.state} ${JSON.stringify(job.error)}`);
  }
  return job.modelId;
}

/** Creates a client token in the state dir, as `secai tokens create` does. */
export async function clientToken(home: string, name: string): Promise<string> {
  return (await createToken(`${home}/inference/tokens.json`, name)).token;
}

/** JSON POST with a bearer token. */
export function postJson(
  url: string,
  token: string | null,
  body: unknown,
  init: { signal?: AbortSignal } = {},
): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify(body),
    ...(init.signal ? { signal: init.signal } : {}),
  });
}

/** The `data:` payloads of a server-sent event stream, read to its end. */
export async function sseData(response: Response): Promise<string[]> {
  const text = await response.text();
  return text.split("\n\n").map((block) =>
    block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n")
  ).filter((d) => d.length > 0);
}
