import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { AuthConfigSchema, type ClientInfo, type Grant, type Outcome } from "./api.ts";
import { hashPassphrase } from "./kdf.ts";
import { AUTH_FILES, type AuthAuditEntry, AuthError, AuthService } from "./service.ts";

/** Cheap KDF: the tests are about the logic; the spec cost is used by the worker. */
const CHEAP = { n: 1 << 14, r: 1, p: 1, keyLength: 32 };
const CLIENT: ClientInfo = { address: "127.0.0.1", userAgent: "test" };
const GOOD = "violet tractor museum 42 lantern";
const MINUTE = 60_000;

interface Harness {
  dir: string;
  clock: { now: number };
  audit: AuthAuditEntry[];
  open(
    options?: { config?: Record<string, unknown>; kdfMaxWaiting?: number },
  ): Promise<AuthService>;
  cleanup(): Promise<void>;
}

async function harness(): Promise<Harness> {
  const dir = await Deno.makeTempDir({ prefix: "secai-auth-" });
  const clock = { now: Date.parse("2026-11-25T10:00:00Z") };
  const audit: AuthAuditEntry[] = [];
  const opened: AuthService[] = [];
  return {
    dir,
    clock,
    audit,
    async open(options = {}) {
      const service = await AuthService.open({
        dir,
        config: AuthConfigSchema.parse(options.config ?? {}),
        kdf: CHEAP,
        now: () => clock.now,
        record: (entry) => audit.push(entry),
        ...(options.kdfMaxWaiting === undefined ? {} : { kdfMaxWaiting: options.kdfMaxWaiting }),
      });
      opened.push(service);
      return service;
    },
    async cleanup() {
      for (const s of opened) s.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function setupCode(dir: string): Promise<string> {
  return (await Deno.readTextFile(`${dir}/${AUTH_FILES.setupCode}`)).trim();
}

function grantOf(outcome: Outcome): Grant {
  if (!outcome.ok) throw new Error(`Expected a grant, got ${outcome.code}: ${outcome.message}`);
  return outcome.grant;
}

async function configured(h: Harness): Promise<{ service: AuthService; grant: Grant }> {
  const service = await h.open();
  const grant = grantOf(
    await service.setup({
      setupCode: await setupCode(h.dir),
      passphrase: GOOD,
      device: null,
      client: CLIENT,
    }),
  );
  return { service, grant };
}

Deno.test("AuthService.open() writes a setup code and a private CLI token on first start", async () => {
  const h = await harness();
  try {
    const service = await h.open();
    equal(service.isConfigured, false);
    match(await setupCode(h.dir), /^[A-Z2-9]{5}(-[A-Z2-9]{5}){3}$/);
    for (const file of [AUTH_FILES.setupCode, AUTH_FILES.cliToken]) {
      equal(((await Deno.stat(`${h.dir}/${file}`)).mode ?? 0) & 0o777, 0o600, file);
    }
    const token = (await Deno.readTextFile(`${h.dir}/${AUTH_FILES.cliToken}`)).trim();
    const check = service.check({ kind: "bearer", token }, false);
    ok(check.ok, "the CLI token works before setup (the CLI must keep working)");
    equal(check.configured, false);
    equal(check.principal.kind, "cli");
  } finally {
    await h.cleanup();
  }
});

Deno.test("setup() sets the passphrase once, consumes the setup code and signs the caller in", async () => {
  const h = await harness();
  try {
    const { service, grant } = await configured(h);
    equal(service.isConfigured, true);
    await rejects(Deno.stat(`${h.dir}/${AUTH_FILES.setupCode}`), Deno.errors.NotFound);
    const check = service.check({ kind: "session", token: grant.session.token }, false);
    ok(check.ok);
    equal(check.principal.kind, "session");
    const again = await service.setup({
      setupCode: "anything",
      passphrase: GOOD,
      device: null,
      client: CLIENT,
    });
    equal(again.ok ? "ok" : again.code, "ALREADY_CONFIGURED");
    deepEqual(h.audit.map((e) => [e.type, e.decision]), [["auth.setup", "allow"]]);
    ok(!JSON.stringify(h.audit).includes(GOOD), "the passphrase is never audited");
  } finally {
    await h.cleanup();
  }
});

Deno.test("setup() accepts the setup code typed in lower case and without dashes", async () => {
  const h = await harness();
  try {
    const service = await h.open();
    const code = (await setupCode(h.dir)).toLowerCase().replaceAll("-", "");
    ok(
      (await service.setup({ setupCode: code, passphrase: GOOD, device: null, client: CLIENT }))
        .ok,
    );
  } finally {
    await h.cleanup();
  }
});

const setupRefusals: {
  name: string;
  code: (real: string) => string;
  passphrase: string;
  expected: string;
}[] = [
  {
    name: "a wrong setup code",
    code: () => "AAAAA-AAAAA-AAAAA-AAAAA",
    passphrase: GOOD,
    expected: "SETUP_CODE_INVALID",
  },
  {
    name: "a setup code one character short",
    code: (c) => c.slice(0, -1),
    passphrase: GOOD,
    expected: "SETUP_CODE_INVALID",
  },
  { name: "a weak passphrase", code: (c) => c, passphrase: "short", expected: "WEAK_PASSPHRASE" },
  {
    name: "a blocklisted passphrase",
    code: (c) => c,
    passphrase: "passwordpassword",
    expected: "WEAK_PASSPHRASE",
  },
];
for (const c of setupRefusals) {
  Deno.test(`setup() refuses ${c.name} and sets nothing`, async () => {
    const h = await harness();
    try {
      const service = await h.open();
      const outcome = await service.setup({
        setupCode: c.code(await setupCode(h.dir)),
        passphrase: c.passphrase,
        device: null,
        client: CLIENT,
      });
      equal(outcome.ok ? "ok" : outcome.code, c.expected);
      equal(service.isConfigured, false);
      await rejects(Deno.stat(`${h.dir}/${AUTH_FILES.passphrase}`), Deno.errors.NotFound);
    } finally {
      await h.cleanup();
    }
  });
}

Deno.test("setup() locks out guessing of the setup code after 5 wrong codes", async () => {
  const h = await harness();
  try {
    const service = await h.open();
    const codes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const o = await service.setup({
        setupCode: "WRONG",
        passphrase: GOOD,
        device: null,
        client: CLIENT,
      });
      codes.push(o.ok ? "ok" : o.code);
    }
    deepEqual(codes, [...Array(5).fill("SETUP_CODE_INVALID"), "LOGIN_LOCKED"]);
    const right = await service.setup({
      setupCode: await setupCode(h.dir),
      passphrase: GOOD,
      device: null,
      client: CLIENT,
    });
    equal(right.ok ? "ok" : right.code, "LOGIN_LOCKED", "even the right code waits out the lock");
    h.clock.now += MINUTE + 1;
    ok(
      (await service.setup({
        setupCode: await setupCode(h.dir),
        passphrase: GOOD,
        device: null,
        client: CLIENT,
      })).ok,
    );
  } finally {
    await h.cleanup();
  }
});

Deno.test("two setups racing with the right code: exactly one wins", async () => {
  const h = await harness();
  try {
    const service = await h.open();
    const code = await setupCode(h.dir);
    const outcomes = await Promise.all(
      [GOOD, `${GOOD} two`].map((passphrase) =>
        service.setup({ setupCode: code, passphrase, device: null, client: CLIENT })
      ),
    );
    equal(outcomes.filter((o) => o.ok).length, 1);
  } finally {
    await h.cleanup();
  }
});

Deno.test("login() locks the bucket after 5 wrong passphrases and a success clears it", async () => {
  const h = await harness();
  try {
    const { service } = await configured(h);
    const codes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const o = await service.login({
        passphrase: "wrong wrong wrong",
        device: null,
        client: CLIENT,
      });
      codes.push(o.ok ? "ok" : o.code);
    }
    deepEqual(codes, [...Array(5).fill("WRONG_PASSPHRASE"), "LOGIN_LOCKED"]);
    const locked = await service.login({ passphrase: GOOD, device: null, client: CLIENT });
    ok(!locked.ok && locked.code === "LOGIN_LOCKED");
    equal(locked.lockedUntil, new Date(h.clock.now + MINUTE).toISOString());
    h.clock.now += MINUTE + 1;
    ok((await service.login({ passphrase: GOOD, device: null, client: CLIENT })).ok);
    // The counter is clear again: four failures do not lock.
    for (let i = 0; i < 4; i++) {
      await service.login({ passphrase: "wrong wrong wrong", device: null, client: CLIENT });
    }
    ok((await service.login({ passphrase: GOOD, device: null, client: CLIENT })).ok);
    const denials = h.audit.filter((e) => e.type === "auth.login" && e.decision === "deny");
    equal(denials.length, 11, "9 wrong passphrases and 2 attempts while locked");
    ok(!JSON.stringify(h.audit).includes("wrong wrong wrong"), "guesses are never audited");
  } finally {
    await h.cleanup();
  }
});

Deno.test("login() locks for 15 minutes from the fifteenth failure", async () => {
  const h = await harness();
  try {
    const { service } = await configured(h);
    let last: Outcome | null = null;
    for (let i = 0; i < 15; i++) {
      last = await service.login({ passphrase: "wrong wrong wrong", device: null, client: CLIENT });
      h.clock.now += MINUTE + 1; // wait out each 60 s lock
    }
    h.clock.now -= MINUTE + 1;
    ok(last !== null && !last.ok);
    equal(last.lockedUntil, new Date(h.clock.now + 15 * MINUTE).toISOString());
  } finally {
    await h.cleanup();
  }
});

Deno.test("ten parallel wrong guesses run the KDF for at most five before the lock", async () => {
  const h = await harness();
  try {
    const { service } = await configured(h);
    const outcomes = await Promise.all(
      Array.from(
        { length: 10 },
        () => service.login({ passphrase: "wrong wrong wrong", device: null, client: CLIENT }),
      ),
    );
    const codes = outcomes.map((o) => (o.ok ? "ok" : o.code)).sort();
    deepEqual(codes, [...Array(5).fill("LOGIN_LOCKED"), ...Array(5).fill("WRONG_PASSPHRASE")]);
  } finally {
    await h.cleanup();
  }
});

Deno.test("a known device has its own lockout: guessing elsewhere does not lock the owner out", async () => {
  const h = await harness();
  try {
    const { service, grant } = await configured(h);
    const device = grant.device.token;
    for (let i = 0; i < 5; i++) {
      await service.login({ passphrase: "wrong wrong wrong", device: null, client: CLIENT });
    }
    const anonymous = await service.login({ passphrase: GOOD, device: null, client: CLIENT });
    equal(anonymous.ok ? "ok" : anonymous.code, "LOGIN_LOCKED");
    const owner = grantOf(await service.login({ passphrase: GOOD, device, client: CLIENT }));
    equal(owner.device.token, device, "a known device keeps its token");
    // A forged device token is just another unknown caller.
    const forged = await service.login({
      passphrase: GOOD,
      device: "f".repeat(43),
      client: CLIENT,
    });
    equal(forged.ok ? "ok" : forged.code, "LOGIN_LOCKED");
    // The device's own failures lock the device.
    for (let i = 0; i < 5; i++) {
      await service.login({ passphrase: "wrong wrong wrong", device, client: CLIENT });
    }
    const deviceLocked = await service.login({ passphrase: GOOD, device, client: CLIENT });
    equal(deviceLocked.ok ? "ok" : deviceLocked.code, "LOGIN_LOCKED");
  } finally {
    await h.cleanup();
  }
});

Deno.test("login() answers AUTH_BUSY instead of queueing without bound", async () => {
  const h2 = await harness();
  try {
    const service = await h2.open({ kdfMaxWaiting: 0 });
    ok(
      (await service.setup({
        setupCode: await setupCode(h2.dir),
        passphrase: GOOD,
        device: null,
        client: CLIENT,
      })).ok,
    );
    const outcomes = await Promise.all(
      Array.from(
        { length: 3 },
        () => service.login({ passphrase: GOOD, device: null, client: CLIENT }),
      ),
    );
    deepEqual(outcomes.map((o) => (o.ok ? "ok" : o.code)).sort(), ["AUTH_BUSY", "ok", "ok"]);
  } finally {
    await h2.cleanup();
  }
});

Deno.test("a passive check never extends a session; a touch does, up to the absolute end", async () => {
  const h = await harness();
  try {
    const { service, grant } = await configured(h);
    const token = grant.session.token;
    const started = h.clock.now;
    h.clock.now = started + 29 * MINUTE;
    ok(service.check({ kind: "session", token }, false).ok);
    h.clock.now = started + 30 * MINUTE;
    const idle = service.check({ kind: "session", token }, false);
    deepEqual(idle, { ok: false, configured: true, reason: "EXPIRED" });
    equal(service.check({ kind: "session", token }, false).ok, false, "an expired session is gone");

    const second = grantOf(await service.login({ passphrase: GOOD, device: null, client: CLIENT }));
    const t = second.session.token;
    const loggedIn = h.clock.now;
    for (let minutes = 20; minutes < 12 * 60; minutes += 20) {
      h.clock.now = loggedIn + minutes * MINUTE;
      const touched = service.check({ kind: "session", token: t }, true);
      ok(touched.ok, `alive at ${minutes} min with activity`);
    }
    h.clock.now = loggedIn + 12 * 60 * MINUTE;
    equal(service.check({ kind: "session", token: t }, true).ok, false, "12 h is the absolute end");
  } finally {
    await h.cleanup();
  }
});

Deno.test("touches within 30 s keep the stored idle end; a later one moves it", async () => {
  const h = await harness();
  try {
    const { service, grant } = await configured(h);
    const token = grant.session.token;
    const idleEnd = (r: ReturnType<typeof service.check>) =>
      r.ok ? r.principal.idleExpiresAt : null;
    const start = h.clock.now;
    h.clock.now = start + 60_000;
    const first = idleEnd(service.check({ kind: "session", token }, true));
    equal(first, new Date(start + 60_000 + 30 * MINUTE).toISOString());
    h.clock.now = start + 80_000;
    equal(idleEnd(service.check({ kind: "session", token }, true)), first, "a burst is one write");
    h.clock.now = start + 91_000;
    equal(
      idleEnd(service.check({ kind: "session", token }, true)),
      new Date(start + 91_000 + 30 * MINUTE).toISOString(),
    );
    // What is enforced is what was stored: the session ends at the stored idle end.
    h.clock.now = start + 91_000 + 30 * MINUTE;
    equal(service.check({ kind: "session", token }, false).ok, false);
  } finally {
    await h.cleanup();
  }
});

Deno.test("sessions survive a restart and are stored only as hashes", async () => {
  const h = await harness();
  try {
    const { service, grant } = await configured(h);
    const oldCli = (await Deno.readTextFile(`${h.dir}/${AUTH_FILES.cliToken}`)).trim();
    service.close();
    const reopened = await h.open();
    equal(reopened.isConfigured, true);
    ok(reopened.check({ kind: "session", token: grant.session.token }, false).ok);
    const newCli = (await Deno.readTextFile(`${h.dir}/${AUTH_FILES.cliToken}`)).trim();
    ok(newCli !== oldCli, "the CLI token is renewed at every start");
    equal(reopened.check({ kind: "bearer", token: oldCli }, false).ok, false);
    ok(reopened.check({ kind: "bearer", token: newCli }, false).ok);
    const db = await Deno.readFile(`${h.dir}/${AUTH_FILES.database}`);
    const wal = await Deno.readFile(`${h.dir}/${AUTH_FILES.database}-wal`).catch(() =>
      new Uint8Array()
    );
    const text = new TextDecoder("latin1").decode(db) + new TextDecoder("latin1").decode(wal);
    ok(!text.includes(grant.session.token), "no session token in the database");
    ok(!text.includes(newCli), "no CLI token in the database");
  } finally {
    await h.cleanup();
  }
});

Deno.test("logout() ends the session and an unknown token is refused", async () => {
  const h = await harness();
  try {
    const { service, grant } = await configured(h);
    deepEqual(service.logout({ token: grant.session.token, client: CLIENT }), { ended: true });
    deepEqual(service.check({ kind: "session", token: grant.session.token }, false), {
      ok: false,
      configured: true,
      reason: "UNKNOWN",
    });
    deepEqual(service.logout({ token: grant.session.token, client: CLIENT }), { ended: false });
  } finally {
    await h.cleanup();
  }
});

Deno.test("change() needs the current passphrase, ends every session and grants a new one", async () => {
  const h = await harness();
  try {
    const { service, grant } = await configured(h);
    const other = grantOf(await service.login({ passphrase: GOOD, device: null, client: CLIENT }));
    const next = "amber glacier piano 7 saffron";
    const input = { token: grant.session.token, device: null, client: CLIENT };
    const wrong = await service.change({ ...input, current: "nope nope nope", next });
    equal(wrong.ok ? "ok" : wrong.code, "WRONG_PASSPHRASE");
    const weak = await service.change({ ...input, current: GOOD, next: "short" });
    equal(weak.ok ? "ok" : weak.code, "WEAK_PASSPHRASE");
    const changed = grantOf(await service.change({ ...input, current: GOOD, next }));
    equal(service.check({ kind: "session", token: other.session.token }, false).ok, false);
    equal(service.check({ kind: "session", token: grant.session.token }, false).ok, false);
    ok(service.check({ kind: "session", token: changed.session.token }, false).ok);
    const old = await service.login({ passphrase: GOOD, device: null, client: CLIENT });
    equal(old.ok ? "ok" : old.code, "WRONG_PASSPHRASE");
    ok((await service.login({ passphrase: next, device: null, client: CLIENT })).ok);
  } finally {
    await h.cleanup();
  }
});

Deno.test("a legacy record with a weaker cost is upgraded at the next login", async () => {
  const h = await harness();
  try {
    const legacy = await hashPassphrase(GOOD, { n: 1 << 14, r: 1, p: 1, keyLength: 32 });
    await Deno.writeTextFile(`${h.dir}/${AUTH_FILES.passphrase}`, JSON.stringify(legacy));
    const service = await AuthService.open({
      dir: h.dir,
      config: AuthConfigSchema.parse({}),
      kdf: { n: 1 << 15, r: 1, p: 1, keyLength: 64 },
    });
    try {
      ok((await service.login({ passphrase: GOOD, device: null, client: CLIENT })).ok);
      const stored = JSON.parse(await Deno.readTextFile(`${h.dir}/${AUTH_FILES.passphrase}`));
      deepEqual(stored.params, { n: 1 << 15, r: 1, p: 1, keyLength: 64 });
      equal(stored.createdAt, legacy.createdAt);
      ok(typeof stored.upgradedAt === "string");
      ok((await service.login({ passphrase: GOOD, device: null, client: CLIENT })).ok);
    } finally {
      service.close();
    }
  } finally {
    await h.cleanup();
  }
});

const brokenRecords = [
  { name: "not JSON", text: "{" },
  { name: "a record with an unknown algorithm", text: '{"version":1,"algorithm":"plain"}' },
];
for (const c of brokenRecords) {
  Deno.test(`AuthService.open() refuses ${c.name} instead of falling back to setup`, async () => {
    const h = await harness();
    try {
      await Deno.writeTextFile(`${h.dir}/${AUTH_FILES.passphrase}`, c.text);
      await rejects(h.open(), (err: unknown) => {
        ok(err instanceof AuthError);
        equal(err.code, "AUTH_STATE_INVALID");
        return true;
      });
      await rejects(Deno.stat(`${h.dir}/${AUTH_FILES.setupCode}`), Deno.errors.NotFound);
    } finally {
      await h.cleanup();
    }
  });
}

Deno.test("initialPassphraseFile is hashed at the first start and then deleted", async () => {
  const h = await harness();
  try {
    await Deno.writeTextFile(`${h.dir}/first`, `${GOOD}\n`);
    const service = await h.open({ config: { initialPassphraseFile: "auth/first" } });
    equal(service.isConfigured, true);
    await rejects(Deno.stat(`${h.dir}/first`), Deno.errors.NotFound);
    await rejects(Deno.stat(`${h.dir}/${AUTH_FILES.setupCode}`), Deno.errors.NotFound);
    ok((await service.login({ passphrase: GOOD, device: null, client: CLIENT })).ok);
  } finally {
    await h.cleanup();
  }
});

const badInitialFiles = [
  { name: "a weak passphrase", file: "first", text: "short", reason: /at least 15/ },
  { name: "the auth control's own file", file: "cli-token", text: GOOD, reason: /own file/ },
];
for (const c of badInitialFiles) {
  Deno.test(`initialPassphraseFile with ${c.name} stops the start (INVALID_CONFIG)`, async () => {
    const h = await harness();
    try {
      await Deno.writeTextFile(`${h.dir}/${c.file}`, c.text);
      await rejects(
        h.open({ config: { initialPassphraseFile: `auth/${c.file}` } }),
        (err: unknown) => {
          ok(err instanceof AuthError);
          equal(err.code, "INVALID_CONFIG");
          match(err.message, c.reason);
          ok(!err.message.includes(GOOD));
          return true;
        },
      );
    } finally {
      await h.cleanup();
    }
  });
}
