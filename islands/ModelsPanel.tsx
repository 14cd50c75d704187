/**
 * Models: import a file into quarantine (multipart upload with upload progress), follow each
 * running job's stages live from `/api/v1/quarantine/:id/events`, read a job's findings,
 * cancel, approve a promotion the policy asked a person about, and verify or revoke trusted
 * models. Approve and revoke ask for confirmation inline (revoke also for a reason, which the
 * audit log keeps). Everything goes through the authenticated `/api/v1` like any client.
 *
 * Written with `h()` (see LiveControls for why).
 * @module
 */
import { type ComponentChildren, h, type JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, csrfToken, goToLogin } from "./api.ts";
import { tableHead } from "./table.ts";

/** A quarantine job as listed. */
export interface JobRow {
  id: string;
  filename: string;
  state: string;
  stage: string | null;
  size: number;
  bytesDone: number;
  error: { code: string; message: string } | null;
  decision: { decision: string; rule: string } | null;
  modelId: string | null;
  createdAt: string;
}

/** A trusted model as listed. */
export interface ModelRow {
  id: string;
  name: string;
  format: string;
  size: number;
  sha256: string;
  /** Structural fingerprint of the tensor manifest, or null when none was recorded. */
  fingerprint: string | null;
  promotedAt: string;
  lastVerifiedAt: string | null;
  scan: string;
}

/** Props of {@link ModelsPanel}. */
export interface ModelsPanelProps {
  models: ModelRow[];
  jobs: JobRow[];
  /** The pipeline's stages in order. */
  stages: string[];
}

const ACTIVE = new Set(["queued", "running", "promoting"]);

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function pick<T>(value: unknown, keys: (keyof T)[]): T | null {
  const v = value as Record<string, unknown> | null;
  return v && keys.every((k) => k in v) ? v as T : null;
}

/**
 * The models panel.
 * @param props registry, recent jobs and the stage names
 * @returns the panel
 */
export default function ModelsPanel(props: ModelsPanelProps): JSX.Element {
  const [models, setModels] = useState(props.models);
  const [jobs, setJobs] = useState(props.jobs);
  const [note, setNote] = useState("");

  async function reloadModels(): Promise<void> {
    const answer = await api("/api/v1/models");
    const list = answer.body?.models;
    if (answer.ok && Array.isArray(list)) setModels(list.map(toModelRow));
  }

  function updateJob(job: JobRow): void {
    setJobs((all) => {
      const rest = all.filter((j) => j.id !== job.id);
      return [job, ...rest].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    });
    if (job.state === "promoted") void reloadModels();
  }

  return h(
    "div",
    { class: "models" },
    h(ImportForm, { onJob: updateJob }),
    h("h2", { id: "jobs-title" }, "Quarantine"),
    jobs.length === 0 ? h("p", { class: "none" }, "No quarantine jobs yet.") : h(
      "ul",
      { class: "jobs", "aria-labelledby": "jobs-title" },
      ...jobs.map((job) =>
        h(JobItem, { key: job.id, job, stages: props.stages, onJob: updateJob })
      ),
    ),
    h("h2", { id: "registry-title" }, "Trusted models"),
    note ? h("p", { role: "status" }, note) : null,
    models.length === 0 ? h("p", { class: "none" }, "No trusted models yet: import one above.") : h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "matrix", "aria-labelledby": "registry-title" },
        tableHead(["Model", "Format", "Size", "SHA-256", "Scan", "Promoted", "Checked", ""]),
        h(
          "tbody",
          null,
          ...models.map((m) =>
            h(ModelItem, {
              key: m.id,
              model: m,
              onRevoked: () => {
                setModels((all) => all.filter((x) => x.id !== m.id));
                setNote(`Model "${m.name}" was revoked.`);
              },
            })
          ),
        ),
      ),
    ),
  );
}

