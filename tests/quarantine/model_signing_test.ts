/**
 * OpenSSF model signing bundles (`model_signing sign key`): bundles built here the way the
 * reference signer builds them (in-toto statement → DSSE PAE → ECDSA with the curve's hash,
 * key hint = SHA-256 of the SPKI PEM) are verified offline against trusted EC keys; every
 * way a bundle can be wrong fails with its code; and the provenance stage of the real pipeline
 * verifies one (upload and inbox sidecar) and refuses a bundle for other content.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { createHash, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import {
  type ArtifactSignature,
  parseSignatureText,
  quarantineApi,
} from "../../workers/quarantine/api.ts";
import {
  keyHint,
  preAuthEncoding,
  verifyModelSigningBundle,
} from "../../workers/quarantine/stages/model_signing.ts";
import { registryApi } from "../../workers/registry/api.ts";
import { safetensorsFile, settle, startPipeline, upload } from "./_system.ts";
import { secai } from "../_cli.ts";

interface TestKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  pem: string;
  hash: string;
}

function ecKey(curve: "P-256" | "P-384" = "P-256"): TestKey {
  const pair = generateKeyPairSync("ec", { namedCurve: curve });
  return {
    ...pair,
    pem: String(pair.publicKey.export({ type: "spki", format: "pem" })),
    hash: curve === "P-256" ? "sha256" : "sha384",
  };
}

const sha256Hex = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");
const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

interface BundleOptions {
  /** Files as name → SHA-256 hex. */
  files: Record<string, string>;
  predicate?: "v1.0" | "v0.1";
  method?: string;
  /** Overrides the subject digest of a v1.0 statement. */
  subjectDigest?: string;
  hint?: string | null;
  certificate?: boolean;
  /** Changes the payload after signing. */
  tamper?: boolean;
}

/** A bundle as `model_signing sign key` writes it. */
function bundle(key: TestKey, o: BundleOptions): string {
  const entries = Object.entries(o.files);
  const statement = o.predicate === "v0.1"
    ? {
      _type: "https://in-toto.io/Statement/v1",
      subject: entries.map(([name, digest]) => ({ name, digest: { sha256: digest } })),
      predicateType: "https://model_signing/Digests/v0.1",
      predicate: { unused: "Unused, just passed due to API requirements" },
    }
    : {
      _type: "https://in-toto.io/Statement/v1",
      subject: [{
        name: "model",
        digest: {
          sha256: o.subjectDigest ?? createHash("sha256").update(
            Uint8Array.from(
              entries.flatMap(([, d]) => d.match(/../g) ?? []),
              (h) => parseInt(h, 16),
            ),
          ).digest("hex"),
        },
      }],
      predicateType: "https://model_signing/signature/v1.0",
      predicate: {
        serialization: { method: o.method ?? "files", hash_type: "sha256", allow_symlinks: false },
        resources: entries.map(([name, digest]) => ({ name, algorithm: "sha256", digest })),
      },
    };
  const payload = new TextEncoder().encode(JSON.stringify(statement, null, 2));
  const type = "application/vnd.in-toto+json";
  const sig = sign(key.hash, preAuthEncoding(type, payload), key.privateKey);
  const signedPayload = o.tamper ? new TextEncoder().encode(JSON.stringify(statement)) : payload;
  return JSON.stringify({
    mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
    verificationMaterial: o.certificate ? { certificate: { rawBytes: "MIIB" }, tlogEntries: [] } : {
      publicKey: o.hint === null ? {} : { hint: o.hint ?? sha256Hex(key.pem) },
      tlogEntries: [],
    },
    dsseEnvelope: {
      payload: b64(signedPayload),
      payloadType: type,
      signatures: [{ sig: b64(sig), keyid: "" }],
    },
  });
}

const FILE_DIGEST = sha256Hex("the model's bytes");

