/**
 * `/audit`: the audit log, newest first, with filters (control, type, decision, time range,
 * text in the subject) as a plain GET form that works without JavaScript, paging, the latest
 * signed tree head, and "Verify now" once the audit API offers verification.
 * @module
 */
import type { JSX } from "preact";
import AuditVerify from "../../islands/AuditVerify.tsx";
import { Island } from "../../workers/gateway/render.tsx";
import type { Handlers, PageProps } from "../../workers/gateway/routing.ts";
import type { AuditPage } from "../../workers/gateway/state.ts";
import { AuditQueryParamsSchema } from "../api/v1/audit.ts";
import { describeZodError } from "../../runtime/kit/validate.ts";
import type { CallOutput } from "../../runtime/kit/rpc.ts";
import type { auditQueryApi } from "../../workers/audit/api.ts";
import {
  ColumnHeads,
  Field,
  Hash,
  isUnavailable,
  loadOrExplain,
  Time,
  type Unavailable,
  UnavailableNote,
} from "../(_components)/ui.tsx";

/** Filter fields of the form, as typed (echoed back into the form). */
type Filters = Record<string, string>;

/** The latest signed head and the key. */
type Head = CallOutput<typeof auditQueryApi, "head">;

/** What the page renders. */
interface AuditPageData {
  filters: Filters;
  /** Why the filters were refused (shown at the form), or null. */
  filterError: string | null;
  page: AuditPage | Unavailable | null;
  head: Head | Unavailable | null;
  controls: string[];
  canVerify: boolean;
}

const LIMITS = ["25", "50", "100", "200"];

/** A datetime-local value ("2026-11-25T10:00") is read as UTC and given seconds and a zone. */
function toInstant(value: string): string {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(value) ? `${value}:00Z` : value;
}

/** Loads one page of the log under the filters. */
export const handler: Handlers<AuditPageData> = {
  async GET(_req, ctx) {
    const filters: Filters = {};
    const raw: Record<string, string> = {};
    let filterError: string | null = null;
    for (const [key, value] of ctx.url.searchParams) {
      if (value === "") continue; // an empty form field means "any"
      if (Object.hasOwn(raw, key)) filterError = `Filter "${key.slice(0, 40)}" appears twice`;
      filters[key] = value;
      raw[key] = key === "from" || key === "to" ? toInstant(value) : value;
    }
    const parsed = AuditQueryParamsSchema.safeParse(raw);
    if (!parsed.success) filterError ??= `Invalid filter ${describeZodError(parsed.error)}`;
    const [page, head, status] = await Promise.all([
      filterError !== null || !parsed.success ? null : loadOrExplain(() => {
        const { q, ...query } = parsed.data;
        return ctx.state.queryAudit(q === undefined ? query : { ...query, text: q }, {
          signal: ctx.signal,
        });
      }, ctx.requestId),
      loadOrExplain(() => ctx.state.auditLog.head({}, { signal: ctx.signal }), ctx.requestId),
      loadOrExplain(() => ctx.state.status({ signal: ctx.signal }), ctx.requestId),
    ]);
    return ctx.render({
      filters,
      filterError,
      page,
      head,
      controls: isUnavailable(status) ? [] : status.controls.map((c) => c.name),
      canVerify: ctx.hasRoute("/api/v1/audit/verify"),
    }, filterError === null ? undefined : { status: 400 });
  },
};

