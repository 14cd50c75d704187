/**
 * Trusted first stage of every sandboxed job, run by the runner as
 * `deno run --no-config --allow-ffi launcher.ts '<LaunchSpec JSON>'` in a new session.
 * On its **main thread** it sets the process-wide rlimits (no core, open files, CPU), drops
 * every capability, sets no_new_privs, restricts itself with Landlock, then replaces itself
 * with the job's deno through `execve`. Every thread of the job is created after that exec,
 * from the restricted thread, so all of them are restricted: Landlock applied inside a
 * running Deno would leave its other threads (async file ops) free.
 *
 * Unscoped `--allow-ffi` is needed for execve's pointer tables; no job code ever runs in
 * this process image.
 * @module
 */
import { openLandlock } from "../../ffi/landlock.ts";
import type { LandlockRule } from "../../ffi/landlock.ts";
import { type Libc, openLibc, RLIMIT } from "../../ffi/libc.ts";
import { absolute, count, object, strings, text } from "./_checks.ts";
import {
  BOOT_ENV,
  type BootConfig,
  type LaunchSpec,
  SETUP_FAILED_EXIT,
  SETUP_FAILED_MARKER,
  writeStderrLine,
} from "./_protocol.ts";

const MAPS_MAX_BYTES = 4 << 20;
/** The ELF interpreter must be executable (EXECUTE) for execve to load the program. */
const INTERPRETER = /^ld-(linux|musl)[\w.-]*\.so(\.\d+)*$/;

const ACCESS = new Set(["ro", "rx", "rw", "dev"]);

/**
 * Parses the launcher's argument. The boot part is passed on as is; boot checks it.
 * @throws {TypeError} when it is malformed
 */
function parseLaunchSpec(raw: string | undefined): LaunchSpec {
  if (raw === undefined) throw new TypeError("Missing launch spec");
  const json = object(JSON.parse(raw), "launch spec");
  const env = object(json.env, "env");
  const rlimits = object(json.rlimits, "rlimits");
  if (!Array.isArray(json.rules) || json.rules.length > 256) throw new TypeError("Invalid rules");
  return {
    deno: absolute(json.deno, "deno"),
    argv: strings(json.argv, "argv"),
    env: Object.fromEntries(
      Object.entries(env).map(([key, value]) => [key, text(value, `env.${key}`)]),
    ),
    rules: json.rules.map((item: unknown, index: number) => {
      const rule = object(item, `rules[${index}]`);
      const access = text(rule.access, `rules[${index}].access`);
      if (!ACCESS.has(access)) throw new TypeError(`Invalid rules[${index}].access`);
      return {
        path: absolute(rule.path, `rules[${index}].path`),
        access: access as LandlockRule["access"],
      };
    }),
    rlimits: {
      cpuSec: count(rlimits.cpuSec, "rlimits.cpuSec"),
      nofile: count(rlimits.nofile, "rlimits.nofile"),
    },
    boot: object(json.boot, "boot") as unknown as BootConfig,
  };
}

/**
 * Rules for the programs mapped into this process: the deno binary, its ELF interpreter and
 * the shared libraries it links. The job's deno is the same binary (same pid after execve),
 * so it needs exactly these and nothing else of the library directories. Only executable
 * mappings count: data files mapped by Deno (its caches' SQLite files) must not become
 * readable to the job.
 */
function mappedFileRules(libc: Libc): LandlockRule[] {
  const maps = new TextDecoder().decode(libc.readFile("/proc/self/maps", MAPS_MAX_BYTES));
  const paths = new Set<string>();
  for (const line of maps.split("\n")) {
    // address perms offset dev inode pathname
    const match = /^\S+ (\S+) \S+ \S+ (\d+)\s+(\/.*)$/.exec(line);
    const [, perms = "", inode = "0", path] = match ?? [];
    if (path === undefined || inode === "0" || !perms.includes("x")) continue;
    if (path.endsWith(" (deleted)")) continue;
    paths.add(path);
  }
  return [...paths].map((path) => ({
    path,
    access: INTERPRETER.test(path.slice(path.lastIndexOf("/") + 1)) ? "rx" : "ro",
  }));
}

function launch(): never {
  const spec = parseLaunchSpec(Deno.args[0]);
  const libc = openLibc();
  // Process-wide; execve keeps them. Soft CPU limit → SIGXCPU, hard (+1 s) → SIGKILL.
  libc.setRlimit(RLIMIT.CORE, { soft: 0n, hard: 0n });
  const nofile = BigInt(spec.rlimits.nofile);
  libc.setRlimit(RLIMIT.NOFILE, { soft: nofile, hard: nofile });
  const cpu = BigInt(spec.rlimits.cpuSec);
  libc.setRlimit(RLIMIT.CPU, { soft: cpu, hard: cpu + 1n });
  // Root keeps uid 0 but no capability; the emptied bounding set means execve gives none back.
  libc.dropCapabilities();
  libc.setNoNewPrivs();

  const landlock = openLandlock();
  let landlockAbi = landlock.abi();
  if (landlockAbi > 0) {
    // A kernel with Landlock must apply it; only its absence degrades (reported as ABI 0).
    landlockAbi = landlock.restrictSelf([...spec.rules, ...mappedFileRules(libc)]).abi;
  }
  landlock.close();
  // Only stdin, stdout and stderr cross into the job.
  libc.closeOnExecFrom(3);

  const boot: BootConfig = {
    ...spec.boot,
    launcher: { landlockAbi, capabilitiesDropped: true },
  };
  return libc.execve(spec.deno, {
    argv: spec.argv,
    env: { ...spec.env, [BOOT_ENV]: JSON.stringify(boot) },
  });
}

try {
  launch();
} catch (error) {
  // The runner reads this line; the job never ran.
  const code = (error as { code?: unknown } | null)?.code;
  const report = {
    code: typeof code === "string" ? code : "SETUP_FAILED",
    message: error instanceof Error ? error.message : String(error),
  };
  writeStderrLine(`${SETUP_FAILED_MARKER}${JSON.stringify(report)}`);
  Deno.exit(SETUP_FAILED_EXIT);
}
