/**
 * What the runner, the launcher and the job's boot preload tell each other: types and
 * constants only, because every line here is loaded before every job. Private to
 * runtime/sandbox. The parsers live with their single users (launcher.ts, boot.ts).
 * @module
 */
import type { LandlockRule } from "../../ffi/landlock.ts";

/** Environment variable that carries the {@link BootConfig} into the job process. */
export const BOOT_ENV = "SECAI_SANDBOX_BOOT";
/** Prefix of the one stderr line in which boot reports the layers it put in force. */
export const LAYERS_MARKER = "@@secai-sandbox-layers@@ ";
/** Prefix of the stderr line in which the launcher reports a setup failure. */
export const SETUP_FAILED_MARKER = "@@secai-sandbox-setup-failed@@ ";
/** Exit status of a launcher or boot that could not set the sandbox up. */
export const SETUP_FAILED_EXIT = 125;

/** Everything boot.ts needs; the launcher adds the `launcher` part. */
export interface BootConfig {
  /** Absolute path of libc (boot has `--allow-ffi` for this path only). */
  libcPath: string;
  /** Absolute path of libseccomp, or null when no filter is to be loaded. */
  libseccompPath: string | null;
  /** Address space the job may add after start, MiB (late RLIMIT_AS). */
  memMb: number;
  /** RLIMIT_CPU the launcher set, to verify. */
  cpuSec: number;
  /** RLIMIT_NOFILE the launcher set, to verify. */
  nofile: number;
  /**
   * The job was granted libraries of its own (unscoped `--allow-ffi`, needed for callbacks):
   * boot leaves ffi to the job, whose `runJob` revokes it before the input is read.
   */
  keepFfi?: boolean;
  /**
   * A sandboxed service whose npm packages read the (clean) environment at import: boot
   * leaves env access in place.
   */
  keepEnv?: boolean;
  /** What the launcher applied before execve. */
  launcher?: { landlockAbi: number; capabilitiesDropped: boolean };
}

/** The launcher's instructions, passed as one JSON argument. */
export interface LaunchSpec {
  /** Absolute path of the deno binary to execute. */
  deno: string;
  /** Full argument vector of the job, argv[0] included. */
  argv: string[];
  /** Environment of the job (the launcher adds {@link BOOT_ENV}). */
  env: Record<string, string>;
  /** Landlock rules; the launcher adds the shared objects mapped into deno itself. */
  rules: LandlockRule[];
  /** Process-wide limits set before execve. */
  rlimits: { cpuSec: number; nofile: number };
  boot: BootConfig;
}

/** What boot reports on stderr, then validated by the runner. */
export interface LayersReport {
  rlimits: boolean;
  noNewPrivs: boolean;
  nonDumpable: boolean;
  capabilitiesDropped: boolean;
  landlockAbi: number;
  seccomp: boolean;
}

/** Result of the availability probe (probe.ts). */
export interface ProbeReport {
  /** Landlock ABI of the kernel, 0 without Landlock. */
  landlockAbi: number;
  /** libseccomp loads and the kernel supports TSYNC. */
  seccomp: boolean;
  /** Absolute path the dynamic linker chose for libc. */
  libcPath: string;
  /** Absolute path of libseccomp, null when it is not installed. */
  libseccompPath: string | null;
  /**
   * Each library the runner may grant to jobs (by soname), as the files dlopen mapped for it
   * (the library and its dependencies); absent when it is not installed.
   */
  libraries: Record<string, string[]>;
}

/** Writes one line to stderr completely (writeSync may write only part of a buffer). */
export function writeStderrLine(line: string): void {
  const bytes = new TextEncoder().encode(`${line}\n`);
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stderr.writeSync(bytes.subarray(offset));
}
