/**
 * The session corner of the header: when the session ends for inactivity, a "Stay signed
 * in" button (reading pages does not count as activity; this POST does), and "Log out".
 *
 * Written with `h()` (see LiveControls for why).
 * @module
 */
import { h, type JSX } from "preact";
import { useState } from "preact/hooks";
import { api, localTime } from "./api.ts";

/** Props of {@link SessionControls}. */
export interface SessionControlsProps {
  /** When the session ends without activity (ISO), or null for a CLI token. */
  idleExpiresAt: string | null;
  /** When the session ends regardless (ISO), or null. */
  expiresAt: string | null;
}

/**
 * Session status and buttons.
 * @param props the session's end times
 * @returns the controls
 */
export default function SessionControls(props: SessionControlsProps): JSX.Element {
  const [idle, setIdle] = useState(props.idleExpiresAt);
  const [error, setError] = useState("");

  async function refresh(): Promise<void> {
    const answer = await api("/api/v1/auth/refresh", { method: "POST" });
    const session = answer.body?.session as { idleExpiresAt?: unknown } | null | undefined;
    if (answer.ok && typeof session?.idleExpiresAt === "string") {
      setIdle(session.idleExpiresAt);
      setError("");
    } else if (!answer.ok) {
      setError(answer.message);
    }
  }

  async function logout(): Promise<void> {
    const answer = await api("/api/v1/auth/logout", { method: "POST" });
    if (answer.ok) location.assign("/login");
    else setError(answer.message);
  }

  return h(
    "div",
    { class: "session" },
    h(
      "span",
      { class: "session-text" },
      idle ? `Signed in until ${localTime(idle)} if idle` : "Signed in",
    ),
    h("button", { type: "button", class: "secondary", onClick: refresh }, "Stay signed in"),
    h("button", { type: "button", class: "secondary", onClick: logout }, "Log out"),
    error ? h("span", { class: "field-error", role: "alert" }, error) : null,
  );
}