function FilterForm(
  { filters, error, controls }: { filters: Filters; error: string | null; controls: string[] },
): JSX.Element {
  const value = (key: string) => filters[key] ?? "";
  return (
    <form
      class="filters"
      method="get"
      action="/audit"
      aria-describedby={error ? "filter-error" : undefined}
    >
      <div class="field">
        <label for="f-control">Control</label>
        <select id="f-control" name="control">
          <option value="">any</option>
          {controls.map((c) => (
            <option key={c} value={c} selected={value("control") === c}>{c}</option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="f-type">Type</label>
        <input id="f-type" name="type" value={value("type")} placeholder="e.g. auth.login" />
      </div>
      <div class="field">
        <label for="f-decision">Decision</label>
        <select id="f-decision" name="decision">
          {["", "allow", "deny", "ask"].map((d) => (
            <option key={d} value={d} selected={value("decision") === d}>{d || "any"}</option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="f-from">From (UTC)</label>
        <input id="f-from" name="from" type="datetime-local" value={value("from")} />
      </div>
      <div class="field">
        <label for="f-to">Before (UTC)</label>
        <input id="f-to" name="to" type="datetime-local" value={value("to")} />
      </div>
      <div class="field">
        <label for="f-q">Subject contains</label>
        <input id="f-q" name="q" type="search" value={value("q")} />
      </div>
      <div class="field">
        <label for="f-limit">Per page</label>
        <select id="f-limit" name="limit">
          {LIMITS.map((l) => (
            <option key={l} value={l} selected={(value("limit") || "50") === l}>{l}</option>
          ))}
        </select>
      </div>
      <div class="field actions">
        <button type="submit">Filter</button>
        <a href="/audit">Reset</a>
      </div>
      {error ? <p id="filter-error" class="field-error form-wide" role="alert">{error}</p> : null}
    </form>
  );
}

function Entries({ page, filters }: { page: AuditPage; filters: Filters }): JSX.Element {
  if (page.entries.length === 0) return <p class="none">No entries match.</p>;
  const { before, ...rest } = filters;
  const older = new URLSearchParams({ ...rest, before: String(page.next ?? "") });
  return (
    <>
      <p class="summary-line">
        {page.entries.length} entries shown, newest first; the log holds {page.total}.
      </p>
      <div class="table-wrap">
        <table class="matrix audit-table">
          <ColumnHeads names={["Seq", "Time", "Control", "Type", "Decision", "Actor", "Subject"]} />
          <tbody>
            {page.entries.map((e) => (
              <tr key={e.seq}>
                <td class="number">
                  <a href={`/audit/${e.seq}`} aria-label={`Entry ${e.seq}`}>{e.seq}</a>
                </td>
                <td>
                  <Time iso={e.ts} />
                </td>
                <td>
                  <span class="name">{e.control}</span>
                </td>
                <td>
                  <code>{e.type}</code>
                </td>
                <td>
                  {e.decision
                    ? <span class={`state decision-${e.decision}`}>{e.decision}</span>
                    : <span class="none">—</span>}
                </td>
                <td class="wrap">{e.actor}</td>
                <td class="wrap">{e.subject}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <nav class="pager" aria-label="Pages">
        {before === undefined ? null : <a href={`/audit?${new URLSearchParams(rest)}`}>Newest</a>}
        {page.next === null ? null : <a href={`/audit?${older}`} rel="next">Older entries</a>}
      </nav>
    </>
  );
}

/**
 * The audit page.
 * @param props the entries, filters, head and whether verification exists
 * @returns the page content
 */
export default function AuditPageView({ data }: PageProps<AuditPageData>): JSX.Element {
  const { head } = data;
  return (
    <>
      <h1>Audit log</h1>
      <section class="panel" aria-labelledby="head-title">
        <h2 id="head-title">Signed tree head</h2>
        {head === null
          ? null
          : isUnavailable(head)
          ? <UnavailableNote what="The signed head" reason={head} />
          : head.head === null
          ? <p class="none">No head signed yet (the log is empty).</p>
          : (
            <dl class="summary">
              <Field label="Entries">{head.head.head.size}</Field>
              <Field label="Root">
                <Hash value={head.head.head.root} />
              </Field>
              <Field label="Signed">
                <Time iso={head.head.head.ts} />
              </Field>
              <Field label="Key">
                <Hash value={head.keyId} />
              </Field>
            </dl>
          )}
        {data.canVerify
          ? <Island name="AuditVerify" component={AuditVerify} props={{}} />
          : <p class="none">Verification is not offered by this runtime's audit API.</p>}
      </section>
      <section aria-labelledby="entries-title">
        <h2 id="entries-title">Entries</h2>
        <FilterForm filters={data.filters} error={data.filterError} controls={data.controls} />
        {data.page === null
          ? null
          : isUnavailable(data.page)
          ? <UnavailableNote what="The audit log" reason={data.page} />
          : <Entries page={data.page} filters={data.filters} />}
      </section>
    </>
  );
}
