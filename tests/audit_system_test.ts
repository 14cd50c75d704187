/**
 * The audit control in a real system: lifecycle entries from the supervisor, signed heads,
 * proofs, verification and export over its RPC contract, and the HTTP routes answering from
 * it; then the `secai audit` commands offline on the same state dir.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { auditAppendApi, auditQueryApi } from "../workers/audit/api.ts";
import { checkBundle } from "../workers/audit/offline/bundle.ts";
import { readEntries } from "../workers/audit/offline/read.ts";
import { verifyLog } from "../workers/audit/offline/verify.ts";
import { isHeadSigned, parsePublicKey, readPublicKey } from "../workers/audit/offline/keys.ts";
import {
  fromHex,
  leafHash,
  verifyConsistency,
  verifyInclusion,
} from "../workers/audit/offline/merkle.ts";
import { parseJsonBody, parseQuery } from "../workers/gateway/http.ts";
import type { GatewayState } from "../workers/gateway/state.ts";
import type { Handlers, RouteContext } from "../workers/gateway/routing.ts";
import * as auditRoute from "../routes/api/v1/audit.ts";
import * as headRoute from "../routes/api/v1/audit/head.ts";
import * as proofRoute from "../routes/api/v1/audit/proof/[seq].ts";
import * as verifyRoute from "../routes/api/v1/audit/verify.ts";
import * as exportRoute from "../routes/api/v1/audit/export.ts";
import * as consistencyRoute from "../routes/api/v1/audit/consistency.ts";
import { auditCommand } from "../runtime/cli_audit.ts";
import { UsageError } from "../runtime/cli_args.ts";
import { eventually, startSystem } from "./_system.ts";

/** Calls a route handler with the gateway's own query/body parsing, no middleware. */
async function callRoute(
  handlers: Handlers,
  request: {
    method: "GET" | "POST";
    path: string;
    params?: Record<string, string>;
    body?: unknown;
  },
  state: Partial<GatewayState>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = new URL(`http://127.0.0.1${request.path}`);
  const bytes = new TextEncoder().encode(JSON.stringify(request.body ?? {}));
  const ctx = {
    state: state as GatewayState,
    url,
    params: request.params ?? {},
    requestId: "test",
    signal: new AbortController().signal,
    query: (schema) => parseQuery(url, schema),
    json: (schema) => parseJsonBody(bytes, schema),
  } as Partial<RouteContext> as RouteContext;
  const handler = handlers[request.method];
  ok(handler, `no ${request.method} handler`);
  const res = await handler(new Request(url, { method: request.method }), ctx);
  return { status: res.status, body: await res.json() };
}

