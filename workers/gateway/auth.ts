/**
 * The gateway's side of authentication: which routes are public, how a request presents a
 * credential (the `secai_session` cookie, or `Authorization: Bearer` with the CLI token),
 * the CSRF token, and the cookies set at login. Sessions themselves live in the auth
 * control (`workers/auth/`), which the gateway asks on every request.
 *
 * CSRF (spec 10 §8, done better): double submit bound to the session. The token is
 * HMAC-SHA256 keyed by the session token, so it needs no storage, cannot be fixed by an
 * attacker who plants a cookie (it must match the session), and dies with the session. It
 * is mirrored in the JS-readable `secai_csrf` cookie; every state-changing request with a
 * session must send it in `X-CSRF-Token`, equal to both the cookie and the derived value
 * (constant-time compares). On top, the Origin/Sec-Fetch-Site check runs on every mutating
 * request, login and setup included (§9.3: login CSRF).
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { type Credential, type Grant, TOKEN_PATTERN } from "../auth/api.ts";
import { GatewayError } from "./errors.ts";

/** Session cookie: HttpOnly, SameSite=Strict, Secure on TLS. */
export const SESSION_COOKIE = "secai_session";
/** CSRF cookie: readable by our scripts (double submit), SameSite=Strict. */
export const CSRF_COOKIE = "secai_csrf";
/** Device cookie: keys the login lockout; sent only to the auth endpoints. */
export const DEVICE_COOKIE = "secai_device";
/** Header carrying the CSRF token. */
export const CSRF_HEADER = "x-csrf-token";
/** Path the device cookie is limited to. */
export const DEVICE_COOKIE_PATH = "/api/v1/auth";

/**
 * Routes served without a session (spec 10 §7): the login and setup pages and their API,
 * and the auth status. `/api/v1/health` and `/static/*` skip authentication altogether
 * (liveness must not depend on the auth control).
 */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set([
  "/login",
  "/setup",
  "/api/v1/auth/status",
  "/api/v1/auth/login",
  "/api/v1/auth/setup",
]);

/** Paths that never ask the auth control. */
export function isUnauthenticatedPath(path: string): boolean {
  return path === "/api/v1/health" || path.startsWith("/static/");
}

/** Longest Cookie header parsed; longer ones are refused (400). */
const MAX_COOKIE_HEADER = 8192;

/**
 * Reads the cookies of a request into a null-prototype map. A name that appears twice is
 * refused for our own cookies (a planted duplicate must not win by order).
 * @param request the incoming request
 * @returns name → value
 * @throws {GatewayError} INVALID_HEADER
 */
export function readCookies(request: Request): Record<string, string> {
  const header = request.headers.get("cookie");
  const cookies: Record<string, string> = Object.create(null);
  if (header === null) return cookies;
  if (header.length > MAX_COOKIE_HEADER) {
    throw new GatewayError("INVALID_HEADER", `"Cookie" header is longer than ${MAX_COOKIE_HEADER}`);
  }
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (Object.hasOwn(cookies, name)) {
      if ([SESSION_COOKIE, CSRF_COOKIE, DEVICE_COOKIE].includes(name)) {
        throw new GatewayError("INVALID_HEADER", `Cookie "${name}" appears more than once`);
      }
      continue;
    }
    cookies[name] = value;
  }
  return cookies;
}

/**
 * The credential a request presents. A bearer header wins over a cookie (it cannot be
 * sent cross-site without a CORS preflight, which the gateway never grants). A malformed
 * token is refused rather than ignored.
 * @param request the incoming request
 * @param cookies its cookies
 * @returns the credential to check
 * @throws {GatewayError} UNAUTHENTICATED for a malformed Authorization header
 */
export function credentialOf(request: Request, cookies: Record<string, string>): Credential {
  const authorization = request.headers.get("authorization");
  if (authorization !== null) {
    const match = /^Bearer ([A-Za-z0-9_-]{43})$/.exec(authorization.trim());
    if (match === null) {
      throw new GatewayError(
        "UNAUTHENTICATED",
        'Invalid "Authorization" header: expected "Bearer <token>"',
      );
    }
    return { kind: "bearer", token: match[1] as string };
  }
  const session = cookies[SESSION_COOKIE];
  if (session !== undefined && TOKEN_PATTERN.test(session)) {
    return { kind: "session", token: session };
  }
  return { kind: "none" };
}

/** The device token of a request (lockout key), or null. */
export function deviceOf(cookies: Record<string, string>): string | null {
  const device = cookies[DEVICE_COOKIE];
  return device !== undefined && TOKEN_PATTERN.test(device) ? device : null;
}

