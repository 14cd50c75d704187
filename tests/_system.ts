/**
 * Test helpers: a real supervisor on a temp state dir, with the project's config defaults.
 * @module
 */
import { Supervisor, type SupervisorOptions } from "../runtime/supervisor.ts";
import { type Config, ConfigSchema } from "../runtime/config.ts";
import { prepareHome } from "../runtime/home.ts";
import type { ControlSpecInput } from "../runtime/manifest.ts";
import { loadEvidenceView } from "../runtime/evidence.ts";

/** Absolute project root. */
export const PROJECT_ROOT: string = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Options of {@link startSystem}. */
export interface StartSystemOptions {
  controls?: ControlSpecInput[];
  /** Extra per-control config sections (fixtures). */
  sections?: Record<string, unknown>;
  config?: Partial<Record<keyof Config, unknown>>;
  jobRunner?: SupervisorOptions["jobRunner"];
  engineHost?: SupervisorOptions["engineHost"];
  readyTimeoutMs?: number;
}

/** A started system and its temp dir; dispose with `stop()`. */
export interface TestSystem {
  supervisor: Supervisor;
  home: string;
  isReady: boolean;
  stop(): Promise<void>;
}

/** Starts a supervisor on a fresh temp state dir. */
export async function startSystem(options: StartSystemOptions = {}): Promise<TestSystem> {
  const home = await prepareHome(await Deno.makeTempDir({ prefix: "secai-test-" }));
  const config = ConfigSchema.parse({
    gateway: { port: 0 },
    // Short enough that a hung worker is caught within a test, long enough that a busy
    // 2-core machine running tests in parallel does not look like eight hung workers.
    supervisor: { heartbeatMs: 500, shutdownTimeoutMs: 3000 },
    ...options.config,
  });
  const supervisor = new Supervisor({
    home,
    projectRoot: PROJECT_ROOT,
    config: { ...config, ...options.sections } as Config,
    version: "test",
    evidence: () => loadEvidenceView(PROJECT_ROOT),
    ...(options.controls ? { controls: options.controls } : {}),
    ...(options.jobRunner ? { jobRunner: options.jobRunner } : {}),
    ...(options.engineHost ? { engineHost: options.engineHost } : {}),
  });
  const isReady = await supervisor.start({ timeoutMs: options.readyTimeoutMs ?? 15_000 });
  return {
    supervisor,
    home,
    isReady,
    async stop() {
      await supervisor.stop();
      await Deno.remove(home, { recursive: true });
    },
  };
}

/** Polls `check` every 20 ms until it returns true or `timeoutMs` passes. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; what?: string } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`Timed out waiting for ${options.what ?? "condition"}`);
}
