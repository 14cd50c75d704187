/**
 * "Verify now": asks the audit control to recompute the Merkle tree from the segments and
 * check every signed head (`POST /api/v1/audit/verify`), then shows the report — intact, or
 * the first bad sequence number and what happened to it.
 *
 * Written with `h()` (see LiveControls for why).
 * @module
 */
import { h, type JSX } from "preact";
import { useState } from "preact/hooks";
import { api } from "./api.ts";

/** The part of the verification report shown. */
interface Report {
  isIntact: boolean;
  entries: number;
  heads: number;
  root: string | null;
  firstBadSeq: number | null;
  kind: string | null;
  detail: string;
  durationMs: number;
}

function isReport(value: unknown): value is Report {
  const v = value as Record<string, unknown> | null;
  return typeof v?.isIntact === "boolean" && typeof v.entries === "number" &&
    typeof v.heads === "number" && typeof v.detail === "string";
}

/**
 * The verify button and its result.
 * @returns the panel
 */
export default function AuditVerify(): JSX.Element {
  const [isBusy, setBusy] = useState(false);
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState("");

  async function verify(): Promise<void> {
    setBusy(true);
    setError("");
    const answer = await api("/api/v1/audit/verify", { method: "POST", body: {} });
    setBusy(false);
    if (answer.ok && isReport(answer.body)) setReport(answer.body);
    else setError(answer.message || "The answer was not a verification report");
  }

  return h(
    "div",
    { class: "verify" },
    h(
      "button",
      { type: "button", onClick: verify, disabled: isBusy },
      isBusy ? "Verifying…" : "Verify the whole log now",
    ),
    h(
      "div",
      { role: "status", "aria-live": "polite", class: "verify-result" },
      error ? h("p", { class: "field-error" }, error) : null,
      report === null ? null : report.isIntact
        ? h(
          "p",
          { class: "result-ok" },
          h("strong", null, "Intact. "),
          `${report.entries} entries and ${report.heads} signed heads check out (${report.durationMs} ms). `,
          report.root
            ? h("code", { class: "hash", title: report.root }, `root ${report.root.slice(0, 16)}…`)
            : null,
        )
        : h(
          "p",
          { class: "result-bad" },
          h("strong", null, "Tampered. "),
          `First bad entry: ${report.firstBadSeq ?? "unknown"} (${
            report.kind ?? "unknown"
          }). ${report.detail}`,
        ),
    ),
  );
}
