/**
 * Small pieces the pages share: the "not available" notice for features whose control or
 * API does not exist yet (never fake data in their place), an unavailable-data note, and
 * formatting of sizes, hashes and times, and a labelled field of a description list.
 * Server-rendered only.
 * @module
 */
import type { ComponentChildren, JSX } from "preact";
import { errorAnswer } from "../../workers/gateway/errors.ts";

/** Props of {@link NotAvailable}. */
export interface NotAvailableProps {
  /** What is missing, e.g. "Incident recording". */
  feature: string;
  /** Why, and what will provide it. */
  children: ComponentChildren;
}

/**
 * A clearly marked placeholder: the feature does not exist yet in this runtime.
 * @param props feature name and explanation
 * @returns the notice
 */
export function NotAvailable({ feature, children }: NotAvailableProps): JSX.Element {
  return (
    <section class="notice not-available" aria-label={`${feature}: not available`}>
      <p class="notice-title">
        <span class="tag tag-muted">Not available yet</span> {feature}
      </p>
      <div class="notice-body">{children}</div>
    </section>
  );
}

/** Data a page could not load, and why (an error code the user can look up). */
export interface Unavailable {
  unavailable: string;
  message: string;
}

/**
 * Runs a state call, turning a failure into {@link Unavailable} so the page still renders
 * (the control may be down; the page says so instead of failing as a whole).
 * @param call the state call
 * @param requestId for the generic message of unexpected errors
 * @returns the value or why it is missing
 */
export async function loadOrExplain<T>(
  call: () => Promise<T>,
  requestId: string,
): Promise<T | Unavailable> {
  try {
    return await call();
  } catch (err) {
    const answer = errorAnswer(err, requestId);
    return { unavailable: answer.code, message: answer.message };
  }
}

/** Whether a loaded value is the {@link Unavailable} marker. */
export function isUnavailable(value: unknown): value is Unavailable {
  return typeof value === "object" && value !== null && "unavailable" in value;
}

/**
 * Says that data could not be loaded.
 * @param props what and why
 * @returns the note
 */
export function UnavailableNote(
  { what, reason }: { what: string; reason: Unavailable },
): JSX.Element {
  return (
    <p class="notice error-note" role="status">
      {what} could not be loaded: {reason.message} (<code>{reason.unavailable}</code>).
    </p>
  );
}

/** Bytes as a short human size (binary units). */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/**
 * A hash shown short, the full value in the title and copyable.
 * @param props the hex digest
 * @returns a `<code>` element
 */
export function Hash({ value }: { value: string | null }): JSX.Element {
  if (value === null) return <span class="none">—</span>;
  return <code class="hash" title={value}>{value.slice(0, 16)}…</code>;
}

/**
 * The header row of a data table: one column header per name.
 * @param props the column names, in order
 * @returns a `<thead>` element
 */
export function ColumnHeads({ names }: { names: readonly string[] }): JSX.Element {
  return (
    <thead>
      <tr>
        {names.map((name) => <th key={name} scope="col">{name}</th>)}
      </tr>
    </thead>
  );
}

/**
 * A time element showing the ISO instant in UTC, readable.
 * @param props ISO 8601 instant
 * @returns a `<time>` element
 */
export function Time({ iso }: { iso: string | null }): JSX.Element {
  if (iso === null) return <span class="none">—</span>;
  const text = iso.replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, " UTC");
  return <time dateTime={iso}>{text}</time>;
}

/**
 * One labelled value of a description list (`<dl>`).
 * @param props the label and the value
 * @returns a `<div>` with the `<dt>` and `<dd>`
 */
export function Field(
  { label, children }: { label: string; children: ComponentChildren },
): JSX.Element {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}
