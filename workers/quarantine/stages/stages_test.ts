import { deepEqual, equal, throws } from "node:assert/strict";
import { QuarantineConfigSchema } from "../api.ts";
import { StageFailure } from "../errors.ts";
import { gate } from "../jobs/format_gate.ts";
import { formatOfName } from "./format_gate.ts";
import { checkPins } from "./integrity_pin.ts";
import { checkSource } from "./source_policy.ts";

const RULES = QuarantineConfigSchema.parse({}).sources;

const SOURCES: { url: string; code?: "INVALID_SOURCE" | "SOURCE_NOT_ALLOWED"; rule?: string }[] = [
  { url: "https://huggingface.co/org/repo/resolve/abc/m.gguf", rule: "https://huggingface.co" },
  { url: "https://HuggingFace.co./org/m.gguf", rule: "https://huggingface.co" },
  { url: "https://huggingface.co:443/org/m.gguf", rule: "https://huggingface.co" },
  { url: "https://registry.ollama.ai/v2/x", rule: "https://registry.ollama.ai" },
  { url: "http://huggingface.co/org/m.gguf", code: "INVALID_SOURCE" },
  { url: "https://huggingface.co:8443/org/m.gguf", code: "INVALID_SOURCE" },
  { url: "https://user:pw@huggingface.co/m.gguf", code: "INVALID_SOURCE" },
  { url: "https://huggingface.co/m.gguf?download=1", code: "INVALID_SOURCE" },
  { url: "https://huggingface.co/m.gguf#x", code: "INVALID_SOURCE" },
  { url: "https://huggingface.co/a/../b/m.gguf", code: "INVALID_SOURCE" },
  { url: "https://huggingface.co/a/%2e%2e/m.gguf", code: "INVALID_SOURCE" },
  { url: "https://huggingface.co/a%2fb/m.gguf", code: "INVALID_SOURCE" },
  { url: "https://huggingface.co\\@evil.example/m.gguf", code: "INVALID_SOURCE" },
  { url: "https://huggingface.co/m\u0000.gguf", code: "INVALID_SOURCE" },
  { url: "https://huggingface.co/m .gguf", code: "INVALID_SOURCE" },
  { url: "https://127.0.0.1/m.gguf", code: "INVALID_SOURCE" },
  { url: "https://[::1]/m.gguf", code: "INVALID_SOURCE" },
  { url: `https://huggingface.co/${"a".repeat(4100)}`, code: "INVALID_SOURCE" },
  { url: "not a url", code: "INVALID_SOURCE" },
  { url: "https://huggingface.co.evil.example/m.gguf", code: "SOURCE_NOT_ALLOWED" },
  { url: "https://evil.example/m.gguf", code: "SOURCE_NOT_ALLOWED" },
];

for (const c of SOURCES) {
  Deno.test(`checkSource() ${c.code ? `refuses (${c.code})` : "accepts"} ${c.url.slice(0, 60)}`, () => {
    if (c.code === undefined) {
      equal(checkSource(c.url, RULES).rule.urlPrefix, c.rule);
      return;
    }
    throws(() => checkSource(c.url, RULES), (error: unknown) => {
      equal(error instanceof StageFailure, true);
      equal((error as StageFailure).code, c.code);
      return true;
    });
  });
}

Deno.test("checkSource() matches a path prefix by whole segments only", () => {
  const rules = [{
    urlPrefix: "https://example.org/models",
    formats: ["gguf" as const],
    requireSignature: false,
  }];
  equal(checkSource("https://example.org/models/a.gguf", rules).host, "example.org");
  throws(() => checkSource("https://example.org/modelsevil/a.gguf", rules), StageFailure);
  throws(() => checkSource("https://example.org/a.gguf", []), /allowlist is empty/);
});

const NAMES: { name: string; format?: string; code?: string }[] = [
  { name: "m.gguf", format: "gguf" },
  { name: "M.SafeTensors", format: "safetensors" },
  { name: "model.pt", code: "DENIED_FORMAT" },
  { name: "model.bin", code: "DENIED_FORMAT" },
  { name: "model.pkl", code: "DENIED_FORMAT" },
  { name: "model.ckpt", code: "DENIED_FORMAT" },
  { name: "model.onnx", code: "UNKNOWN_FORMAT" },
  { name: "gguf", code: "UNKNOWN_FORMAT" },
  { name: ".gguf", code: "UNKNOWN_FORMAT" },
];

for (const c of NAMES) {
  Deno.test(`formatOfName() reads "${c.name}" as ${c.format ?? c.code}`, () => {
    const result = formatOfName(c.name);
    if (c.format) deepEqual(result, { format: c.format });
    else equal((result as { code: string }).code, c.code);
  });
}

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);
const PIN = {
  name: "good",
  format: "gguf" as const,
  source: "https://huggingface.co/org/repo",
  sourceRevision: null,
  filename: "good.gguf",
  sha256: SHA_A,
  sizeBytes: 10,
  blocked: false,
  blockedReason: null,
};

