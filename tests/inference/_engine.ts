/**
 * Test harness of the engine host: a real EngineHost over a real ServiceRunner in a temp
 * state dir, RPC clients on real ports, model files written per test.
 * @module
 */
import { createHash } from "node:crypto";
import { engineApi, type StreamEvent } from "../../runtime/kit/engine_api.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import { RpcClient } from "../../runtime/kit/rpc.ts";
import { type EngineGrant, EngineHost } from "../../runtime/engine/host.ts";
import { LLAMA_SYSTEM_LIBRARIES } from "../../runtime/engine/profile.ts";
import { ServiceRunner } from "../../runtime/sandbox/service.ts";
import { PROJECT_ROOT } from "../_system.ts";

/** Load options of a small context. */
export const LOAD = { contextSize: 512, threads: 1, batchSize: 512, memoryBudgetMb: 1024 };
/** Greedy, 16 tokens. */
export const GREEDY = { maxTokens: 16, temperature: 0, topP: 1, topK: 40, stop: [] };

/** What a test gets. */
export interface Harness {
  home: string;
  host: EngineHost;
  events: { type: string; data: Record<string, unknown> }[];
  client(caller?: string, grant?: EngineGrant | null): RpcClient<typeof engineApi>;
  /** Writes a model under `models/` and returns its path and size. */
  model(name: string, bytes: Uint8Array): Promise<{ path: string; size: number; sha256: string }>;
}

/** Runs `fn` with a fresh engine host; stops every engine after. */
export async function withHost(
  fn: (h: Harness) => Promise<void>,
  options: { projectRoot?: string } = {},
): Promise<void> {
  const home = await Deno.realPath(await Deno.makeTempDir({ prefix: "secai-engine-" }));
  await Deno.mkdir(`${home}/models`);
  await Deno.mkdir(`${home}/elsewhere`);
  const events: Harness["events"] = [];
  const host = new EngineHost({
    home,
    projectRoot: options.projectRoot ?? PROJECT_ROOT,
    services: new ServiceRunner({
      home,
      codeRoots: [PROJECT_ROOT],
      configPath: `${PROJECT_ROOT}/deno.json`,
      libraries: [...LLAMA_SYSTEM_LIBRARIES],
    }),
    emit: (type, data) => events.push({ type, data }),
  });
  const servers: { close(): void }[] = [];
  const clients: RpcClient<typeof engineApi>[] = [];
  const grant: EngineGrant = {
    module: `${PROJECT_ROOT}/workers/inference/jobs/engine.ts`,
    models: [`${home}/models`],
    maxEngines: 1,
  };
  try {
    await fn({
      home,
      host,
      events,
      client(caller = "inference", g: EngineGrant | null = grant) {
        const channel = new MessageChannel();
        servers.push(host.serve({ name: caller, grant: g }, channel.port2));
        const client = new RpcClient(engineApi, channel.port1, { peer: "engine" });
        clients.push(client);
        return client;
      },
      async model(name, bytes) {
        const path = `${home}/${name}`;
        await Deno.writeFile(path, bytes);
        const sha256 = createHash("sha256").update(bytes).digest("hex");
        return { path, size: bytes.length, sha256 };
      },
    });
  } finally {
    for (const c of clients) c.close();
    for (const s of servers) s.close();
    await host.stop();
    await Deno.remove(home, { recursive: true });
  }
}

/** Polls a stream to its end. */
export async function drain(
  client: RpcClient<typeof engineApi>,
  streamId: string,
  onEvent: (e: StreamEvent) => Promise<void> | void = () => {},
): Promise<StreamEvent[]> {
  const all: StreamEvent[] = [];
  let after = -1;
  for (;;) {
    const page = await client.call("poll", { streamId, after, waitMs: 5000 }, {
      deadlineMs: 10_000,
    });
    for (const e of page.events) {
      after = e.seq;
      all.push(e);
      await onEvent(e);
    }
    if (page.isDone) return all;
  }
}

/** Matches an RpcError by code. */
export function isCode(code: string): (e: unknown) => boolean {
  return (e: unknown) => e instanceof RpcError && e.code === code;
}