/**
 * The CSRF token of a session: HMAC-SHA256(session token, label), base64url.
 * @param sessionToken the session cookie's value
 * @returns the token the page must echo in `X-CSRF-Token`
 */
export function csrfTokenFor(sessionToken: string): string {
  return createHmac("sha256", sessionToken).update("secai csrf v1").digest("base64url");
}

function isEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Requires the CSRF token of a cookie session on a state-changing request: the header must
 * equal the `secai_csrf` cookie and the value derived from the session.
 * @param request the incoming request
 * @param cookies its cookies
 * @param sessionToken the session cookie's value
 * @throws {GatewayError} CSRF_TOKEN_INVALID
 */
export function assertCsrf(
  request: Request,
  cookies: Record<string, string>,
  sessionToken: string,
): void {
  const header = request.headers.get(CSRF_HEADER) ?? "";
  const cookie = cookies[CSRF_COOKIE] ?? "";
  const expected = csrfTokenFor(sessionToken);
  // Both compares always run, so timing says nothing about which one failed.
  const isHeaderRight = isEqual(header, expected);
  const isCookieRight = isEqual(cookie, expected);
  if (header === "" || !isHeaderRight || !isCookieRight) {
    throw new GatewayError(
      "CSRF_TOKEN_INVALID",
      header === ""
        ? `Missing "X-CSRF-Token" header on ${request.method.slice(0, 20)}`
        : `Invalid "X-CSRF-Token" header on ${request.method.slice(0, 20)}`,
    );
  }
}

function cookie(
  name: string,
  value: string,
  options: { maxAge: number; path: string; isHttpOnly: boolean; isSecure: boolean },
): string {
  return [
    `${name}=${value}`,
    `Path=${options.path}`,
    `Max-Age=${options.maxAge}`,
    "SameSite=Strict",
    ...(options.isHttpOnly ? ["HttpOnly"] : []),
    ...(options.isSecure ? ["Secure"] : []),
  ].join("; ");
}

/**
 * The `Set-Cookie` values of a new session: session (HttpOnly), CSRF (readable), device
 * (HttpOnly, auth paths only). Secure when the request came over TLS.
 * @param grant what the auth control granted
 * @param isSecure whether the request URL is https
 * @returns three Set-Cookie header values
 */
export function grantCookies(grant: Grant, isSecure: boolean): string[] {
  const maxAge = grant.session.maxAgeSeconds;
  return [
    cookie(SESSION_COOKIE, grant.session.token, {
      maxAge,
      path: "/",
      isHttpOnly: true,
      isSecure,
    }),
    cookie(CSRF_COOKIE, csrfTokenFor(grant.session.token), {
      maxAge,
      path: "/",
      isHttpOnly: false,
      isSecure,
    }),
    cookie(DEVICE_COOKIE, grant.device.token, {
      maxAge: grant.device.maxAgeSeconds,
      path: DEVICE_COOKIE_PATH,
      isHttpOnly: true,
      isSecure,
    }),
  ];
}

/**
 * `Set-Cookie` values that remove the session and CSRF cookies (the device cookie stays:
 * it only keys the lockout and proves nothing).
 * @param isSecure whether the request URL is https
 * @returns two Set-Cookie header values
 */
export function clearedCookies(isSecure: boolean): string[] {
  const options = { maxAge: 0, path: "/", isSecure };
  return [
    cookie(SESSION_COOKIE, "", { ...options, isHttpOnly: true }),
    cookie(CSRF_COOKIE, "", { ...options, isHttpOnly: false }),
  ];
}

/**
 * Where an unauthenticated page request goes: the login page with the requested path, or
 * the setup page before a passphrase exists.
 * @param url the requested URL
 * @param isConfigured whether a passphrase is set
 * @returns a same-origin path
 */
export function loginRedirect(url: URL, isConfigured: boolean): string {
  if (!isConfigured) return "/setup";
  const next = `${url.pathname}${url.search}`;
  return next === "/" ? "/login" : `/login?next=${encodeURIComponent(next)}`;
}

/**
 * Accepts a `next` target only if it is a path on this site (`/x`, not `//host` or
 * `/\host`, which browsers treat as another origin).
 * @param next the query value
 * @returns the path, or "/"
 */
export function safeNextPath(next: string | null | undefined): string {
  if (typeof next !== "string" || next.length > 500) return "/";
  if (!next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  // deno-lint-ignore no-control-regex -- control characters are what this refuses
  if (/[\u0000-\u001f\u007f]/.test(next)) return "/";
  return next;
}
