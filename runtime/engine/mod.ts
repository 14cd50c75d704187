/**
 * The inference engine host, supervisor side: the `engine` port and the sandboxed engine
 * processes behind it (see host.ts), with the llama.cpp profile (profile.ts).
 * @example
 * ```ts
 * const supervisor = new Supervisor({
 *   home, projectRoot, config, version,
 *   engineHost: engineHostFactory({ home, projectRoot, denoPath: Deno.execPath() }),
 * });
 * ```
 * @module
 */
import { ServiceRunner } from "../sandbox/service.ts";
import { EngineHost } from "./host.ts";
import { LLAMA_SYSTEM_LIBRARIES } from "./profile.ts";

export { EngineHost, type EngineHostOptions } from "./host.ts";
export { detectGpuDevices, LLAMA_SYSTEM_LIBRARIES, resolveEngineProfile } from "./profile.ts";

/** Options of {@link engineHostFactory}. */
export interface EngineHostFactoryOptions {
  /** Absolute realpath of the state dir. */
  home: string;
  /** Absolute project root (code roots and node_modules). */
  projectRoot: string;
  /** Deno binary; default `Deno.execPath()`. */
  denoPath?: string;
}

/**
 * The supervisor's `engineHost` option: engines run as sandboxed services with the project
 * as their (read-only) code root.
 * @param options state dir, project root, deno binary
 * @returns a factory the supervisor calls with its event sink
 */
export function engineHostFactory(
  options: EngineHostFactoryOptions,
): (context: { emit(type: string, data: Record<string, unknown>): void }) => EngineHost {
  return (context) =>
    new EngineHost({
      home: options.home,
      projectRoot: options.projectRoot,
      services: new ServiceRunner({
        home: options.home,
        codeRoots: [options.projectRoot],
        configPath: `${options.projectRoot}/deno.json`,
        ...(options.denoPath === undefined ? {} : { denoPath: options.denoPath }),
        libraries: [...LLAMA_SYSTEM_LIBRARIES],
      }),
      emit: context.emit,
    });
}
