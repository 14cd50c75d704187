/**
 * `secai` — the command line. Exit codes: 0 ok, 1 failure or denied, 2 usage error.
 * Run through the `./secai` launcher, which supplies the pinned Deno and the supervisor's
 * permissions.
 * @module
 */
import { parseArgs, parsePort, UsageError } from "./cli_args.ts";
import { VERSION } from "./version.ts";
import { prepareHome, resolveHome } from "./home.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { Supervisor } from "./supervisor.ts";
import { configureLog, log, print, printError } from "./log.ts";
import { ManifestError } from "./manifest.ts";
import { JobRunner } from "./sandbox/mod.ts";
import { engineHostFactory } from "./engine/mod.ts";
import { ensureIslandBundle } from "./bundle.ts";
import { controlsCommand } from "./cli_controls.ts";
import { acquireInstanceLock } from "./instance_lock.ts";
import { scanCommand } from "./cli_scan.ts";
import { convertAndImportCommand, importCommand, modelsCommand } from "./cli_models.ts";
import { policyCommand } from "./cli_policy.ts";
import { auditCommand } from "./cli_audit.ts";
import { chatCommand } from "./cli_chat.ts";
import { tokensCommand } from "./cli_tokens.ts";
import { auditAppendApi } from "../workers/audit/api.ts";
import { createHash } from "node:crypto";
import { loadEvidenceView } from "./evidence.ts";

const PROJECT_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

const USAGE = `SecAI Runtime ${VERSION} — local-first, air-gapped AI appliance

Usage: secai <command> [options]

Commands:
  start    Start the runtime (supervisor, controls, gateway) in the foreground
  status   Show the state of a running instance
  controls Show the evidence matrix: each control, its status and the tests proving it
  scan     Scan model files or diffusion directories in the sandbox (FILE|DIR... [--json])
  convert  Convert a PyTorch checkpoint to safetensors without running its pickle (IN OUT)
  import   Run a model file through the quarantine into the registry (secai import FILE|DIR)
  models   List the trusted registry; secai models revoke ID --reason TEXT
  policy   Evaluate, test, explain and what-if the policy (secai policy help)
  audit    Verify the audit log offline; heads, proofs, export (secai audit help)
  chat     Chat with a promoted model, streaming the answer (secai chat MODEL [MESSAGE])
  tokens   Client tokens of the /v1 inference API (secai tokens create NAME | list | revoke ID)
  version  Print the version
  help     Show this help

Options:
  --home DIR   State dir (env SECAI_HOME; default ~/.local/share/secai)
  --port N     Gateway port for this run (env SECAI_PORT; start only)
  --json       Structured output (status, version; JSON log lines for start)

Exit codes: 0 ok, 1 failure or not ready, 2 usage error`;

/** Runs one CLI invocation and returns its exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command = "help", ...rest] = argv;
  try {
    switch (command) {
      case "start":
        return await start(rest);
      case "status":
        return await status(rest);
      case "controls":
        return await controlsCommand(rest);
      case "scan":
        return await scanCommand(rest);
      case "convert":
        // Converts, then sends the result through the quarantine (cli_models.ts).
        return await convertAndImportCommand(rest);
      case "import":
        return await importCommand(rest);
      case "models":
        return await modelsCommand(rest);
      case "policy":
        return await policyCommand(rest);
      case "audit":
        return await auditCommand(rest);
      case "chat":
        return await chatCommand(rest);
      case "tokens":
        return await tokensCommand(rest);
      case "version": {
        const { flags } = parseArgs(rest, { json: "boolean" });
        print(flags.json ? JSON.stringify({ version: VERSION, deno: Deno.version.deno }) : VERSION);
        return 0;
      }
      case "help":
      case "--help":
      case "-h":
        print(USAGE);
        return 0;
      default:
        throw new UsageError(`Unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      printError(`secai: ${err.message}\nRun "secai help" for usage.`);
      return 2;
    }
    if (err instanceof ConfigError || err instanceof ManifestError) {
      printError(`secai: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

async function start(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv, {
    home: "string",
    port: "string",
    json: "boolean",
  });
  if (positional.length) throw new UsageError(`Unexpected argument "${positional[0]}"`);
  configureLog({ json: flags.json === true });
  const envPort = Deno.env.get("SECAI_PORT");
  const port = typeof flags.port === "string"
    ? parsePort(flags.port, "--port")
    : envPort
    ? parsePort(envPort, "SECAI_PORT")
    : undefined;
  const home = await prepareHome(resolveHome(flags.home as string | undefined, Deno.env));
  const lock = await acquireInstanceLock(home);
  if (!lock) {
    printError(
      `secai: another instance is running on state dir "${home}" (see run/supervisor.pid)`,
    );
    return 1;
  }
  const { config, path, created } = await loadConfig(home);
  if (created) log("info", "Created config with defaults", { path });
  if (port !== undefined) config.gateway.port = port;

  const denoPath = Deno.execPath();
  const bundle = await ensureIslandBundle({ projectRoot: PROJECT_ROOT, denoPath });
  log("info", bundle.rebuilt ? "Built dashboard bundle" : "Dashboard bundle up to date", {
    bytes: bundle.bytes,
  });
  const supervisor = new Supervisor({
    home,
    projectRoot: PROJECT_ROOT,
    config,
    version: VERSION,
    jobRunner: new JobRunner({
      home,
      codeRoots: [PROJECT_ROOT],
      configPath: `${PROJECT_ROOT}/deno.json`,
      denoPath,
      // Granted only to jobs whose manifest entry names them (jobLibraries).
      libraries: ["libyara.so.9"],
    }),
    // Sandboxed llama.cpp engines for controls with an engine grant (inference, quarantine).
    engineHost: engineHostFactory({ home, projectRoot: PROJECT_ROOT, denoPath }),
    evidence: () => loadEvidenceView(PROJECT_ROOT),
  });

  let stopping: Promise<void> | null = null;
  const shutdown = (signal: Deno.Signal) => {
    if (stopping) return;
    log("info", "Shutting down", { signal });
    stopping = supervisor.stop().finally(async () => {
      await lock.release();
      await Deno.remove(`${home}/run/gateway.json`).catch((err: unknown) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    });
  };
  const onInt = () => shutdown("SIGINT");
  const onTerm = () => shutdown("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);

  const started = performance.now();
  const isReady = await supervisor.start();
  await recordConfigLoaded(supervisor, { path, created });
  const where = await supervisor.gatewayAddress(5_000).then(
    (a) => (a.transport === "tcp" ? `http://${a.host}:${a.port}/` : `unix:${a.path}`),
    () => "(gateway not listening)",
  );
  if (isReady) {
    log("info", "SecAI Runtime ready", {
      url: where,
      home,
      readyMs: Math.round(performance.now() - started),
    });
  } else {
    const notReady = supervisor.status().filter((c) => c.required && c.state !== "ready");
    log("error", "SecAI Runtime started degraded: some required controls are not ready", {
      url: where,
      controls: notReady.map((c) =>
        `${c.name}: ${c.state}${c.lastError ? ` (${c.lastError})` : ""}`
      ),
    });
  }
  // First run: the dashboard asks for the passphrase and the setup code (never logged).
  const setupCode = `${home}/auth/setup-code`;
  if (await Deno.stat(setupCode).then(() => true, () => false)) {
    log("info", "First run: open the dashboard to set the passphrase", {
      url: where.startsWith("http") ? `${where}setup` : where,
      setupCodeFile: setupCode,
    });
  }
  // Runs until a signal; the supervisor keeps restarting controls meanwhile.
  await new Promise<void>((resolve) => {
    const wait = () => (stopping ? stopping.then(resolve) : setTimeout(wait, 200));
    wait();
  });
  Deno.removeSignalListener("SIGINT", onInt);
  Deno.removeSignalListener("SIGTERM", onTerm);
  log("info", "Stopped");
  return 0;
}

/**
 * Records the config in force in the audit log (`config.loaded`, with the file's SHA-256), so
 * every configuration change shows up as a new digest at the next start. A failure is logged:
 * the supervisor's lifecycle entries keep flowing either way.
 */
