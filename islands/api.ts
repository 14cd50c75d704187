/**
 * How islands talk to the gateway: every call goes to the same authenticated `/api/v1` as
 * any other client. State-changing calls carry the CSRF token from the `secai_csrf` cookie
 * (double submit; the gateway checks it against the session), bodies are JSON, and an
 * answer saying the session is gone sends the browser to the login page.
 * @module
 */

/** Name of the cookie holding the CSRF token (readable by page scripts on purpose). */
export const CSRF_COOKIE = "secai_csrf";

/** A JSON answer of the API. */
export interface ApiAnswer {
  /** HTTP status. */
  status: number;
  /** Whether the status is 2xx. */
  ok: boolean;
  /** Parsed JSON body, or null when there was none or it was not JSON. */
  body: Record<string, unknown> | null;
  /** `error.code` of an error answer, else "". */
  code: string;
  /** `error.message` of an error answer (or a generic one), else "". */
  message: string;
}

/** The CSRF token of this browser session ("" when signed out). */
export function csrfToken(): string {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return rest.join("=");
  }
  return "";
}

/** Goes to the login page, coming back here afterwards. */
export function goToLogin(): void {
  const here = location.pathname + location.search;
  location.assign(here === "/" ? "/login" : `/login?next=${encodeURIComponent(here)}`);
}

/** Options of {@link api}. */
export interface ApiOptions {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Sent as JSON. */
  body?: unknown;
  /** Aborts the call. */
  signal?: AbortSignal;
  /** Leave a 401 to the caller instead of going to the login page (the login form). */
  isAuthCall?: boolean;
}

/**
 * Calls the API. Never throws for an HTTP error: the answer says what happened; a network
 * failure becomes status 0 with code NETWORK.
 * @param path a path under `/api/v1/`
 * @param options method, JSON body, abort signal
 * @returns status, body, and the error code and message when it failed
 */
export async function api(path: string, options: ApiOptions = {}): Promise<ApiAnswer> {
  const method = options.method ?? "GET";
  const headers: Record<string, string> = { accept: "application/json" };
  if (method !== "GET") {
    headers["x-csrf-token"] = csrfToken();
    headers["content-type"] = "application/json";
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      ...(method === "GET" ? {} : { body: JSON.stringify(options.body ?? {}) }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    return {
      status: 0,
      ok: false,
      body: null,
      code: "NETWORK",
      message: "The runtime did not answer; is it still running?",
    };
  }
  let body: Record<string, unknown> | null = null;
  if ((res.headers.get("content-type") ?? "").startsWith("application/json")) {
    const parsed: unknown = await res.json().catch(() => null);
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
      body = parsed as Record<string, unknown>;
    }
  } else {
    await res.body?.cancel();
  }
  const error = body?.error as { code?: unknown; message?: unknown } | undefined;
  const code = res.ok ? "" : typeof error?.code === "string" ? error.code : `HTTP_${res.status}`;
  const message = res.ok
    ? ""
    : typeof error?.message === "string"
    ? error.message
    : `The request failed (HTTP ${res.status})`;
  if (!options.isAuthCall && (code === "UNAUTHENTICATED" || code === "SETUP_REQUIRED")) {
    goToLogin();
  }
  return { status: res.status, ok: res.ok, body, code, message };
}

/** Formats an ISO instant as local time for people. */
export function localTime(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
