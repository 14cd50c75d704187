/**
 * The engine host on its own, on the real path: a real ServiceRunner starting the real
 * engine module (llama.cpp through node-llama-cpp) in the sandbox, reached over a real RPC
 * port, with tiny random llama GGUFs written for each test.
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { engineApi } from "../../runtime/kit/engine_api.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import { RpcClient } from "../../runtime/kit/rpc.ts";
import { PROJECT_ROOT } from "../_system.ts";
import { TINY_CHAT_TEMPLATE, tinyGguf } from "../fixtures/llm/tiny_gguf.ts";
import { drain, GREEDY, isCode, LOAD, withHost } from "./_engine.ts";

Deno.test("the engine host loads a model in a sandboxed process and streams a chat answer", () =>
  withHost(async (h) => {
    const model = await h.model("models/tiny.gguf", tinyGguf({ chatTemplate: TINY_CHAT_TEMPLATE }));
    const engine = h.client();
    const loaded = await engine.call("load", { model, options: LOAD }, { deadlineMs: 60_000 });
    equal(loaded.info.architecture, "llama");
    equal(loaded.info.chatTemplate, "model");
    equal(loaded.info.backend, "cpu");
    ok(loaded.layers.landlockAbi > 0, "Landlock in force");
    deepEqual(
      [
        loaded.layers.seccomp,
        loaded.layers.noNewPrivs,
        loaded.layers.rlimits,
        loaded.layers.nonDumpable,
      ],
      [true, true, true, true],
    );
    const { streamId } = await engine.call("generate", {
      engineId: loaded.engineId,
      prompt: { kind: "chat", messages: [{ role: "user", content: "hello" }] },
      options: GREEDY,
    });
    const events = await drain(engine, streamId);
    const done = events.at(-1);
    ok(done?.kind === "done", JSON.stringify(done));
    equal(done.reason, "length");
    equal(done.usage.completionTokens, 16);
    ok(done.timings.tokensPerSecond > 0);
    const text = events.filter((e) => e.kind === "text").map((e) => e.kind === "text" ? e.text : "")
      .join("");
    ok(text.length > 0);
    equal(
      events.filter((e) => e.kind === "text").reduce(
        (n, e) => n + (e.kind === "text" ? e.tokens : 0),
        0,
      ),
      16,
    );
    ok(h.events.some((e) => e.type === "engine.loaded"));
  }));

Deno.test("every thread of the engine process runs with seccomp, no_new_privs and no capabilities", () =>
  withHost(async (h) => {
    const model = await h.model("models/tiny.gguf", tinyGguf());
    const engine = h.client();
    const loaded = await engine.call("load", { model, options: { ...LOAD, threads: 2 } }, {
      deadlineMs: 60_000,
    });
    const { streamId } = await engine.call("generate", {
      engineId: loaded.engineId,
      prompt: { kind: "text", text: "abc" },
      options: GREEDY,
    });
    await drain(engine, streamId);
    const pid = h.host.processes()[0]?.pid;
    ok(pid !== undefined);
    // Deno needs all-access for /proc/<pid>: a shell reads it for the test.
    const { stdout } = await new Deno.Command("/bin/sh", {
      args: ["-c", `for f in /proc/${pid}/task/*/status; do cat "$f"; echo ===; done`],
      stdout: "piped",
    }).output();
    const threads = new TextDecoder().decode(stdout).split("===\n").filter((t) => t.trim() !== "");
    ok(threads.length > 1, "llama.cpp runs threads of its own");
    for (const status of threads) {
      const name = /^Name:\s+(.*)$/m.exec(status)?.[1];
      match(status, /^NoNewPrivs:\s+1$/m, `thread ${name}`);
      match(status, /^Seccomp:\s+2$/m, `thread ${name}`);
      match(status, /^CapEff:\s+0+$/m, `thread ${name}`);
    }
  }));

Deno.test("cancelling a stream stops the generation, which ends with reason cancelled", () =>
  withHost(async (h) => {
    const model = await h.model("models/tiny.gguf", tinyGguf({ contextLength: 8192 }));
    const engine = h.client();
    const loaded = await engine.call("load", { model, options: { ...LOAD, contextSize: 8192 } }, {
      deadlineMs: 60_000,
    });
    const { streamId } = await engine.call("generate", {
      engineId: loaded.engineId,
      prompt: { kind: "text", text: "abc" },
      options: { ...GREEDY, maxTokens: 8000 },
    });
    let isCancelled = false;
    const events = await drain(engine, streamId, async (e) => {
      if (e.kind === "text" && !isCancelled) {
        isCancelled = (await engine.call("cancel", { streamId })).isCancelled;
      }
    });
    const done = events.at(-1);
    ok(done?.kind === "done");
    equal(done.reason, "cancelled");
    ok(done.usage.completionTokens < 8000);
    // The engine is free again at once.
    const next = await engine.call("generate", {
      engineId: loaded.engineId,
      prompt: { kind: "text", text: "abc" },
      options: GREEDY,
    });
    equal((await drain(engine, next.streamId)).at(-1)?.kind, "done");
  }));

Deno.test("the engine host refuses model files outside the caller's roots, symlinks and changed sizes", () =>
  withHost(async (h) => {
    const bytes = tinyGguf();
    const outside = await h.model("elsewhere/tiny.gguf", bytes);
    const inside = await h.model("models/tiny.gguf", bytes);
    await Deno.symlink(outside.path, `${h.home}/models/link.gguf`);
    const engine = h.client();
    const cases = [
      { model: outside, code: "ENGINE_NOT_ALLOWED" },
      { model: { ...inside, path: `${h.home}/models/link.gguf` }, code: "MODEL_FILE_REJECTED" },
      { model: { ...inside, size: inside.size + 1 }, code: "MODEL_FILE_REJECTED" },
      { model: { ...inside, path: `${h.home}/models/missing.gguf` }, code: "MODEL_FILE_REJECTED" },
      {
        model: { ...inside, path: `${h.home}/models/../elsewhere/tiny.gguf` },
        code: "MODEL_FILE_REJECTED",
      },
    ];
    for (const c of cases) {
      await rejects(
        () => engine.call("load", { model: c.model, options: LOAD }),
        isCode(c.code),
        c.code,
      );
    }
    equal(h.host.processes().length, 0, "no process was started");
    await rejects(
      () => h.client("gateway", null).call("load", { model: inside, options: LOAD }),
      isCode("ENGINE_NOT_ALLOWED"),
    );
  }));

Deno.test("the engine host keeps callers apart and limits their engines", () =>
  withHost(async (h) => {
    const model = await h.model("models/tiny.gguf", tinyGguf());
    const engine = h.client("inference");
    const loaded = await engine.call("load", { model, options: LOAD }, { deadlineMs: 60_000 });
    await rejects(() => engine.call("load", { model, options: LOAD }), isCode("TOO_MANY_ENGINES"));
    const other = h.client("quarantine");
    await rejects(
      () =>
        other.call("generate", {
          engineId: loaded.engineId,
          prompt: { kind: "text", text: "x" },
          options: GREEDY,
        }),
      isCode("ENGINE_NOT_FOUND"),
    );
    const { streamId } = await engine.call("generate", {
      engineId: loaded.engineId,
      prompt: { kind: "text", text: "x" },
      options: GREEDY,
    });
    await rejects(() => other.call("poll", { streamId, after: -1 }), isCode("STREAM_NOT_FOUND"));
    await drain(engine, streamId);
    equal((await engine.call("unload", { engineId: loaded.engineId })).isUnloaded, true);
    equal(h.host.processes().length, 0);
  }));

Deno.test("a caller that goes away takes its engines with it", () =>
  withHost(async (h) => {
    const model = await h.model("models/tiny.gguf", tinyGguf());
    const channel = new MessageChannel();
    const server = h.host.serve({
      name: "inference",
      grant: {
        module: `${PROJECT_ROOT}/workers/inference/jobs/engine.ts`,
        models: [`${h.home}/models`],
        maxEngines: 1,
      },
    }, channel.port2);
    const client = new RpcClient(engineApi, channel.port1);
    await client.call("load", { model, options: LOAD }, { deadlineMs: 60_000 });
    const pid = h.host.processes()[0]?.pid;
    client.close();
    server.close();
    for (let i = 0; i < 200 && h.host.processes().length > 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    equal(h.host.processes().length, 0);
    const probe = await new Deno.Command("/usr/bin/kill", {
      args: ["-0", String(pid)],
      stderr: "null",
    }).output();
    equal(probe.success, false, "the engine process is gone");
  }));

Deno.test("a model that is not loadable is refused with the reason, and the host keeps working", () =>
  withHost(async (h) => {
    const engine = h.client();
    const garbage = new Uint8Array(4096);
    garbage.set(new TextEncoder().encode("GGUF"));
    garbage.fill(0xff, 4);
    const broken = await h.model("models/broken.gguf", garbage);
    await rejects(
      () => engine.call("load", { model: broken, options: LOAD }, { deadlineMs: 60_000 }),
      (e: unknown) =>
        e instanceof RpcError && e.code === "MODEL_LOAD_FAILED" && /model/.test(e.message),
    );
    equal(h.host.processes().length, 0);
    const good = await h.model("models/tiny.gguf", tinyGguf());
    const loaded = await engine.call("load", { model: good, options: LOAD }, {
      deadlineMs: 60_000,
    });
    ok(loaded.engineId.length > 0);
  }));

Deno.test("a model that does not fit the memory budget is refused before it loads", () =>
  withHost(async (h) => {
    const model = await h.model("models/tiny.gguf", tinyGguf({ contextLength: 131_072 }));
    await rejects(
      () =>
        h.client().call("load", {
          model,
          options: { ...LOAD, contextSize: 131_072, memoryBudgetMb: 16 },
        }, { deadlineMs: 60_000 }),
      (e: unknown) =>
        e instanceof RpcError && e.code === "MODEL_TOO_LARGE" &&
        /more than the inference memory budget of 16 MiB/.test(e.message),
    );
  }));

Deno.test("the engine host says plainly when llama.cpp is not installed", async () => {
  const empty = await Deno.makeTempDir({ prefix: "secai-noproject-" });
  try {
    await withHost(async (h) => {
      const model = await h.model("models/tiny.gguf", tinyGguf());
      await rejects(
        () => h.client().call("load", { model, options: LOAD }),
        (e: unknown) =>
          e instanceof RpcError && e.code === "ENGINE_UNAVAILABLE" &&
          /node-llama-cpp is missing \(run tools\/setup\)/.test(e.message),
      );
      equal(h.host.processes().length, 0);
    }, { projectRoot: empty });
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});
