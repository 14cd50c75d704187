/**
 * Helpers of the quarantine and registry tests: a real supervisor running the shipped
 * audit, policy, registry and quarantine controls (their manifest entries, unchanged) with a
 * real sandboxed job runner, and writers of real-shaped model files.
 * @module
 */
import { ok } from "node:assert/strict";
import { type ControlSpecInput, DEFAULT_CONTROLS } from "../../runtime/manifest.ts";
import { JobRunner } from "../../runtime/sandbox/mod.ts";
import { Supervisor } from "../../runtime/supervisor.ts";
import { ConfigSchema } from "../../runtime/config.ts";
import { prepareHome } from "../../runtime/home.ts";
import { cliToken } from "../_auth.ts";
import { PROJECT_ROOT } from "../_system.ts";
import { type Job, quarantineApi } from "../../workers/quarantine/api.ts";
import type { RpcClient } from "../../runtime/kit/rpc.ts";
import { authApi } from "../../workers/auth/api.ts";
import { csrfTokenFor } from "../../workers/gateway/auth.ts";

/** The controls the pipeline needs, exactly as shipped. */
export const PIPELINE_CONTROLS: readonly string[] = ["audit", "policy", "registry", "quarantine"];

/** Shipped manifest entries of `names`, with optional per-control overrides. */
export function shippedControls(
  names: readonly string[] = PIPELINE_CONTROLS,
  overrides: Record<string, Partial<ControlSpecInput>> = {},
): ControlSpecInput[] {
  return DEFAULT_CONTROLS.filter((c) => names.includes(c.name)).map((c) => ({
    ...c,
    ...(overrides[c.name] ?? {}),
  }));
}

/** Options of {@link startPipeline}. */
export interface PipelineSystemOptions {
  /** Per-control config sections (`quarantine`, `registry`). */
  sections?: Record<string, unknown>;
  /** No job runner: the sandbox port answers UNAVAILABLE. */
  withoutSandbox?: boolean;
  /** Per-control manifest overrides (restart policy, …). */
  overrides?: Record<string, Partial<ControlSpecInput>>;
  controls?: ControlSpecInput[];
  /** Reuse a state dir (a restart); default a fresh temp dir. */
  home?: string;
  /** Runs on the prepared state dir before the supervisor starts (policy overrides, …). */
  prepare?: (home: string) => Promise<void>;
  /** Keep the state dir when stopping (to restart on it). */
  keepHome?: boolean;
}

/** A running pipeline system. */
export interface PipelineSystem {
  supervisor: Supervisor;
  home: string;
  stop(): Promise<void>;
}

/** Starts audit, policy, registry and quarantine with a real sandboxed job runner. */
export async function startPipeline(options: PipelineSystemOptions = {}): Promise<PipelineSystem> {
  const home = await prepareHome(
    options.home ?? await Deno.makeTempDir({ prefix: "secai-quarantine-" }),
  );
  await options.prepare?.(home);
  const config = ConfigSchema.parse({
    gateway: { port: 0 },
    // The production heartbeat: large test buffers and a busy CI machine must not look like hangs.
    supervisor: { heartbeatMs: 1000, shutdownTimeoutMs: 5000 },
    quarantine: { inboxPollMs: 200, ...(options.sections?.quarantine as object | undefined) },
    ...(options.sections?.registry ? { registry: options.sections.registry } : {}),
  });
  const supervisor = new Supervisor({
    home,
    projectRoot: PROJECT_ROOT,
    config,
    version: "test",
    controls: options.controls ?? shippedControls(PIPELINE_CONTROLS, options.overrides),
    ...(options.withoutSandbox ? {} : {
      jobRunner: new JobRunner({
        home,
        codeRoots: [PROJECT_ROOT],
        configPath: `${PROJECT_ROOT}/deno.json`,
        // As `secai start` configures it: the static scan's job loads libyara.
        libraries: ["libyara.so.9"],
      }),
    }),
  });
  const isReady = await supervisor.start({ timeoutMs: 30_000 });
  const stop = async () => {
    await supervisor.stop();
    if (!options.keepHome) await Deno.remove(home, { recursive: true });
  };
  if (!isReady) {
    const status = supervisor.status().map((c) => `${c.name}=${c.state} ${c.lastError ?? ""}`);
    await stop();
    throw new Error(`System not ready: ${status.join("; ")}`);
  }
  return { supervisor, home, stop };
}

/** The gateway of a pipeline system and a signed-in dashboard session on it. */
export interface SignedIn {
  /** The gateway's origin. */
  base: string;
  /** Headers of a signed-in, same-origin dashboard request. */
  session: Record<string, string>;
  /** The CLI's read-only token. */
  cliToken: string;
}

/**
 * Signs in through the first-run setup (the auth contract, the setup code of the state dir)
 * on a pipeline system that runs the gateway and auth controls.
 * @param sys the system
 * @param userAgent the client's user agent, as the session records it
 */