Deno.test("verifyModelSigningBundle() accepts a v1.0 bundle for the file signed by a trusted key", () => {
  const key = ecKey();
  equal(keyHint(key.publicKey), sha256Hex(key.pem), "the hint is SHA-256 of the SPKI PEM");
  const verdict = verifyModelSigningBundle(bundle(key, { files: { "m.gguf": FILE_DIGEST } }), {
    sha256: FILE_DIGEST,
    keys: [{ id: "other", publicKeyPem: ecKey().pem }, { id: "vendor", publicKeyPem: key.pem }],
  });
  deepEqual(verdict, {
    ok: true,
    signer: "vendor",
    format: "https://model_signing/signature/v1.0",
    signedName: "m.gguf",
  });
  // P-384 signs with SHA-384; the v0.1 format lists files as subjects.
  const p384 = ecKey("P-384");
  const old = verifyModelSigningBundle(
    bundle(p384, { files: { "m.gguf": FILE_DIGEST }, predicate: "v0.1", hint: null }),
    { sha256: FILE_DIGEST, keys: [{ id: "lab", publicKeyPem: p384.pem }] },
  );
  ok(old.ok && old.signer === "lab", JSON.stringify(old));
});

Deno.test("verifyModelSigningBundle() fails each wrong bundle with its code", () => {
  const key = ecKey();
  const stranger = ecKey();
  const keys = [{ id: "vendor", publicKeyPem: key.pem }];
  const files = { "m.gguf": FILE_DIGEST };
  const cases: { name: string; text: string; code: string }[] = [
    {
      name: "another file's digest",
      text: bundle(key, { files: { "m.gguf": sha256Hex("other") } }),
      code: "DIGEST_MISMATCH",
    },
    {
      name: "two files for one artifact",
      text: bundle(key, { files: { ...files, "b.json": sha256Hex("b") } }),
      code: "DIGEST_MISMATCH",
    },
    {
      name: "a stranger's key, named",
      text: bundle(stranger, { files }),
      code: "UNTRUSTED_SIGNER",
    },
    {
      name: "a stranger's key, unnamed",
      text: bundle(stranger, { files, hint: null }),
      code: "BAD_SIGNATURE",
    },
    {
      name: "the trusted key's hint on a stranger's signature",
      text: bundle(stranger, { files, hint: sha256Hex(key.pem) }),
      code: "BAD_SIGNATURE",
    },
    {
      name: "a payload changed after signing",
      text: bundle(key, { files, tamper: true }),
      code: "BAD_SIGNATURE",
    },
    {
      name: "a keyless bundle",
      text: bundle(key, { files, certificate: true }),
      code: "KEYLESS_UNSUPPORTED",
    },
    {
      name: "a subject digest that does not summarise the resources",
      text: bundle(key, { files, subjectDigest: sha256Hex("x") }),
      code: "BUNDLE_INVALID",
    },
    {
      name: "shard serialization",
      text: bundle(key, { files, method: "shards" }),
      code: "BUNDLE_INVALID",
    },
    { name: "not JSON", text: "{nope", code: "BUNDLE_INVALID" },
    {
      name: "a payload that is not valid base64",
      text: bundle(key, { files }).replace(/"payload":"[^"]*"/, '"payload":"a"'),
      code: "BUNDLE_INVALID",
    },
    {
      name: "another media type",
      text: JSON.stringify({ mediaType: "x", verificationMaterial: {} }),
      code: "BUNDLE_INVALID",
    },
  ];
  for (const c of cases) {
    const verdict = verifyModelSigningBundle(c.text, { sha256: FILE_DIGEST, keys });
    equal(verdict.ok, false, c.name);
    equal(!verdict.ok && verdict.code, c.code, c.name);
    ok(!verdict.ok && verdict.message.length > 20, c.name);
  }
});

Deno.test("parseSignatureText() reads our signature form and a model signing bundle", () => {
  const text = bundle(ecKey(), { files: { "m.gguf": FILE_DIGEST } });
  deepEqual(parseSignatureText(text), { version: 1, algorithm: "sigstore-bundle", bundle: text });
  equal(typeof parseSignatureText('{"version":1,"algorithm":"rsa"}'), "string");
  equal(typeof parseSignatureText("not json"), "string");
});

