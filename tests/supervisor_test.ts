/**
 * The supervisor for real: workers spawned with manifest permissions, ports only along
 * declared edges, restarts, crash loops failing closed, heartbeats, ordered shutdown.
 */
import assert, { deepEqual, equal } from "node:assert/strict";
import { eventually, startSystem } from "./_system.ts";
import { probeApi, relayApi } from "./fixtures/controls/probe_api.ts";
import type { ControlSpecInput } from "../runtime/manifest.ts";
import { RpcError } from "../runtime/kit/errors.ts";

const FAST_RESTART = { backoffMs: 20, maxBackoffMs: 100, maxRestarts: 2, windowMs: 60_000 };

function probeControls(restart = FAST_RESTART): ControlSpecInput[] {
  return [
    {
      name: "probe",
      description: "test probe",
      entry: "tests/fixtures/controls/probe.ts",
      permissions: { read: ["home:allowed"], write: ["home:allowed"] },
      provides: ["probe"],
      restart,
    },
    {
      name: "relay",
      description: "test relay",
      entry: "tests/fixtures/controls/relay.ts",
      provides: ["relay"],
      uses: ["probe"],
      restart,
    },
  ];
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "RESOLVED";
  } catch (err) {
    if (!(err instanceof RpcError)) throw new Error(`expected RpcError, got ${err}`);
    return err.code;
  }
}

Deno.test("supervisor starts every control and reports the system ready", async () => {
  const sys = await startSystem({ controls: probeControls() });
  try {
    assert(sys.isReady);
    deepEqual(sys.supervisor.startOrder, ["probe", "relay"]);
    const relay = sys.supervisor.client(relayApi);
    equal(await relay.call("echo", "hello"), "hello");
    const rows = sys.supervisor.status();
    deepEqual(rows.map((r) => [r.name, r.state]), [["probe", "ready"], ["relay", "ready"]]);
    deepEqual(rows[1]?.uses, [{ api: "probe", control: "probe" }]);
  } finally {
    await sys.stop();
  }
});

Deno.test("a worker denied a path, host, env, run or ffi gets NotCapable and cannot escalate", async () => {
  const sys = await startSystem({ controls: probeControls() });
  try {
    await Deno.mkdir(`${sys.home}/allowed`);
    await Deno.writeTextFile(`${sys.home}/allowed/ok.txt`, "ok");
    await Deno.writeTextFile(`${sys.home}/secret.txt`, "secret");
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const probe = sys.supervisor.client(probeApi);
    try {
      const denied = await probe.call("attempt", {
        readPath: `${sys.home}/secret.txt`,
        writePath: `${sys.home}/secret.txt`,
        netTarget: `127.0.0.1:${listener.addr.port}`,
      });
      deepEqual(denied, {
        read: "NotCapable",
        readSync: "NotCapable",
        write: "NotCapable",
        net: "NotCapable",
        env: "NotCapable",
        run: "NotCapable",
        ffi: "NotCapable",
        broadcastChannel: "undefined",
        escalatedWorker: "NotCapable",
        noCapability: "RpcError",
      });
      const allowed = await probe.call("attempt", {
        readPath: `${sys.home}/allowed/ok.txt`,
        writePath: `${sys.home}/allowed/new.txt`,
        netTarget: `127.0.0.1:${listener.addr.port}`,
      });
      equal(allowed.read, "ALLOWED");
      equal(allowed.write, "ALLOWED");
    } finally {
      listener.close();
    }
    const row = sys.supervisor.status().find((r) => r.name === "probe");
    deepEqual(row?.permissions, {
      read: [`${sys.home}/allowed`],
      write: [`${sys.home}/allowed`],
      net: [],
      env: [],
      sys: [],
      run: false,
      ffi: false,
      import: false,
    });
  } finally {
    await sys.stop();
  }
});

Deno.test("a control without an edge to a peer cannot reach it", async () => {
  const controls = probeControls();
  // relay without `uses: ["probe"]`: its setup asks for the probe client and must fail.
  const [probe, relay] = controls;
  if (!probe || !relay) throw new Error("fixture missing");
  controls[1] = { ...relay, uses: [], restart: { ...FAST_RESTART, maxRestarts: 0 } };
  const sys = await startSystem({ controls, readyTimeoutMs: 3000 });
  try {
    assert(!sys.isReady);
    await eventually(
      () => sys.supervisor.status().find((r) => r.name === "relay")?.state === "failed",
      {
        what: "relay failed",
      },
    );
    const row = sys.supervisor.status().find((r) => r.name === "relay");
    assert(row?.lastError?.includes('has no capability for "probe"'), row?.lastError ?? "");
  } finally {
    await sys.stop();
  }
});

