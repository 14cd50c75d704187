/**
 * Edit a policy file and preview its effect before it is applied: the candidate text is sent
 * to `POST /api/v1/policy/whatif`, which validates it with the same strict schema as a reload
 * (a refusal names the file, field and reason, shown inline under the editor) and replays
 * the logged decisions under it, listing every decision that would change.
 *
 * Written with `h()` (see LiveControls for why).
 * @module
 */
import { h, type JSX } from "preact";
import { useState } from "preact/hooks";
import { api } from "./api.ts";
import { tableHead } from "./table.ts";

/** Props of {@link PolicyEditor}. */
export interface PolicyEditorProps {
  /** Editable files: name (`policy`, `agent`) → YAML text of the policy in force. */
  files: Record<string, string>;
  /** Where an operator saves a file to apply it (the policy control reloads it). */
  overrideDir: string;
}

interface Change {
  seq: number;
  domain: string;
  before: { decision: string; rule: string };
  after: { decision: string; rule: string; reasons: string[] };
}

interface Report {
  replayed: number;
  changed: Change[];
  effect_changes: number;
  unchanged: number;
  candidate_version: string;
}

function isReport(v: unknown): v is Report {
  const r = v as Record<string, unknown> | null;
  return typeof r?.replayed === "number" && Array.isArray(r.changed) &&
    typeof r.effect_changes === "number";
}

/**
 * The editor with its what-if preview.
 * @param props file texts and the override folder
 * @returns the editor
 */
export default function PolicyEditor({ files, overrideDir }: PolicyEditorProps): JSX.Element {
  const names = Object.keys(files);
  const [name, setName] = useState(names[0] ?? "policy");
  const [texts, setTexts] = useState(files);
  const [error, setError] = useState("");
  const [report, setReport] = useState<Report | null>(null);
  const [isBusy, setBusy] = useState(false);
  const text = texts[name] ?? "";

  async function preview(): Promise<void> {
    setBusy(true);
    setError("");
    setReport(null);
    const answer = await api("/api/v1/policy/whatif", {
      method: "POST",
      body: { [name]: text },
    });
    setBusy(false);
    if (answer.ok && isReport(answer.body)) setReport(answer.body);
    else setError(answer.message);
  }

  const id = "policy-text";
  return h(
    "div",
    { class: "policy-editor" },
    h(
      "div",
      { class: "field" },
      h("label", { for: "policy-file" }, "File"),
      h(
        "select",
        {
          id: "policy-file",
          value: name,
          onChange: (e: Event) => {
            setName((e.currentTarget as HTMLSelectElement).value);
            setError("");
            setReport(null);
          },
        },
        ...names.map((n) => h("option", { key: n, value: n }, `${n}.yaml`)),
      ),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: id }, `Candidate ${name}.yaml`),
      h("textarea", {
        id,
        rows: 24,
        spellcheck: false,
        value: text,
        "aria-invalid": error ? "true" : undefined,
        "aria-describedby": error ? `${id}-error` : undefined,
        onInput: (e: Event) =>
          setTexts({ ...texts, [name]: (e.currentTarget as HTMLTextAreaElement).value }),
      }),
      error ? h("p", { class: "field-error", id: `${id}-error`, role: "alert" }, error) : null,
    ),
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        { type: "button", onClick: preview, disabled: isBusy },
        isBusy ? "Checking…" : "Validate and preview changes",
      ),
      h("button", { type: "button", disabled: true, "aria-describedby": "apply-note" }, "Apply"),
    ),
    h(
      "p",
      { class: "hint", id: "apply-note" },
      "Applying from the dashboard is not available yet: save the candidate as ",
      h("code", null, `${overrideDir}/${name}.yaml`),
      "; the policy control validates it again and reloads it (a refused file leaves the policy in force).",
    ),
    report === null ? null : h(
      "section",
      { class: "whatif", role: "status", "aria-label": "What-if result" },
      h(
        "p",
        null,
        h("strong", null, "Valid. "),
        `Replayed ${report.replayed} logged decisions: ${report.changed.length} would change (${report.effect_changes} change their effect), ${report.unchanged} stay the same.`,
      ),
      report.changed.length === 0 ? null : h(
        "table",
        { class: "matrix" },
        tableHead(["Seq", "Domain", "Now", "With the candidate"]),
        h(
          "tbody",
          null,
          ...report.changed.slice(0, 200).map((c) =>
            h(
              "tr",
              { key: c.seq },
              h("td", { class: "number" }, h("a", { href: `/audit/${c.seq}` }, String(c.seq))),
              h("td", null, c.domain),
              h("td", null, `${c.before.decision} (${c.before.rule})`),
              h("td", null, `${c.after.decision} (${c.after.rule}) ${c.after.reasons.join("; ")}`),
            )
          ),
        ),
      ),
    ),
  );
}
