/**
 * Request checks of the gateway, each a small throwing function: response headers, the
 * cross-site check for mutating requests, content-type, the body limit (enforced while
 * reading), and zod parsing of JSON bodies, query strings and headers.
 * @module
 */
import type { z } from "zod";
import { describeZodError } from "../../runtime/kit/validate.ts";
import { GatewayError } from "./errors.ts";

/**
 * Content Security Policy of every response. No inline script or style at all: island props
 * travel in `<script type="application/json">` (data, never executed) and the only script
 * is the same-origin islands bundle.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "object-src 'none'",
].join("; ");

/** Headers set on every response, errors and 404s included (spec 10 §8). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

/** Header carrying the request id on every response. */
export const REQUEST_ID_HEADER = "x-request-id";

const SAFE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

/** Whether a method may change state (and so needs the cross-site check and a body check). */
export function isMutating(method: string): boolean {
  return !SAFE_METHODS.has(method.toUpperCase());
}

/**
 * Refuses a mutating request that does not prove it comes from our own pages: it must carry
 * `Sec-Fetch-Site: same-origin` or an `Origin` equal to the request's own origin. A missing
 * header means deny (spec 10 §9.3: the original exempted login and trusted SameSite alone,
 * which allowed login CSRF). Unlike hono's csrf middleware this holds for every content
 * type, JSON included.
 * @param request the incoming request
 * @throws {GatewayError} CROSS_SITE_REQUEST
 */
export function assertSameOrigin(request: Request): void {
  const site = request.headers.get("sec-fetch-site");
  if (site === "same-origin") return;
  const origin = request.headers.get("origin");
  if (origin !== null && origin === new URL(request.url).origin) return;
  const seen = origin === null ? "no Origin header" : `Origin "${origin.slice(0, 200)}"`;
  throw new GatewayError(
    "CROSS_SITE_REQUEST",
    `Cannot accept ${request.method} from another site (${seen}, Sec-Fetch-Site "${
      (site ?? "absent").slice(0, 40)
    }")`,
  );
}

/**
 * Requires a JSON body's content type (`application/json`, parameters allowed).
 * @param request the incoming request
 * @throws {GatewayError} UNSUPPORTED_MEDIA_TYPE
 */
export function assertJsonContentType(request: Request): void {
  const type = request.headers.get("content-type");
  const essence = type?.split(";", 1)[0]?.trim().toLowerCase();
  if (essence === "application/json") return;
  throw new GatewayError(
    "UNSUPPORTED_MEDIA_TYPE",
    `Cannot read a ${
      type === null ? "body without Content-Type" : `"${type.slice(0, 100)}" body`
    }: expected "application/json"`,
  );
}

/** Options of {@link readBodyLimited}. */
export interface ReadBodyOptions {
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /** Time the client has to send the whole body. */
  timeoutMs: number;
}

/**
 * Reads a request body, refusing it as soon as it is known to be too large: at once from
 * `Content-Length`, otherwise while streaming, so an oversized or endless body is never
 * buffered (the tuf-js `fetcher.ts` rule). A body that trickles in slower than `timeoutMs`
 * is refused too, so a slow sender cannot hold a request open.
 * @param request the incoming request (its body is consumed)
 * @param options limit and timeout
 * @returns the body bytes (empty when there is none)
 * @throws {GatewayError} PAYLOAD_TOO_LARGE, REQUEST_TIMEOUT, INVALID_HEADER, INVALID_BODY
 */
export async function readBodyLimited(
  request: Request,
  options: ReadBodyOptions,
): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    if (!/^[0-9]{1,15}$/.test(declared)) {
      throw new GatewayError("INVALID_HEADER", `Invalid "Content-Length" header`);
    }
    if (Number(declared) > options.maxBytes) throw tooLarge(options.maxBytes);
  }
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new GatewayError(
          "REQUEST_TIMEOUT",
          `Request body not received within ${options.timeoutMs} ms`,
        ),
      );
    }, options.timeoutMs);
  });
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), timeout]);
      if (done) break;
      size += value.byteLength;
      if (size > options.maxBytes) throw tooLarge(options.maxBytes);
      chunks.push(value);
    }
  } catch (err) {
    if (!(err instanceof GatewayError)) {
      throw new GatewayError("INVALID_BODY", "Cannot read the request body", { cause: err });
    }
    // The answer is decided: tell the sender to stop rather than drain the rest.
    await reader.cancel(err.message);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

function tooLarge(maxBytes: number): GatewayError {
  return new GatewayError("PAYLOAD_TOO_LARGE", `Request body exceeds ${maxBytes} bytes`);
}

/**
 * Parses a JSON body and validates it.
 * @param body the bytes read by {@link readBodyLimited}
 * @param schema the body's zod schema (a strictObject with bounds)
 * @returns the typed body
 * @throws {GatewayError} INVALID_JSON (not UTF-8 JSON), INVALID_BODY (names the field)
 */
export function parseJsonBody<S extends z.ZodTypeAny>(body: Uint8Array, schema: S): z.output<S> {
  if (body.byteLength === 0) throw new GatewayError("INVALID_JSON", "Request body is empty");
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (err) {
    const reason = err instanceof SyntaxError ? err.message : "not valid UTF-8";
    throw new GatewayError(
      "INVALID_JSON",
      `Request body is not valid JSON: ${reason.slice(0, 200)}`,
      {
        cause: err,
      },
    );
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new GatewayError(
      "INVALID_BODY",
      `Invalid request body ${describeZodError(parsed.error)}`,
    );
  }
  return parsed.data;
}

/**
 * Validates a query string. Each parameter may appear once (a repeated key is ambiguous, so
 * it is refused rather than resolved); values are strings, so schemas convert numbers.
 * @param url the request URL
 * @param schema a strictObject of string-valued fields
 * @returns the typed query
 * @throws {GatewayError} INVALID_QUERY
 */
export function parseQuery<S extends z.ZodTypeAny>(url: URL, schema: S): z.output<S> {
  const raw: Record<string, string> = Object.create(null);
  for (const [key, value] of url.searchParams) {
    if (Object.hasOwn(raw, key)) {
      throw new GatewayError(
        "INVALID_QUERY",
        `Query parameter "${key.slice(0, 64)}" appears more than once`,
      );
    }
    raw[key] = value;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new GatewayError("INVALID_QUERY", `Invalid query ${describeZodError(parsed.error)}`);
  }
  return parsed.data;
}

/** A query parameter holding a non-negative decimal integer (no sign, exponent or blanks). */
export const INTEGER_PARAM_PATTERN: RegExp = /^[0-9]{1,15}$/;
