/**
 * The live capability matrix: system state plus one row per control (state, restarts,
 * granted permissions, peers, jobs). Rendered on the server inside the status page, then
 * hydrated: it listens to `/api/v1/events` and reloads `/api/v1/controls` whenever the system
 * reports something, reconnecting when the stream breaks.
 *
 * Written with `h()` rather than JSX: the project compiles JSX with Deno's `precompile`
 * transform, whose output (string templates) only preact-render-to-string understands, and
 * islands must also render in the browser.
 * @module
 */
import { type ComponentChildren, h, type JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.ts";
import { type LinkState, subscribeEvents } from "./events.ts";
import { tableHead } from "./table.ts";

/** Permissions as shown in the matrix. */
export interface PermissionsView {
  read: string[];
  write: string[];
  net: string[];
  env: string[];
  sys: string[];
  run: boolean;
  ffi: boolean;
  import: boolean;
}

/** One control's row. */
export interface ControlView {
  name: string;
  description: string;
  state: string;
  required: boolean;
  restarts: number;
  lastError: string | null;
  since: string;
  permissions: PermissionsView;
  provides: string[];
  uses: { api: string; control: string }[];
  jobs: string[];
}

/** The system as shown on the page (`/api/v1/controls`). */
export interface StatusView {
  ready: boolean;
  state: string;
  version: string;
  startedAt: string;
  controls: ControlView[];
}

/** Props of {@link LiveControls}. */
export interface LiveControlsProps {
  /** The state rendered on the server. */
  initial: StatusView;
}

type Link = "snapshot" | LinkState;

const LINK_TEXT: Record<Link, string> = {
  snapshot: "Snapshot taken when the page loaded.",
  connecting: "Connecting to live updates…",
  live: "Live: updates as controls change.",
  reconnecting: "Live updates interrupted; reconnecting…",
};

const CONTROLS_URL = "/api/v1/controls";

/**
 * The capability matrix, kept live in the browser.
 * @param props the server-rendered state
 * @returns the matrix
 */
export default function LiveControls({ initial }: LiveControlsProps): JSX.Element {
  const [view, setView] = useState(initial);
  const [link, setLink] = useState<Link>("snapshot");

  useEffect(() => {
    let isStopped = false;
    let isLoading = false;
    let isStale = false;

    // Coalesces bursts of events into at most one request in flight plus one queued.
    async function reload(): Promise<void> {
      if (isLoading) {
        isStale = true;
        return;
      }
      isLoading = true;
      try {
        const answer = await api(CONTROLS_URL);
        if (!isStopped && answer.ok && isStatusView(answer.body)) setView(answer.body);
      } finally {
        isLoading = false;
        if (isStale && !isStopped) {
          isStale = false;
          void reload();
        }
      }
    }

    const stop = subscribeEvents({
      onLink: setLink,
      onOpen: () => void reload(), // events may have happened while disconnected
      onEvent: () => void reload(),
    });
    return () => {
      isStopped = true;
      stop();
    };
  }, []);

  return h(
    "section",
    { class: "live-controls", "aria-labelledby": "matrix-title" },
    h(
      "dl",
      { class: "summary" },
      term("System", h("span", { class: `state state-${view.state}` }, view.state)),
      term("Ready", view.ready ? "yes" : "no"),
      term("Version", view.version),
      term("Started", h("time", { dateTime: view.startedAt }, view.startedAt)),
    ),
    h("p", { class: "link", role: "status" }, LINK_TEXT[link]),
    h("h2", { id: "matrix-title" }, "Capability matrix"),
    h(
      "div",
      { class: "table-wrap", tabIndex: 0, role: "region", "aria-label": "Capability matrix table" },
      h(
        "table",
        { class: "matrix" },
        tableHead([
          "Control",
          "State",
          "Restarts",
          "Permissions",
          "Provides",
          "Uses (contract → control)",
          "Jobs",
        ]),
        h("tbody", null, ...view.controls.map((control) => row(control))),
      ),
    ),
  );
}

function term(label: string, value: ComponentChildren): JSX.Element {
  return h("div", null, h("dt", null, label), h("dd", null, value));
}

function row(control: ControlView): JSX.Element {
  const p = control.permissions;
  return h(
    "tr",
    { key: control.name, id: `control-${control.name}` },
    h(
      "th",
      { scope: "row" },
      h("span", { class: "name" }, control.name),
      control.required ? h("span", { class: "tag" }, "required") : null,
      h("span", { class: "description" }, control.description),
    ),
    h(
      "td",
      null,
      h("span", { class: `state state-${control.state}` }, control.state),
      h(
        "span",
        { class: "since" },
        "since ",
        h("time", { dateTime: control.since }, control.since),
      ),
      control.lastError === null ? null : h("span", { class: "error" }, control.lastError),
    ),
    h("td", { class: "number" }, String(control.restarts)),
    h(
      "td",
      null,
      h(
        "dl",
        { class: "perms" },
        perm("read", p.read),
        perm("write", p.write),
        perm("net", p.net),
        perm("env", p.env),
        perm("sys", p.sys),
        perm(
          "run · ffi · import",
          [p.run, p.ffi, p.import].map((v) => (v ? "yes" : "no")).join(" · "),
        ),
      ),
    ),
    h("td", null, list(control.provides)),
    h("td", null, list(control.uses.map((u) => `${u.api} → ${u.control}`))),
    h("td", null, list(control.jobs)),
  );
}

function perm(label: string, value: string[] | string): JSX.Element {
  return h(
    "div",
    null,
    h("dt", null, label),
    h("dd", null, typeof value === "string" ? value : list(value)),
  );
}

function list(items: string[]): ComponentChildren {
  if (items.length === 0) return h("span", { class: "none" }, "none");
  return h("ul", { class: "plain" }, ...items.map((item) => h("li", { key: item }, item)));
}

/** Checks the shape of `/api/v1/controls` before showing it (the island has no zod). */
function isStatusView(value: unknown): value is StatusView {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.ready === "boolean" && typeof v.state === "string" &&
    typeof v.version === "string" && typeof v.startedAt === "string" &&
    Array.isArray(v.controls) && v.controls.every(isControlView);
}

function isControlView(value: unknown): value is ControlView {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  const p = v.permissions as Record<string, unknown> | null | undefined;
  const isStrings = (x: unknown) => Array.isArray(x) && x.every((s) => typeof s === "string");
  return typeof v.name === "string" && typeof v.description === "string" &&
    typeof v.state === "string" && typeof v.required === "boolean" &&
    typeof v.restarts === "number" && (v.lastError === null || typeof v.lastError === "string") &&
    typeof v.since === "string" && typeof p === "object" && p !== null &&
    ["read", "write", "net", "env", "sys"].every((k) => isStrings(p[k])) &&
    isStrings(v.provides) && isStrings(v.jobs) && Array.isArray(v.uses) &&
    v.uses.every((u: unknown) =>
      typeof u === "object" && u !== null &&
      typeof (u as Record<string, unknown>).api === "string" &&
      typeof (u as Record<string, unknown>).control === "string"
    );
}
