/**
 * Second stage, `--preload`ed into every sandboxed job: it runs inside the job's process,
 * after the launcher's execve and before the job module is evaluated.
 * - PR_SET_DUMPABLE 0 here, because execve resets it.
 * - RLIMIT_AS here, late: Deno reserves ~32 GiB of address space while starting (V8's
 *   cage), so the cap is "size now + memMb", read from /proc/self/statm.
 * - The seccomp filter with TSYNC, so every thread that exists now is filtered; later
 *   threads inherit it.
 * - Then `ffi` and `env` are revoked: the job module cannot call native code or read the
 *   environment.
 * Last, it writes one line to stderr reporting what it verified to be in force. The job
 * cannot run before that line exists, so the first such line is trustworthy. Any failure
 * ends the process before the job starts.
 * @module
 */
import { openLibc, RLIMIT } from "../../ffi/libc.ts";
import { openSeccomp } from "../../ffi/seccomp.ts";
import { absolute, count, flag, object } from "./_checks.ts";
import {
  BOOT_ENV,
  type BootConfig,
  LAYERS_MARKER,
  type LayersReport,
  SETUP_FAILED_EXIT,
  SETUP_FAILED_MARKER,
  writeStderrLine,
} from "./_protocol.ts";
import { jobSeccompRules } from "./seccomp_policy.ts";

const PAGE_SIZE = 4096;
const MIB = 1n << 20n;

/**
 * Parses the boot configuration from its environment variable.
 * @throws {TypeError} when it is missing or malformed
 */
function parseBootConfig(raw: string | undefined): BootConfig {
  if (raw === undefined) throw new TypeError(`Missing ${BOOT_ENV}`);
  const json = object(JSON.parse(raw), "boot config");
  const launcher = object(json.launcher, "launcher");
  return {
    libcPath: absolute(json.libcPath, "libcPath"),
    libseccompPath: json.libseccompPath === null
      ? null
      : absolute(json.libseccompPath, "libseccompPath"),
    memMb: count(json.memMb, "memMb"),
    cpuSec: count(json.cpuSec, "cpuSec"),
    nofile: count(json.nofile, "nofile"),
    keepFfi: json.keepFfi === undefined ? false : flag(json.keepFfi, "keepFfi"),
    keepEnv: json.keepEnv === undefined ? false : flag(json.keepEnv, "keepEnv"),
    launcher: {
      landlockAbi: count(launcher.landlockAbi, "landlockAbi"),
      capabilitiesDropped: flag(launcher.capabilitiesDropped, "capabilitiesDropped"),
    },
  };
}

function boot(): LayersReport {
  const config = parseBootConfig(Deno.env.get(BOOT_ENV));
  const libc = openLibc({ path: config.libcPath });
  libc.setDumpable(false);
  let addressSpace: bigint | null = null;
  if (config.memMb > 0) {
    const statm = new TextDecoder().decode(libc.readFile("/proc/self/statm", 4096));
    const pages = Number(statm.split(" ")[0]);
    if (!Number.isSafeInteger(pages) || pages <= 0) {
      throw new TypeError(`Cannot size RLIMIT_AS from statm "${statm.slice(0, 60)}"`);
    }
    addressSpace = BigInt(pages * PAGE_SIZE) + BigInt(config.memMb) * MIB;
    libc.setRlimit(RLIMIT.AS, { soft: addressSpace, hard: addressSpace });
  }
  // Report what the kernel says is in force, not what was asked for.
  const core = libc.getRlimit(RLIMIT.CORE);
  const nofile = libc.getRlimit(RLIMIT.NOFILE);
  const cpu = libc.getRlimit(RLIMIT.CPU);
  const as = libc.getRlimit(RLIMIT.AS);
  const rlimits = core.soft === 0n && core.hard === 0n &&
    nofile.hard === BigInt(config.nofile) &&
    cpu.soft === BigInt(config.cpuSec) &&
    (addressSpace === null || as.hard === addressSpace);
  const caps = libc.capabilities();
  const capabilitiesDropped = (config.launcher?.capabilitiesDropped ?? false) &&
    caps.effective === 0n && caps.permitted === 0n && caps.inheritable === 0n;
  const noNewPrivs = libc.hasNoNewPrivs();
  const nonDumpable = !libc.isDumpable();
  // These layers need no kernel feature beyond what every supported kernel has: if one is
  // missing the setup is broken, and the job must not run (fail closed).
  if (!rlimits || !capabilitiesDropped || !noNewPrivs || !nonDumpable) {
    const layers = { rlimits, capabilitiesDropped, noNewPrivs, nonDumpable };
    throw new TypeError(`Cannot verify sandbox layers: ${JSON.stringify(layers)}`);
  }
  libc.close();

  let seccomp = false;
  if (config.libseccompPath !== null) {
    const filter = openSeccomp({ libraryPath: config.libseccompPath });
    filter.loadDenyFilter(jobSeccompRules(Deno.pid));
    filter.close();
    seccomp = true;
  }

  // A job granted libraries of its own loads them at module top level; its runJob revokes
  // ffi before the input is read (runtime/kit/job.ts).
  if (!config.keepFfi) {
    Deno.permissions.revokeSync({ name: "ffi" });
    if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
      throw new TypeError("Cannot revoke ffi permission");
    }
  }
  // The environment is the runner's clean SANDBOX_ENV; a service whose packages list it at
  // import keeps read access to it (plan.ts ServiceGrants.keepEnv).
  if (!config.keepEnv) Deno.permissions.revokeSync({ name: "env" });
  return {
    rlimits,
    noNewPrivs,
    nonDumpable,
    capabilitiesDropped,
    landlockAbi: config.launcher?.landlockAbi ?? 0,
    seccomp,
  };
}

try {
  writeStderrLine(`${LAYERS_MARKER}${JSON.stringify(boot())}`);
} catch (error) {
  const code = (error as { code?: unknown } | null)?.code;
  const report = {
    code: typeof code === "string" ? code : "BOOT_FAILED",
    message: error instanceof Error ? error.message : String(error),
  };
  writeStderrLine(`${SETUP_FAILED_MARKER}${JSON.stringify(report)}`);
  Deno.exit(SETUP_FAILED_EXIT);
}
