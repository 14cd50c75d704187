/**
 * `secai import` and `secai models`: models through the quarantine into the registry.
 *
 * - `import FILE|DIR [--signature SIG] [--detach] [--json] [--home DIR]` runs the whole pipeline on a local
 *   file, or on a diffusion model directory (`cli_import_dir.ts`; scanned, never promoted).
 *   With SecAI Runtime running on the state dir, the file is dropped into the quarantine's
 *   inbox (`quarantine/incoming/`, the importer's path of spec 13 §2) with a ticket sidecar,
 *   and the job is followed over HTTP with the read-only CLI token. Without a running
 *   instance, the command starts the audit, policy, registry and quarantine controls in this
 *   process (holding the instance lock), streams the file to the quarantine over RPC, follows
 *   the job and stops them again.
 *   `import URL` is refused: downloading needs egress through the airlock, which is not built.
 * - `models [--all] [--json] [--home DIR]` lists the registry; `models revoke ID --reason
 *   TEXT` revokes a model (only while the runtime is stopped: a running instance takes
 *   writes from a signed-in dashboard session, and the CLI token may only read).
 *
 * - `convert IN OUT [--json] [--home DIR] [--no-import]` converts a checkpoint
 *   (`cli_convert.ts`) and, when the conversion succeeded, imports OUT as above (issue #6:
 *   the converted file goes through the quarantine like any other).
 *
 * Exit codes: 0 promoted / listed / revoked, 1 rejected, denied, awaiting approval or failed,
 * 2 usage error.
 * @module
 */
import { parseArgs, UsageError } from "./cli_args.ts";
import { acquireInstanceLock } from "./instance_lock.ts";
import { convertCommand } from "./cli_convert.ts";
import {
  copyDirectory,
  DirectoryImportError,
  type DirectoryPlan,
  planDirectoryImport,
  sendChunks,
  uploadDirectory,
} from "./cli_import_dir.ts";
import { prepareHome, resolveHome } from "./home.ts";
import { loadConfig } from "./config.ts";
import { Supervisor } from "./supervisor.ts";
import { DEFAULT_CONTROLS } from "./manifest.ts";
import { JobRunner } from "./sandbox/mod.ts";
import { print, printError } from "./log.ts";
import { writeFileAtomic } from "./kit/fs.ts";
import type { RpcClient } from "./kit/rpc.ts";
import { VERSION } from "./version.ts";
import {
  ArtifactNameSchema,
  type ArtifactSignature,
  type Job,
  type JobSummary,
  MAX_SIGNATURE_BUNDLE_BYTES,
  parseSignatureText,
  quarantineApi,
} from "../workers/quarantine/api.ts";
import { type Model, registryApi } from "../workers/registry/api.ts";

const PROJECT_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** Controls an import needs; the subset is closed under `uses`. */
const IMPORT_CONTROLS: readonly string[] = ["audit", "policy", "registry", "quarantine"];
/** States in which a job stops on its own. */
const SETTLED: ReadonlySet<string> = new Set([
  "promoted",
  "rejected",
  "cancelled",
  "awaiting_approval",
  "promotion_failed",
]);
/** Time for the running instance's inbox poll to claim the file. */
const CLAIM_TIMEOUT_MS = 60_000;
const POLL_MS = 250;

const USAGE = `Usage:
  secai import FILE|DIR [--signature SIG] [--detach] [--json] [--home DIR]
  secai convert IN.pt OUT.safetensors [--json] [--home DIR] [--no-import]
  secai models [--all] [--json] [--home DIR]
  secai models revoke ID --reason TEXT [--json] [--home DIR]`;

/** A running instance's HTTP address and the CLI token, or null when none answers. */
interface Running {
  base: string;
  token: string | null;
}

/**
 * `secai import FILE|URL`.
 * @param argv arguments after `import`
 * @returns the exit code
 */
export function importCommand(argv: string[]): Promise<number> {
  return reportingLocalFailures(() => importModel(argv));
}

