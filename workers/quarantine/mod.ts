/// <reference lib="deno.worker" />
/**
 * Quarantine control worker (spec 13 §1–§5): takes uploads and inbox items, runs each
 * artifact through the seven stages (parsers of the file only in sandboxed jobs), persists
 * every stage in SQLite so a restart resumes, streams progress as events and asks the
 * registry to promote what passed.
 *
 * Permissions: read/write `quarantine/` and `promotion-staging/` under the state dir; no
 * network; ports: sandbox (jobs `format_gate`, `static_scan`, `diffusion_checks`),
 * registry-promote, policy (directory artifacts, which the registry does not store),
 * audit-append.
 * @example
 * ```ts
 * // Spawned by the supervisor from the manifest, never imported:
 * new Worker(new URL("./workers/quarantine/mod.ts", root), { type: "module", deno: { permissions } });
 * ```
 * @module
 */
import { RpcError } from "../../runtime/kit/errors.ts";
import { sandboxApi } from "../../runtime/kit/sandbox_api.ts";
import { engineApi } from "../../runtime/kit/engine_api.ts";
import { describeZodError } from "../../runtime/kit/validate.ts";
import { runControl, serve } from "../../runtime/kit/worker.ts";
import { auditAppendApi } from "../audit/api.ts";
import { policyApi } from "../policy/api.ts";
import { registryPromoteApi } from "../registry/api.ts";
import { type ArtifactSignature, quarantineApi, QuarantineConfigSchema } from "./api.ts";
import {
  claim,
  claimDirectory,
  INCOMING_DIR,
  pollInbox,
  randomHex,
  removeSidecars,
  removeStaleUploads,
  Uploads,
} from "./inbox.ts";
import { Pipeline, PROCESSING_DIR, STAGING_DIR } from "./pipeline.ts";
import { JobStore } from "./store.ts";

/**
 * Removes artifacts no job owns (a crash between a claim or a move and its record): a file
 * nobody tracks would never be scanned, promoted or deleted.
 */
async function removeOrphans(home: string, store: JobStore): Promise<void> {
  for (
    const [dir, owns] of [
      [
        PROCESSING_DIR,
        (name: string, artifact: string) => artifact.startsWith(`${PROCESSING_DIR}/${name}/`),
      ],
      [STAGING_DIR, (name: string, artifact: string) => artifact === `${STAGING_DIR}/${name}`],
    ] as const
  ) {
    for await (const entry of Deno.readDir(`${home}/${dir}`)) {
      const id = entry.name.split(".")[0] ?? "";
      const artifact = /^q[0-9a-f]{24}$/.test(id) ? store.get(id)?.artifact ?? null : null;
      if (artifact === null || !owns(entry.name, artifact)) {
        await Deno.remove(`${home}/${dir}/${entry.name}`, { recursive: true });
      }
    }
  }
}

runControl(async (ctx) => {
  const parsed = QuarantineConfigSchema.safeParse(ctx.config);
  if (!parsed.success) {
    throw new RpcError(
      "INVALID_CONFIG",
      `Invalid quarantine config ${describeZodError(parsed.error)}`,
    );
  }
  const config = parsed.data;
  for (const dir of ["quarantine", INCOMING_DIR, PROCESSING_DIR, STAGING_DIR]) {
    await Deno.mkdir(`${ctx.home}/${dir}`, { recursive: true, mode: 0o700 });
  }
  await removeStaleUploads(ctx.home);
  const store = JobStore.open(`${ctx.home}/quarantine/jobs.db`);
  await removeOrphans(ctx.home, store);
  const uploads = new Uploads(ctx.home, { maxBytes: config.maxArtifactBytes });
  const stop = new AbortController();
  const pipeline = new Pipeline({
    home: ctx.home,
    store,
    config,
    sandbox: () => ctx.client(sandboxApi),
    engine: () => ctx.client(engineApi),
    registry: () => ctx.client(registryPromoteApi),
    policy: () => ctx.client(policyApi),
    audit: () => ctx.client(auditAppendApi),
    emit: ctx.emit,
    signal: stop.signal,
  });

  async function admit(
    from: string,
    item: {
      filename: string;
      size: number;
      source: string | null;
      signature: ArtifactSignature | null;
      ticket?: string | null;
      isDirectory: boolean;
    },
    actor: string,
  ) {
    const id = `q${randomHex(12)}`;
    let artifact: string;
    let size = item.size;
    if (item.isDirectory) {
      ({ rel: artifact, size } = await claimDirectory(ctx.home, from, { jobId: id }));
    } else {
      artifact = await claim(ctx.home, from, { jobId: id, filename: item.filename });
    }
    const job = store.create({
      id,
      filename: item.filename,
      source: item.source,
      size,
      artifact,
      signature: item.signature,
      ticket: item.ticket ?? null,
    });
    ctx.emit("quarantine.job", { jobId: id, state: "queued", filename: item.filename });
    await ctx.client(auditAppendApi).call("append", {
      type: "quarantine.submitted",
      actor,
      subject: id,
      evidence: { size, signed: item.signature !== null, directory: item.isDirectory },
      data: { filename: item.filename, source: item.source ?? "local-import" },
    }).catch((error: unknown) =>
      ctx.emit("quarantine.audit_failed", {
        type: "quarantine.submitted",
        subject: id,
        code: error instanceof RpcError ? error.code : "UNKNOWN",
      })
    );
    pipeline.submit(id);
    return job;
  }

  // The inbox: items dropped into quarantine/incoming by importers, one claimed at a time.
  const seen = new Map<string, string>();
  let polling = false;
  const poll = async () => {
    if (polling || stop.signal.aborted) return;
    polling = true;
    try {
      uploads.sweep();
      for (const item of await pollInbox(ctx.home, seen)) {
        await admit(item.path, {
          filename: item.name,
          size: item.size,
          source: item.source,
          signature: item.signature,
          ticket: item.ticket,
          isDirectory: item.isDirectory,
        }, "inbox");
        await removeSidecars(ctx.home, item.name);
      }
    } catch (error) {
      ctx.emit("quarantine.inbox_error", {
        error: error instanceof Error ? error.message.slice(0, 500) : String(error),
      });
    } finally {
      polling = false;
    }
  };
  const timer = setInterval(poll, config.inboxPollMs);

  const resumed = pipeline.resume();
  if (resumed.length > 0) ctx.emit("quarantine.resuming", { jobs: resumed.length });

  return {
    serves: [
      serve(quarantineApi, {
        uploadBegin: (input) => uploads.begin(input),
        uploadEntry: async (input) => ({ entries: await uploads.entry(input) }),
        uploadChunk: async (input) => ({ received: await uploads.chunk(input) }),
        uploadFinish: async (input, call) => {
          const done = await uploads.finish(input.uploadId);
          try {
            return await admit(done.path, {
              filename: done.filename,
              size: done.size,
              source: null,
              signature: done.signature,
              isDirectory: done.isDirectory,
            }, call.caller);
          } catch (error) {
            await Deno.remove(done.path, { recursive: true }).catch(() => undefined);
            throw error;
          }
        },
        uploadAbort: async (input) => {
          await uploads.abort(input.uploadId);
          return {};
        },
        list: (input) => ({ jobs: store.list(input) }),
        get: (input) => store.view(input.id),
        cancel: (input, call) => pipeline.cancel(input.id, call.caller),
        promote: (input, call) => pipeline.approve(input.id, call.caller),
      }),
    ],
    async stop() {
      clearInterval(timer);
      stop.abort();
      await pipeline.idle();
      await uploads.closeAll();
      store.close();
    },
  };
});