async function recordConfigLoaded(
  supervisor: Supervisor,
  config: { path: string; created: boolean },
): Promise<void> {
  try {
    const bytes = await Deno.readFile(config.path);
    await supervisor.client(auditAppendApi).call("append", {
      type: "config.loaded",
      actor: "supervisor",
      subject: config.path.slice(-1000),
      evidence: {
        sha256: createHash("sha256").update(bytes).digest("hex"),
        bytes: bytes.length,
        created: config.created,
      },
    });
  } catch (err) {
    log("warn", "Cannot record the config in the audit log", { error: String(err) });
  }
}

async function status(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv, { home: "string", json: "boolean" });
  if (positional.length) throw new UsageError(`Unexpected argument "${positional[0]}"`);
  const home = resolveHome(flags.home as string | undefined, Deno.env);
  let addr: { transport: string; host?: string; port?: number; path?: string };
  try {
    addr = JSON.parse(await Deno.readTextFile(`${home}/run/gateway.json`));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound) && !(err instanceof SyntaxError)) throw err;
    return report(
      flags.json === true,
      { running: false, home },
      `SecAI Runtime is not running (state dir "${home}")`,
    );
  }
  if (addr.transport !== "tcp" || typeof addr.port !== "number") {
    return report(
      flags.json === true,
      { running: true, ready: null, address: addr },
      `Running on ${addr.path}; query it with curl --unix-socket`,
    );
  }
  const base = `http://${addr.host}:${addr.port}`;
  let body: {
    ready: boolean;
    state: string;
    version: string;
    controls: { name: string; state: string; restarts: number; lastError: string | null }[];
  };
  try {
    // The API needs a credential: the auth control's read-only CLI token (0600, renewed at
    // every start).
    const token = (await Deno.readTextFile(`${home}/auth/cli-token`)).trim();
    const res = await fetch(`${base}/api/v1/controls`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(3000),
    });
    if (!res.ok) throw new Error(`HTTP ${res.status} from ${base}/api/v1/controls`);
    body = await res.json();
  } catch (err) {
    return report(
      flags.json === true,
      { running: false, home, error: String(err) },
      `SecAI Runtime is not answering at ${base} (${err instanceof Error ? err.message : err})`,
    );
  }
  const lines = [
    `SecAI Runtime ${body.version} at ${base}/ — ${body.state}`,
    ...body.controls.map((c) =>
      `  ${c.name.padEnd(14)} ${c.state.padEnd(10)} restarts ${c.restarts}${
        c.lastError ? `  last error: ${c.lastError}` : ""
      }`
    ),
  ];
  print(
    flags.json ? JSON.stringify({ running: true, url: `${base}/`, ...body }) : lines.join("\n"),
  );
  return body.ready ? 0 : 1;
}

function report(isJson: boolean, value: Record<string, unknown>, text: string): number {
  print(isJson ? JSON.stringify(value) : text);
  return 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
