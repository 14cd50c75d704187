import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { InferenceError } from "./errors.ts";
import { externalEndpoint, type ExternalEvent, streamExternal } from "./external.ts";

const OPTIONS = { maxTokens: 8, temperature: 0, topP: 1, topK: 40, stop: [] };
const CHAT = { kind: "chat" as const, messages: [{ role: "user" as const, content: "hi" }] };

/** A real local HTTP server answering with `respond`; the URL of its chat endpoint. */
async function withUpstream(
  respond: (request: Request) => Response | Promise<Response>,
  fn: (url: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, respond);
  try {
    await fn(externalEndpoint(`http://127.0.0.1:${server.addr.port}/v1`, CHAT));
  } finally {
    await server.shutdown();
  }
}

function sse(events: unknown[]): Response {
  const body = events.map((e) => `data: ${typeof e === "string" ? e : JSON.stringify(e)}\n\n`).join(
    "",
  );
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
}

async function collect(url: string, apiKey: string | null = null): Promise<ExternalEvent[]> {
  const events: ExternalEvent[] = [];
  for await (
    const e of streamExternal({
      url,
      apiKey,
      model: "remote",
      prompt: CHAT,
      options: OPTIONS,
      signal: new AbortController().signal,
      timeoutMs: 5000,
    })
  ) events.push(e);
  return events;
}

Deno.test("streamExternal() turns the backend's SSE chunks into text and a done event with usage", () =>
  withUpstream(async (request) => {
    const body = await request.json();
    equal(body.stream, true);
    equal(body.model, "remote");
    deepEqual(body.messages, CHAT.messages);
    equal(request.headers.get("authorization"), "Bearer key-1");
    return sse([
      { choices: [{ delta: { role: "assistant", content: "" } }] },
      { choices: [{ delta: { content: "Hel" } }] },
      { choices: [{ delta: { content: "lo" }, finish_reason: "length" }] },
      { choices: [], usage: { prompt_tokens: 3, completion_tokens: 2 } },
      "[DONE]",
    ]);
  }, async (url) => {
    const events = await collect(url, "key-1");
    deepEqual(events.filter((e) => e.kind === "text").map((e) => e.kind === "text" ? e.text : ""), [
      "Hel",
      "lo",
    ]);
    const done = events.at(-1);
    ok(done?.kind === "done");
    equal(done.reason, "length");
    deepEqual(done.usage, { promptTokens: 3, completionTokens: 2, cachedTokens: 0 });
  }));

const failures: { name: string; respond: () => Response }[] = [
  { name: "an HTTP error status", respond: () => new Response("no", { status: 500 }) },
  { name: "an event that is not JSON", respond: () => sse(["{not json"]) },
  { name: "an event of the wrong shape", respond: () => sse([{ choices: "nope" }]) },
  {
    name: "an answer over the size limit",
    respond: () =>
      sse(
        [{ choices: [{ delta: { content: "x".repeat(1 << 20) } }] }].concat(
          Array(20).fill({ choices: [{ delta: { content: "y".repeat(900_000) } }] }),
        ),
      ),
  },
];
for (const c of failures) {
  Deno.test(`streamExternal() fails with EXTERNAL_FAILED on ${c.name}`, () =>
    withUpstream(c.respond, async (url) => {
      await rejects(
        () => collect(url),
        (e: unknown) => e instanceof InferenceError && e.code === "EXTERNAL_FAILED",
      );
    }));
}

Deno.test("externalEndpoint() picks the chat or completions endpoint", () => {
  equal(
    externalEndpoint("https://llm.example.org/v1", CHAT),
    "https://llm.example.org/v1/chat/completions",
  );
  equal(
    externalEndpoint("https://llm.example.org/v1", { kind: "text", text: "x" }),
    "https://llm.example.org/v1/completions",
  );
});
