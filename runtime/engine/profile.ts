/**
 * What the llama.cpp engine needs from the machine, resolved once on the supervisor side:
 * the node-llama-cpp package (its seeded CPU build is the only native code the engine may
 * load), the distro file its loader compares with the build metadata, and the system
 * libraries the binding links. When something is missing, the error says what and how to
 * fix it; the rest of the system keeps running without local inference.
 * @module
 */
import { RpcError } from "../kit/errors.ts";

/**
 * Sonames the llama.cpp CPU build (node-llama-cpp 3.21.1, linux-x64) links besides libc:
 * `ldd llama-addon.node`. The sandbox's probe finds their files for Landlock.
 */
export const LLAMA_SYSTEM_LIBRARIES: readonly string[] = [
  "libstdc++.so.6",
  "libm.so.6",
  "libgcc_s.so.1",
];

/** The slot node-llama-cpp loads a CPU-only x64 Linux build from (tools/seed_llama fills it). */
const LOCAL_BUILD = "llama/localBuilds/linux-x64";

/** The engine's grants beyond a job's. */
export interface EngineProfile {
  /** Read-only: the package's `llama/` dir (binaries, build metadata), `/etc/os-release`. */
  read: string[];
  /** The only place native code may be opened from: the seeded local build. */
  ffi: string[];
  /** `homedir` and `uid`: node-llama-cpp's config reads them at import and load. */
  sys: string[];
  /** System libraries the binding links. */
  libraries: string[];
}

/**
 * Resolves the engine's profile.
 * @param projectRoot absolute project root (holds node_modules)
 * @returns the grants
 * @throws {RpcError} ENGINE_UNAVAILABLE naming what is missing and how to fix it
 */
export async function resolveEngineProfile(projectRoot: string): Promise<EngineProfile> {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    throw new RpcError(
      "ENGINE_UNAVAILABLE",
      `Local inference needs Linux on x86_64 (node-llama-cpp's prebuilt CPU build); this is ${Deno.build.os} on ${Deno.build.arch}`,
    );
  }
  let pkg: string;
  try {
    pkg = await Deno.realPath(`${projectRoot}/node_modules/node-llama-cpp`);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new RpcError(
      "ENGINE_UNAVAILABLE",
      "Local inference is not installed: node_modules/node-llama-cpp is missing (run tools/setup)",
      { cause: error },
    );
  }
  const build = `${pkg}/${LOCAL_BUILD}`;
  for (const file of [`${build}/buildDone.status`, `${build}/Release/llama-addon.node`]) {
    try {
      await Deno.lstat(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw new RpcError(
        "ENGINE_UNAVAILABLE",
        "The llama.cpp CPU build is not in place (node-llama-cpp's local build slot is empty): run tools/setup, which seeds it from the prebuilt binaries",
        { cause: error },
      );
    }
  }
  return {
    read: [`${pkg}/llama`, "/etc/os-release"],
    ffi: [build],
    sys: ["homedir", "uid"],
    libraries: [...LLAMA_SYSTEM_LIBRARIES],
  };
}

/**
 * GPU drivers installed on this machine (the NVIDIA user-space driver, ROCm). The engine runs
 * on the CPU either way: its sandbox grants no device, and the status says so. (Deno needs
 * all-access to stat anything under /dev, /sys or /proc, so the drivers' libraries are what
 * is looked for.)
 */
export async function detectGpuDevices(): Promise<string[]> {
  const candidates: [string, string][] = [
    ["/usr/lib/x86_64-linux-gnu/libcuda.so.1", "nvidia (libcuda)"],
    ["/usr/lib64/libcuda.so.1", "nvidia (libcuda)"],
    ["/usr/lib/wsl/lib/libcuda.so.1", "nvidia (libcuda, WSL)"],
    ["/opt/rocm", "amd (rocm)"],
  ];
  const found = new Set<string>();
  for (const [path, name] of candidates) {
    if (await isPresent(path)) found.add(name);
  }
  return [...found];
}

async function isPresent(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