export async function signIn(sys: PipelineSystem, userAgent: string): Promise<SignedIn> {
  const addr = await sys.supervisor.gatewayAddress();
  ok(addr.transport === "tcp");
  const base = `http://127.0.0.1:${addr.port}`;
  const setupCode = (await Deno.readTextFile(`${sys.home}/auth/setup-code`)).trim();
  const outcome = await sys.supervisor.client(authApi).call("setup", {
    setupCode,
    passphrase: "quarantine tests pass phrase 42",
    device: null,
    client: { address: "127.0.0.1", userAgent },
  });
  ok(outcome.ok, JSON.stringify(outcome));
  const token = outcome.grant.session.token;
  const csrf = csrfTokenFor(token);
  return {
    base,
    session: {
      cookie: `secai_session=${token}; secai_csrf=${csrf}`,
      "x-csrf-token": csrf,
      origin: base,
    },
    cliToken: await cliToken(sys.home),
  };
}

/** Uploads a file's bytes over the quarantine contract, as the gateway and the CLI do. */
export async function upload(
  client: RpcClient<typeof quarantineApi>,
  filename: string,
  bytes: Uint8Array,
  extra: {
    signature?: NonNullable<Parameters<typeof client.call<"uploadBegin">>[1]["signature"]>;
  } = {},
): Promise<string> {
  const { uploadId } = await client.call("uploadBegin", {
    filename,
    size: bytes.length,
    ...(extra.signature ? { signature: extra.signature } : {}),
  });
  for (let offset = 0; offset < bytes.length; offset += 1 << 20) {
    await client.call("uploadChunk", {
      uploadId,
      offset,
      data: bytes.subarray(offset, Math.min(bytes.length, offset + (1 << 20))),
    });
  }
  const job = await client.call("uploadFinish", { uploadId });
  return job.id;
}

const TERMINAL = new Set([
  "promoted",
  "rejected",
  "cancelled",
  "awaiting_approval",
  "promotion_failed",
]);

/** Waits until a job reaches a state where it stops on its own. */
export async function settle(
  client: RpcClient<typeof quarantineApi>,
  id: string,
  timeoutMs = 60_000,
): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await client.call("get", { id });
    if (TERMINAL.has(job.state)) return job;
    if (Date.now() > deadline) throw new Error(`Job ${id} still ${job.state} at ${job.stage}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** safetensors of F32 tensors with deterministic, weight-like values. */
export function safetensorsFile(
  tensors: Record<string, number[]>,
  metadata: Record<string, string> = { format: "pt" },
): Uint8Array<ArrayBuffer> {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, shape] of Object.entries(tensors)) {
    const count = shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + count * 4] };
    offset += count * 4;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += " ";
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  const data = new DataView(out.buffer, 8 + headerBytes.length);
  let seed = 12345;
  for (let i = 0; i < offset / 4; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    data.setFloat32(i * 4, ((seed / 2 ** 32) - 0.5) * 0.08, true);
  }
  return out;
}

/** A benign, real-shaped two-layer checkpoint (~1 MiB). */
export function benignSafetensors(): Uint8Array<ArrayBuffer> {
  return safetensorsFile({
    "model.embed_tokens.weight": [256, 256],
    "model.layers.0.self_attn.q_proj.weight": [256, 256],
    "model.layers.0.mlp.up_proj.weight": [256, 256],
    "model.norm.weight": [256],
  });
}

/**
 * Writes a large benign safetensors file (one F32 tensor of small weight-like values, a
 * 1 MiB block repeated) without holding it in memory.
 * @param path where to write
 * @param mib size of the tensor data in MiB
 */
export async function writeBigSafetensors(path: string, mib: number): Promise<void> {
  const count = mib * (1 << 18);
  let json = JSON.stringify({
    __metadata__: { format: "pt" },
    "model.big.weight": { dtype: "F32", shape: [count], data_offsets: [0, count * 4] },
  });
  while ((8 + json.length) % 8 !== 0) json += " ";
  const header = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8 + header.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.length), true);
  prefix.set(header, 8);
  const block = new Uint8Array(1 << 20);
  const view = new DataView(block.buffer);
  let seed = 99;
  for (let i = 0; i < block.length / 4; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    view.setFloat32(i * 4, ((seed / 2 ** 32) - 0.5) * 0.08, true);
  }
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    await writeAll(file, prefix);
    for (let i = 0; i < mib; i++) await writeAll(file, block);
  } finally {
    file.close();
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
}

/** Uploads a file from disk in 1 MiB chunks; returns the job id. */
export async function uploadPath(
  client: RpcClient<typeof quarantineApi>,
  filename: string,
  path: string,
): Promise<string> {
  const size = (await Deno.stat(path)).size;
  const { uploadId } = await client.call("uploadBegin", { filename, size });
  const file = await Deno.open(path, { read: true });
  try {
    const buffer = new Uint8Array(1 << 20);
    for (let offset = 0; offset < size;) {
      let filled = 0;
      while (filled < buffer.length) {
        const n = await file.read(buffer.subarray(filled));
        if (n === null) break;
        filled += n;
      }
      await client.call("uploadChunk", { uploadId, offset, data: buffer.subarray(0, filled) });
      offset += filled;
    }
  } finally {
    file.close();
  }
  return (await client.call("uploadFinish", { uploadId })).id;
}

/** Polls a job until `check` holds. */
export async function waitForJob(
  client: RpcClient<typeof quarantineApi>,
  id: string,
  check: (job: Job) => boolean,
  timeoutMs = 60_000,
): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await client.call("get", { id });
    if (check(job)) return job;
    if (Date.now() > deadline) {
      throw new Error(`Job ${id} never matched; now ${job.state} at ${job.stage}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
