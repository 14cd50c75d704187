/**
 * The trusted registry on the real path: models promoted through the quarantine, then
 * loaded (`registry-resolve`), re-verified, tampered with, revoked, exported as a signed
 * manifest, and re-verified by the registry's own timer.
 */
import assert, { deepEqual, equal, match, notEqual, ok, rejects } from "node:assert/strict";
import { RpcError } from "../runtime/kit/errors.ts";
import { auditQueryApi } from "../workers/audit/api.ts";
import { quarantineApi } from "../workers/quarantine/api.ts";
import { registryApi, registryResolveApi } from "../workers/registry/api.ts";
import { flipByte, promoteUpload } from "./_registry.ts";
import { eventually } from "./_system.ts";
import { safetensorsFile, settle, startPipeline, upload } from "./quarantine/_system.ts";

function rpcCode(error: unknown): string {
  assert(error instanceof RpcError, String(error));
  return error.code;
}

Deno.test("resolve re-hashes before every load and refuses a model tampered with after promotion", async () => {
  const sys = await startPipeline();
  try {
    const bytes = safetensorsFile({ "model.w": [4096] });
    const id = await promoteUpload(sys, "resolve-me.safetensors", bytes);
    const resolver = sys.supervisor.client(registryResolveApi);
    const first = await resolver.call("resolve", { id });
    deepEqual(await Deno.readFile(first.path), bytes);
    equal(first.format, "safetensors");

    await flipByte(first.path, bytes.length - 100);
    const error = await resolver.call("resolve", { id }).then(() => null, (e: unknown) => e);
    equal(rpcCode(error), "INTEGRITY_MISMATCH");

    // The tamper response: revoked with the reason, blob moved aside as evidence, recorded.
    const registry = sys.supervisor.client(registryApi);
    const model = await registry.call("get", { id });
    ok(model.revokedAt !== null);
    match(model.revokedReason ?? "", /^tampered: /);
    deepEqual((await registry.call("list", {})).models, []);
    await rejects(Deno.stat(first.path), Deno.errors.NotFound);
    const evidence = [...Deno.readDirSync(`${sys.home}/registry/tampered`)];
    equal(evidence.length, 1);
    const audit = await sys.supervisor.client(auditQueryApi).call("query", {
      type: "registry.tampered",
    });
    equal(audit.entries[0]?.subject, id);
    equal(audit.entries[0]?.evidence.severity, "critical");
    equal(
      rpcCode(await resolver.call("resolve", { id }).then(() => null, (e: unknown) => e)),
      "MODEL_REVOKED",
    );

    // Revocation is by content: the same (original) bytes can never be promoted again.
    const q = sys.supervisor.client(quarantineApi);
    const again = await settle(q, await upload(q, "resolve-me-again.safetensors", bytes));
    equal(again.state, "rejected");
    equal(again.error?.code, "REVOKED_CONTENT");
  } finally {
    await sys.stop();
  }
});

Deno.test("verify reports an intact model as verified and a missing blob as tampered", async () => {
  const sys = await startPipeline();
  try {
    const id = await promoteUpload(sys, "verify-me.safetensors", safetensorsFile({ "v": [512] }));
    const registry = sys.supervisor.client(registryApi);
    const ok1 = await registry.call("verify", { id });
    equal(ok1.status, "verified");
    deepEqual(ok1.actual, ok1.expected);
    const model = await registry.call("get", { id });
    await Deno.remove(`${sys.home}/registry/models/${model.sha256}.safetensors`);
    const gone = await registry.call("verify", { id });
    equal(gone.status, "tampered");
    match(gone.error ?? "", /missing/);
  } finally {
    await sys.stop();
  }
});

Deno.test("the registry's timer re-verifies every model and revokes a tampered one on its own", async () => {
  const sys = await startPipeline({ sections: { registry: { firstVerifyDelayMs: 1_500 } } });
  try {
    const intact = await promoteUpload(sys, "intact.safetensors", safetensorsFile({ "a": [256] }));
    const victim = await promoteUpload(sys, "victim.safetensors", safetensorsFile({ "b": [256] }));
    const registry = sys.supervisor.client(registryApi);
    const model = await registry.call("get", { id: victim });
    await flipByte(`${sys.home}/registry/models/${model.sha256}.safetensors`, 200);
    // Under load the first pass may already have run before both promotions finished; a
    // restarted registry schedules a fresh first pass, which must then find the tamper.
    sys.supervisor.kill("registry");
    await eventually(() => sys.supervisor.isReady, { timeoutMs: 15_000, what: "registry restart" });
    await eventually(async () => (await registry.call("get", { id: victim })).revokedAt !== null, {
      timeoutMs: 15_000,
      what: "the periodic re-verification",
    });
    // The pass reports its totals once it has checked every model.
    await eventually(async () => {
      const { events } = await sys.supervisor.events.since(-1, { waitMs: 0, limit: 1000 });
      return events.some((e) =>
        e.type === "registry.verified_all" && e.data.checked === 2 && e.data.failed === 1
      );
    }, { timeoutMs: 15_000, what: "the pass's totals" });
    equal((await registry.call("get", { id: intact })).revokedAt, null);
    notEqual((await registry.call("get", { id: intact })).lastVerifiedAt, null);
  } finally {
    await sys.stop();
  }
});