Deno.test("the audit control signs lifecycle entries and answers head, proofs, verify, export and the routes", async () => {
  const system = await startSystem();
  try {
    ok(system.isReady);
    const query = system.supervisor.client(auditQueryApi);
    const append = system.supervisor.client(auditAppendApi);
    await eventually(async () =>
      (await query.call("query", { type: "system.ready", limit: 1 })).entries.length === 1
    );
    const seq = (await append.call("append", {
      type: "test.decision",
      actor: "tester",
      subject: "Egress to Example.org:443",
      decision: "deny",
    })).seq;

    const { head, publicKey } = await query.call("head", {});
    ok(head && head.head.size > seq, "the head covers the acknowledged entry");
    const key = parsePublicKey(publicKey, "head");
    ok(isHeadSigned(head, key));

    const proof = await query.call("proof", { seq });
    equal(proof.seq, seq);
    ok(verifyInclusion(
      { index: seq, size: proof.size, hash: leafHash(new TextEncoder().encode(proof.line)) },
      proof.proof.map(fromHex),
      fromHex(proof.head.head.root),
    ));
    equal(JSON.parse(proof.line).control, "supervisor", "control is the caller's identity");
    const consistency = await query.call("consistency", { from: 1 });
    ok(verifyConsistency(
      { from: 1, to: consistency.to },
      { from: fromHex(consistency.fromRoot), to: fromHex(consistency.head.head.root) },
      consistency.proof.map(fromHex),
    ));
    const report = await query.call("verify", {}, { deadlineMs: 60_000 });
    ok(report.isIntact, report.detail);
    const bundle = await query.call("export", { from: 0, to: seq });
    ok(checkBundle(bundle, key).isValid);
    await rejects(query.call("proof", { seq: 10_000_000 }), /not in the signed tree/);

    // The routes, answering from the same control.
    const state: Partial<GatewayState> = {
      queryAudit: (input, options) => query.call("query", input, options),
      auditLog: {
        query: (input, options) => query.call("query", input, options),
        head: (input, options) => query.call("head", input, options),
        proof: (input, options) => query.call("proof", input, options),
        consistency: (input, options) => query.call("consistency", input, options),
        verify: (input, options) => query.call("verify", input, options),
        export: (input, options) => query.call("export", input, options),
      },
    };
    const page = await callRoute(auditRoute.handler, {
      method: "GET",
      path: "/api/v1/audit?decision=deny&q=example.org&limit=5",
    }, state);
    equal(page.status, 200);
    deepEqual((page.body.entries as { seq: number }[]).map((e) => e.seq), [seq]);
    const headAnswer = await callRoute(headRoute.handler, {
      method: "GET",
      path: "/api/v1/audit/head",
    }, state);
    equal(headAnswer.status, 200);
    equal((headAnswer.body.keyId as string).length, 64);
    const proofAnswer = await callRoute(proofRoute.handler, {
      method: "GET",
      path: `/api/v1/audit/proof/${seq}`,
      params: { seq: String(seq) },
    }, state);
    equal(proofAnswer.status, 200);
    equal(proofAnswer.body.seq, seq);
    const missing = await callRoute(proofRoute.handler, {
      method: "GET",
      path: "/api/v1/audit/proof/99999999",
      params: { seq: "99999999" },
    }, state);
    equal(missing.status, 400);
    equal((missing.body.error as { code: string }).code, "AUDIT_RANGE_INVALID");
    const verified = await callRoute(verifyRoute.handler, {
      method: "POST",
      path: "/api/v1/audit/verify",
      body: {},
    }, state);
    equal(verified.status, 200);
    equal(verified.body.isIntact, true);
    const exported = await callRoute(exportRoute.handler, {
      method: "GET",
      path: `/api/v1/audit/export?from=0&to=${seq}`,
    }, state);
    equal(exported.status, 200);
    ok(checkBundle(exported.body, key).isValid);
    const consistent = await callRoute(consistencyRoute.handler, {
      method: "GET",
      path: "/api/v1/audit/consistency?from=2",
    }, state);
    equal(consistent.status, 200);
    await rejects(
      callRoute(auditRoute.handler, { method: "GET", path: "/api/v1/audit?decision=maybe" }, state),
      (err: unknown) => (err as { code?: string }).code === "INVALID_QUERY",
    );
  } finally {
    await system.stop();
  }
});

