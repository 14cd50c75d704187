/**
 * Turns a control's declared permissions into a complete Deno permission object: every key
 * set, paths resolved under the state dir or project, `run`, `ffi` and `import` always false.
 * @module
 */
import type { ControlSpec } from "./manifest.ts";
import type { GrantedPermissions } from "./kit/system_api.ts";
import type { Config } from "./config.ts";

/** Where path references resolve. */
export interface PermissionRoots {
  home: string;
  projectRoot: string;
}

/** Resolves `home:x` / `project:x` references to absolute paths. */
export function resolvePathRef(ref: string, roots: PermissionRoots): string {
  const [scheme, rel = ""] = ref.split(/:(.*)/s, 2);
  const base = scheme === "home" ? roots.home : scheme === "project" ? roots.projectRoot : null;
  if (base === null) throw new TypeError(`Unknown path reference "${ref}"`);
  return rel ? `${base}/${rel.replace(/\/+$/, "")}` : base;
}

/** The gateway's listen grant: host:port (any port when 0), or the socket path. */
function gatewayListen(config: Config, roots: PermissionRoots): { net: string[]; paths: string[] } {
  const g = config.gateway;
  if (g.unixSocket) {
    const path = g.unixSocket.startsWith("/") ? g.unixSocket : `${roots.home}/${g.unixSocket}`;
    return { net: [], paths: [path] };
  }
  const host = g.host.includes(":") ? `[${g.host}]` : g.host;
  return { net: [g.port === 0 ? host : `${host}:${g.port}`], paths: [] };
}

/** Computes the permissions granted to a control. */
export function grantFor(
  spec: ControlSpec,
  config: Config,
  roots: PermissionRoots,
): GrantedPermissions {
  const read = spec.permissions.read.map((r) => resolvePathRef(r, roots));
  const write = spec.permissions.write.map((r) => resolvePathRef(r, roots));
  const net: string[] = [];
  for (const ref of spec.permissions.net) {
    if (ref === "inference:external") {
      // The external inference backend's host (https, port 443), when one is configured.
      const external = config.inference?.external;
      if (external) net.push(`${new URL(external.baseUrl).hostname}:443`);
    } else if (ref === "gateway:listen") {
      const listen = gatewayListen(config, roots);
      net.push(...listen.net);
      read.push(...listen.paths);
      write.push(...listen.paths);
    } else {
      net.push(ref);
    }
  }
  return {
    read,
    write,
    net,
    env: [...spec.permissions.env],
    sys: [...spec.permissions.sys],
    run: false,
    ffi: false,
    import: false,
  };
}

/** The object passed to `new Worker(…, { deno: { permissions } })`: every key explicit. */
export function toWorkerPermissions(granted: GrantedPermissions): Deno.PermissionOptionsObject {
  const list = <T extends string>(xs: T[]): T[] | false => (xs.length ? xs : false);
  return {
    read: list(granted.read),
    write: list(granted.write),
    net: list(granted.net),
    env: list(granted.env),
    sys: list(granted.sys as NonNullable<Deno.SysPermissionDescriptor["kind"]>[]),
    run: false,
    ffi: false,
    import: false,
  };
}
