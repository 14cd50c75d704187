/**
 * The Chat page's conversation: a model picker, the messages so far, and a form that posts
 * the conversation to `POST /api/v1/chat` (session cookie and CSRF token, like every
 * dashboard call) and shows the answer as its server-sent events arrive. Stop (or Escape)
 * aborts the request, which cancels the generation on the server. Server-rendered first:
 * without JavaScript the page still shows the models and why chat may be unavailable.
 *
 * Written with `h()` (see LiveControls for why).
 * @module
 */
import { h, type JSX } from "preact";
import { useRef, useState } from "preact/hooks";
import { csrfToken, goToLogin } from "./api.ts";

/** One model the user may pick. */
export interface ChatModel {
  id: string;
  name: string;
}

/** Props of {@link ChatPanel}. */
export interface ChatPanelProps {
  models: ChatModel[];
  /** Why chat cannot work now (shown instead of the form), or null. */
  blocker: string | null;
}

interface Message {
  role: "user" | "assistant";
  content: string;
  /** A failure or stop note shown under an answer. */
  note?: string;
}

/** Longest answer requested (the server caps it further by config). */
const MAX_TOKENS = 512;

/**
 * Reads `data:` lines of a server-sent event stream, calling `onData` with each payload.
 * @returns when the stream ends
 */
async function readEvents(
  body: ReadableStream<Uint8Array>,
  onData: (data: string) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split("\n")) {
        if (line.startsWith("data: ")) onData(line.slice(6));
      }
    }
  }
}

/** The message of an error body (`{error: {message}}`), or a generic one. */
function errorMessage(body: unknown, status: number): string {
  const error = (body as { error?: { message?: unknown } } | null)?.error;
  return typeof error?.message === "string" ? error.message : `The request failed (HTTP ${status})`;
}

/**
 * The chat panel.
 * @param props the models and why chat may be unavailable
 * @returns the panel
 */
export default function ChatPanel({ models, blocker }: ChatPanelProps): JSX.Element {
  const [model, setModel] = useState(models[0]?.id ?? "");
  const [messages, setMessages] = useState<Message[]>([]);
  const [draft, setDraft] = useState("");
  const [isBusy, setBusy] = useState(false);
  const [status, setStatus] = useState("");
  const abort = useRef<AbortController | null>(null);

  function update(fn: (answer: Message) => Message): void {
    setMessages((all) => [...all.slice(0, -1), fn(all[all.length - 1] as Message)]);
  }

  async function send(event: Event): Promise<void> {
    event.preventDefault();
    const text = draft.trim();
    if (text === "" || isBusy || model === "") return;
    const history = [...messages, { role: "user" as const, content: text }];
    setMessages([...history, { role: "assistant", content: "" }]);
    setDraft("");
    setBusy(true);
    setStatus("Answering…");
    const controller = new AbortController();
    abort.current = controller;
    try {
      const res = await fetch("/api/v1/chat", {
        method: "POST",
        credentials: "same-origin",
        headers: {
          accept: "text/event-stream",
          "content-type": "application/json",
          "x-csrf-token": csrfToken(),
        },
        body: JSON.stringify({
          model,
          messages: history.map((m) => ({ role: m.role, content: m.content })),
          max_tokens: MAX_TOKENS,
        }),
        signal: controller.signal,
      });
      if (!res.ok || res.body === null) {
        const body: unknown = await res.json().catch(() => null);
        if (res.status === 401) goToLogin();
        update((a) => ({ ...a, note: errorMessage(body, res.status) }));
        setStatus("The answer failed.");
        return;
      }
      await readEvents(res.body, (data) => {
        if (data === "[DONE]") return;
        const parsed = JSON.parse(data) as Record<string, unknown>;
        if (typeof parsed.text === "string") {
          const piece = parsed.text;
          update((a) => ({ ...a, content: a.content + piece }));
        } else if (parsed.finish === "length") {
          update((a) => ({ ...a, note: "Stopped at the length limit." }));
        } else if ("error" in parsed) {
          update((a) => ({ ...a, note: errorMessage(parsed, 500) }));
        }
      });
      setStatus("Answer complete.");
    } catch (error) {
      const isStopped = error instanceof DOMException && error.name === "AbortError";
      update((a) => ({
        ...a,
        note: isStopped ? "Stopped." : "The runtime did not answer; is it still running?",
      }));
      setStatus(isStopped ? "Stopped." : "The answer failed.");
    } finally {
      abort.current = null;
      setBusy(false);
    }
  }

  function stop(): void {
    abort.current?.abort();
  }

  if (blocker !== null) {
    return h("p", { class: "notice error-note", role: "status" }, blocker);
  }
  return h(
    "div",
    {
      class: "chat",
      onKeyDown: (e: KeyboardEvent) => {
        if (e.key === "Escape" && isBusy) stop();
      },
    },
    h(
      "div",
      { class: "field" },
      h("label", { for: "chat-model" }, "Model"),
      h(
        "select",
        {
          id: "chat-model",
          value: model,
          disabled: isBusy,
          onChange: (e: Event) => setModel((e.currentTarget as HTMLSelectElement).value),
        },
        models.map((m) => h("option", { key: m.id, value: m.id }, m.name)),
      ),
    ),
    h(
      "ol",
      { class: "chat-log", "aria-label": "Conversation" },
      messages.length === 0
        ? h("li", { class: "muted" }, "No messages yet.")
        : messages.map((m, i) =>
          h(
            "li",
            { key: i, class: `chat-msg chat-${m.role}` },
            h("strong", null, m.role === "user" ? "You" : "Model"),
            h("p", { class: "chat-text" }, m.content),
            m.note ? h("p", { class: "field-error" }, m.note) : null,
          )
        ),
    ),
    h(
      "form",
      { class: "chat-form", onSubmit: send },
      h("label", { for: "chat-input" }, "Message"),
      h("textarea", {
        id: "chat-input",
        rows: 3,
        maxLength: 32_768,
        value: draft,
        onInput: (e: Event) => setDraft((e.currentTarget as HTMLTextAreaElement).value),
        onKeyDown: (e: KeyboardEvent) => {
          if (e.key === "Enter" && !e.shiftKey) {
            e.preventDefault();
            void send(e);
          }
        },
      }),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", disabled: isBusy || model === "" }, "Send"),
        h("button", { type: "button", onClick: stop, disabled: !isBusy }, "Stop"),
      ),
    ),
    h("p", { role: "status", "aria-live": "polite", class: "muted" }, status),
  );
}