async function importModel(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv, {
    home: "string",
    json: "boolean",
    detach: "boolean",
    signature: "string",
  });
  if (positional.length !== 1) throw new UsageError(`Expected one FILE or URL\n${USAGE}`);
  const target = positional[0] as string;
  const isJson = flags.json === true;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    printError(
      `secai: cannot import "${target.slice(0, 200)}": downloading a model needs network egress ` +
        "through the airlock, which SecAI Runtime does not have yet. Download the file yourself, " +
        "then run: secai import FILE",
    );
    return 1;
  }
  const path = target.startsWith("/") ? target : `${Deno.cwd()}/${target}`;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      printError(`secai: cannot import "${target}": no such file`);
      return 1;
    }
    throw error;
  }
  if (!info.isFile && !info.isDirectory) {
    printError(`secai: cannot import "${target}": not a regular file or directory`);
    return 1;
  }
  let plan: DirectoryPlan | null = null;
  if (info.isDirectory) {
    try {
      plan = await planDirectoryImport(await Deno.realPath(path));
    } catch (error) {
      if (!(error instanceof DirectoryImportError)) throw error;
      printError(`secai: cannot import "${target}": ${error.message}`);
      return 1;
    }
  }
  const name = path.slice(path.lastIndexOf("/") + 1);
  if (!ArtifactNameSchema.safeParse(name).success) {
    printError(
      `secai: cannot import "${name}": rename it to a bare name of letters, digits and . _ + - ( ) [ ]`,
    );
    return 1;
  }
  let signature: ArtifactSignature | null = null;
  if (typeof flags.signature === "string" && plan !== null) {
    printError("secai: --signature is for a single file; signed directories are not supported yet");
    return 1;
  }
  if (typeof flags.signature === "string") {
    const text = await readSignatureFile(flags.signature);
    const parsed = typeof text === "string" ? parseSignatureText(text) : "it cannot be read";
    if (typeof parsed === "string") {
      printError(`secai: cannot use the signature "${flags.signature}": ${parsed}`);
      return 1;
    }
    signature = parsed;
  }
  const home = await prepareHome(resolveHome(flags.home as string | undefined, Deno.env));
  const running = await findRunning(home);
  if (running !== null) {
    return await importIntoRunning(running, {
      home,
      path,
      plan,
      name,
      signature,
      isJson,
      detach: flags.detach === true,
    });
  }
  return await withLocalControls(home, IMPORT_CONTROLS, async (supervisor) => {
    const quarantine = supervisor.client(quarantineApi);
    const id = plan === null
      ? await uploadFile(quarantine, { path, name, size: info.size, signature })
      : await uploadDirectory(quarantine, plan, name);
    progressLine(isJson, `Submitted "${name}" as quarantine job ${id}`);
    if (flags.detach === true) {
      printError("secai: --detach needs a running instance; following the job instead");
    }
    let job = await quarantine.call("get", { id });
    const shown = new Map<string, string>();
    while (!SETTLED.has(job.state)) {
      showStages(job, shown, isJson);
      await sleep(POLL_MS);
      job = await quarantine.call("get", { id });
    }
    showStages(job, shown, isJson);
    return report(job, isJson);
  });
}

/**
 * `secai convert IN OUT`: converts, then sends OUT through the quarantine.
 * @param argv arguments after `convert`
 * @returns the conversion's exit code when it failed, else the import's
 */
export async function convertAndImportCommand(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv, {
    json: "boolean",
    home: "string",
    "no-import": "boolean",
  });
  const json = flags.json === true ? ["--json"] : [];
  const converted = await convertCommand([...positional, ...json]);
  if (converted !== 0 || flags["no-import"] === true) return converted;
  const home = typeof flags.home === "string" ? ["--home", flags.home] : [];
  return await importCommand([positional[1] as string, ...home, ...json]);
}

/**
 * `secai models [revoke ID --reason TEXT]`.
 * @param argv arguments after `models`
 * @returns the exit code
 */
export function modelsCommand(argv: string[]): Promise<number> {
  return reportingLocalFailures(() => models(argv));
}