/** Maps a registry model (`/api/v1/models`) to a row. */
export function toModelRow(value: unknown): ModelRow {
  const m = value as Record<string, unknown>;
  const scan = m.scan as { verdict?: unknown } | undefined;
  const tensors = m.tensorManifest as { fingerprint?: unknown } | null | undefined;
  return {
    id: String(m.id),
    name: String(m.name),
    format: String(m.format),
    size: Number(m.size),
    sha256: String(m.sha256),
    fingerprint: typeof tensors?.fingerprint === "string" ? tensors.fingerprint : null,
    promotedAt: String(m.promotedAt),
    lastVerifiedAt: typeof m.lastVerifiedAt === "string" ? m.lastVerifiedAt : null,
    scan: String(scan?.verdict ?? "?"),
  };
}

function ImportForm({ onJob }: { onJob: (job: JobRow) => void }): JSX.Element {
  const [file, setFile] = useState<File | null>(null);
  const [sent, setSent] = useState<number | null>(null);
  const [error, setError] = useState("");

  function upload(event: Event): void {
    event.preventDefault();
    if (file === null) {
      setError("Choose a model file (.gguf or .safetensors)");
      return;
    }
    setError("");
    setSent(0);
    const form = new FormData();
    form.append("file", file, file.name);
    // XMLHttpRequest, not fetch: only it reports upload progress.
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/quarantine");
    xhr.setRequestHeader("x-csrf-token", csrfToken());
    xhr.upload.onprogress = (e) => setSent(e.lengthComputable ? e.loaded / e.total : 0);
    xhr.onload = () => {
      setSent(null);
      let body: Record<string, unknown> | null = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch (_err) {
        body = null; // reported below as a failed upload
      }
      const job = pick<JobRow>(body, ["id", "state", "filename"]);
      if (xhr.status === 401) goToLogin();
      else if (xhr.status === 202 && job) onJob(job);
      else {
        const e = body?.error as { message?: unknown } | undefined;
        setError(typeof e?.message === "string" ? e.message : `Upload failed (HTTP ${xhr.status})`);
      }
    };
    xhr.onerror = () => {
      setSent(null);
      setError("The upload was interrupted");
    };
    xhr.send(form);
  }

  return h(
    "form",
    { class: "import", onSubmit: upload, method: "post", "aria-labelledby": "import-title" },
    h("h2", { id: "import-title" }, "Import a model"),
    h(
      "div",
      { class: "field" },
      h("label", { for: "model-file" }, "Model file (GGUF or safetensors)"),
      h("input", {
        id: "model-file",
        type: "file",
        accept: ".gguf,.safetensors",
        "aria-invalid": error ? "true" : undefined,
        "aria-describedby": error ? "model-file-error" : undefined,
        onChange: (e: Event) => setFile((e.currentTarget as HTMLInputElement).files?.[0] ?? null),
      }),
      error ? h("p", { class: "field-error", id: "model-file-error", role: "alert" }, error) : null,
    ),
    h("button", { type: "submit", disabled: sent !== null }, "Import into quarantine"),
    sent === null ? null : h(
      "p",
      { role: "status" },
      "Uploading… ",
      h("progress", { max: 1, value: sent, "aria-label": "Upload progress" }),
    ),
    h(
      "p",
      { class: "hint" },
      "Every file goes through the quarantine stages in a sandbox before it can be used. Import from a URL is not available yet (it needs the airlock).",
    ),
  );
}

