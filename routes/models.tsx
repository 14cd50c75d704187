/**
 * `/models`: import a model into quarantine, follow its stages live, read findings, approve
 * or cancel; the trusted registry with verify and revoke. Rendered with the registry and the
 * recent jobs on the server; the panel then stays live. Without the quarantine and registry
 * APIs the page says so instead of showing anything made up.
 * @module
 */
import type { JSX } from "preact";
import ModelsPanel, { type JobRow, toModelRow } from "../islands/ModelsPanel.tsx";
import { STAGE_NAMES } from "../workers/quarantine/api.ts";
import { Island } from "../workers/gateway/render.tsx";
import type { Handlers, PageProps } from "../workers/gateway/routing.ts";
import {
  isUnavailable,
  loadOrExplain,
  NotAvailable,
  type Unavailable,
  UnavailableNote,
} from "./(_components)/ui.tsx";
import type { ModelsPanelProps } from "../islands/ModelsPanel.tsx";

/** What the page renders. */
interface ModelsPageData {
  isOffered: boolean;
  panel: ModelsPanelProps | null;
  problems: { what: string; reason: Unavailable }[];
}

/** Loads the registry and the latest jobs. */
export const handler: Handlers<ModelsPageData> = {
  async GET(_req, ctx) {
    const isOffered = ctx.hasRoute("/api/v1/quarantine") && ctx.hasRoute("/api/v1/models");
    if (!isOffered) return ctx.render({ isOffered, panel: null, problems: [] });
    const [registry, quarantine] = await Promise.all([
      loadOrExplain(
        () => ctx.state.registry.list({ includeRevoked: false }, { signal: ctx.signal }),
        ctx.requestId,
      ),
      loadOrExplain(
        () => ctx.state.quarantine.list({ limit: 20 }, { signal: ctx.signal }),
        ctx.requestId,
      ),
    ]);
    const problems: ModelsPageData["problems"] = [];
    if (isUnavailable(registry)) problems.push({ what: "The registry", reason: registry });
    if (isUnavailable(quarantine)) problems.push({ what: "The quarantine", reason: quarantine });
    const jobs: JobRow[] = isUnavailable(quarantine) ? [] : quarantine.jobs.map((j) => ({
      id: j.id,
      filename: j.filename,
      state: j.state,
      stage: j.stage,
      size: j.size,
      bytesDone: j.bytesDone,
      error: j.error,
      decision: j.decision === null
        ? null
        : { decision: j.decision.decision, rule: j.decision.rule },
      modelId: j.modelId,
      createdAt: j.createdAt,
    }));
    return ctx.render({
      isOffered,
      panel: {
        models: isUnavailable(registry) ? [] : registry.models.map(toModelRow),
        jobs,
        stages: [...STAGE_NAMES],
      },
      problems,
    });
  },
};

/**
 * The models page.
 * @param props the registry and jobs
 * @returns the page content
 */
export default function ModelsPage({ data }: PageProps<ModelsPageData>): JSX.Element {
  return (
    <>
      <h1>Models</h1>
      {!data.isOffered || data.panel === null
        ? (
          <NotAvailable feature="Model import, quarantine and registry">
            <p>This runtime has no quarantine and registry API yet.</p>
          </NotAvailable>
        )
        : (
          <>
            {data.problems.map((p) => (
              <UnavailableNote key={p.what} what={p.what} reason={p.reason} />
            ))}
            <Island name="ModelsPanel" component={ModelsPanel} props={data.panel} />
          </>
        )}
    </>
  );
}
