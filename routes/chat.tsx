/**
 * `/chat`: talk to a promoted local model. The model picker lists what the inference control
 * offers this signed-in user (promoted GGUF models of the trusted registry, then any
 * external backend's models); the conversation is the {@link ChatPanel} island, which streams
 * answers from `POST /api/v1/chat`. When inference is off, the engine cannot run here, or no
 * model is promoted, the page says so plainly instead of offering a form that cannot work.
 * @module
 */
import type { JSX } from "preact";
import ChatPanel, { type ChatModel } from "../islands/ChatPanel.tsx";
import { Island } from "../workers/gateway/render.tsx";
import type { Handlers, PageProps } from "../workers/gateway/routing.ts";
import { isUnavailable, loadOrExplain } from "./(_components)/ui.tsx";

/** What the page renders. */
interface ChatPageData {
  models: ChatModel[];
  blocker: string | null;
}

/** Loads the models and the state of inference. */
export const handler: Handlers<ChatPageData> = {
  async GET(_req, ctx) {
    const session = ctx.auth.sessionToken;
    if (session === null) {
      return ctx.render({ models: [], blocker: "Chat is for signed-in dashboard sessions." });
    }
    const [listed, status] = await Promise.all([
      loadOrExplain(
        () => ctx.state.inference.models({ auth: { session } }, { signal: ctx.signal }),
        ctx.requestId,
      ),
      loadOrExplain(() => ctx.state.inference.status({}, { signal: ctx.signal }), ctx.requestId),
    ]);
    const models = isUnavailable(listed) ? [] : listed.models.map((m) => ({
      id: m.id,
      name: m.ownedBy === "local" ? m.name : `${m.name} (external)`,
    }));
    const hasLocal = !isUnavailable(listed) && listed.models.some((m) => m.ownedBy === "local");
    let blocker: string | null = null;
    if (isUnavailable(listed)) {
      blocker = `Inference is unavailable: ${listed.message} (${listed.unavailable}).`;
    } else if (!isUnavailable(status) && !status.enabled) {
      blocker = "Inference is turned off in the configuration (inference.enabled).";
    } else if (models.length === 0) {
      blocker =
        "No model is promoted yet: import a GGUF model on the Models page and promote it once quarantine passes.";
    } else if (hasLocal && !isUnavailable(status) && status.engineProblem !== null) {
      blocker = `The inference engine cannot run here: ${status.engineProblem}`;
    }
    return ctx.render({ models, blocker });
  },
};

/**
 * The Chat page.
 * @param props the models and why chat may be unavailable
 * @returns the page
 */
export default function ChatPage({ data }: PageProps<ChatPageData>): JSX.Element {
  return (
    <>
      <h1>Chat</h1>
      <p class="lead">
        Talk to a promoted model. It runs locally in the sandboxed engine; every answer is recorded
        in the audit log.
      </p>
      <Island name="ChatPanel" component={ChatPanel} props={data} />
    </>
  );
}
