/**
 * Tensor manifests and structural fingerprints (spec 13 §6 `gguf_guard_manifest` /
 * `gguf_guard_fingerprint`, §7, weakness 2): derived by the sandboxed `tensor_manifest` job
 * from the strict GGUF/safetensors readers, made inside the promotion transaction, stored
 * with the artifact, signed in the manifest export, and used on every integrity pass to name
 * the tensors of a tampered blob; `verifyManifest` derives the manifest again and compares
 * it tensor by tensor. Also: a schema-1 registry database is migrated at start.
 */
import assert, { deepEqual, equal, match, notEqual, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { digestFile } from "../runtime/kit/digest.ts";
import { JobRunner } from "../runtime/sandbox/mod.ts";
import { auditQueryApi } from "../workers/audit/api.ts";
import { deriveTensorFacts, type TensorFacts } from "../workers/quarantine/jobs/tensor_manifest.ts";
import { FormatError } from "../workers/quarantine/scanners/errors.ts";
import { type Model, registryApi } from "../workers/registry/api.ts";
import { RegistryError } from "../workers/registry/errors.ts";
import { fingerprintOf, manifestFromFacts } from "../workers/registry/tensor_manifest.ts";
import { setUpSession } from "./_auth.ts";
import { withFiles } from "./_files.ts";
import { flipByte, promoteUpload } from "./_registry.ts";
import { PROJECT_ROOT } from "./_system.ts";
import { tinyGguf } from "./fixtures/llm/tiny_gguf.ts";
import { promote as promoteGguf, startInferenceSystem, tinyModel } from "./inference/_system.ts";
import { llamaKv, llamaTensors } from "./quarantine/_corpus.ts";
import { type PipelineSystem, safetensorsFile, startPipeline } from "./quarantine/_system.ts";
import { f32Weights, ggufString, le, writeGguf } from "./quarantine/_writers.ts";

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function facts(bytes: Uint8Array, format = "gguf"): Promise<TensorFacts> {
  return withFiles({ model: bytes }, (dir) => deriveTensorFacts(`${dir}/model`, format));
}

async function fingerprint(bytes: Uint8Array): Promise<string> {
  const f = await facts(bytes);
  return manifestFromFacts(f, { format: "gguf", sha256: sha256(bytes), size: bytes.length })
    .fingerprint;
}

// ---- the job's facts and the fingerprint (in process) -----------------------------------

Deno.test("deriveTensorFacts() lists every GGUF tensor in file order with the SHA-256 of its bytes", async () => {
  const bytes = tinyGguf({ layers: 2, hidden: 64 });
  const f = await facts(bytes);
  equal(f.sha256, sha256(bytes));
  equal(f.size, bytes.length);
  equal(f.tensors.length, 2 * 9 + 3);
  equal(f.tensors[0]?.name, "token_embd.weight");
  for (const t of f.tensors) {
    equal(t.sha256, sha256(bytes.subarray(t.offset, t.offset + t.size)), t.name);
  }
  equal(f.header.sha256, sha256(bytes.subarray(0, f.header.size)));
  deepEqual(f.structure, {
    version: 3,
    alignment: 32,
    architecture: "llama",
    tensorCount: 21,
    tokenizerModel: "llama",
    contextLength: 512,
    embeddingLength: 64,
    blockCount: 2,
    feedForwardLength: 128,
    headCount: 4,
    headCountKv: 4,
    expertCount: null,
    expertUsedCount: null,
    vocabSize: 300,
  });
});

/** A one-tensor GGUF whose tensor has `dims` and always the same 256 F32 values. */
function oneTensor(dims: number[], name = "blk.0.attn_q.weight"): Uint8Array {
  return writeGguf({
    kv: [["general.architecture", [8, "llama"]], ["llama.block_count", [4, 1]]],
    tensors: [{ name, dims, type: 0, data: f32Weights(256, 3) }],
  });
}

const sameLayout: { name: string; other: () => Uint8Array }[] = [
  { name: "other weights (another seed)", other: () => tinyGguf({ seed: 2 }) },
  { name: "another general.name", other: () => tinyGguf({ name: "renamed" }) },
  { name: "a chat template added", other: () => tinyModel() },
];
for (const c of sameLayout) {
  Deno.test(`the fingerprint stays the same for the same weights layout with ${c.name}`, async () => {
    const base = tinyGguf({ seed: 1 });
    const other = c.other();
    notEqual(sha256(other), sha256(base));
    equal(await fingerprint(other), await fingerprint(base));
  });
}

const otherLayout: { name: string; base: () => Uint8Array; other: () => Uint8Array }[] = [
  {
    name: "a tensor's dims change (same bytes, [64, 4] → [32, 8])",
    base: () => oneTensor([64, 4]),
    other: () => oneTensor([32, 8]),
  },
  {
    name: "a tensor is renamed",
    base: () => oneTensor([64, 4]),
    other: () => oneTensor([64, 4], "blk.0.attn_k.weight"),
  },
  {
    name: "the feed-forward width changes",
    base: () => tinyGguf(),
    other: () => tinyGguf({ feedForward: 192 }),
  },
  { name: "a layer is added", base: () => tinyGguf(), other: () => tinyGguf({ layers: 3 }) },
  {
    name: "the tensors are F16 instead of F32",
    base: () => tinyGguf(),
    other: () => tinyGguf({ isF16: true }),
  },
  {
    name: "the context length in the metadata changes",
    base: () => tinyGguf(),
    other: () => tinyGguf({ contextLength: 4096 }),
  },
];
for (const c of otherLayout) {
  Deno.test(`the fingerprint changes when ${c.name}`, async () => {
    notEqual(await fingerprint(c.other()), await fingerprint(c.base()));
  });
}

Deno.test("the fingerprint is the documented SHA-256 over format, sorted structure and tensor list", async () => {
  const bytes = oneTensor([64, 4]);
  const f = await facts(bytes);
  const canonical = JSON.stringify([
    "gguf",
    Object.keys(f.structure).sort().map((k) => [k, f.structure[k]]),
    [["blk.0.attn_q.weight", "F32", [64, 4]]],
  ]);
  equal(
    fingerprintOf(f),
    sha256(new TextEncoder().encode(`SecAI-Tensor-Fingerprint-v1\0${canonical}`)),
  );
});

const malformed: { name: string; bytes: () => Uint8Array; code: string; message: RegExp }[] = [
  {
    name: "a wrong magic",
    bytes: () => new TextEncoder().encode("GGUX" + "\0".repeat(60)),
    code: "MALFORMED",
    message: /magic is "GGUX"/,
  },
  {
    name: "a file cut inside its key/values",
    bytes: () => oneTensor([64, 4]).subarray(0, 90),
    code: "MALFORMED",
    message: /key at offset 69 runs past the end of the file/,
  },
  {
    name: "a tensor that runs past the end of the file",
    bytes: () => oneTensor([64, 4]).subarray(0, oneTensor([64, 4]).length - 64),
    code: "MALFORMED",
    message: /runs past the end of the file/,
  },
  {
    name: "a tensor of an unknown ggml type",
    bytes: () =>
      writeGguf({
        kv: [["general.architecture", [8, "llama"]]],
        tensors: [{ name: "t", dims: [4], type: 99, data: new Uint8Array(16) }],
      }),
    code: "MALFORMED",
    message: /unknown type 99/,
  },
  {
    name: "a string length far past the file",
    bytes: () =>
      writeGguf({
        kv: [],
        tensors: [],
        rawKv: {
          bytes: new Uint8Array([...ggufString("k"), ...le(8, 4), ...le(1 << 30, 8)]),
          count: 1,
        },
      }),
    code: "LIMIT_EXCEEDED",
    message: /limit/,
  },
];
for (const c of malformed) {
  Deno.test(`deriveTensorFacts() refuses a GGUF with ${c.name} with a FormatError naming it`, async () => {
    await rejects(facts(c.bytes()), (e: unknown) => {
      assert(e instanceof FormatError, String(e));
      equal(e.code, c.code, e.message);
      match(e.message, /^Invalid GGUF: /);
      match(e.message, c.message);
      return true;
    });
  });
}

Deno.test("the sandboxed tensor_manifest job answers a malformed GGUF with a clear error, not a crash", async () => {
  const home = await Deno.makeTempDir({ prefix: "secai-tensor-job-" });
  try {
    await Deno.writeFile(`${home}/bad.gguf`, oneTensor([64, 4]).subarray(0, 200));
    await Deno.writeFile(`${home}/good.gguf`, oneTensor([64, 4]));
    const runner = new JobRunner({
      home,
      codeRoots: [PROJECT_ROOT],
      configPath: `${PROJECT_ROOT}/deno.json`,
    });
    const run = (path: string) =>
      runner.run({
        module: `${PROJECT_ROOT}/workers/quarantine/jobs/tensor_manifest.ts`,
        input: { kind: "file", path },
        args: ["gguf"],
        limits: {},
      });
    const bad = await run("bad.gguf");
    equal(bad.status, "failed", bad.stderrTail);
    equal(bad.exitCode, 1);
    equal(bad.error?.code, "MALFORMED");
    match(bad.error?.message ?? "", /^Invalid GGUF: tensor "blk\.0\.attn_q\.weight" .* runs past/);
    // The same job on the intact file: facts the registry accepts.
    const good = await run("good.gguf");
    equal(good.status, "ok", good.stderrTail);
    const bytes = oneTensor([64, 4]);
    const manifest = manifestFromFacts(good.result, {
      format: "gguf",
      sha256: sha256(bytes),
      size: bytes.length,
    });
    deepEqual(manifest.tensors.map((t) => t.name), ["blk.0.attn_q.weight"]);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

// ---- the registry's check of the job's result -------------------------------------------

const BASE_BYTES = writeGguf({ kv: llamaKv(), tensors: llamaTensors() });
const refusedFacts: {
  name: string;
  change: (f: TensorFacts) => unknown;
  message: RegExp;
}[] = [
  {
    name: "facts of other content",
    change: (f) => ({ ...f, sha256: "0".repeat(64) }),
    message: /describes other content/,
  },
  {
    name: "a tensor named twice",
    change: (f) => ({ ...f, tensors: [...f.tensors, { ...f.tensors[0], offset: f.size }] }),
    message: /duplicate name/,
  },
  {
    name: "overlapping tensors",
    change: (f) => ({
      ...f,
      tensors: f.tensors.map((t, i) =>
        i === 1 ? { ...t, offset: (f.tensors[0]?.offset ?? 0) + 4 } : t
      ),
    }),
    message: /overlap/,
  },
  {
    name: "a tensor past the end of the file",
    change: (f) => ({
      ...f,
      tensors: f.tensors.map((t, i) => i === 0 ? { ...t, offset: f.size } : t),
    }),
    message: /runs past the file/,
  },
  { name: "an unknown field", change: (f) => ({ ...f, extra: 1 }), message: /extra|Unrecognized/ },
  {
    name: "a type that is not a ggml/dtype name",
    change: (f) => ({ ...f, tensors: f.tensors.map((t) => ({ ...t, type: "F32; DROP" })) }),
    message: /type/,
  },
  { name: "no result at all", change: () => null, message: /invalid result/ },
];
for (const c of refusedFacts) {
  Deno.test(`manifestFromFacts() refuses ${c.name} with MANIFEST_FAILED`, async () => {
    const f = await facts(BASE_BYTES);
    const expected = { format: "gguf", sha256: sha256(BASE_BYTES), size: BASE_BYTES.length };
    ok(manifestFromFacts(f, expected).fingerprint.length === 64);
    assert.throws(() => manifestFromFacts(c.change(f), expected), (e: unknown) => {
      assert(e instanceof RegistryError, String(e));
      equal(e.code, "MANIFEST_FAILED");
      match(e.message, c.message);
      return true;
    });
  });
}

// ---- promotion, integrity passes and verifyManifest on the real path (safetensors) ------

async function promoteSafetensors(
  sys: PipelineSystem,
  filename: string,
  bytes: Uint8Array,
): Promise<Model> {
  const id = await promoteUpload(sys, filename, bytes);
  return await sys.supervisor.client(registryApi).call("get", { id });
}

Deno.test("promotion records a safetensors manifest and verify names exactly the tensor whose byte was flipped", async () => {
  const sys = await startPipeline();
  try {
    const bytes = safetensorsFile({
      "model.a.weight": [256],
      "model.b.weight": [256],
      "model.c.weight": [256],
    });
    const model = await promoteSafetensors(sys, "three.safetensors", bytes);
    const ref = model.tensorManifest;
    assert(ref !== null && ref.status === "recorded" && ref.path !== null, JSON.stringify(ref));
    equal(ref.tensors, 3);
    const file = `${sys.home}/registry/${ref.path}`;
    equal(((await Deno.stat(file)).mode ?? 0) & 0o777, 0o444);
    const stored = JSON.parse(await Deno.readTextFile(file));
    equal(sha256(await Deno.readFile(file)), ref.sha256);
    equal(stored.fingerprint, ref.fingerprint);
    equal(stored.sha256, model.sha256);
    deepEqual(stored.tensors.map((t: { name: string }) => t.name), [
      "model.a.weight",
      "model.b.weight",
      "model.c.weight",
    ]);

    // The signed export carries the fingerprint and the manifest file's digest.
    const registry = sys.supervisor.client(registryApi);
    const signed = JSON.parse((await registry.call("exportManifest", {})).manifest);
    deepEqual(signed.models[0].tensorManifest, {
      status: "recorded",
      fingerprint: ref.fingerprint,
      sha256: ref.sha256,
      tensors: 3,
    });
    // An intact model: the file hash vouches for every tensor, the stored manifest is unaltered.
    const intact = await registry.call("verify", { id: model.id });
    equal(intact.status, "verified");
    equal(intact.tensors.status, "intact");
    const check = await registry.call("verifyManifest", { id: model.id });
    equal(check.status, "verified", JSON.stringify(check));
    equal(check.fingerprint.actual, ref.fingerprint);
    equal(check.tensors, 3);

    const b = stored.tensors[1] as { offset: number; size: number };
    await flipByte(`${sys.home}/registry/models/${model.sha256}.safetensors`, b.offset + 17);
    const result = await registry.call("verify", { id: model.id });
    equal(result.status, "tampered");
    equal(result.tensors.status, "changed");
    deepEqual(result.tensors.changed, ["model.b.weight"]);
    equal(result.tensors.changedCount, 1);
    equal(result.tensors.headerChanged, false);
    equal(result.tensors.otherBytesChanged, false);
    match(result.error ?? "", /changed tensor: "model\.b\.weight"/);
    const revoked = await registry.call("get", { id: model.id });
    match(revoked.revokedReason ?? "", /^tampered: .*"model\.b\.weight"/);
    const audit = await sys.supervisor.client(auditQueryApi).call("query", {
      type: "registry.tampered",
    });
    deepEqual(audit.entries[0]?.evidence.changedTensors, ["model.b.weight"]);
  } finally {
    await sys.stop();
  }
});

Deno.test("an edited stored manifest is reported by verify and verifyManifest while the model stays served", async () => {
  const sys = await startPipeline();
  try {
    const model = await promoteSafetensors(
      sys,
      "edited.safetensors",
      safetensorsFile({ "w": [128] }),
    );
    const ref = model.tensorManifest;
    assert(ref !== null && ref.path !== null);
    const file = `${sys.home}/registry/${ref.path}`;
    const stored = JSON.parse(await Deno.readTextFile(file));
    stored.tensors[0].sha256 = "0".repeat(64); // hide a future edit of the tensor
    await Deno.chmod(file, 0o644);
    await Deno.writeTextFile(file, JSON.stringify(stored));

    const registry = sys.supervisor.client(registryApi);
    const result = await registry.call("verify", { id: model.id });
    equal(result.status, "verified");
    equal(result.tensors.status, "manifest_altered");
    match(result.tensors.reason ?? "", /has SHA-256 [0-9a-f]{64}, recorded [0-9a-f]{64}/);
    const check = await registry.call("verifyManifest", { id: model.id });
    equal(check.status, "mismatch");
    match(check.reason ?? "", /recorded/);
    equal((await registry.call("get", { id: model.id })).revokedAt, null);
    const audit = await sys.supervisor.client(auditQueryApi).call("query", {
      type: "registry.manifest_altered",
    });
    equal(audit.entries[0]?.subject, model.id);

    // Deleted: the same answer, naming what is missing.
    await Deno.remove(file);
    match((await registry.call("verify", { id: model.id })).tensors.reason ?? "", /is missing/);
  } finally {
    await sys.stop();
  }
});

Deno.test("a schema-1 registry database is migrated at start; its model has no manifest and verify-manifest says skipped", async () => {
  const bytes = safetensorsFile({ "legacy.weight": [64] });
  const sha = sha256(bytes);
  const id = `m${sha.slice(0, 24)}`;
  const sys = await startPipeline({
    async prepare(home) {
      await Deno.mkdir(`${home}/registry/models`, { recursive: true, mode: 0o700 });
      const blob = `${home}/registry/models/${sha}.safetensors`;
      await Deno.writeFile(blob, bytes, { mode: 0o444 });
      const d = await digestFile(blob);
      const db = new DatabaseSync(`${home}/registry/registry.db`);
      try {
        db.exec(`
          CREATE TABLE models (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, filename TEXT NOT NULL,
            format TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL UNIQUE,
            fsverity TEXT NOT NULL, source TEXT NOT NULL, provenance_json TEXT NOT NULL,
            signature_json TEXT, scan_json TEXT NOT NULL, smoke_json TEXT NOT NULL,
            decision_json TEXT NOT NULL, job_id TEXT NOT NULL, promoted_at TEXT NOT NULL,
            promoted_by TEXT NOT NULL, last_verified_at TEXT, revoked_at TEXT,
            revoked_reason TEXT, blob TEXT NOT NULL
          );
          PRAGMA user_version = 1;
        `);
        db.prepare(
          "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, NULL, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?)",
        ).run(
          id,
          "legacy",
          "legacy.safetensors",
          "safetensors",
          bytes.length,
          sha,
          d.fsverity,
          JSON.stringify({ status: "none", signer: null, pinned: false }),
          JSON.stringify({
            verdict: "clean",
            format: "safetensors",
            bytesScanned: bytes.length,
            findingsTotal: 0,
            bySeverity: { info: 0, low: 0, medium: 0, high: 0, critical: 0 },
            findings: [],
          }),
          JSON.stringify({ status: "skipped", score: null, critical: null, reason: "" }),
          JSON.stringify({
            decision: "allow",
            rule: "default",
            reasons: [],
            policy_version: "1",
            approvedBy: null,
          }),
          "q0123456789abcdef01234567",
          "2026-11-01T00:00:00.000Z",
          "quarantine",
          `registry/models/${sha}.safetensors`,
        );
      } finally {
        db.close();
      }
    },
  });
  try {
    const registry = sys.supervisor.client(registryApi);
    const [legacy] = (await registry.call("list", {})).models;
    equal(legacy?.id, id);
    equal(legacy?.tensorManifest, null);
    const result = await registry.call("verify", { id });
    equal(result.status, "verified");
    equal(result.tensors.status, "skipped");
    const check = await registry.call("verifyManifest", { id });
    equal(check.status, "skipped");
    match(check.reason ?? "", /promoted before manifests were kept/);
    // New promotions into the migrated database record their manifest.
    const fresh = await promoteSafetensors(
      sys,
      "fresh.safetensors",
      safetensorsFile({ "f": [64] }),
    );
    equal(fresh.tensorManifest?.status, "recorded");
  } finally {
    await sys.stop();
  }
});

// ---- GGUF through the whole system: promotion with the smoke test, HTTP, tampering ------

Deno.test({
  name:
    "promoted GGUF models keep manifest and fingerprint; verify names the flipped tensor, a header edit is located",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const sys = await startInferenceSystem();
    try {
      const registry = sys.supervisor.client(registryApi);
      const firstId = await promoteGguf(sys, "layout-a.gguf", tinyModel({ seed: 1 }));
      const secondId = await promoteGguf(sys, "layout-b.gguf", tinyModel({ seed: 2 }));
      const first = await registry.call("get", { id: firstId });
      const second = await registry.call("get", { id: secondId });
      equal(first.tensorManifest?.status, "recorded");
      equal(first.tensorManifest?.tensors, 21);
      // Same layout, other weights: one fingerprint, two contents.
      equal(second.tensorManifest?.fingerprint, first.tensorManifest?.fingerprint);
      notEqual(second.sha256, first.sha256);
      const signed = JSON.parse((await registry.call("exportManifest", {})).manifest);
      deepEqual(
        signed.models.map((m: Model) => m.tensorManifest?.fingerprint),
        [first.tensorManifest?.fingerprint, first.tensorManifest?.fingerprint],
      );

      // Over HTTP, as the dashboard asks: verify-manifest, then verify after a flipped byte.
      const session = await setUpSession(sys.base, sys.home);
      const post = async (path: string) => {
        const res = await fetch(`${sys.base}${path}`, {
          method: "POST",
          headers: session.post,
          body: "{}",
        });
        return { status: res.status, body: await res.json() };
      };
      const check = await post(`/api/v1/models/${firstId}/verify-manifest`);
      equal(check.status, 200, JSON.stringify(check.body));
      equal(check.body.status, "verified");
      equal(check.body.tensors, 21);
      const listed = await fetch(`${sys.base}/api/v1/models`, {
        headers: { cookie: session.cookie },
      });
      const models = (await listed.json()).models as Model[];
      equal(
        models.find((m) => m.id === firstId)?.tensorManifest?.fingerprint,
        first.tensorManifest?.fingerprint,
      );

      const stored = JSON.parse(
        await Deno.readTextFile(`${sys.home}/registry/${first.tensorManifest?.path}`),
      );
      const target = stored.tensors.find((t: { name: string }) =>
        t.name === "blk.1.ffn_down.weight"
      );
      await flipByte(
        `${sys.home}/registry/models/${first.sha256}.gguf`,
        target.offset + target.size - 1,
      );
      const tampered = await post(`/api/v1/models/${firstId}/verify`);
      equal(tampered.status, 200, JSON.stringify(tampered.body));
      equal(tampered.body.status, "tampered");
      deepEqual(tampered.body.tensors.changed, ["blk.1.ffn_down.weight"]);
      equal(tampered.body.tensors.headerChanged, false);

      // A metadata edit (inside general.name) changes the header, no tensor.
      const secondBytes = tinyModel({ seed: 2 });
      const at = secondBytes.findIndex((_, i) =>
        new TextDecoder().decode(secondBytes.subarray(i, i + 17)) === "tiny-random-llama"
      );
      ok(at > 0);
      await flipByte(`${sys.home}/registry/models/${second.sha256}.gguf`, at + 3);
      const headerEdit = await registry.call("verifyManifest", { id: secondId });
      equal(headerEdit.status, "tampered");
      deepEqual(headerEdit.changed, []);
      equal(headerEdit.headerChanged, true);
      match(headerEdit.reason ?? "", /the header \(metadata or tensor infos\) changed/);
    } finally {
      await sys.stop();
    }
  },
});