function JobItem(
  { job, stages, onJob }: { job: JobRow; stages: string[]; onJob: (job: JobRow) => void },
): JSX.Element {
  const [status, setStatus] = useState<Record<string, string>>({});
  const [findings, setFindings] = useState<Record<string, unknown>[] | null>(null);
  const [confirm, setConfirm] = useState(false);
  const [error, setError] = useState("");
  const isActive = ACTIVE.has(job.state);

  // Stages that ran before this page was open: read them from the job once.
  useEffect(() => {
    void api(`/api/v1/quarantine/${job.id}`).then((answer) => {
      const stages = answer.body?.stages;
      if (!answer.ok || !Array.isArray(stages)) return;
      const known: Record<string, string> = {};
      for (const s of stages as { stage?: unknown; status?: unknown; verdict?: unknown }[]) {
        if (s.status === "pending") continue;
        known[String(s.stage)] = s.status === "running" ? "running" : String(s.verdict ?? s.status);
      }
      setStatus((now) => ({ ...known, ...now }));
    });
  }, [job.id, job.state]);

  useEffect(() => {
    if (!isActive) return;
    const es = new EventSource(`/api/v1/quarantine/${job.id}/events`);
    let current = job;
    const on = (name: string, fn: (data: Record<string, unknown>) => void) =>
      es.addEventListener(name, (e) => {
        try {
          fn(JSON.parse((e as MessageEvent<string>).data));
        } catch (_err) {
          // a malformed event changes nothing
        }
      });
    on("job", (data) => {
      const next = pick<JobRow>(data, ["id", "state", "filename"]);
      if (next) onJob(current = next);
      if (next && !ACTIVE.has(next.state)) es.close();
    });
    on("progress", (d) => {
      onJob(current = { ...current, stage: String(d.stage), bytesDone: Number(d.bytes) || 0 });
    });
    on("stage", (d) => {
      const name = String(d.stage);
      const value = d.status === "running" ? "running" : String(d.verdict ?? d.status);
      setStatus((s) => ({ ...s, [name]: value }));
      onJob(current = { ...current, stage: name, state: "running" });
    });
    on("state", (d) => onJob(current = { ...current, state: String(d.state) }));
    es.addEventListener("session_expired", () => goToLogin());
    return () => es.close();
  }, [job.id, isActive]);

  async function act(path: string, label: string): Promise<void> {
    setConfirm(false);
    const answer = await api(`/api/v1/quarantine/${job.id}/${path}`, { method: "POST", body: {} });
    const next = pick<JobRow>(answer.body, ["id", "state", "filename"]);
    if (answer.ok && next) onJob(next);
    else setError(`${label} failed: ${answer.message}`);
  }

  async function loadFindings(): Promise<void> {
    const answer = await api(`/api/v1/quarantine/${job.id}/findings`);
    const list = answer.body?.findings;
    if (answer.ok && Array.isArray(list)) setFindings(list as Record<string, unknown>[]);
    else setError(answer.message);
  }

  const share = job.size > 0 ? Math.min(1, job.bytesDone / job.size) : 0;
  const canApprove = job.state === "awaiting_approval" || job.state === "promotion_failed";
  const actions: ComponentChildren[] = [];
  if (isActive) {
    actions.push(
      h("button", {
        type: "button",
        class: "secondary",
        onClick: () => act("cancel", "Cancel"),
      }, "Cancel"),
    );
  }
  if (canApprove && !confirm) {
    actions.push(
      h("button", { type: "button", onClick: () => setConfirm(true) }, "Approve promotion…"),
    );
  }
  if (confirm) {
    actions.push(
      h("span", { role: "alert" }, `Promote "${job.filename}" to the trusted registry? `),
      h("button", { type: "button", onClick: () => act("promote", "Approval") }, "Yes, promote"),
      h(
        "button",
        { type: "button", class: "secondary", onClick: () => setConfirm(false) },
        "Keep it in quarantine",
      ),
    );
  }
  actions.push(
    h("button", { type: "button", class: "secondary", onClick: loadFindings }, "Findings"),
  );

  return h(
    "li",
    { class: `job job-${job.state}`, "data-job": job.id },
    h(
      "div",
      { class: "job-head" },
      h("strong", null, job.filename),
      " ",
      h("span", { class: `state job-state state-${job.state}` }, job.state.replace("_", " ")),
      " ",
      h("span", { class: "hint" }, `${bytes(job.size)} · ${job.id}`),
    ),
    h(
      "ol",
      { class: "stages", "aria-label": "Stages" },
      ...stages.map((s) => {
        const value = status[s] ?? (s === job.stage && isActive ? "running" : "");
        return h(
          "li",
          { key: s, class: `stage stage-${value || "idle"}` },
          s.replace("_", " "),
          value ? ` · ${value}` : "",
        );
      }),
    ),
    isActive && job.stage
      ? h(
        "p",
        { class: "hint" },
        `Stage ${job.stage.replace("_", " ")}: `,
        h("progress", { max: 1, value: share, "aria-label": `${job.stage} progress` }),
        ` ${Math.round(share * 100)}%`,
      )
      : null,
    job.error ? h("p", { class: "field-error" }, `${job.error.code}: ${job.error.message}`) : null,
    job.decision
      ? h(
        "p",
        { class: "hint" },
        `Promotion policy: ${job.decision.decision} (${job.decision.rule})`,
      )
      : null,
    h("div", { class: "actions" }, ...actions),
    error ? h("p", { class: "field-error", role: "alert" }, error) : null,
    findings === null
      ? null
      : findings.length === 0
      ? h("p", { class: "none" }, "No findings.")
      : h(
        "ul",
        { class: "findings" },
        ...findings.slice(0, 100).map((f, i) =>
          h(
            "li",
            { key: i },
            h("span", { class: `tag severity-${String(f.severity)}` }, String(f.severity)),
            ` ${String(f.pipelineStage ?? f.stage)} · ${String(f.rule)}: ${String(f.message)}`,
          )
        ),
      ),
  );
}

