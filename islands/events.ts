/**
 * A live subscription to `/api/v1/events` (server-sent events) that survives outages: the
 * browser reconnects by itself while the stream is CONNECTING; when it gives up (CLOSED,
 * e.g. a 401 or 503 answer) this retries with exponential backoff, after asking
 * `/api/v1/auth/status` whether the session is still valid — if not, the page goes to the
 * login. A `session_expired` event (sent when the session ends) triggers the same check.
 * @module
 */
import { api, goToLogin } from "./api.ts";

/** How the page is connected. */
export type LinkState = "connecting" | "live" | "reconnecting";

/** What a subscriber hears. */
export interface EventHandlers {
  /** The link changed. */
  onLink(state: LinkState): void;
  /** A system event (parsed JSON), or a gap: reload the state. */
  onEvent(event: Record<string, unknown> | null): void;
  /** (Re)connected: events may have been missed, reload the state. */
  onOpen(): void;
}

/** Events endpoint. */
export const EVENTS_URL = "/api/v1/events";
const MAX_BACKOFF_MS = 30_000;

/**
 * Subscribes to the event stream.
 * @param handlers callbacks
 * @returns a function that ends the subscription
 */
export function subscribeEvents(handlers: EventHandlers): () => void {
  let source: EventSource | null = null;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let backoffMs = 1_000;
  let isStopped = false;

  async function retryLater(): Promise<void> {
    const status = await api("/api/v1/auth/status", { isAuthCall: true });
    if (isStopped) return;
    if (status.ok && status.body?.authenticated === false) {
      goToLogin();
      return;
    }
    retryTimer = setTimeout(connect, backoffMs);
    backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
  }

  function connect(): void {
    if (isStopped) return;
    handlers.onLink("connecting");
    const es = new EventSource(EVENTS_URL);
    source = es;
    es.addEventListener("open", () => {
      backoffMs = 1_000;
      handlers.onLink("live");
      handlers.onOpen();
    });
    es.addEventListener("system", (e) => {
      handlers.onEvent(parse((e as MessageEvent<string>).data));
    });
    es.addEventListener("gap", () => handlers.onEvent(null));
    es.addEventListener("session_expired", () => {
      // The stream ends where the session's idle time ended when it opened; a later action
      // may have extended the session, so ask before leaving the page.
      es.close();
      backoffMs = 1_000;
      void retryLater();
    });
    es.addEventListener("error", () => {
      if (isStopped) return;
      handlers.onLink("reconnecting");
      // CONNECTING: the browser retries by itself. CLOSED (an error answer): we retry.
      if (es.readyState !== EventSource.CLOSED) return;
      es.close();
      void retryLater();
    });
  }

  connect();
  return () => {
    isStopped = true;
    clearTimeout(retryTimer);
    source?.close();
  };
}

function parse(data: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(data);
    return typeof value === "object" && value !== null ? value as Record<string, unknown> : null;
  } catch (_err) {
    return null; // a malformed event only means "reload"
  }
}
