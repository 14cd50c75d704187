/**
 * Runtime foundation benchmarks, each against a baseline in the same run:
 * worker spawn with a permission object vs a bare `new Worker`, and a typed RPC round trip
 * vs a raw postMessage echo over the same worker boundary.
 *   tools/deno task bench
 */
import { RpcClient } from "../../runtime/kit/rpc.ts";
import { benchEchoApi } from "../fixtures/bench/echo_api.ts";

const hello = new URL("../fixtures/bench/hello_worker.ts", import.meta.url).href;
const dir = new URL("../fixtures/bench/", import.meta.url).pathname;

function spawnAndWait(options: WorkerOptions): Promise<void> {
  const worker = new Worker(hello, options);
  return new Promise((resolve) => {
    worker.onmessage = () => {
      worker.terminate();
      resolve();
    };
  });
}

Deno.bench({ name: "bare new Worker", group: "spawn", baseline: true }, async () => {
  await spawnAndWait({ type: "module" });
});

Deno.bench({ name: "new Worker with a full permission object", group: "spawn" }, async () => {
  await spawnAndWait({
    type: "module",
    deno: {
      permissions: {
        read: [dir],
        write: false,
        net: false,
        env: false,
        sys: false,
        run: false,
        ffi: false,
        import: false,
      },
    },
  });
});

const echo = new Worker(new URL("../fixtures/bench/echo_worker.ts", import.meta.url).href, {
  type: "module",
});
const raw = new MessageChannel();
const rpc = new MessageChannel();
await new Promise<void>((resolve) => {
  echo.onmessage = () => resolve();
  echo.postMessage({ raw: raw.port2, rpc: rpc.port2 }, [raw.port2, rpc.port2]);
});
const client = new RpcClient(benchEchoApi, rpc.port1);
const payload = "x".repeat(100);

Deno.bench({ name: "raw postMessage echo", group: "round trip", baseline: true }, async () => {
  await new Promise<void>((resolve) => {
    raw.port1.onmessage = () => resolve();
    raw.port1.postMessage(payload);
  });
});

Deno.bench({ name: "typed RPC call (zod both ends, deadline)", group: "round trip" }, async () => {
  await client.call("echo", payload);
});

globalThis.addEventListener("unload", () => {
  client.close();
  raw.port1.close();
  echo.terminate();
});
