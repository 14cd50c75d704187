/**
 * Local inference end to end, on the real path: the shipped system (every control, the real
 * gateway), a tiny random llama GGUF uploaded to the real quarantine and promoted into the
 * registry, the registry re-hashing it before the inference control may load it, the
 * sandboxed llama.cpp engine started by the supervisor, and the OpenAI-compatible API over
 * HTTP with per-client tokens, SSE streaming, cancellation, limits and `/metrics`.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { revokeToken } from "../../runtime/kit/api_tokens.ts";
import { chatCommand } from "../../runtime/cli_chat.ts";
import { tokensCommand } from "../../runtime/cli_tokens.ts";
import { auditQueryApi } from "../../workers/audit/api.ts";
import { inferenceApi } from "../../workers/inference/api.ts";
import { registryApi } from "../../workers/registry/api.ts";
import { cliHeaders } from "../_auth.ts";
import { eventually } from "../_system.ts";
import {
  clientToken,
  type InferenceSystem,
  postJson,
  promote,
  sseData,
  startInferenceSystem,
  tinyModel,
} from "./_system.ts";

interface Chunk {
  id: string;
  object: string;
  model: string;
  choices: {
    index: number;
    delta: { role?: string; content?: string };
    finish_reason: string | null;
  }[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

async function json<T>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  equal(res.status, status, text);
  return JSON.parse(text) as T;
}

/** Waits until `/metrics` has a line matching `pattern` (heartbeats carry the metrics). */
async function metricsLine(sys: InferenceSystem, pattern: RegExp): Promise<string> {
  const headers = await cliHeaders(sys.home);
  for (let i = 0; i < 100; i++) {
    const text = await (await fetch(`${sys.base}/metrics`, { headers })).text();
    const line = text.split("\n").find((l) => pattern.test(l));
    if (line !== undefined) return line;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`No metrics line matching ${pattern}`);
}

async function auditTypes(sys: InferenceSystem, type: string) {
  return (await sys.supervisor.client(auditQueryApi).call("query", { type, limit: 50 })).entries;
}