async function models(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv, {
    home: "string",
    json: "boolean",
    all: "boolean",
    reason: "string",
  });
  const isJson = flags.json === true;
  const [sub, ...rest] = positional;
  if (sub !== undefined && sub !== "revoke") {
    throw new UsageError(`Unknown models command "${sub}"\n${USAGE}`);
  }
  if (sub === "revoke") {
    if (rest.length !== 1) throw new UsageError(`Expected one model ID\n${USAGE}`);
    if (typeof flags.reason !== "string") {
      throw new UsageError(`revoke needs --reason TEXT\n${USAGE}`);
    }
  } else if (rest.length > 0 || flags.reason !== undefined) {
    throw new UsageError(`Unexpected arguments\n${USAGE}`);
  }
  const home = await prepareHome(resolveHome(flags.home as string | undefined, Deno.env));
  if (sub === undefined) {
    const running = await findRunning(home);
    let models: Model[];
    if (running !== null) {
      models = (await getJson(running, `/api/v1/models?revoked=${flags.all === true}`) as {
        models: Model[];
      }).models;
    } else {
      models = await withLocalControls(
        home,
        ["audit", "policy", "registry"],
        async (supervisor) =>
          (await supervisor.client(registryApi).call("list", {
            includeRevoked: flags.all === true,
          }))
            .models,
      );
    }
    if (isJson) {
      print(JSON.stringify({ models }));
    } else if (models.length === 0) {
      print("No models in the registry");
    } else {
      for (const m of models) {
        print(
          `${m.id}  ${m.format.padEnd(11)} ${String(m.size).padStart(12)}  ${m.filename}${
            m.revokedAt ? `  REVOKED: ${m.revokedReason}` : ""
          }\n    sha256 ${m.sha256}  fs-verity ${m.fsverity}  ${m.provenance.status}${
            m.provenance.signer ? ` (${m.provenance.signer})` : ""
          }  promoted ${m.promotedAt}\n    ${tensorLine(m.tensorManifest)}`,
        );
      }
    }
    return 0;
  }
  {
    const reason = flags.reason as string;
    const id = rest[0] as string;
    if (await findRunning(home) !== null) {
      printError(
        "secai: SecAI Runtime is running: revoke from a signed-in dashboard session " +
          `(POST /api/v1/models/${id}/revoke), or stop it and run this again`,
      );
      return 1;
    }
    return await withLocalControls(home, ["audit", "policy", "registry"], async (supervisor) => {
      try {
        const model = await supervisor.client(registryApi).call("revoke", { id, reason });
        print(
          isJson ? JSON.stringify(model) : `Revoked ${model.id} (${model.filename}): ${reason}`,
        );
        return 0;
      } catch (error) {
        printError(
          `secai: cannot revoke "${id}": ${error instanceof Error ? error.message : error}`,
        );
        return 1;
      }
    });
  }
}

/** The tensor manifest line of `secai models`: fingerprint and tensor count, or why none. */
function tensorLine(ref: Model["tensorManifest"]): string {
  if (ref === null) return "tensors: no manifest (promoted before manifests were kept)";
  if (ref.status === "skipped") return `tensors: no manifest (${ref.reason ?? "skipped"})`;
  return `tensors ${ref.tensors ?? "?"}  fingerprint ${ref.fingerprint ?? "?"}`;
}

