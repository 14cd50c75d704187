/**
 * Availability probe, run once per runner as
 * `deno run --no-config --allow-ffi probe.ts [SONAME…]`: which kernel layers exist, where the
 * dynamic linker finds libc and libseccomp (boot gets `--allow-ffi` for exactly those paths),
 * and which files each named job library maps (the Landlock rules a job loading it needs).
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

/** Files mapped into this process (inode ≠ 0), by path. */
function mappedFiles(maps: string): Set<string> {
  const files = new Set<string>();
  for (const line of maps.split("\n")) {
    const path = /^\S+ \S+ \S+ \S+ [1-9]\d*\s+(\/.*)$/.exec(line)?.[1];
    if (path !== undefined && !path.endsWith(" (deleted)")) files.add(path);
  }
  return files;
}

/** Only plain sonames: a path or anything else in argv is refused. */
const SONAME = /^lib[A-Za-z0-9_+-]+(\.[A-Za-z0-9_+-]+)*\.so(\.\d+)*$/;

/**
 * Opens each library and reports the files that appeared in the maps: the library and the
 * dependencies it pulled in. A library that is not installed is left out.
 */
function probeLibraries(libc: ReturnType<typeof openLibc>, sonames: string[]) {
  const libraries: Record<string, string[]> = {};
  for (const soname of sonames) {
    if (!SONAME.test(soname)) throw new TypeError(`Invalid library soname "${soname}"`);
    const before = mappedFiles(new TextDecoder().decode(libc.readFile("/proc/self/maps", 4 << 20)));
    let handle: Deno.DynamicLibrary<Record<string, never>>;
    try {
      handle = Deno.dlopen(soname, {});
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      continue;
    }
    const maps = new TextDecoder().decode(libc.readFile("/proc/self/maps", 4 << 20));
    const own = mappedPath(maps, soname);
    const added = [...mappedFiles(maps)].filter((path) => !before.has(path));
    handle.close();
    if (own === null) continue;
    libraries[soname] = [...new Set([own, ...added])].sort();
  }
  return libraries;
}

function probe(): ProbeReport {
  const libc = openLibc();
  const seccomp = isSeccompAvailable();
  // Keep libseccomp mapped while reading the maps, to learn its path.
  const handle = seccomp ? openSeccomp() : null;
  const maps = new TextDecoder().decode(libc.readFile("/proc/self/maps", 4 << 20));
  handle?.close();
  const libraries = probeLibraries(libc, Deno.args);
  libc.close();
  const libcPath = mappedPath(maps, LIBC_SONAME);
  if (libcPath === null) throw new TypeError(`Cannot find ${LIBC_SONAME} in /proc/self/maps`);
  const libseccompPath = seccomp ? mappedPath(maps, LIBSECCOMP_SONAME) : null;
  return {
    landlockAbi: landlockAbi(),
    seccomp: seccomp && libseccompPath !== null,
    libcPath,
    libseccompPath,
    libraries,
  };
}

Deno.stdout.writeSync(new TextEncoder().encode(`${JSON.stringify(probe())}\n`));