Deno.test("local inference through the OpenAI-compatible API", async (t) => {
  const sys = await startInferenceSystem({ inference: { maxQueue: 0, maxTokensLimit: 2048 } });
  try {
    const modelId = await promote(sys, "tiny-chat.Q8_0.gguf", tinyModel({ contextLength: 4096 }));
    const token = await clientToken(sys.home, "tests");
    const chat = (body: Record<string, unknown>, init: { signal?: AbortSignal } = {}) =>
      postJson(`${sys.base}/v1/chat/completions`, token, {
        model: modelId,
        messages: [{ role: "user", content: "hello" }],
        temperature: 0,
        ...body,
      }, init);

    await t.step(
      "the model passed the behavioural smoke test in the engine before promotion",
      async () => {
        const model = await sys.supervisor.client(registryApi).call("get", { id: modelId });
        equal(model.smokeTest.status, "passed");
        equal(model.smokeTest.critical, 0);
      },
    );

    await t.step("GET /v1/models lists the promoted model by registry id and name", async () => {
      const list = await json<{ object: string; data: Record<string, unknown>[] }>(
        await fetch(`${sys.base}/v1/models`, { headers: { authorization: `Bearer ${token}` } }),
        200,
      );
      equal(list.object, "list");
      deepEqual(list.data.map((m) => [m.id, m.name, m.object, m.owned_by]), [
        [modelId, "tiny-chat", "model", "secai-local"],
      ]);
    });

    await t.step(
      "a streamed chat completion arrives as SSE chunks ending with [DONE]",
      async () => {
        const res = await chat({
          stream: true,
          max_tokens: 12,
          stream_options: { include_usage: true },
        });
        equal(res.status, 200);
        match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
        const data = await sseData(res);
        equal(data.at(-1), "[DONE]");
        const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as Chunk);
        equal(chunks[0]?.choices[0]?.delta.role, "assistant");
        ok(chunks.every((c) => c.object === "chat.completion.chunk" && c.model === modelId));
        const finals = chunks.filter((c) => c.choices[0]?.finish_reason);
        deepEqual(finals.map((c) => c.choices[0]?.finish_reason), ["length"]);
        const usage = chunks.at(-1)?.usage;
        equal(usage?.completion_tokens, 12);
        ok((usage?.prompt_tokens ?? 0) > 0);
        const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
        ok(text.length > 0);
      },
    );

    await t.step(
      "a non-streaming chat completion returns the whole answer with usage",
      async () => {
        const answer = await json<{
          object: string;
          model: string;
          choices: { message: { role: string; content: string }; finish_reason: string }[];
          usage: { completion_tokens: number };
        }>(await chat({ max_tokens: 12 }), 200);
        equal(answer.object, "chat.completion");
        equal(answer.choices[0]?.message.role, "assistant");
        equal(answer.choices[0]?.finish_reason, "length");
        equal(answer.usage.completion_tokens, 12);
        // Greedy decoding of the same conversation gives the same answer as the stream did.
        const again = await json<typeof answer>(await chat({ max_tokens: 12 }), 200);
        equal(again.choices[0]?.message.content, answer.choices[0]?.message.content);
      },
    );

    await t.step("the model can be named by its registry name too", async () => {
      const res = await chat({ model: "tiny-chat", max_tokens: 2 });
      equal((await json<{ model: string }>(res, 200)).model, modelId);
    });

    await t.step("POST /v1/completions continues raw text, streamed or whole", async () => {
      const whole = await json<{ object: string; choices: { text: string }[] }>(
        await postJson(`${sys.base}/v1/completions`, token, {
          model: modelId,
          prompt: "the answer is",
          max_tokens: 8,
          temperature: 0,
        }),
        200,
      );
      equal(whole.object, "text_completion");
      ok((whole.choices[0]?.text.length ?? 0) > 0);
      const streamed = await sseData(
        await postJson(`${sys.base}/v1/completions`, token, {
          model: modelId,
          prompt: "the answer is",
          max_tokens: 8,
          temperature: 0,
          stream: true,
        }),
      );
      equal(streamed.at(-1), "[DONE]");
      const text = streamed.slice(0, -1).map((d) => JSON.parse(d).choices[0].text).join("");
      equal(text, whole.choices[0]?.text);
    });

    await t.step("stop strings end the answer before them", async () => {
      const full = (await json<{ choices: { message: { content: string } }[] }>(
        await chat({ max_tokens: 30 }),
        200,
      )).choices[0]?.message.content ?? "";
      const stop = full.slice(5, 7);
      const cut = await json<
        { choices: { message: { content: string }; finish_reason: string }[] }
      >(
        await chat({ max_tokens: 30, stop }),
        200,
      );
      equal(cut.choices[0]?.message.content, full.slice(0, full.indexOf(stop)));
      equal(cut.choices[0]?.finish_reason, "stop");
    });

    const refusals: {
      name: string;
      request: () => Promise<Response>;
      status: number;
      code: string;
    }[] = [
      {
        name: "a request without a token answers 401",
        request: () =>
          postJson(`${sys.base}/v1/chat/completions`, null, { model: modelId, messages: [] }),
        status: 401,
        code: "UNAUTHENTICATED",
      },
      {
        name: "an unknown token answers 401",
        request: () =>
          postJson(`${sys.base}/v1/chat/completions`, `sk-secai-${"x".repeat(43)}`, {
            model: modelId,
            messages: [{ role: "user", content: "hi" }],
          }),
        status: 401,
        code: "unauthenticated",
      },
      {
        name: "the dashboard's CLI token is not a client token (401)",
        request: async () =>
          fetch(`${sys.base}/v1/models`, { headers: await cliHeaders(sys.home) }),
        status: 401,
        code: "unauthenticated",
      },
      {
        name: "an unknown model answers 404",
        request: () => chat({ model: "no-such-model" }),
        status: 404,
        code: "model_not_found",
      },
      {
        name: "max_tokens above the limit answers 400",
        request: () => chat({ max_tokens: 4096 }),
        status: 400,
        code: "max_tokens_exceeded",
      },
      {
        name: "a prompt longer than the context answers 400",
        request: () => chat({ messages: [{ role: "user", content: "ab ".repeat(3000) }] }),
        status: 400,
        code: "context_length_exceeded",
      },
      {
        name: "an option we do not implement is refused, not ignored (400)",
        request: () => chat({ n: 2 }),
        status: 400,
        code: "INVALID_BODY",
      },
    ];
    for (const c of refusals) {
      await t.step(c.name, async () => {
        const res = await c.request();
        const body = await json<{ error: { code: string; message: string } }>(res, c.status);
        equal(body.error.code, c.code, body.error.message);
      });
    }

    await t.step("a revoked client token stops working at once", async () => {
      const other = await clientToken(sys.home, "temporary");
      const list = () =>
        fetch(`${sys.base}/v1/models`, { headers: { authorization: `Bearer ${other}` } });
      const before = await list();
      await before.body?.cancel();
      equal(before.status, 200);
      await revokeToken(`${sys.home}/inference/tokens.json`, "temporary");
      const res = await list();
      await res.body?.cancel();
      equal(res.status, 401);
    });

    await t.step(
      "a second request while the only turn is taken and the queue is full answers 429",
      async () => {
        const first = await chat({ stream: true, max_tokens: 2000 });
        const reader = first.body?.getReader();
        await reader?.read(); // the first chunk: the generation is running
        const second = await chat({ max_tokens: 2 });
        const body = await json<{ error: { code: string } }>(second, 429);
        equal(body.error.code, "queue_full");
        equal(second.headers.get("retry-after"), "5");
        await reader?.cancel();
      },
    );

    await t.step("a client that disconnects mid-stream cancels its generation", async () => {
      const line = () =>
        metricsLine(sys, /^secai_inference_requests_total\{.*outcome="cancelled"\}/);
      const before = Number((await line()).split(" ").at(-1));
      const controller = new AbortController();
      const res = await chat({ stream: true, max_tokens: 2000 }, { signal: controller.signal });
      const reader = res.body?.getReader();
      await reader?.read();
      controller.abort();
      await reader?.cancel().catch(() => undefined);
      for (let i = 0; i < 100; i++) {
        if (Number((await line()).split(" ").at(-1)) > before) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      ok(Number((await line()).split(" ").at(-1)) > before, "counted as cancelled");
      // The engine is free again: the next request is served, not refused.
      equal((await chat({ max_tokens: 2 })).status, 200);
    });

    await t.step("/metrics shows time to first token and tokens per second", async () => {
      match(
        await metricsLine(sys, /^secai_inference_ttft_seconds_count\{control="inference"\} [1-9]/),
        /count/,
      );
      match(
        await metricsLine(
          sys,
          /^secai_inference_tokens_per_second_count\{control="inference"\} [1-9]/,
        ),
        /count/,
      );
      match(
        await metricsLine(sys, /^secai_inference_model_loaded\{control="inference"\} 1$/),
        / 1$/,
      );
    });

    await t.step(
      "the audit log records the load with its sandbox layers and each completion",
      async () => {
        const loads = await auditTypes(sys, "inference.model_loaded");
        equal(loads[0]?.subject, modelId);
        const layers = (loads[0]?.evidence as { layers: Record<string, unknown> }).layers;
        equal(layers.seccomp, true);
        equal(layers.noNewPrivs, true);
        ok((layers.landlockAbi as number) > 0);
        const completions = await auditTypes(sys, "inference.completion");
        ok(completions.length >= 3);
        // Prompts and answers are never written to the log.
        equal(JSON.stringify(completions).includes("hello"), false);
      },
    );

    await t.step(
      "the inference status reports the loaded model and that it runs on the CPU",
      async () => {
        const status = await sys.supervisor.client(inferenceApi).call("status", {});
        equal(status.loaded?.modelId, modelId);
        equal(status.loaded?.info.backend, "cpu");
        equal(status.gpu.used, false);
      },
    );

    await t.step(
      "secai tokens creates a token the API accepts, lists it, and revokes it",
      async () => {
        const out: string[] = [];
        const run = (argv: string[]) =>
          tokensCommand([...argv, "--home", sys.home], {
            write: (s) => out.push(s),
            writeError: (s) => out.push(s),
          });
        equal(await run(["create", "cli-made", "--json"]), 0);
        const created = JSON.parse(out.pop() ?? "{}") as { id: string; token: string };
        const list = () =>
          fetch(`${sys.base}/v1/models`, { headers: { authorization: `Bearer ${created.token}` } });
        let res = await list();
        await res.body?.cancel();
        equal(res.status, 200);
        equal(await run(["list"]), 0);
        match(out.pop() ?? "", new RegExp(`${created.id}\\s+cli-made`));
        equal(out.join("").includes(created.token), false, "list never shows a token");
        equal(await run(["revoke", created.id]), 0);
        res = await list();
        await res.body?.cancel();
        equal(res.status, 401);
        equal(await run(["revoke", created.id]), 1, "revoking twice says it is not found");
      },
    );

    await t.step(
      "secai chat streams an answer from the running instance with its local CLI token",
      async () => {
        let answer = "";
        const errors: string[] = [];
        const code = await chatCommand([
          "tiny-chat",
          "say",
          "hello",
          "--home",
          sys.home,
          "--max-tokens",
          "6",
          "--temperature",
          "0",
        ], {
          write: (s) => (answer += s),
          writeError: (s) => errors.push(s),
        });
        equal(code, 0, errors.join("\n"));
        ok(answer.trim().length > 0);
        const refused = await chatCommand(["no-such-model", "hi", "--home", sys.home], {
          write: () => {},
          writeError: (s) => errors.push(s),
        });
        equal(refused, 1);
        match(errors.at(-1) ?? "", /404 No promoted model "no-such-model"/);
      },
    );

    await t.step("a tampered model file is refused at its next load and revoked", async () => {
      await sys.supervisor.client(inferenceApi).call("unload", {});
      const blobs = [...Deno.readDirSync(`${sys.home}/registry/models`)].filter((e) =>
        e.name.endsWith(".gguf")
      );
      equal(blobs.length, 1);
      const path = `${sys.home}/registry/models/${blobs[0]?.name}`;
      await Deno.chmod(path, 0o600);
      const file = await Deno.open(path, { write: true });
      await file.seek(-4, Deno.SeekMode.End);
      await file.write(new Uint8Array([1, 2, 3, 4]));
      file.close();
      const res = await chat({ max_tokens: 2 });
      const body = await json<{ error: { code: string; message: string } }>(res, 403);
      equal(body.error.code, "integrity_failed");
      match(body.error.message, /integrity check failed/);
      equal(sys.supervisor.status().find((c) => c.name === "inference")?.state, "ready");
      const blocked = await auditTypes(sys, "inference.blocked");
      equal(blocked[0]?.subject, modelId);
      // Revoked: it is no longer offered.
      const list = await json<{ data: unknown[] }>(
        await fetch(`${sys.base}/v1/models`, { headers: { authorization: `Bearer ${token}` } }),
        200,
      );
      deepEqual(list.data, []);
    });
  } finally {
    await sys.stop();
  }
});