Deno.test("the provenance stage verifies a model signing bundle and refuses one for other bytes", async () => {
  const key = ecKey();
  const sys = await startPipeline({
    sections: { quarantine: { trustedKeys: [{ id: "vendor-ec", publicKeyPem: key.pem }] } },
  });
  try {
    const q = sys.supervisor.client(quarantineApi);
    const good = safetensorsFile({ "w": [410] });
    const signature = parseSignatureText(
      bundle(key, { files: { "signed.safetensors": sha256Hex(good) } }),
    ) as ArtifactSignature;
    const signed = await settle(q, await upload(q, "signed.safetensors", good, { signature }));
    equal(signed.state, "promoted", JSON.stringify(signed.error));
    const model = await sys.supervisor.client(registryApi).call("get", {
      id: signed.modelId as string,
    });
    deepEqual(model.provenance, { status: "verified", signer: "vendor-ec", pinned: false });

    const other = safetensorsFile({ "w": [411] });
    const replayed = await settle(q, await upload(q, "other.safetensors", other, { signature }));
    equal(replayed.state, "rejected");
    equal(replayed.stage, "provenance");
    equal(replayed.error?.code, "DIGEST_MISMATCH");

    // Dropped into the inbox with the bundle as its .sig.json sidecar.
    const inbox = `${sys.home}/quarantine/incoming`;
    const third = safetensorsFile({ "w": [412] });
    await Deno.writeTextFile(
      `${inbox}/.third.safetensors.sig.json`,
      bundle(key, { files: { "third.safetensors": sha256Hex(third) } }),
    );
    await Deno.writeFile(`${inbox}/third.safetensors`, third);
    let found: string | undefined;
    for (let i = 0; i < 300 && found === undefined; i++) {
      const page = await q.call("list", { limit: 20 });
      found = page.jobs.find((j) => j.filename === "third.safetensors")?.id;
      if (found === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    ok(found, "the inbox claimed the file");
    const fromInbox = await settle(q, found);
    equal(fromInbox.state, "promoted", JSON.stringify(fromInbox.error));
  } finally {
    await sys.stop();
  }
});

Deno.test("secai import --signature sends a model signing bundle with the file", async () => {
  const key = ecKey();
  const home = await Deno.makeTempDir({ prefix: "secai-cli-signed-" });
  const dir = await Deno.makeTempDir({ prefix: "secai-cli-model-" });
  try {
    const pem = key.pem.trimEnd().split("\n").map((l) => `        ${l}`).join("\n");
    await Deno.writeTextFile(
      `${home}/config.yaml`,
      `quarantine:\n  requireSignature: true\n  trustedKeys:\n    - id: vendor-ec\n` +
        `      publicKeyPem: |\n${pem}\n`,
    );
    const bytes = safetensorsFile({ "w": [420] });
    await Deno.writeFile(`${dir}/signed.safetensors`, bytes);
    await Deno.writeTextFile(
      `${dir}/signed.sig`,
      bundle(key, { files: { "signed.safetensors": sha256Hex(bytes) } }),
    );
    const args = ["--home", home, "--json"];
    const signed = await secai([
      "import",
      `${dir}/signed.safetensors`,
      "--signature",
      `${dir}/signed.sig`,
      ...args,
    ]);
    equal(signed.code, 0, signed.stderr);
    equal(JSON.parse(signed.stdout).state, "promoted");
    await Deno.writeFile(`${dir}/unsigned.safetensors`, safetensorsFile({ "w": [421] }));
    const unsigned = await secai(["import", `${dir}/unsigned.safetensors`, ...args]);
    equal(unsigned.code, 1);
    equal(JSON.parse(unsigned.stdout).error.code, "UNSIGNED");
    await Deno.writeTextFile(`${dir}/bad.sig`, "{}");
    const bad = await secai([
      "import",
      `${dir}/unsigned.safetensors`,
      "--signature",
      `${dir}/bad.sig`,
      ...args,
    ]);
    equal(bad.code, 1);
    ok(bad.stderr.includes("not a valid signature"), bad.stderr);
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
});