const PINS: { name: string; artifact: Parameters<typeof checkPins>[1]; expect: unknown }[] = [
  {
    name: "passes a local import without a pin as trust on first use",
    artifact: { sha256: SHA_B, size: 10, filename: "other.gguf", source: null },
    expect: { pinned: false },
  },
  {
    name: "passes a pinned file with the pinned hash from under the pinned source",
    artifact: {
      sha256: SHA_A,
      size: 10,
      filename: "good.gguf",
      source: "https://huggingface.co/org/repo/resolve/main/good.gguf",
    },
    expect: { pinned: true, pinName: "good" },
  },
  {
    name: "fails a pinned file with another hash",
    artifact: { sha256: SHA_B, size: 10, filename: "good.gguf", source: null },
    expect: "PIN_MISMATCH",
  },
  {
    name: "fails a pinned file of another size",
    artifact: { sha256: SHA_A, size: 11, filename: "good.gguf", source: null },
    expect: "PIN_MISMATCH",
  },
  {
    name: "fails a pinned file from another origin",
    artifact: {
      sha256: SHA_A,
      size: 10,
      filename: "good.gguf",
      source: "https://huggingface.co/other/good.gguf",
    },
    expect: "PIN_MISMATCH",
  },
  {
    name: "fails a remote file without a pin",
    artifact: {
      sha256: SHA_B,
      size: 10,
      filename: "new.gguf",
      source: "https://huggingface.co/x/new.gguf",
    },
    expect: "NOT_PINNED",
  },
  {
    name: "fails blocked content under any name",
    artifact: { sha256: "c".repeat(64), size: 5, filename: "innocent.gguf", source: null },
    expect: "BLOCKED_HASH",
  },
];

for (const c of PINS) {
  Deno.test(`checkPins() ${c.name}`, () => {
    const pins = [PIN, {
      ...PIN,
      name: "bad",
      filename: "bad.gguf",
      sha256: "c".repeat(64),
      blocked: true,
      blockedReason: "flagged",
    }];
    const result = checkPins(pins, c.artifact);
    if (typeof c.expect === "string") equal((result as { code: string }).code, c.expect);
    else deepEqual(result, c.expect);
  });
}

function header(json: string, dataBytes = 16, padTo8 = true): Uint8Array {
  let text = json;
  while (padTo8 && (8 + text.length) % 8 !== 0) text += " ";
  const bytes = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + bytes.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(bytes.length), true);
  out.set(bytes, 8);
  return out;
}

function gguf(version: number): Uint8Array {
  const out = new Uint8Array(64);
  out.set(new TextEncoder().encode("GGUF"));
  new DataView(out.buffer).setUint32(4, version, true);
  return out;
}

const GATES: {
  name: string;
  bytes: () => Uint8Array;
  expected: string;
  verdict: string;
  code?: string;
  message?: RegExp;
}[] = [
  { name: "a GGUF v3 header", bytes: () => gguf(3), expected: "gguf", verdict: "pass" },
  {
    name: "a GGUF v1 header",
    bytes: () => gguf(1),
    expected: "gguf",
    verdict: "fail",
    code: "INVALID_HEADER",
    message: /version 1 at offset 4/,
  },
  {
    name: "a safetensors header",
    bytes: () => header('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'),
    expected: "safetensors",
    verdict: "pass",
  },
  {
    name: "a header length past the end",
    bytes: () => {
      const b = header("{}");
      new DataView(b.buffer).setBigUint64(0, 1000n, true);
      return b;
    },
    expected: "safetensors",
    verdict: "fail",
    code: "INVALID_HEADER",
    message: /runs past the end/,
  },
  {
    name: "a header length of 2^63",
    bytes: () => {
      const b = header("{}");
      new DataView(b.buffer).setBigUint64(0, 2n ** 63n, true);
      return b;
    },
    expected: "safetensors",
    verdict: "fail",
    code: "INVALID_HEADER",
    message: /is not between 2 and/,
  },
  {
    name: "a header not starting with {",
    bytes: () => header('["x"]'),
    expected: "safetensors",
    verdict: "fail",
    code: "INVALID_HEADER",
    message: /begin with '\{'/,
  },
  {
    name: "a header padded with NULs",
    bytes: () => header('{"a":1}\u0000\u0000\u0000\u0000\u0000', 0, false),
    expected: "safetensors",
    verdict: "fail",
    code: "INVALID_HEADER",
    message: /end with '\}'/,
  },
  {
    name: "a GGUF named .safetensors",
    bytes: () => gguf(3),
    expected: "safetensors",
    verdict: "fail",
    code: "FORMAT_MISMATCH",
  },
  {
    name: "an empty file",
    bytes: () => new Uint8Array(0),
    expected: "safetensors",
    verdict: "fail",
    code: "INVALID_HEADER",
  },
  {
    name: "a protocol-0 pickle importing os",
    bytes: () => new TextEncoder().encode("cos\nsystem\n(S'id'\ntR."),
    expected: "gguf",
    verdict: "fail",
    code: "PICKLE_POLYGLOT",
  },
  {
    name: "an xz stream",
    bytes: () => Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0),
    expected: "gguf",
    verdict: "fail",
    code: "DENIED_FORMAT",
  },
];

for (const c of GATES) {
  Deno.test(`format gate job ${c.verdict === "pass" ? "passes" : "refuses"} ${c.name}`, async () => {
    const path = await Deno.makeTempFile();
    try {
      await Deno.writeFile(path, c.bytes());
      const result = await gate(path, c.expected);
      equal(result.verdict, c.verdict, result.message);
      if (c.code) equal(result.code, c.code);
      if (c.message) equal(c.message.test(result.message ?? ""), true, result.message);
    } finally {
      await Deno.remove(path);
    }
  });
}