Deno.test("secai audit verifies, proves and exports a stopped system's log offline, and reports tampering", async () => {
  const system = await startSystem();
  const home = system.home;
  const out: string[] = [];
  const errors: string[] = [];
  const cli = (...argv: string[]) =>
    auditCommand(argv, { write: (t) => out.push(t), writeError: (t) => errors.push(t) });
  try {
    await eventually(async () =>
      (await system.supervisor.client(auditQueryApi).call("query", {
        type: "system.ready",
        limit: 1,
      }))
        .entries.length === 1
    );
    await system.supervisor.stop();
    equal(await cli("verify", "--home", home, "--json"), 0, errors.join("\n"));
    const report = JSON.parse(out.at(-1) as string);
    equal(report.isIntact, true);
    equal(await cli("head", "--home", home), 0);
    ok((out.at(-1) as string).startsWith("Tree size"));
    equal(await cli("pubkey", "--home", home, "--out", `${home}/exported.pub`), 0);
    equal(await cli("proof", "1", "--home", home, "--json"), 0);
    equal(JSON.parse(out.at(-1) as string).seq, 1);
    equal(await cli("consistency", "1", "--home", home), 0);
    equal(await cli("export", "0", "2", "--out", `${home}/bundle.json`, "--home", home), 0);
    equal(await cli("check-bundle", `${home}/bundle.json`, "--pubkey", `${home}/exported.pub`), 0);

    // A third party's copy of the bundle, altered.
    const bundle = JSON.parse(await Deno.readTextFile(`${home}/bundle.json`));
    bundle.entries[1].line = bundle.entries[1].line.replace(
      '"actor":"supervisor"',
      '"actor":"someone"',
    );
    await Deno.writeTextFile(`${home}/bundle.json`, JSON.stringify(bundle));
    equal(
      await cli(
        "check-bundle",
        `${home}/bundle.json`,
        "--pubkey",
        `${home}/exported.pub`,
        "--json",
      ),
      1,
    );
    equal(JSON.parse(out.at(-1) as string).firstBadSeq, 1);

    // Tamper with entry 1 on disk.
    const segment = `${home}/audit/segments/00000000000000000000.jsonl`;
    const lines = (await Deno.readTextFile(segment)).split("\n");
    const entryLines = lines.map((l, i) => [l, i] as const).filter(([l]) =>
      l.startsWith('{"actor"')
    );
    const [line, index] = entryLines[1] as readonly [string, number];
    lines[index] = line.replace('"actor":"supervisor"', '"actor":"supervisoR"');
    await Deno.writeTextFile(segment, lines.join("\n"));
    equal(await cli("verify", "--home", home, "--json", "--pubkey", `${home}/exported.pub`), 1);
    const tampered = JSON.parse(out.at(-1) as string);
    equal(tampered.kind, "modified");
    equal(tampered.firstBadSeq, 1);

    await rejects(cli("proof", "one", "--home", home), UsageError);
    await rejects(cli("check-bundle", `${home}/bundle.json`), UsageError);
    equal(await cli("verify", "--home", `${home}/nowhere`), 1);
    ok(
      (errors.at(-1) as string).includes("does not exist") ||
        (errors.at(-1) as string).includes("No audit log"),
    );
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("secai start records config.loaded with the config file's SHA-256", async () => {
  const home = await Deno.makeTempDir({ prefix: "secai-audit-cli-" });
  const secai = new URL("../secai", import.meta.url).pathname;
  const child = new Deno.Command(secai, {
    args: ["start", "--home", home, "--json"],
    env: { NO_COLOR: "1", SECAI_PORT: "0" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    let text = "";
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    while (!/"SecAI Runtime ready"|started degraded/.test(text)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`secai start ended early: ${text}`);
      text += value;
    }
    reader.releaseLock();
    child.kill("SIGTERM");
    equal((await child.status).code, 0);
    const key = await readPublicKey(`${home}/audit/keys/signing.pub`);
    ok((await verifyLog(`${home}/audit`, { publicKey: key })).isIntact);
    const report = await verifyLog(`${home}/audit`);
    const entries = await readEntries(`${home}/audit`, { from: 0, to: report.entries - 1 });
    const loaded = entries.find((e) => e.entry.type === "config.loaded");
    ok(loaded, entries.map((e) => e.entry.type).join(", "));
    const bytes = await Deno.readFile(`${home}/config.yaml`);
    const digest = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    equal(loaded.entry.evidence.sha256, digest);
    equal(loaded.entry.control, "supervisor");
    ok(entries.some((e) => e.entry.type === "system.stopping"));
  } finally {
    const running = Symbol("running");
    if (await Promise.race([child.status, Promise.resolve(running)]) === running) {
      child.kill("SIGKILL");
    }
    await child.status;
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("the audit control deletes the oldest segments past retainMaxBytes and the log still verifies", async () => {
  const system = await startSystem({
    config: { audit: { segmentMaxBytes: 4096, retainMaxBytes: 16_384 } },
  });
  try {
    ok(system.isReady);
    const append = system.supervisor.client(auditAppendApi);
    const query = system.supervisor.client(auditQueryApi);
    for (let i = 0; i < 200; i++) {
      await append.call("append", {
        type: "test.filler",
        actor: "tester",
        subject: `filler ${i} ${"x".repeat(120)}`,
      });
    }
    await eventually(
      async () =>
        (await query.call("query", { type: "audit.pruned", limit: 1 })).entries.length > 0,
      { what: "an audit.pruned entry" },
    );
    const report = await query.call("verify", {});
    ok(report.isIntact, report.detail);
    ok(report.prunedBefore > 0);
    // The anchor it verified from is on disk (a later run can only move it forward).
    const anchor = JSON.parse(await Deno.readTextFile(`${system.home}/audit/anchor.json`));
    ok(anchor.anchor.size >= report.prunedBefore);
    // A proof into an older head (the one before one more entry) through the contract.
    const { head } = await query.call("head", {});
    const older = head?.head.size ?? 0;
    await append.call("append", { type: "test.filler", actor: "tester", subject: "one more" });
    const proof = await query.call("proof", { seq: older - 1, size: older });
    equal(proof.size, older);
    equal(proof.head.head.root, head?.head.root);
  } finally {
    await system.stop();
  }
});
