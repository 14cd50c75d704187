/**
 * Serves files under the project's `static/` directory (our CSS and the islands bundle). The
 * gateway's Deno permissions allow reading that directory only; the path check here keeps
 * requests inside it before Deno's own check does.
 * @module
 */
import { GatewayError } from "./errors.ts";

/** Content types by extension; any other file is not served. */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  map: "application/json; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
  woff2: "font/woff2",
  txt: "text/plain; charset=utf-8",
};

// Raw (still percent-encoded) path below /static/: no `%` (so no encoded `/` or `.`), no
// segment starting with `.` (so no `..` and no dotfiles), no empty segment.
const PATH_PATTERN =
  /^(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}\/){0,8}[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/;

/** Options of {@link serveStatic}. */
export interface ServeStaticOptions {
  /** The static directory, as a `file:` URL ending in `/`. */
  root: URL;
}

/**
 * Answers a request for one static file.
 * @param path the raw URL path below `/static/`, e.g. `build/islands.js`
 * @param options where the files are
 * @returns the file with its content type; `no-cache` so a rebuilt bundle is picked up
 * @throws {GatewayError} NOT_FOUND for a bad path, an unknown type, a missing file, a
 * directory or a symbolic link
 */
export async function serveStatic(path: string, options: ServeStaticOptions): Promise<Response> {
  const ext = path.slice(path.lastIndexOf(".") + 1);
  const type = Object.hasOwn(CONTENT_TYPES, ext) ? CONTENT_TYPES[ext] : undefined;
  if (!PATH_PATTERN.test(path) || type === undefined) throw notFound(path);
  const url = new URL(path, options.root);
  let info: Deno.FileInfo;
  try {
    // lstat: a symbolic link could point outside the directory.
    info = await Deno.lstat(url);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw notFound(path);
    throw err;
  }
  if (!info.isFile) throw notFound(path);
  const file = await Deno.open(url, { read: true });
  return new Response(file.readable, {
    headers: {
      "content-type": type,
      "content-length": String(info.size),
      "cache-control": "no-cache",
    },
  });
}

function notFound(path: string): GatewayError {
  return new GatewayError("NOT_FOUND", `No static file "${path.slice(0, 200)}"`);
}