/** Runs a command; the in-process controls failing to start is exit 1 with the reason. */
async function reportingLocalFailures(run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof InstanceBusyError) return 1;
    if (error instanceof ControlsNotReadyError) {
      printError(`secai: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

/** The running instance on this state dir, if one answers. */
async function findRunning(home: string): Promise<Running | null> {
  let addr: { transport?: unknown; host?: unknown; port?: unknown };
  try {
    addr = JSON.parse(await Deno.readTextFile(`${home}/run/gateway.json`));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof SyntaxError) return null;
    throw error;
  }
  if (addr.transport !== "tcp" || typeof addr.port !== "number" || typeof addr.host !== "string") {
    return null;
  }
  const host = addr.host.includes(":") ? `[${addr.host}]` : addr.host;
  const base = `http://${host}:${addr.port}`;
  try {
    const res = await fetch(`${base}/api/v1/health`, { signal: AbortSignal.timeout(3000) });
    await res.body?.cancel();
    if (!res.ok) return null;
  } catch (error) {
    if (error instanceof TypeError || (error instanceof DOMException)) return null;
    throw error;
  }
  let token: string | null = null;
  try {
    token = (await Deno.readTextFile(`${home}/auth/cli-token`)).trim() || null;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return { base, token };
}

async function getJson(running: Running, path: string): Promise<unknown> {
  const res = await fetch(`${running.base}${path}`, {
    headers: running.token === null ? {} : { authorization: `Bearer ${running.token}` },
    signal: AbortSignal.timeout(10_000),
  });
  const body = await res.json();
  if (!res.ok) {
    const message = (body as { error?: { message?: string } }).error?.message ?? res.statusText;
    throw new CliHttpError(`${path}: ${res.status} ${message}`);
  }
  return body;
}

/** An answer of the running instance that the CLI cannot use. */
class CliHttpError extends Error {
  /** Always HTTP_ERROR. */
  readonly code = "HTTP_ERROR";
  constructor(message: string) {
    super(message);
    this.name = "CliHttpError";
  }
}

async function importIntoRunning(
  running: Running,
  o: {
    home: string;
    path: string;
    plan: DirectoryPlan | null;
    name: string;
    signature: ArtifactSignature | null;
    isJson: boolean;
    detach: boolean;
  },
): Promise<number> {
  const inbox = `${o.home}/quarantine/incoming`;
  try {
    await Deno.lstat(`${inbox}/${o.name}`);
    printError(`secai: an item named "${o.name}" is already waiting in the quarantine inbox`);
    return 1;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const ticket = randomHex(12);
  const partial = `${inbox}/.cli-${ticket}.partial`;
  // Hidden while copying (dot-files are never artifacts); the ticket marks it complete.
  if (o.plan === null) await Deno.copyFile(o.path, partial);
  else await copyDirectory(o.plan, partial);
  if (o.signature !== null) {
    await writeFileAtomic(`${inbox}/.${o.name}.sig.json`, JSON.stringify(o.signature));
  }
  await writeFileAtomic(`${inbox}/.${o.name}.ticket`, ticket);
  await Deno.rename(partial, `${inbox}/${o.name}`);
  progressLine(o.isJson, `Dropped "${o.name}" into the quarantine inbox (ticket ${ticket})`);
  try {
    const deadline = Date.now() + CLAIM_TIMEOUT_MS;
    let summary: JobSummary | undefined;
    while (summary === undefined) {
      const page = await getJson(running, `/api/v1/quarantine?ticket=${ticket}&limit=1`) as {
        jobs: JobSummary[];
      };
      summary = page.jobs[0];
      if (summary !== undefined) break;
      if (Date.now() > deadline) {
        printError("secai: the running instance did not claim the file within 60 s");
        return 1;
      }
      await sleep(POLL_MS);
    }
    progressLine(o.isJson, `Quarantine job ${summary.id}`);
    if (o.detach) {
      print(o.isJson ? JSON.stringify({ job: summary.id, state: summary.state }) : summary.id);
      return 0;
    }
    const shown = new Map<string, string>();
    let job = await getJson(running, `/api/v1/quarantine/${summary.id}`) as Job;
    while (!SETTLED.has(job.state)) {
      showStages(job, shown, o.isJson);
      await sleep(POLL_MS);
      job = await getJson(running, `/api/v1/quarantine/${summary.id}`) as Job;
    }
    showStages(job, shown, o.isJson);
    return report(job, o.isJson);
  } catch (error) {
    if (error instanceof CliHttpError) {
      printError(
        `secai: the file is in the inbox, but its job cannot be followed (${error.message})` +
          (running.token === null ? "; no CLI token in auth/cli-token" : ""),
      );
      return 1;
    }
    throw error;
  }
}

/** Starts `names` from the shipped manifest in this process, runs `fn`, stops them. */
async function withLocalControls<T>(
  home: string,
  names: readonly string[],
  fn: (supervisor: Supervisor) => Promise<T>,
): Promise<T> {
  const lock = await acquireInstanceLock(home);
  if (lock === null) {
    printError(
      `secai: another instance is running on state dir "${home}" (see run/supervisor.pid)`,
    );
    throw new InstanceBusyError();
  }
  try {
    const { config } = await loadConfig(home);
    const denoPath = Deno.execPath();
    const supervisor = new Supervisor({
      home,
      projectRoot: PROJECT_ROOT,
      config,
      version: VERSION,
      controls: DEFAULT_CONTROLS.filter((c) => names.includes(c.name)),
      jobRunner: new JobRunner({
        home,
        codeRoots: [PROJECT_ROOT],
        configPath: `${PROJECT_ROOT}/deno.json`,
        denoPath,
        libraries: ["libyara.so.9"],
      }),
    });
    try {
      if (!await supervisor.start({ timeoutMs: 30_000 })) {
        const down = supervisor.status().filter((c) => c.state !== "ready")
          .map((c) => `${c.name}: ${c.state}${c.lastError ? ` (${c.lastError})` : ""}`);
        throw new ControlsNotReadyError(`Controls not ready: ${down.join("; ")}`);
      }
      return await fn(supervisor);
    } finally {
      await supervisor.stop();
    }
  } finally {
    await lock.release();
  }
}

/** Another process holds the instance lock. */
class InstanceBusyError extends Error {
  /** Always INSTANCE_BUSY. */
  readonly code = "INSTANCE_BUSY";
  constructor() {
    super("Another instance holds the state dir");
    this.name = "InstanceBusyError";
  }
}

/** The in-process controls did not start. */
class ControlsNotReadyError extends Error {
  /** Always CONTROLS_NOT_READY. */
  readonly code = "CONTROLS_NOT_READY";
  constructor(message: string) {
    super(message);
    this.name = "ControlsNotReadyError";
  }
}

/** A signature file's text, or null when it is missing, too large or not UTF-8. */
async function readSignatureFile(path: string): Promise<string | null> {
  try {
    const info = await Deno.stat(path);
    if (!info.isFile || info.size > MAX_SIGNATURE_BUNDLE_BYTES) return null;
    return new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof TypeError) return null;
    throw error;
  }
}

/** Streams a file to the quarantine in ≤ 1 MiB chunks; returns the job id. */
async function uploadFile(
  quarantine: RpcClient<typeof quarantineApi>,
  o: { path: string; name: string; size: number; signature: ArtifactSignature | null },
): Promise<string> {
  const { path, name, size } = o;
  const { uploadId } = await quarantine.call("uploadBegin", {
    filename: name,
    size,
    ...(o.signature ? { signature: o.signature } : {}),
  });
  const file = await Deno.open(path, { read: true });
  try {
    await sendChunks(quarantine, { uploadId, file });
    return (await quarantine.call("uploadFinish", { uploadId })).id;
  } catch (error) {
    await quarantine.call("uploadAbort", { uploadId }).catch(() => undefined);
    throw error;
  } finally {
    file.close();
  }
}

function showStages(job: Job, shown: Map<string, string>, isJson: boolean): void {
  for (const stage of job.stages) {
    if (stage.status === "pending") continue;
    const key = `${stage.status}:${stage.attempts}`;
    if (shown.get(stage.stage) === key) continue;
    shown.set(stage.stage, key);
    const ms = stage.timing.ms === null ? "" : ` (${Math.round(stage.timing.ms)} ms)`;
    progressLine(
      isJson,
      `  ${stage.stage.padEnd(16)} ${stage.status.padEnd(8)}${ms}${
        stage.note ? `  ${stage.note}` : ""
      }`,
    );
  }
}

function progressLine(isJson: boolean, text: string): void {
  // Progress goes to stderr, so stdout carries only the result (one JSON line with --json).
  if (!isJson) printError(text);
}

function report(job: Job, isJson: boolean): number {
  const findings = job.stages.flatMap((s) =>
    s.findings.map((f) => ({ pipelineStage: s.stage, ...f }))
  );
  if (isJson) {
    print(JSON.stringify({
      job: job.id,
      file: job.filename,
      state: job.state,
      stage: job.stage,
      format: job.format,
      sha256: job.sha256,
      fsverity: job.fsverity,
      modelId: job.modelId,
      decision: job.decision,
      error: job.error,
      findings,
    }));
  } else if (job.state === "promoted") {
    print(
      `Promoted "${job.filename}" as model ${job.modelId}\n  sha256 ${job.sha256}\n  fs-verity ${job.fsverity}`,
    );
  } else {
    print(
      `Not promoted: "${job.filename}" is ${job.state}${job.stage ? ` at ${job.stage}` : ""}${
        job.error ? `: ${job.error.code} — ${job.error.message}` : ""
      }`,
    );
    for (const f of findings.filter((f) => f.severity !== "info").slice(0, 20)) {
      const where = [
        f.callable ? `callable ${f.callable}` : null,
        f.opcode ? `opcode ${f.opcode}` : null,
        f.member ? `member ${f.member}` : null,
        f.offset !== undefined ? `offset ${f.offset}` : null,
      ].filter(Boolean).join(", ");
      print(`  [${f.severity}] ${f.rule}${where ? ` (${where})` : ""}: ${f.message}`);
    }
  }
  return job.state === "promoted" ? 0 : 1;
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
