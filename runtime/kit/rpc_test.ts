import { deepEqual, equal, rejects } from "node:assert/strict";
import { z } from "zod";
import { defineApi, RpcClient, serveRpc } from "./rpc.ts";
import { RpcError } from "./errors.ts";

const testApi = defineApi("test", {
  add: {
    input: z.strictObject({ a: z.number().int(), b: z.number().int() }),
    output: z.number().int(),
  },
  wait: { input: z.number().int(), output: z.string() },
  lie: { input: z.null(), output: z.string() },
  boom: { input: z.null(), output: z.null() },
});

/** A real client and server over a real MessageChannel. */
function pair(handlers: Partial<Parameters<typeof serveRpc<typeof testApi>>[2]> = {}) {
  const channel = new MessageChannel();
  let cancelled = 0;
  const server = serveRpc(channel.port2, testApi, {
    add: ({ a, b }) => a + b,
    wait: (ms, ctx) =>
      new Promise((resolve) => {
        const t = setTimeout(() => resolve("done"), ms);
        ctx.signal.addEventListener("abort", () => {
          cancelled++;
          clearTimeout(t);
          resolve("aborted");
        });
      }),
    lie: () => 42 as unknown as string,
    boom: () => {
      throw new Error("secret path /etc/shadow");
    },
    ...handlers,
  }, { caller: "tester", self: "unit" });
  const client = new RpcClient(testApi, channel.port1, { peer: "unit" });
  return {
    client,
    cancelled: () => cancelled,
    close() {
      client.close();
      server.close();
    },
  };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "RESOLVED";
  } catch (err) {
    if (!(err instanceof RpcError)) throw err;
    return err.code;
  }
}

Deno.test("call() returns the validated result", async () => {
  const p = pair();
  try {
    equal(await p.client.call("add", { a: 2, b: 3 }), 5);
  } finally {
    p.close();
  }
});

const rejections: {
  name: string;
  run: (c: ReturnType<typeof pair>["client"]) => Promise<unknown>;
  code: string;
}[] = [
  {
    name: "rejects input outside the contract before sending",
    run: (c) => c.call("add", { a: 1, b: "2" } as unknown as { a: number; b: number }),
    code: "INVALID_REQUEST",
  },
  {
    name: "rejects extra fields (strict contract)",
    run: (c) => c.call("add", { a: 1, b: 2, admin: true } as unknown as { a: number; b: number }),
    code: "INVALID_REQUEST",
  },
  {
    name: "rejects a result outside the contract",
    run: (c) => c.call("lie", null),
    code: "INTERNAL",
  },
  { name: "hides internal error details", run: (c) => c.call("boom", null), code: "INTERNAL" },
  {
    name: "times out at the deadline",
    run: (c) => c.call("wait", 10_000, { deadlineMs: 50 }),
    code: "DEADLINE_EXCEEDED",
  },
];
for (const r of rejections) {
  Deno.test(`call() ${r.name}`, async () => {
    const p = pair();
    try {
      equal(await codeOf(r.run(p.client)), r.code);
    } finally {
      p.close();
    }
  });
}

Deno.test("an internal error's message does not leak to the caller", async () => {
  const p = pair();
  try {
    await rejects(p.client.call("boom", null), (err: unknown) => {
      return err instanceof RpcError && !err.message.includes("/etc/shadow");
    });
  } finally {
    p.close();
  }
});

Deno.test("cancelling a call aborts the handler on the server", async () => {
  const p = pair();
  try {
    const abort = new AbortController();
    const call = p.client.call("wait", 10_000, { signal: abort.signal });
    setTimeout(() => abort.abort(), 10);
    equal(await codeOf(call), "CANCELLED");
    // The server learns of the cancellation by message; wait for it to arrive.
    for (let i = 0; i < 100 && p.cancelled() === 0; i++) await new Promise((r) => setTimeout(r, 5));
    equal(p.cancelled(), 1);
  } finally {
    p.close();
  }
});

Deno.test("dropping the port fails pending and new calls with UNAVAILABLE", async () => {
  const p = pair();
  try {
    const pending = p.client.call("wait", 10_000);
    p.client.setPort(null, "went down");
    equal(await codeOf(pending), "UNAVAILABLE");
    equal(await codeOf(p.client.call("add", { a: 1, b: 1 })), "UNAVAILABLE");
  } finally {
    p.close();
  }
});

Deno.test("serveRpc() answers malformed envelopes and unknown methods with errors", async () => {
  const channel = new MessageChannel();
  const server = serveRpc(channel.port2, testApi, {
    add: ({ a, b }) => a + b,
    wait: () => "x",
    lie: () => "x",
    boom: () => null,
  }, { caller: "t", self: "unit" });
  const replies: unknown[] = [];
  const got = new Promise<void>((resolve) => {
    channel.port1.onmessage = (e) => {
      replies.push(e.data);
      if (replies.length === 2) resolve();
    };
  });
  channel.port1.postMessage({ t: "req", id: 1, method: "add", params: {}, deadline: "soon" });
  channel.port1.postMessage({
    t: "req",
    id: 2,
    method: "__proto__",
    params: null,
    deadline: Date.now() + 1000,
  });
  await got;
  deepEqual(replies.map((r) => (r as { error: { code: string } }).error.code).sort(), [
    "PROTOCOL_ERROR",
    "UNKNOWN_METHOD",
  ]);
  channel.port1.close();
  server.close();
});
