/**
 * bz2, xz and lzma wrappers (issue #6): our strict decoders against files the Debian `bzip2`
 * and `xz` tools wrote (committed fixtures, see `_wrapped.ts`), then `scanFile()` end to end:
 * the pickle VM sees the inflated content, truncated, corrupt and trailing data is `invalid`,
 * a decompression bomb stops at the limit, a wrapper inside a wrapper is not opened.
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { BytesInput } from "../../workers/quarantine/scanners/_compressed.ts";
import { bunzip2 } from "../../workers/quarantine/scanners/bzip2.ts";
import { FormatError } from "../../workers/quarantine/scanners/errors.ts";
import { unlzma } from "../../workers/quarantine/scanners/lzma.ts";
import { ScanDeadlineError, scanFile } from "../../workers/quarantine/scanners/mod.ts";
import { unxz } from "../../workers/quarantine/scanners/xz.ts";
import { concat } from "./_corpus.ts";
import { describeFindings, scanBytes } from "./_harness.ts";
import { CONTENTS, evilPickle, FIXTURES, readFixture } from "./_wrapped.ts";

type Kind = "bz2" | "xz" | "lzma";

function kindOf(file: string): Kind {
  if (file.endsWith(".bz2")) return "bz2";
  if (file.endsWith(".xz")) return "xz";
  return "lzma";
}

/** Decodes with our decoder for `kind`; returns the bytes. */
function decode(kind: Kind, bytes: Uint8Array): Uint8Array {
  const chunks: Uint8Array[] = [];
  const sink = (chunk: Uint8Array) => void chunks.push(chunk.slice());
  const input = new BytesInput(bytes, kind);
  if (kind === "bz2") bunzip2(input, sink);
  else if (kind === "xz") unxz(input, sink);
  else unlzma(input, sink);
  return concat(...chunks);
}

function decodeError(kind: Kind, bytes: Uint8Array): FormatError {
  try {
    decode(kind, bytes);
  } catch (error) {
    assert.ok(error instanceof FormatError, String(error));
    return error;
  }
  assert.fail("decoded without an error");
}

// ---- the decoders against the tools' output ------------------------------------------------

for (const fixture of FIXTURES) {
  const kind = kindOf(fixture.file);
  if (fixture.refused !== undefined) {
    const refused = fixture.refused;
    Deno.test(`${kind} decoder refuses "${fixture.file}" (${fixture.command.join(" ")})`, () => {
      const error = decodeError(kind, readFixture(fixture.file));
      assert.equal(error.code, "UNSUPPORTED");
      assert.match(error.message, refused);
    });
    continue;
  }
  Deno.test(`${kind} decoder restores "${fixture.file}" (${fixture.command.join(" ")})`, () => {
    assert.deepEqual(decode(kind, readFixture(fixture.file)), CONTENTS[fixture.content]());
  });
}

Deno.test("bz2 decoder reads concatenated streams in order", () => {
  const bytes = concat(readFixture("evil-pickle.bz2"), readFixture("torch-zip.1.bz2"));
  assert.deepEqual(
    decode("bz2", bytes),
    concat(CONTENTS["evil-pickle"](), CONTENTS["torch-zip"]()),
  );
});

Deno.test("xz decoder reads concatenated streams with stream padding", () => {
  const bytes = concat(
    readFixture("evil-pickle.xz"),
    new Uint8Array(8),
    readFixture("torch-zip.xz"),
  );
  assert.deepEqual(
    decode("xz", bytes),
    concat(CONTENTS["evil-pickle"](), CONTENTS["torch-zip"]()),
  );
});

interface BrokenCase {
  name: string;
  kind: Kind;
  bytes: () => Uint8Array;
  code: FormatError["code"];
  message: RegExp;
}

function flipped(file: string, at: number): () => Uint8Array {
  return () => readFixture(file).map((b, i) => (i === at ? b ^ 0x55 : b));
}