Deno.test("revoking a model removes it from loading and from the signed manifest", async () => {
  const sys = await startPipeline();
  try {
    const keep = await promoteUpload(sys, "keep.safetensors", safetensorsFile({ "k": [128] }));
    const drop = await promoteUpload(sys, "drop.safetensors", safetensorsFile({ "d": [128] }));
    const registry = sys.supervisor.client(registryApi);
    const revoked = await registry.call("revoke", { id: drop, reason: "vendor advisory 2026-11" });
    equal(revoked.revokedReason, "vendor advisory 2026-11");
    deepEqual((await registry.call("list", {})).models.map((m) => m.id), [keep]);
    deepEqual(
      (await registry.call("list", { includeRevoked: true })).models.map((m) => m.id).sort(),
      [keep, drop].sort(),
    );
    const resolver = sys.supervisor.client(registryResolveApi);
    equal(
      rpcCode(await resolver.call("resolve", { id: drop }).then(() => null, (e: unknown) => e)),
      "MODEL_REVOKED",
    );
    equal(
      rpcCode(
        await registry.call("revoke", { id: drop, reason: "again" }).then(
          () => null,
          (e: unknown) => e,
        ),
      ),
      "MODEL_REVOKED",
    );
    equal(
      rpcCode(
        await registry.call("get", { id: "m000000000000000000000000" }).then(
          () => null,
          (e: unknown) => e,
        ),
      ),
      "MODEL_NOT_FOUND",
    );
    const signed = await registry.call("exportManifest", {});
    const ids = JSON.parse(signed.manifest).models.map((m: { id: string }) => m.id);
    deepEqual(ids, [keep]);
    const audit = await sys.supervisor.client(auditQueryApi).call("query", {
      type: "registry.revoked",
    });
    equal(audit.entries[0]?.subject, drop);
  } finally {
    await sys.stop();
  }
});

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

async function verifies(
  signed: { manifest: string; signature: string; publicKey: string },
): Promise<boolean> {
  const key = await crypto.subtle.importKey(
    "raw",
    fromBase64(signed.publicKey),
    { name: "Ed25519" },
    false,
    ["verify"],
  );
  return crypto.subtle.verify(
    { name: "Ed25519" },
    key,
    fromBase64(signed.signature),
    new TextEncoder().encode(signed.manifest),
  );
}

Deno.test("the manifest export is signed with a persistent Ed25519 key and detects any change", async () => {
  const home = await Deno.makeTempDir({ prefix: "secai-registry-" });
  let sys = await startPipeline({ home, keepHome: true });
  try {
    const id = await promoteUpload(
      sys,
      "signed-manifest.safetensors",
      safetensorsFile({ "s": [64] }),
    );
    const signed = await sys.supervisor.client(registryApi).call("exportManifest", {});
    ok(await verifies(signed));
    const manifest = JSON.parse(signed.manifest);
    equal(manifest.version, 1);
    equal(manifest.keyId, signed.keyId);
    equal(manifest.models[0].id, id);
    const forged = signed.manifest.replace(manifest.models[0].sha256, "0".repeat(64));
    equal(await verifies({ ...signed, manifest: forged }), false);
    // The same manifest is on disk, with its detached signature, for tools outside.
    const onDisk = await Deno.readTextFile(`${home}/registry/manifest.json`);
    const sig = JSON.parse(await Deno.readTextFile(`${home}/registry/manifest.json.sig`));
    ok(await verifies({ manifest: onDisk, signature: sig.signature, publicKey: sig.publicKey }));
    equal(
      ((await Deno.stat(`${home}/registry/keys/manifest-ed25519.pkcs8`)).mode ?? 0) & 0o777,
      0o600,
    );

    await sys.stop();
    sys = await startPipeline({ home, keepHome: true });
    const again = await sys.supervisor.client(registryApi).call("exportManifest", {});
    equal(again.keyId, signed.keyId);
    equal(again.publicKey, signed.publicKey);
    deepEqual(JSON.parse(again.manifest).models.map((m: { id: string }) => m.id), [id]);
  } finally {
    await sys.stop();
    await Deno.remove(home, { recursive: true });
  }
});
