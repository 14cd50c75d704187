/**
 * `/policy`: the policy in force — version, the file each part came from, the last refused
 * reload, every section of `policy.yaml` and `agent.yaml` as validated, the tool registry —
 * and an editor whose candidate is validated and replayed (what-if) before it is applied.
 * @module
 */
import type { JSX } from "preact";
import { stringify } from "yaml";
import PolicyEditor from "../islands/PolicyEditor.tsx";
import type { PolicyView } from "../workers/policy/api.ts";
import { Island } from "../workers/gateway/render.tsx";
import type { Handlers, PageProps } from "../workers/gateway/routing.ts";
import {
  ColumnHeads,
  Hash,
  isUnavailable,
  loadOrExplain,
  NotAvailable,
  Time,
  type Unavailable,
  UnavailableNote,
} from "./(_components)/ui.tsx";

/** What the page renders. */
interface PolicyPageData {
  policy: PolicyView | Unavailable | null;
  canPreview: boolean;
}

/** Which decision domain each section of `policy.yaml` feeds. */
const SECTION_DOMAINS: Readonly<Record<string, string>> = {
  defaults: "egress, logging",
  models: "model_promotion",
  quarantine: "model_promotion",
  gguf_guard: "model_promotion",
  tools: "tool_access, path_access",
  airlock: "egress",
  search: "egress, sensitivity",
};

/**
 * YAML of the policy in force, per version: rendering it is the costliest part of the page
 * and it changes only on a reload (a new `policy_version`).
 */
let yamlCache: { version: string; texts: Map<string, string> } = {
  version: "",
  texts: new Map(),
};

function yamlOf(version: string, key: string, value: unknown): string {
  if (yamlCache.version !== version) yamlCache = { version, texts: new Map() };
  let text = yamlCache.texts.get(key);
  if (text === undefined) {
    text = stringify(value);
    yamlCache.texts.set(key, text);
  }
  return text;
}

/** Loads the policy in force when the policy API offers it. */
export const handler: Handlers<PolicyPageData> = {
  async GET(_req, ctx) {
    const policy = ctx.hasRoute("/api/v1/policy")
      ? await loadOrExplain(() => ctx.state.policyCurrent({ signal: ctx.signal }), ctx.requestId)
      : null;
    return ctx.render({ policy, canPreview: ctx.hasRoute("/api/v1/policy/whatif") });
  },
};

function Section(
  { file, name, value, version }: { file: string; name: string; value: unknown; version: string },
): JSX.Element {
  const domains = file === "policy" ? SECTION_DOMAINS[name] : undefined;
  return (
    <details class="policy-section">
      <summary>
        <code>{name}</code>
        {domains ? <span class="tag">{domains}</span> : null}
      </summary>
      <pre class="json">{yamlOf(version, `${file}.${name}`, value)}</pre>
    </details>
  );
}

