/**
 * Test helpers for the authenticated gateway: the CLI's bearer token, and a browser session
 * made through the real first-run setup (setup code from the state dir, real scrypt).
 * @module
 */

/** A passphrase that passes the rules of spec 31 §2. */
export const TEST_PASSPHRASE = "violet tractor museum 42 lantern";

/** Headers of a signed-in browser. */
export interface SessionHeaders {
  /** `Cookie` header value (session, CSRF and device cookies). */
  cookie: string;
  /** The CSRF token for `X-CSRF-Token`. */
  csrf: string;
  /** Headers for a JSON POST from our own origin. */
  post: Record<string, string>;
}

/** The CLI token of a running system (`<home>/auth/cli-token`). */
export async function cliToken(home: string): Promise<string> {
  return (await Deno.readTextFile(`${home}/auth/cli-token`)).trim();
}

/** `Authorization` header with the CLI token. */
export async function cliHeaders(home: string): Promise<Record<string, string>> {
  return { authorization: `Bearer ${await cliToken(home)}` };
}

/** Cookies of a response as one `Cookie` header value. */
export function cookiesOf(res: Response): string {
  return res.headers.getSetCookie().map((c) => c.split(";", 1)[0]).join("; ");
}

/**
 * Sets the passphrase of a fresh system through `POST /api/v1/auth/setup` and returns the
 * signed-in browser's headers.
 * @param base gateway origin
 * @param home state dir (holds the setup code)
 * @param passphrase defaults to {@link TEST_PASSPHRASE}
 */
export async function setUpSession(
  base: string,
  home: string,
  passphrase: string = TEST_PASSPHRASE,
): Promise<SessionHeaders> {
  const setupCode = (await Deno.readTextFile(`${home}/auth/setup-code`)).trim();
  const res = await fetch(`${base}/api/v1/auth/setup`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: base },
    body: JSON.stringify({ setupCode, passphrase }),
  });
  if (res.status !== 200) throw new Error(`Setup answered ${res.status}: ${await res.text()}`);
  await res.body?.cancel();
  return sessionOf(res, base);
}

/** The session headers of a login or setup answer. */
export function sessionOf(res: Response, base: string): SessionHeaders {
  const cookie = cookiesOf(res);
  const csrf = /secai_csrf=([^;]+)/.exec(cookie)?.[1] ?? "";
  return {
    cookie,
    csrf,
    post: { cookie, "x-csrf-token": csrf, origin: base, "content-type": "application/json" },
  };
}