const broken: BrokenCase[] = [
  ...(["torch-zip.bz2", "torch-zip.xz", "torch-zip.lzma", "evil-pickle.xz"] as const).flatMap((
    file,
  ): BrokenCase[] => [
    {
      name: `"${file}" cut in half`,
      kind: kindOf(file),
      bytes: () => readFixture(file).subarray(0, readFixture(file).length >> 1),
      code: "TRUNCATED",
      message: /stream is truncated: the data ends at offset \d+/,
    },
    {
      name: `"${file}" without its last byte`,
      kind: kindOf(file),
      bytes: () => readFixture(file).subarray(0, -1),
      code: "TRUNCATED",
      message: /stream is truncated/,
    },
  ]),
  {
    name: "a bz2 block with a flipped byte",
    kind: "bz2",
    bytes: flipped("torch-zip.bz2", 700),
    code: "MALFORMED",
    message: /^Invalid bz2 stream: /,
  },
  {
    name: "a bz2 stream CRC that does not match",
    kind: "bz2",
    bytes: () => {
      const bytes = readFixture("torch-zip.bz2").slice();
      bytes[bytes.length - 2] = (bytes[bytes.length - 2] as number) ^ 0x01;
      return bytes;
    },
    code: "MALFORMED",
    message: /stream CRC 0x[0-9a-f]{8} does not match/,
  },
  {
    name: "an xz block with a flipped byte",
    kind: "xz",
    bytes: flipped("torch-zip.xz", 700),
    code: "MALFORMED",
    message: /^Invalid xz stream: /,
  },
  {
    name: "an xz block whose CRC64 does not match",
    kind: "xz",
    // The check field sits right before the index, 4 bytes of padding and 12 of footer.
    bytes: () => {
      const bytes = readFixture("evil-pickle.xz").slice();
      bytes[bytes.length - 12 - 12 - 1] = (bytes[bytes.length - 12 - 12 - 1] as number) ^ 1;
      return bytes;
    },
    code: "MALFORMED",
    message: /the CRC64 of a block does not match its data/,
  },
  {
    name: "data after the last bz2 stream",
    kind: "bz2",
    bytes: () => concat(readFixture("torch-zip.bz2"), new TextEncoder().encode("trailing")),
    code: "MALFORMED",
    message: /follows the last stream and is not another bz2 stream/,
  },
  {
    name: "data after the last xz stream",
    kind: "xz",
    bytes: () => concat(readFixture("torch-zip.xz"), new TextEncoder().encode("trailing")),
    code: "MALFORMED",
    message: /follows the last stream and is not an xz stream/,
  },
  {
    name: "xz stream padding that is not a multiple of four",
    kind: "xz",
    bytes: () => concat(readFixture("torch-zip.xz"), new Uint8Array(3)),
    code: "MALFORMED",
    message: /stream padding is not a multiple of four bytes/,
  },
  {
    name: "data after an lzma stream",
    kind: "lzma",
    bytes: () => concat(readFixture("torch-zip.lzma"), Uint8Array.of(0)),
    code: "MALFORMED",
    message: /follows the LZMA stream/,
  },
];

for (const c of broken) {
  Deno.test(`${c.kind} decoder reports ${c.name} as ${c.code}`, () => {
    const error = decodeError(c.kind, c.bytes());
    assert.equal(error.code, c.code, error.message);
    assert.match(error.message, c.message);
  });
}

// ---- scanFile() on wrapped files -------------------------------------------------------------

