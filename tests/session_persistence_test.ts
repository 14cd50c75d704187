/**
 * Sessions and the lockout live in the auth control's SQLite database, not in the gateway's
 * memory (spec 10 §9.1, spec 31 §9.2): restarting the gateway or the auth control logs no one
 * out and resets no lockout counter. Real supervisor, real workers, real HTTP.
 */
import { equal, ok } from "node:assert/strict";
import { eventually, startSystem, type TestSystem } from "./_system.ts";
import { setUpSession } from "./_auth.ts";

async function gatewayUrl(sys: TestSystem): Promise<string> {
  const addr = await sys.supervisor.gatewayAddress(5_000);
  if (addr.transport !== "tcp") throw new TypeError("Expected a TCP gateway");
  return `http://${addr.host}:${addr.port}`;
}

/** Crashes a control and waits until the supervisor has restarted it. */
async function restart(sys: TestSystem, name: string): Promise<void> {
  const before = sys.supervisor.status().find((c) => c.name === name)?.restarts ?? 0;
  sys.supervisor.kill(name);
  await eventually(() => {
    const c = sys.supervisor.status().find((s) => s.name === name);
    return c !== undefined && c.restarts > before && c.state === "ready";
  }, { timeoutMs: 20_000, what: `${name} to restart` });
}

Deno.test("a gateway restart keeps the browser signed in", async () => {
  const sys = await startSystem();
  try {
    const session = await setUpSession(await gatewayUrl(sys), sys.home);
    await restart(sys, "gateway");
    // Port 0 in tests: the restarted gateway listens on a new port; the cookie is the same.
    await eventually(async () => {
      try {
        await fetch(`${await gatewayUrl(sys)}/api/v1/health`).then((r) => r.body?.cancel());
        return true;
      } catch (_err) {
        return false; // not listening yet
      }
    }, { what: "the new gateway to listen" });
    const base = await gatewayUrl(sys);
    const status = await fetch(`${base}/api/v1/auth/status`, {
      headers: { cookie: session.cookie },
    });
    equal((await status.json()).authenticated, true);
    const refresh = await fetch(`${base}/api/v1/auth/refresh`, {
      method: "POST",
      headers: { ...session.post, origin: base },
      body: "{}",
    });
    equal(refresh.status, 200, "the CSRF token survives too: it is derived from the session");
    await refresh.body?.cancel();
  } finally {
    await sys.stop();
  }
});

Deno.test("an auth control restart keeps sessions and the lockout counter", async () => {
  const sys = await startSystem();
  try {
    const base = await gatewayUrl(sys);
    const session = await setUpSession(base, sys.home);
    const guess = () =>
      fetch(`${base}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: base },
        body: JSON.stringify({ passphrase: "not the passphrase at all" }),
      });
    for (let i = 0; i < 5; i++) await (await guess()).body?.cancel();
    await restart(sys, "auth");
    const locked = await guess();
    equal(locked.status, 423, "the lockout survived the restart");
    ok(typeof (await locked.json()).locked_until === "string");
    const status = await fetch(`${base}/api/v1/auth/status`, {
      headers: { cookie: session.cookie },
    });
    equal((await status.json()).authenticated, true);
  } finally {
    await sys.stop();
  }
});
