/**
 * Availability probe, run once per runner as
 * `deno run --no-config --allow-ffi probe.ts`: which kernel layers exist, and where the
 * dynamic linker finds libc and libseccomp (boot gets `--allow-ffi` for exactly those paths).
 * Prints one {@link ProbeReport} as JSON on stdout.
 * @module
 */
import { landlockAbi } from "../../ffi/landlock.ts";
import { LIBC_SONAME, openLibc } from "../../ffi/libc.ts";
import { isSeccompAvailable, LIBSECCOMP_SONAME, openSeccomp } from "../../ffi/seccomp.ts";
import type { ProbeReport } from "./_protocol.ts";

/** The file a soname resolved to, as mapped into this process. */
function mappedPath(maps: string, soname: string): string | null {
  for (const line of maps.split("\n")) {
    const match = /^\S+ \S+ \S+ \S+ [1-9]\d*\s+(\/.*)$/.exec(line);
    const path = match?.[1];
    if (path === undefined) continue;
    const base = path.slice(path.lastIndexOf("/") + 1);
    if (base === soname || base.startsWith(`${soname}.`)) return path;
  }
  return null;
}

function probe(): ProbeReport {
  const libc = openLibc();
  const seccomp = isSeccompAvailable();
  // Keep libseccomp mapped while reading the maps, to learn its path.
  const handle = seccomp ? openSeccomp() : null;
  const maps = new TextDecoder().decode(libc.readFile("/proc/self/maps", 4 << 20));
  handle?.close();
  libc.close();
  const libcPath = mappedPath(maps, LIBC_SONAME);
  if (libcPath === null) throw new TypeError(`Cannot find ${LIBC_SONAME} in /proc/self/maps`);
  const libseccompPath = seccomp ? mappedPath(maps, LIBSECCOMP_SONAME) : null;
  return {
    landlockAbi: landlockAbi(),
    seccomp: seccomp && libseccompPath !== null,
    libcPath,
    libseccompPath,
  };
}

Deno.stdout.writeSync(new TextEncoder().encode(`${JSON.stringify(probe())}\n`));