Deno.test("structured errors cross the worker boundary intact", async () => {
  const sys = await startSystem({ controls: probeControls() });
  try {
    const probe = sys.supervisor.client(probeApi);
    const err = await probe.call("fail", { code: "POLICY_DENIED", message: 'Denied by rule "x"' })
      .then(() => null, (e) => e);
    assert(err instanceof RpcError);
    equal(err.code, "POLICY_DENIED");
    equal(err.message, 'Denied by rule "x"');
    equal(await codeOf(probe.call("sleep", 5_000, { deadlineMs: 100 })), "DEADLINE_EXCEEDED");
    const abort = new AbortController();
    const pending = probe.call("sleep", 5_000, { signal: abort.signal });
    abort.abort();
    equal(await codeOf(pending), "CANCELLED");
  } finally {
    await sys.stop();
  }
});

Deno.test("killing a worker makes the supervisor restart it and rewire its callers", async () => {
  const sys = await startSystem({ controls: probeControls() });
  try {
    const relay = sys.supervisor.client(relayApi);
    sys.supervisor.kill("probe");
    // While the probe is down, the relay's call fails closed instead of hanging.
    equal(await codeOf(relay.call("echo", "during")), "UNAVAILABLE");
    await eventually(() => sys.supervisor.isReady, { what: "restart" });
    equal(await relay.call("echo", "after"), "after");
    equal(sys.supervisor.status().find((r) => r.name === "probe")?.restarts, 1);
  } finally {
    await sys.stop();
  }
});

Deno.test("an uncaught error in a worker is a crash, not the supervisor's", async () => {
  const sys = await startSystem({ controls: probeControls() });
  try {
    const probe = sys.supervisor.client(probeApi);
    await probe.call("crash", null);
    await eventually(() => (sys.supervisor.status()[0]?.restarts ?? 0) >= 1, {
      what: "crash seen",
    });
    await eventually(() => sys.supervisor.isReady, { what: "restart" });
    equal(await probe.call("echo", "back"), "back");
  } finally {
    await sys.stop();
  }
});

Deno.test("a hung worker misses heartbeats and is restarted", async () => {
  const sys = await startSystem({ controls: probeControls() });
  try {
    const probe = sys.supervisor.client(probeApi);
    await probe.call("hang", null);
    await eventually(() => (sys.supervisor.status()[0]?.restarts ?? 0) >= 1, {
      what: "hang detected",
    });
    assert(sys.supervisor.status()[0]?.lastError?.includes("heartbeats"));
    await eventually(() => sys.supervisor.isReady, { what: "restart" });
    equal(await probe.call("echo", "alive"), "alive");
  } finally {
    await sys.stop();
  }
});

Deno.test("a crash loop marks the control failed and callers fail closed within the deadline", async () => {
  const sys = await startSystem({
    controls: probeControls(),
    sections: { probe: { crashOnStart: true } },
    readyTimeoutMs: 2000,
  });
  try {
    await eventually(() => sys.supervisor.status()[0]?.state === "failed", { what: "failed" });
    const row = sys.supervisor.status()[0];
    equal(row?.restarts, FAST_RESTART.maxRestarts);
    assert(!sys.supervisor.isReady);
    const relay = sys.supervisor.client(relayApi);
    const started = Date.now();
    equal(await codeOf(relay.call("echo", "x", { deadlineMs: 1000 })), "UNAVAILABLE");
    assert(Date.now() - started < 1000);
    const events = await sys.supervisor.events.since(-1, { waitMs: 0, limit: 500 });
    assert(events.events.some((e) => e.type === "control.failed" && e.data.control === "probe"));
  } finally {
    await sys.stop();
  }
});

Deno.test("shutdown stops callers before providers and finishes within the budget", async () => {
  const sys = await startSystem({ controls: probeControls() });
  const started = Date.now();
  await sys.supervisor.stop();
  const elapsed = Date.now() - started;
  assert(elapsed < 5000, `shutdown took ${elapsed} ms`);
  const { events } = await sys.supervisor.events.since(-1, { waitMs: 0, limit: 500 });
  const stopped = events.filter((e) => e.type === "control.state" && e.data.state === "stopped")
    .map((e) => e.data.control);
  deepEqual(stopped, ["relay", "probe"]);
  await Deno.remove(sys.home, { recursive: true });
});

Deno.test("a contract a control declares but does not serve fails calls at once, not at the deadline", async () => {
  const sys = await startSystem({
    controls: [{
      name: "probe",
      description: "declares probe and relay, serves only probe",
      entry: "tests/fixtures/controls/probe.ts",
      provides: ["probe", "relay"],
    }],
  });
  try {
    const relay = sys.supervisor.client(relayApi);
    const started = Date.now();
    equal(await codeOf(relay.call("echo", "x", { deadlineMs: 5000 })), "UNKNOWN_METHOD");
    assert(Date.now() - started < 5000);
  } finally {
    await sys.stop();
  }
});
