/**
 * Containers around pickles: PyTorch zip checkpoints (every member; duplicate, hidden,
 * unreferenced and mismatched members; CRC and flag anomalies; ZIP64; data descriptors),
 * legacy torch (stacked and tar), npy/npz object arrays, gzip wrappers (bz2/xz/lzma: see
 * wrapped_scan_test.ts) and polyglots.
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import {
  concat,
  le,
  numpyPickle,
  PickleWriter,
  torchLegacy,
  torchTar,
  torchZip,
  writeNpy,
  writeZip,
} from "./_corpus.ts";
import { describeFindings, indexOfBytes, scanBytes } from "./_harness.ts";

const enc = new TextEncoder();

function evilPickle(): { bytes: Uint8Array; at: number } {
  const p = new PickleWriter().proto(2).at("hit").global("os", "system").str("id").tuple(1).reduce()
    .stop();
  return { bytes: p.done(), at: p.labels.hit ?? 0 };
}

function npyF32(): Uint8Array {
  return writeNpy(
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
    new Uint8Array(24),
  );
}

function npyObject(pickle: Uint8Array): Uint8Array {
  return writeNpy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", pickle);
}

interface BenignCase {
  name: string;
  bytes: () => Uint8Array;
  format: string;
}

const benign: BenignCase[] = [
  {
    name: "a PyTorch zip checkpoint (data.pkl, storages, metadata members)",
    bytes: () => torchZip().file,
    format: "pytorch-zip",
  },
  {
    name: "a ZIP64 PyTorch zip checkpoint",
    bytes: () => torchZip({ zip64: true }).file,
    format: "pytorch-zip",
  },
  {
    name: "a legacy stacked torch checkpoint",
    bytes: () => torchLegacy().file,
    format: "torch-legacy",
  },
  { name: "a legacy tar torch checkpoint", bytes: () => torchTar(), format: "torch-tar" },
  { name: "a float32 .npy", bytes: npyF32, format: "npy" },
  {
    name: "a .npy object array of allowed objects",
    bytes: () => npyObject(numpyPickle()),
    format: "npy",
  },
  {
    name: "an npz with stored and deflated members",
    bytes: () =>
      writeZip([{ name: "a.npy", data: npyF32() }, { name: "b.npy", data: npyF32(), method: 8 }]),
    format: "npz",
  },
  {
    name: "a zip member written with a data descriptor",
    bytes: () => writeZip([{ name: "a.npy", data: npyF32(), descriptor: true }]),
    format: "npz",
  },
  {
    name: "a gzip-wrapped PyTorch checkpoint",
    bytes: () => new Uint8Array(gzipSync(torchZip().file)),
    format: "gzip+pytorch-zip",
  },
];

for (const c of benign) {
  Deno.test(`scanFile() accepts ${c.name}`, async () => {
    const report = await scanBytes(c.bytes());
    assert.equal(report.format, c.format);
    assert.equal(report.verdict, "clean", describeFindings(report.findings));
    assert.ok(report.bytesScanned > 0);
  });
}

interface ThreatCase {
  name: string;
  build: () => {
    bytes: Uint8Array;
    rule: string;
    callable?: string;
    opcode?: string;
    offset?: number;
    member?: string;
  };
}

const threats: ThreatCase[] = [
  {
    name: "a malicious data.pkl in a PyTorch zip",
    build: () => {
      const evil = evilPickle();
      const { file } = torchZip({ pickle: evil.bytes });
      return {
        bytes: file,
        rule: "pickle.callable_not_allowed",
        callable: "os.system",
        opcode: "GLOBAL",
        offset: indexOfBytes(file, evil.bytes) + evil.at,
        member: "archive/data.pkl",
      };
    },
  },
  {
    name: "a pickle hidden in an unreferenced storage member",
    build: () => {
      const evil = evilPickle();
      const { file } = torchZip({ extra: [{ name: "archive/data/99", data: evil.bytes }] });
      return {
        bytes: file,
        rule: "pickle.callable_not_allowed",
        callable: "os.system",
        opcode: "GLOBAL",
        offset: indexOfBytes(file, evil.bytes) + evil.at,
        member: "archive/data/99",
      };
    },
  },
  {
    name: "a second .pkl member besides data.pkl",
    build: () => {
      const evil = evilPickle();
      const { file } = torchZip({ extra: [{ name: "archive/extra.pkl", data: evil.bytes }] });
      return {
        bytes: file,
        rule: "pickle.callable_not_allowed",
        callable: "os.system",
        member: "archive/extra.pkl",
      };
    },
  },
  {
    name: "a duplicate data.pkl member",
    build: () => ({
      bytes: torchZip({ extra: [{ name: "archive/data.pkl", data: evilPickle().bytes }] }).file,
      rule: "zip.duplicate_member",
      member: "archive/data.pkl",
    }),
  },
  {
    name: "a member hidden from the central directory",
    build: () => ({
      bytes: torchZip({
        extra: [{ name: "archive/hidden.pkl", data: evilPickle().bytes, hidden: true }],
      }).file,
      rule: "zip.hidden_member",
    }),
  },
  {
    name: "a member whose CRC does not match",
    build: () => ({
      bytes:
        torchZip({ extra: [{ name: "archive/version2", data: enc.encode("3"), crc: 1234 }] }).file,
      rule: "zip.crc_mismatch",
      member: "archive/version2",
    }),
  },
  {
    name: "a second archive root",
    build: () => ({
      bytes: torchZip({ extra: [{ name: "other/data.pkl", data: evilPickle().bytes }] }).file,
      rule: "zip.multiple_roots",
    }),
  },
  {
    name: "TorchScript code members",
    build: () => ({
      bytes:
        torchZip({ extra: [{ name: "archive/code/__torch__.py", data: enc.encode("import os") }] })
          .file,
      rule: "zip.torchscript_code",
    }),
  },
  {
    name: "a member name that escapes the archive",
    build: () => ({
      bytes: torchZip({ extra: [{ name: "archive/../../etc/x", data: enc.encode("x") }] }).file,
      rule: "zip.unsafe_name",
    }),
  },
  {
    name: "a pickle with a zip appended (polyglot)",
    build: () => ({
      bytes: concat(new PickleWriter().proto(2).emptyDict().stop().done(), torchZip().file),
      rule: "polyglot.zip",
    }),
  },
  {
    name: "a malicious main pickle in a legacy stacked checkpoint",
    build: () => ({
      bytes: torchLegacy({ main: evilPickle().bytes }).file,
      rule: "pickle.callable_not_allowed",
      callable: "os.system",
    }),
  },
  {
    name: "bytes after the last legacy storage",
    build: () => ({
      bytes: torchLegacy({ trailing: evilPickle().bytes }).file,
      rule: "torch.trailing_data",
    }),
  },
  {
    name: "a malicious pickle member in a legacy tar",
    build: () => ({
      bytes: torchTar({ pickle: evilPickle().bytes }),
      rule: "pickle.callable_not_allowed",
      callable: "os.system",
      member: "pickle",
    }),
  },
  {
    name: "an extra pickle member in a legacy tar",
    build: () => ({
      bytes: torchTar({ extra: [{ name: "payload", data: evilPickle().bytes }] }),
      rule: "pickle.callable_not_allowed",
      callable: "os.system",
      member: "payload",
    }),
  },
  {
    name: "an npy object array that runs os.system",
    build: () => {
      const evil = evilPickle();
      const file = npyObject(evil.bytes);
      return {
        bytes: file,
        rule: "pickle.callable_not_allowed",
        callable: "os.system",
        opcode: "GLOBAL",
        offset: indexOfBytes(file, evil.bytes) + evil.at,
      };
    },
  },
  {
    name: "an npz with an object array member that runs os.system",
    build: () => ({
      bytes: writeZip([{ name: "x.npy", data: npyF32() }, {
        name: "evil.npy",
        data: npyObject(evilPickle().bytes),
        method: 8,
      }]),
      rule: "pickle.callable_not_allowed",
      callable: "os.system",
      member: "evil.npy",
    }),
  },
  {
    name: "a gzip-wrapped malicious pickle",
    build: () => ({
      bytes: new Uint8Array(gzipSync(evilPickle().bytes)),
      rule: "pickle.callable_not_allowed",
      callable: "os.system",
      member: "gzip:",
    }),
  },
];

for (const c of threats) {
  Deno.test(`scanFile() catches ${c.name}`, async () => {
    const expected = c.build();
    const report = await scanBytes(expected.bytes);
    assert.equal(report.verdict, "threat", describeFindings(report.findings));
    const hit = report.findings.find((f) =>
      f.rule === expected.rule &&
      (expected.callable === undefined || f.callable === expected.callable) &&
      (expected.member === undefined || f.member === expected.member)
    );
    assert.ok(hit, `no ${expected.rule}:\n${describeFindings(report.findings)}`);
    if (expected.opcode !== undefined) assert.equal(hit.opcode, expected.opcode);
    if (expected.offset !== undefined) assert.equal(hit.offset, expected.offset);
  });
}

interface InvalidCase {
  name: string;
  bytes: () => Uint8Array;
  message: RegExp;
}

const zipOf =
  (members: Parameters<typeof writeZip>[0], options: Parameters<typeof writeZip>[1] = {}) => () =>
    writeZip(members, options);
const plain = [{ name: "a.npy", data: npyF32() }];

const invalid: InvalidCase[] = [
  {
    name: "a zip without an end record",
    bytes: () => writeZip(plain).subarray(0, -22),
    message: /no end-of-central-directory record/,
  },
  {
    name: "data after the end record",
    bytes: zipOf(plain, { suffix: enc.encode("junk") }),
    message: /data follows the end record/,
  },
  {
    name: "a central directory offset that is off",
    bytes: zipOf(plain, { cdOffsetDelta: -4 }),
    message: /central directory runs past|unaccounted/,
  },
  {
    name: "a local header naming another file",
    bytes: zipOf([{ name: "a.npy", data: npyF32(), localName: "b.npy" }]),
    message: /names "b.npy" but the central directory names "a.npy"/,
  },
  {
    name: "an encrypted member",
    bytes: zipOf([{ name: "a.npy", data: npyF32(), flags: 1 }]),
    message: /encrypted and cannot be inspected/,
  },
  {
    name: "an unsupported compression method",
    bytes: zipOf([{ name: "a.npy", data: npyF32(), method: 12 }]),
    message: /compression method 12/,
  },
  {
    name: "a zip that is neither torch nor npz",
    bytes: zipOf([{ name: "readme.txt", data: enc.encode("hi") }]),
    message: /neither a PyTorch checkpoint/,
  },
  {
    name: "a storage whose member size differs from the pickle",
    bytes: () =>
      torchZip({ extra: [] }).file.map((
        b,
        i,
        all,
      ) => (i === indexOfBytes(all, enc.encode("archive/data/2")) + 13 ? 0x35 : b)),
    message: /Invalid (PyTorch )?zip/,
  },
  {
    name: "a legacy file whose storage size differs",
    bytes: () => torchLegacy({ numelDelta: 1 }).file,
    message: /has \d+ elements, the pickle declares/,
  },
  {
    name: "an npy whose data does not match its shape",
    bytes: () =>
      writeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", new Uint8Array(20)),
    message: /needs 24 data bytes, the file has 20/,
  },
  {
    name: "an npy with a bad header",
    bytes: () => writeNpy("{'descr': '<f4', 'shape': (2,), }", new Uint8Array(8)),
    message: /header keys/,
  },
  {
    name: "an npy with an unknown version",
    bytes: () =>
      writeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", new Uint8Array(8), [
        4,
        0,
      ]),
    message: /unknown version 4.0/,
  },
  {
    name: "a bz2 block magic followed by garbage",
    bytes: () => concat(enc.encode("BZh91AY&SY"), new Uint8Array(64)),
    message: /^Invalid bz2 stream: /,
  },
  {
    name: "an xz magic followed by garbage",
    bytes: () => concat(Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0), new Uint8Array(64)),
    message: /^Invalid xz stream: the stream header CRC32 does not match/,
  },
  {
    name: "a zstd wrapper",
    bytes: () => concat(Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd), new Uint8Array(64)),
    message: /zstd-compressed/,
  },
  {
    name: "a corrupt gzip wrapper",
    bytes: () =>
      new Uint8Array(gzipSync(evilPickle().bytes)).map((b, i) => (i === 12 ? b ^ 0xff : b)),
    message: /gzip wrapper does not inflate/,
  },
  { name: "an empty file", bytes: () => new Uint8Array(0), message: /empty/ },
  {
    name: "a tar with a bad checksum",
    bytes: () => torchTar().map((b, i) => (i === 0 ? 0x41 : b)),
    message: /checksum mismatch/,
  },
  {
    name: "an unrecognized format",
    bytes: () => enc.encode("\x00\x01just some bytes"),
    message: /Unrecognized format/,
  },
];

for (const c of invalid) {
  Deno.test(`scanFile() reports ${c.name} as invalid`, async () => {
    const report = await scanBytes(c.bytes());
    assert.equal(report.verdict, "invalid", describeFindings(report.findings));
    assert.ok(
      report.findings.some((f) => f.rule.endsWith(".invalid") && c.message.test(f.message)),
      describeFindings(report.findings),
    );
  });
}

Deno.test("scanFile() checks CRCs of every member of a large stored checkpoint", async () => {
  const big = new Uint8Array(9 << 20).fill(7);
  const file = writeZip([{
    name: "a.npy",
    data: concat(
      writeNpy(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (9437184,), }",
        new Uint8Array(0),
      ),
      big,
    ),
    crc: 5,
  }]);
  const report = await scanBytes(file);
  assert.ok(
    report.findings.some((f) => f.rule === "zip.crc_mismatch"),
    describeFindings(report.findings),
  );
  void le;
});