for (const kind of ["bz2", "xz", "lzma"] as const) {
  Deno.test(`scanFile() catches a malicious pickle inside ${kind} with its callable`, async () => {
    const report = await scanBytes(readFixture(`evil-pickle.${kind}`));
    assert.equal(report.format, `${kind}+pickle`);
    assert.equal(report.verdict, "threat", describeFindings(report.findings));
    const hit = report.findings.find((f) => f.rule === "pickle.callable_not_allowed");
    assert.ok(hit, describeFindings(report.findings));
    assert.equal(hit.callable, "os.system");
    assert.equal(hit.opcode, "GLOBAL");
    assert.equal(hit.member, `${kind}:`);
    // Offsets inside a wrapper are in the inflated data.
    assert.equal(hit.offset, evilPickle().at);
  });

  Deno.test(`scanFile() finds a benign torch checkpoint inside ${kind} clean`, async () => {
    const report = await scanBytes(readFixture(`torch-zip.${kind}`));
    assert.equal(report.format, `${kind}+pytorch-zip`);
    assert.equal(report.verdict, "clean", describeFindings(report.findings));
  });

  Deno.test(`scanFile() reports a truncated ${kind} wrapper as invalid`, async () => {
    const bytes = readFixture(`torch-zip.${kind}`);
    const report = await scanBytes(bytes.subarray(0, bytes.length - 4));
    assert.equal(report.verdict, "invalid", describeFindings(report.findings));
    const invalid = report.findings.find((f) => f.rule === `${kind}.invalid`);
    assert.ok(invalid, describeFindings(report.findings));
    assert.match(invalid.message, new RegExp(`^The ${kind} stream is truncated`));
  });

  Deno.test(`scanFile() reports a ${kind} bomb beyond a lowered limit as invalid`, async () => {
    const report = await scanBytes(readFixture(`zeros.${kind}`), { maxInflatedBytes: 1 << 20 });
    assert.equal(report.verdict, "invalid", describeFindings(report.findings));
    assert.deepEqual(
      report.findings.filter((f) => f.rule.endsWith(".invalid")).map((f) => [f.rule, f.message]),
      [[
        `${kind}.invalid`,
        `The ${kind} wrapper inflates to more than 1048576 bytes (decompression bomb)`,
      ]],
    );
  });
}

Deno.test("scanFile() reports a corrupt xz wrapper as invalid, never clean", async () => {
  const report = await scanBytes(flipped("torch-zip.xz", 700)());
  assert.equal(report.verdict, "invalid", describeFindings(report.findings));
  assert.ok(report.findings.some((f) => f.rule === "xz.invalid"));
});

Deno.test("scanFile() reports a corrupt bz2 wrapper as invalid, never clean", async () => {
  const report = await scanBytes(flipped("torch-zip.bz2", 700)());
  assert.equal(report.verdict, "invalid", describeFindings(report.findings));
  assert.ok(report.findings.some((f) => f.rule === "bz2.invalid"));
});

Deno.test("scanFile() does not open an xz wrapper inside a gzip wrapper", async () => {
  const report = await scanBytes(new Uint8Array(gzipSync(readFixture("torch-zip.xz"))));
  assert.equal(report.format, "gzip+xz");
  assert.equal(report.verdict, "invalid", describeFindings(report.findings));
  assert.ok(
    report.findings.some((f) =>
      f.rule === "xz.invalid" && f.member === "gzip:" &&
      /Nested compression wrappers are not opened/.test(f.message)
    ),
    describeFindings(report.findings),
  );
});

Deno.test("scanFile() reports an xz filter chain it does not support as invalid", async () => {
  const report = await scanBytes(readFixture("torch-zip.x86.xz"));
  assert.equal(report.verdict, "invalid", describeFindings(report.findings));
  assert.ok(
    report.findings.some((f) => f.rule === "xz.invalid" && /filter chain/.test(f.message)),
    describeFindings(report.findings),
  );
});

Deno.test("scanFile() throws ScanDeadlineError once its deadline has passed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "secai-wrapped-test-" });
  try {
    await Deno.writeFile(`${dir}/m.xz`, readFixture("zeros.xz"));
    await assert.rejects(
      scanFile(`${dir}/m.xz`, { tempDir: dir, deadline: performance.now() - 1 }),
      (error: unknown) => error instanceof ScanDeadlineError && error.code === "DEADLINE",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
