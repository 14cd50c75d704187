/**
 * The dashboard's Chat on the real path: the shipped system with the sandboxed llama.cpp
 * engine, a tiny GGUF promoted through the real quarantine, `POST /api/v1/chat` over HTTP
 * with a real session (auth, CSRF, validation, SSE framing, cancel on disconnect), and the
 * Chat page in Debian's Chromium: sign in, pick the model, send, see the streamed answer.
 * One system for the whole file.
 *
 * The name holds "end to end" so `deno task screenshots` also writes `docs/screenshots/chat.png`.
 */
import { equal, match, ok } from "node:assert/strict";
import "./_playwright.ts"; // before playwright-core: see there
import { chromium } from "playwright-core";
import { ensureIslandBundle } from "../runtime/bundle.ts";
import { cliHeaders, setUpSession, TEST_PASSPHRASE } from "./_auth.ts";
import { PROJECT_ROOT } from "./_system.ts";
import { promote, sseData, startInferenceSystem, tinyModel } from "./inference/_system.ts";

/** Waits until `/metrics` has a line matching `pattern` and returns its value. */
async function metricValue(base: string, home: string, pattern: RegExp): Promise<number> {
  const headers = await cliHeaders(home);
  for (let i = 0; i < 100; i++) {
    const text = await (await fetch(`${base}/metrics`, { headers })).text();
    const line = text.split("\n").find((l) => pattern.test(l));
    if (line !== undefined) return Number(line.split(" ").at(-1));
    await new Promise((r) => setTimeout(r, 100));
  }
  return 0;
}

Deno.test({
  name: "chat from the dashboard end to end: session-authenticated streaming endpoint and page",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await ensureIslandBundle({ projectRoot: PROJECT_ROOT, denoPath: Deno.execPath() });
    const sys = await startInferenceSystem({ inference: { maxTokensLimit: 2048 } });
    try {
      const modelId = await promote(sys, "tiny-chat.Q8_0.gguf", tinyModel());
      const session = await setUpSession(sys.base, sys.home);
      const url = `${sys.base}/api/v1/chat`;
      const valid = { model: modelId, messages: [{ role: "user", content: "hello" }] };
      const post = (body: unknown, headers = session.post, signal?: AbortSignal) =>
        fetch(url, { method: "POST", headers, body: JSON.stringify(body), signal: signal ?? null });

      await t.step(
        "refusals: no session 401, no CSRF token 403, bad bodies 400 naming the field",
        async () => {
          const cases: [string, Record<string, string>, unknown, number, RegExp][] = [
            [
              "no session",
              { "content-type": "application/json", origin: sys.base },
              valid,
              401,
              /UNAUTHENTICATED/,
            ],
            ["no CSRF token", { ...session.post, "x-csrf-token": "" }, valid, 403, /CSRF/],
            ["no messages", session.post, { model: modelId, messages: [] }, 400, /messages/],
            ["an unknown field", session.post, { ...valid, stream: false }, 400, /stream/],
            [
              "a temperature out of range",
              session.post,
              { ...valid, temperature: 3 },
              400,
              /temperature/,
            ],
            [
              "a role the page never sends",
              session.post,
              { ...valid, messages: [{ role: "tool", content: "x" }] },
              400,
              /role/,
            ],
            [
              "a model that is not promoted",
              session.post,
              { ...valid, model: "no-such-model" },
              404,
              /model_not_found/,
            ],
          ];
          for (const [what, headers, body, status, pattern] of cases) {
            const res = await post(body, headers);
            const text = await res.text();
            equal(res.status, status, `${what}: ${text}`);
            match(text, pattern, what);
          }
        },
      );

      await t.step(
        "an answer streams as SSE: text pieces, then the finish and usage, then [DONE]",
        async () => {
          const res = await post({ ...valid, max_tokens: 4, temperature: 0 });
          equal(res.status, 200);
          equal(res.headers.get("content-type")?.split(";")[0], "text/event-stream");
          const data = await sseData(res);
          equal(data.at(-1), "[DONE]");
          const events = data.slice(0, -1).map((d) => JSON.parse(d) as Record<string, unknown>);
          ok(events.some((e) => typeof e.text === "string" && e.text.length > 0), "text arrived");
          const finish = events.findIndex((e) => "finish" in e);
          ok(finish > 0, "the finish comes after the text");
          ok(["stop", "length"].includes(events[finish]?.finish as string));
          const usage = events.at(-1)?.usage as { completionTokens: number } | undefined;
          ok(usage !== undefined && usage.completionTokens >= 1, "usage is last");
        },
      );

      await t.step("the browser going away cancels the generation", async () => {
        const cancelled = /^secai_inference_requests_total\{.*outcome="cancelled"\}/;
        const before = await metricValue(sys.base, sys.home, cancelled);
        const controller = new AbortController();
        const res = await post({ ...valid, max_tokens: 2000 }, session.post, controller.signal);
        const reader = res.body?.getReader();
        await reader?.read();
        controller.abort();
        await reader?.cancel().catch(() => undefined);
        let after = before;
        for (let i = 0; i < 100 && after <= before; i++) {
          await new Promise((r) => setTimeout(r, 100));
          after = await metricValue(sys.base, sys.home, cancelled);
        }
        ok(after > before, "counted as cancelled");
        // The engine is free again.
        const next = await post({ ...valid, max_tokens: 2 });
        equal(next.status, 200);
        await next.body?.cancel();
      });

      await t.step(
        "in Chromium: sign in, open Chat, send a message and see the streamed answer",
        async () => {
          const profile = await Deno.makeTempDir({ prefix: "secai-chromium-" });
          const context = await chromium.launchPersistentContext(profile, {
            executablePath: "/usr/bin/chromium",
            headless: true,
            args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
            viewport: { width: 1280, height: 900 },
          });
          context.setDefaultTimeout(30_000);
          const errors: string[] = [];
          try {
            const page = context.pages()[0] ?? await context.newPage();
            page.on("pageerror", (err) => errors.push(err.message));
            await page.goto(`${sys.base}/chat`);
            equal(new URL(page.url()).pathname, "/login");
            await page.fill("#auth-passphrase", TEST_PASSPHRASE);
            await Promise.all([
              page.waitForURL(`${sys.base}/chat`),
              page.click("button[type=submit]"),
            ]);
            equal(await page.locator("nav a[aria-current=page]").textContent(), "Chat");
            equal(await page.locator("#chat-model option").count(), 1);
            await page.locator("[data-island=ChatPanel] select:not([disabled])").waitFor();
            await page.fill("#chat-input", "Say something");
            await page.keyboard.press("Enter");
            await page.locator("[role=status]", { hasText: "Answer complete." }).waitFor();
            const answer = await page.locator(".chat-assistant .chat-text").textContent() ?? "";
            ok(answer.length > 0, "the streamed text is shown");
            equal(await page.locator(".chat-user .chat-text").textContent(), "Say something");
            const shots = Deno.env.get("SECAI_SCREENSHOTS");
            if (shots) {
              const dir = shots.startsWith("/") ? shots : `${PROJECT_ROOT}/${shots}`;
              await page.screenshot({ path: `${dir}/chat.png`, fullPage: true });
            }
            equal(errors.join("\n"), "");
          } finally {
            await context.close();
            await Deno.remove(profile, { recursive: true });
          }
        },
      );
    } finally {
      await sys.stop();
    }
  },
});