Deno.test("without a working engine, inference answers 503 saying why and the rest of the system keeps running", async () => {
  // Promotion runs the smoke test in the engine, so the model is promoted while the engine
  // works; then the system restarts on the same state dir without one.
  const home = await Deno.makeTempDir({ prefix: "secai-inference-" });
  const first = await startInferenceSystem({ home });
  let modelId: string;
  try {
    modelId = await promote(first, "tiny.gguf", tinyModel());
  } finally {
    await first.stop();
  }
  const sys = await startInferenceSystem({ withoutEngineHost: true, home });
  try {
    const token = await clientToken(sys.home, "tests");
    const res = await postJson(`${sys.base}/v1/chat/completions`, token, {
      model: modelId,
      messages: [{ role: "user", content: "hi" }],
    });
    const body = await json<{ error: { code: string; message: string } }>(res, 503);
    equal(body.error.code, "engine_unavailable");
    match(body.error.message, /engine/);
    ok(sys.supervisor.isReady, "every control is still ready");
    const health = await fetch(`${sys.base}/api/v1/health`);
    await health.body?.cancel();
    equal(health.status, 200);
    const status = await sys.supervisor.client(inferenceApi).call("status", {});
    match(status.engineProblem ?? "", /engine/);
  } finally {
    await sys.stop();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("an external backend model is listed, but used only when the policy's egress domain allows it", async () => {
  const sys = await startInferenceSystem({
    withoutEngineHost: true,
    inference: { external: { baseUrl: "https://llm.example.org/v1", models: ["remote-model"] } },
  });
  try {
    const token = await clientToken(sys.home, "tests");
    const list = await json<{ data: { id: string; owned_by: string }[] }>(
      await fetch(`${sys.base}/v1/models`, { headers: { authorization: `Bearer ${token}` } }),
      200,
    );
    deepEqual(list.data.map((m) => [m.id, m.owned_by]), [["remote-model", "secai-external"]]);
    // The inference control may reach that host only (its net grant), and only if policy allows.
    deepEqual(
      sys.supervisor.status().find((c) => c.name === "inference")?.permissions.net,
      ["llm.example.org:443"],
    );
    const res = await postJson(`${sys.base}/v1/chat/completions`, token, {
      model: "remote-model",
      messages: [{ role: "user", content: "hi" }],
    });
    const body = await json<{ error: { code: string; message: string } }>(res, 403);
    equal(body.error.code, "egress_denied");
    match(body.error.message, /airlock is disabled/);
    // The refusal is audited after the answer is sent (the deny itself does not wait on it).
    let denied = await auditTypes(sys, "inference.failed");
    await eventually(async () => (denied = await auditTypes(sys, "inference.failed")).length > 0, {
      what: "the inference.failed audit entry",
    });
    equal(denied[0]?.decision, "deny");
    equal(denied[0]?.subject, "external:remote-model");
  } finally {
    await sys.stop();
  }
});

Deno.test("a GGUF model cannot be promoted when the smoke test cannot run (stage 6 fails closed)", async () => {
  const sys = await startInferenceSystem({ withoutEngineHost: true });
  try {
    const err = await promote(sys, "tiny.gguf", tinyModel()).then(() => null, (e: unknown) => e);
    ok(err instanceof Error);
    match(err.message, /smoke_test/);
  } finally {
    await sys.stop();
  }
});
