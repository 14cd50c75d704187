/**
 * `/audit/:seq`: one audit entry in full (evidence and data included) and, when the audit
 * API offers it, its RFC 9162 inclusion proof into the latest signed tree head — what a third
 * party needs to check the entry offline with only the public key (`secai audit proof`).
 * @module
 */
import type { JSX } from "preact";
import type { CallOutput } from "../../runtime/kit/rpc.ts";
import type { AuditEntry, auditQueryApi } from "../../workers/audit/api.ts";
import type { Handlers, PageProps } from "../../workers/gateway/routing.ts";
import {
  Field,
  Hash,
  isUnavailable,
  loadOrExplain,
  Time,
  type Unavailable,
  UnavailableNote,
} from "../(_components)/ui.tsx";

type Proof = CallOutput<typeof auditQueryApi, "proof">;

/** What the page renders. */
interface EntryPageData {
  seq: number;
  entry: AuditEntry | null | Unavailable;
  proof: Proof | Unavailable | null;
}

/** Loads the entry and its proof. */
export const handler: Handlers<EntryPageData> = {
  async GET(_req, ctx) {
    const text = ctx.params.seq ?? "";
    const seq = /^\d{1,15}$/.test(text) ? Number(text) : -1;
    if (seq < 0) return ctx.render({ seq: -1, entry: null, proof: null }, { status: 404 });
    const [page, proof] = await Promise.all([
      loadOrExplain(
        () => ctx.state.queryAudit({ before: seq + 1, limit: 1 }, { signal: ctx.signal }),
        ctx.requestId,
      ),
      ctx.hasRoute("/api/v1/audit/proof/:seq")
        ? loadOrExplain(
          () => ctx.state.auditLog.proof({ seq }, { signal: ctx.signal }),
          ctx.requestId,
        )
        : Promise.resolve(null),
    ]);
    const entry = isUnavailable(page) ? page : page.entries.find((e) => e.seq === seq) ?? null;
    return ctx.render({ seq, entry, proof }, entry === null ? { status: 404 } : undefined);
  },
};

function Json({ value }: { value: unknown }): JSX.Element {
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}

function ProofSection({ proof }: { proof: Proof | Unavailable | null }): JSX.Element {
  if (proof === null) {
    return <p class="none">This runtime's audit API does not offer inclusion proofs.</p>;
  }
  if (isUnavailable(proof)) return <UnavailableNote what="The inclusion proof" reason={proof} />;
  const { head } = proof.head;
  return (
    <>
      <p>
        This entry is leaf {proof.seq} of a tree of {proof.size}{" "}
        entries. Hashing the leaf with the path below gives the root the signed head commits to.
      </p>
      <dl class="summary">
        <Field label="Leaf hash">
          <Hash value={proof.leafHash} />
        </Field>
        <Field label="Tree size">{proof.size}</Field>
        <Field label="Root">
          <Hash value={head.root} />
        </Field>
        <Field label="Head signed">
          <Time iso={head.ts} />
        </Field>
        <Field label="Key">
          <Hash value={head.key} />
        </Field>
      </dl>
      <h3>Audit path ({proof.proof.length} hashes)</h3>
      {proof.proof.length === 0
        ? <p class="none">None: the tree has one leaf.</p>
        : (
          <ol class="proof-path">
            {proof.proof.map((hash, i) => (
              <li key={`${i}:${hash}`}>
                <code>{hash}</code>
              </li>
            ))}
          </ol>
        )}
      <details>
        <summary>Signed head and signature (JSON)</summary>
        <Json value={proof.head} />
      </details>
    </>
  );
}

/**
 * The entry page.
 * @param props the entry and its proof
 * @returns the page content
 */
export default function AuditEntryPage({ data }: PageProps<EntryPageData>): JSX.Element {
  const { entry } = data;
  return (
    <>
      <p class="crumbs">
        <a href="/audit">Audit log</a> / entry {data.seq < 0 ? "?" : data.seq}
      </p>
      <h1>Audit entry {data.seq < 0 ? "" : data.seq}</h1>
      {entry === null
        ? <p class="notice error-note">There is no audit entry with this sequence number.</p>
        : isUnavailable(entry)
        ? <UnavailableNote what="The entry" reason={entry} />
        : (
          <>
            <dl class="entry-fields">
              <Field label="Time">
                <Time iso={entry.ts} />
              </Field>
              <Field label="Control">
                <span class="name">{entry.control}</span>
              </Field>
              <Field label="Type">
                <code>{entry.type}</code>
              </Field>
              <Field label="Decision">{entry.decision ?? "—"}</Field>
              <Field label="Actor">{entry.actor}</Field>
              <Field label="Subject">{entry.subject}</Field>
            </dl>
            <h2>Evidence</h2>
            <Json value={entry.evidence} />
            <h2>Data</h2>
            <Json value={entry.data} />
            <h2>Inclusion proof</h2>
            <ProofSection proof={data.proof} />
          </>
        )}
    </>
  );
}