function ModelItem(
  { model, onRevoked }: { model: ModelRow; onRevoked: () => void },
): JSX.Element {
  const [isRevoking, setRevoking] = useState(false);
  const [reason, setReason] = useState("");
  const [message, setMessage] = useState("");

  async function verify(): Promise<void> {
    const answer = await api(`/api/v1/models/${model.id}/verify`, { method: "POST", body: {} });
    setMessage(
      answer.ok ? `Hash check: ${String(answer.body?.status)}` : `Verify failed: ${answer.message}`,
    );
  }

  async function revoke(event: Event): Promise<void> {
    event.preventDefault();
    if (reason.trim() === "") {
      setMessage("Give a reason: it is kept in the audit log");
      return;
    }
    const answer = await api(`/api/v1/models/${model.id}/revoke`, {
      method: "POST",
      body: { reason: reason.trim() },
    });
    if (answer.ok) onRevoked();
    else setMessage(`Revoke failed: ${answer.message}`);
  }

  return h(
    "tr",
    { "data-model": model.id },
    h("th", { scope: "row" }, model.name),
    h("td", null, model.format),
    h("td", { class: "number" }, bytes(model.size)),
    h(
      "td",
      null,
      h("code", { class: "hash", title: model.sha256 }, `${model.sha256.slice(0, 16)}…`),
      model.fingerprint === null ? null : h("br", null),
      model.fingerprint === null ? null : h(
        "code",
        { class: "hash", title: `Tensor layout fingerprint ${model.fingerprint}` },
        `layout ${model.fingerprint.slice(0, 8)}…`,
      ),
    ),
    h("td", null, model.scan),
    h("td", null, model.promotedAt),
    h("td", null, model.lastVerifiedAt ?? "—"),
    h(
      "td",
      null,
      h("button", { type: "button", class: "secondary", onClick: verify }, "Verify"),
      isRevoking
        ? h(
          "form",
          { class: "confirm", onSubmit: revoke },
          h("label", { for: `reason-${model.id}` }, "Reason"),
          h("input", {
            id: `reason-${model.id}`,
            value: reason,
            onInput: (e: Event) => setReason((e.currentTarget as HTMLInputElement).value),
          }),
          h("button", { type: "submit", class: "danger" }, "Revoke for good"),
          h("button", {
            type: "button",
            class: "secondary",
            onClick: () => setRevoking(false),
          }, "Keep"),
        )
        : h(
          "button",
          { type: "button", class: "danger", onClick: () => setRevoking(true) },
          "Revoke…",
        ),
      message ? h("p", { role: "status" }, message) : null,
    ),
  );
}
