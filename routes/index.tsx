/**
 * Overview: system state and the live capability matrix (each control's state, restarts,
 * granted permissions, peers and jobs), then the evidence matrix (which tests prove which
 * control). Rendered completely on the server; the `LiveControls` island then keeps the
 * capability matrix current from `/api/v1/events`.
 * @module
 */
import type { JSX } from "preact";
import LiveControls from "../islands/LiveControls.tsx";
import { Island } from "../workers/gateway/render.tsx";
import { errorAnswer } from "../workers/gateway/errors.ts";
import type { Handlers, PageProps } from "../workers/gateway/routing.ts";
import type { EvidenceView, SystemStatus } from "../workers/gateway/state.ts";
import { ColumnHeads } from "./(_components)/ui.tsx";

/** What the page renders. */
interface StatusPageData {
  status: SystemStatus;
  /** The matrix, or why it could not be had (the page still renders). */
  evidence: EvidenceView | { unavailable: string };
}

/** Loads the status and the evidence matrix. */
export const handler: Handlers<StatusPageData> = {
  async GET(_req, ctx) {
    const [status, evidence] = await Promise.all([
      ctx.state.status({ signal: ctx.signal }),
      ctx.state.evidence({ signal: ctx.signal }).catch((err: unknown) => ({
        unavailable: errorAnswer(err, ctx.requestId).code,
      })),
    ]);
    return ctx.render({ status, evidence });
  },
};

const STATUS_CLASS: Record<string, string> = {
  working: "state state-ready",
  partial: "state state-degraded",
  planned: "state",
};

function EvidenceSection({ evidence }: { evidence: StatusPageData["evidence"] }): JSX.Element {
  if ("unavailable" in evidence) {
    return (
      <section aria-labelledby="evidence">
        <h2 id="evidence">Evidence matrix</h2>
        <p class="none">The evidence matrix is not available ({evidence.unavailable}).</p>
      </section>
    );
  }
  const { summary, controls } = evidence;
  return (
    <section aria-labelledby="evidence">
      <h2 id="evidence">Evidence matrix</h2>
      <p class="summary">
        {summary.working} working · {summary.partial} partial · {summary.planned}{" "}
        planned. A control is claimed only with tests that ran green in CI.
      </p>
      <div class="table-wrap">
        <table class="matrix">
          <ColumnHeads names={["Control", "Status", "Proven by"]} />
          <tbody>
            {controls.map((c) => (
              <tr key={c.id}>
                <td>
                  <span class="name">{c.id}</span> {c.title}
                  {c.note ? <div class="description">{c.note}</div> : null}
                </td>
                <td>
                  <span class={STATUS_CLASS[c.status] ?? "state"}>{c.status}</span>
                </td>
                <td>
                  {c.proofs.length === 0 ? <span class="none">—</span> : (
                    <ul class="proofs">
                      {c.proofs.map((p) => (
                        <li key={`${p.file}:${p.test}`}>
                          <code>{p.file}</code>: {p.test}
                        </li>
                      ))}
                    </ul>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

/**
 * The status page.
 * @param props the system status and the evidence matrix
 * @returns the page content
 */
export default function StatusPage({ data }: PageProps<StatusPageData>): JSX.Element {
  return (
    <>
      <h1>Overview</h1>
      <p class="hint">
        Each control runs as a worker with only the permissions and peers listed here; the table
        follows restarts and failures live.
      </p>
      <Island name="LiveControls" component={LiveControls} props={{ initial: data.status }} />
      <EvidenceSection evidence={data.evidence} />
    </>
  );
}