/** Decisions given since the policy control started, per domain and effect. */
function DecisionTable({ counts }: { counts: PolicyView["decisions"] }): JSX.Element {
  const rows = Object.entries(counts.by_domain).filter(([, c]) => c.allow + c.deny + c.ask > 0);
  return (
    <>
      <h2>Decisions</h2>
      <p class="hint">
        {counts.total.toLocaleString("en")} decisions given since <Time iso={counts.since} />{" "}
        (each one is in the audit log).
      </p>
      {rows.length === 0 ? null : (
        <div class="table-wrap">
          <table class="matrix" aria-label="Decisions by domain">
            <ColumnHeads names={["Domain", "Allow", "Ask", "Deny"]} />
            <tbody>
              {rows.map(([domain, c]) => (
                <tr key={domain}>
                  <td>
                    <code>{domain}</code>
                  </td>
                  <td>{c.allow.toLocaleString("en")}</td>
                  <td>{c.ask.toLocaleString("en")}</td>
                  <td>{c.deny.toLocaleString("en")}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function PolicyInForce({ view }: { view: PolicyView }): JSX.Element {
  return (
    <>
      <dl class="summary">
        <div>
          <dt>Version</dt>
          <dd>
            <code>{view.policy_version}</code>
          </dd>
        </div>
        <div>
          <dt>Loaded</dt>
          <dd>
            <Time iso={view.loaded_at} />
          </dd>
        </div>
        <div>
          <dt>Agent workspace</dt>
          <dd>{view.workspace ?? "none"}</dd>
        </div>
      </dl>
      {view.last_reload_error === null ? null : (
        <p class="notice error-note" role="status">
          A reload of <code>{view.last_reload_error.file}</code> was refused at{" "}
          <Time iso={view.last_reload_error.at} />: at <code>{view.last_reload_error.field}</code>,
          {" "}
          {view.last_reload_error.reason}. The policy above stayed in force.
        </p>
      )}
      <DecisionTable counts={view.decisions} />
      <h2>Files</h2>
      <div class="table-wrap">
        <table class="matrix">
          <ColumnHeads names={["File", "From", "Path", "SHA-256"]} />
          <tbody>
            {view.sources.map((s) => (
              <tr key={s.name}>
                <td>
                  <code>{s.name}</code>
                </td>
                <td>{s.origin}</td>
                <td class="wrap">
                  <code>{s.path}</code>
                </td>
                <td>
                  <Hash value={s.sha256} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>policy.yaml by section</h2>
      {Object.entries(view.policy).map(([name, value]) => (
        <Section
          key={name}
          file="policy"
          name={name}
          value={value}
          version={view.policy_version}
        />
      ))}
      <h2>agent.yaml by section</h2>
      {Object.entries(view.agent).map(([name, value]) => (
        <Section
          key={name}
          file="agent"
          name={name}
          value={value}
          version={view.policy_version}
        />
      ))}
      <h2>Tool registry</h2>
      <p class="hint">
        What a <code>tools.allow</code> entry may name.
      </p>
      <div class="table-wrap">
        <table class="matrix">
          <ColumnHeads names={["Tool", "Description", "Arguments"]} />
          <tbody>
            {view.tools.map((t) => (
              <tr key={t.name}>
                <td>
                  <code>{t.name}</code>
                </td>
                <td>{t.description}</td>
                <td>{t.args.join(", ") || "none"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

/** Directory of operator overrides, as the policy control names it in its sources. */
function overrideDirOf(view: PolicyView): string {
  const override = view.sources.find((s) => s.origin === "override");
  return override ? override.path.slice(0, override.path.lastIndexOf("/")) : "<state dir>/policy";
}

/**
 * The policy page.
 * @param props the policy in force
 * @returns the page content
 */
export default function PolicyPage({ data }: PageProps<PolicyPageData>): JSX.Element {
  const { policy } = data;
  return (
    <>
      <h1>Policy</h1>
      {policy === null
        ? (
          <NotAvailable feature="Policy view">
            <p>
              This runtime's policy API does not offer <code>GET /api/v1/policy</code>.
            </p>
          </NotAvailable>
        )
        : isUnavailable(policy)
        ? <UnavailableNote what="The policy in force" reason={policy} />
        : (
          <>
            <PolicyInForce view={policy} />
            <h2 id="edit">Edit and preview</h2>
            {data.canPreview
              ? (
                <Island
                  name="PolicyEditor"
                  component={PolicyEditor}
                  props={{
                    files: {
                      policy: yamlOf(policy.policy_version, "policy", policy.policy),
                      agent: yamlOf(policy.policy_version, "agent", policy.agent),
                    },
                    overrideDir: overrideDirOf(policy),
                  }}
                />
              )
              : (
                <NotAvailable feature="What-if preview">
                  <p>
                    The policy API does not offer <code>POST /api/v1/policy/whatif</code>.
                  </p>
                </NotAvailable>
              )}
          </>
        )}
    </>
  );
}
