/**
 * The pickle VM on raw pickle files: every protocol (0–5), every way of naming a callable
 * (GLOBAL, INST, STACK_GLOBAL with operands from the stack or the memo, EXT codes), every
 * way of calling or mutating (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST, BUILD, SETITEM), caught
 * with the exact callable, opcode and byte offset; benign pickles accepted; malformed ones
 * `invalid` with a message naming the opcode and offset.
 */
import assert from "node:assert/strict";
import { numpyPickle, PickleWriter } from "./_corpus.ts";
import { describeFindings, scanBytes } from "./_harness.ts";

interface ThreatCase {
  name: string;
  build: () => { bytes: Uint8Array; at: number };
  rule: string;
  callable: string;
  opcode: string;
  severity?: string;
}

function threat(
  name: string,
  rule: string,
  callable: string,
  opcode: string,
  write: (p: PickleWriter) => void,
  severity?: string,
): ThreatCase {
  return {
    name,
    rule,
    callable,
    opcode,
    ...(severity ? { severity } : {}),
    build: () => {
      const p = new PickleWriter();
      write(p);
      return { bytes: p.done(), at: p.labels.hit ?? -1 };
    },
  };
}

const NOT_ALLOWED = "pickle.callable_not_allowed";

const threats: ThreatCase[] = [
  threat(
    "protocol 0 GLOBAL os.system + REDUCE",
    NOT_ALLOWED,
    "os.system",
    "GLOBAL",
    (p) =>
      p.at("hit").global("os", "system").mark().stringLine("'echo pwned'").tupleMark().reduce()
        .stop(),
    "critical",
  ),
  threat(
    "protocol 0 INST posix.system",
    NOT_ALLOWED,
    "posix.system",
    "INST",
    (p) => p.mark().stringLine("'id'").at("hit").inst("posix", "system").stop(),
    "critical",
  ),
  threat(
    "protocol 1 OBJ of subprocess.Popen",
    NOT_ALLOWED,
    "subprocess.Popen",
    "GLOBAL",
    (p) =>
      p.mark().at("hit").global("subprocess", "Popen").mark().shortBinstring("ls").listMark().obj()
        .stop(),
  ),
  threat(
    "protocol 1 py2 name __builtin__.eval",
    NOT_ALLOWED,
    "builtins.eval",
    "GLOBAL",
    (p) =>
      p.at("hit").global("__builtin__", "eval").mark().binstring("1+1").tupleMark().reduce().stop(),
  ),
  threat(
    "protocol 2 NEWOBJ of an unknown class",
    NOT_ALLOWED,
    "evil_pkg.Payload",
    "GLOBAL",
    (p) => p.proto(2).at("hit").global("evil_pkg", "Payload").emptyTuple().newobj().stop(),
    "high",
  ),
  threat(
    "protocol 2 EXT1 extension code",
    "pickle.extension_code",
    "<extension 7>",
    "EXT1",
    (p) => p.proto(2).at("hit").ext1(7).emptyTuple().reduce().stop(),
  ),
  threat(
    "protocol 2 EXT2 extension code",
    "pickle.extension_code",
    "<extension 300>",
    "EXT2",
    (p) => p.proto(2).at("hit").ext2(300).stop(),
  ),
  threat(
    "protocol 2 EXT4 extension code",
    "pickle.extension_code",
    "<extension 70000>",
    "EXT4",
    (p) => p.proto(2).at("hit").ext4(70000).stop(),
  ),
  threat(
    "protocol 3 BUILD on an imported class",
    "pickle.global_mutated",
    "collections.OrderedDict",
    "BUILD",
    (p) =>
      p.proto(3).global("collections", "OrderedDict").emptyDict().str("update").none().setitem().at(
        "hit",
      ).build().stop(),
  ),
  threat(
    "protocol 3 SETITEM on an imported object",
    "pickle.global_mutated",
    "collections.OrderedDict",
    "SETITEM",
    (p) =>
      p.proto(3).global("collections", "OrderedDict").str("k").str("v").at("hit").setitem().stop(),
  ),
  threat(
    "protocol 4 STACK_GLOBAL builtins.eval",
    NOT_ALLOWED,
    "builtins.eval",
    "STACK_GLOBAL",
    (p) =>
      p.proto(4).str("builtins").memoize().str("eval").memoize().at("hit").raw(0x93).memoize().str(
        "1",
      ).tuple(1).reduce().stop(),
    "critical",
  ),
  threat(
    "protocol 4 STACK_GLOBAL operands from the memo",
    NOT_ALLOWED,
    "subprocess.check_output",
    "STACK_GLOBAL",
    (p) =>
      p.proto(4).str("subprocess").put(5).pop().str("innocent").pop().get(5).str("check_output").at(
        "hit",
      ).raw(0x93).stop(),
    "critical",
  ),
  threat(
    "protocol 4 STACK_GLOBAL with a dotted attribute path",
    NOT_ALLOWED,
    "collections.OrderedDict.__init__.__globals__",
    "STACK_GLOBAL",
    (p) =>
      p.proto(4).str("collections").str("OrderedDict.__init__.__globals__").at("hit").raw(0x93)
        .stop(),
  ),
  threat(
    "protocol 4 STACK_GLOBAL operands computed by a call",
    "pickle.unresolved_global",
    "<result of _codecs.encode>.<str>",
    "STACK_GLOBAL",
    (p) =>
      p.proto(4).global("_codecs", "encode").str("os").str("latin1").tuple(2).reduce().str("system")
        .at("hit").raw(0x93).stop(),
  ),
  threat(
    "protocol 4 NEWOBJ_EX of a denied class",
    NOT_ALLOWED,
    "webbrowser.open",
    "STACK_GLOBAL",
    (p) =>
      p.proto(4).str("webbrowser").str("open").at("hit").raw(0x93).emptyTuple().emptyDict()
        .newobjEx().stop(),
    "critical",
  ),
  threat(
    "protocol 4 calling the result of an allowed call",
    "pickle.computed_callable",
    "<result of collections.OrderedDict>",
    "REDUCE",
    (p) =>
      p.proto(4).global("collections", "OrderedDict").emptyTuple().reduce().emptyTuple().at("hit")
        .reduce().stop(),
  ),
  threat(
    "protocol 4 calling a reference-only global",
    "pickle.reference_called",
    "torch.FloatStorage",
    "REDUCE",
    (p) =>
      p.proto(4).global("torch", "FloatStorage").int(1 << 30).tuple(1).at("hit").reduce().stop(),
  ),
  threat(
    "protocol 4 higher-order call with a reference-only global",
    "pickle.reference_called",
    "torch.Tensor",
    "REDUCE",
    (p) =>
      p.proto(4).global("torch._tensor", "_rebuild_from_type_v2").global("torch", "Tensor").global(
        "torch",
        "Tensor",
      ).emptyTuple().none().tuple(3).at("hit").reduce().stop(),
  ),
  threat(
    "protocol 5 framed BYTEARRAY8 then os.system",
    NOT_ALLOWED,
    "os.system",
    "STACK_GLOBAL",
    (p) => {
      const inner = new PickleWriter().bytearray8(new Uint8Array(16)).pop().str("os").str("system")
        .raw(0x93).str("id").tuple(1).reduce().stop().done();
      p.proto(5).frame(inner.length).at("frame");
      p.raw(inner);
      // BYTEARRAY8 (1 + 8 + 16), POP, SHORT_BINUNICODE "os" (4) and "system" (8), then STACK_GLOBAL.
      p.labels.hit = (p.labels.frame ?? 0) + 25 + 1 + 4 + 8;
    },
    "critical",
  ),
  threat(
    "protocol 0 UNICODE and GET/PUT lines",
    NOT_ALLOWED,
    "nt.system",
    "GLOBAL",
    (p) =>
      p.unicodeLine("x").putLine(0).getLine(0).pop().pop().at("hit").global("nt", "system").mark()
        .unicodeLine("dir").tupleMark().reduce().stop(),
  ),
  threat(
    "stacked pickles: the second one is malicious",
    NOT_ALLOWED,
    "os.system",
    "GLOBAL",
    (p) =>
      p.proto(2).emptyDict().stop().at("hit").global("os", "system").mark().stringLine("'id'")
        .tupleMark().reduce().stop(),
  ),
  threat(
    "BINBYTES8, BINUNICODE8, LONG4 and sets before the import",
    NOT_ALLOWED,
    "runpy._run_code",
    "STACK_GLOBAL",
    (p) =>
      p.proto(4).bytes8(new Uint8Array(3)).pop().binunicode8("é").pop().raw(
        0x8b,
        0x02,
        0,
        0,
        0,
        0x01,
        0x02,
      ).pop()
        .emptySet().mark().int(1).additems().pop().mark().int(2).frozenset().pop()
        .str("runpy").str("_run_code").at("hit").raw(0x93).stop(),
    "critical",
  ),
];

for (const c of threats) {
  Deno.test(`scanFile() reports ${c.callable} via ${c.opcode} at its offset: ${c.name}`, async () => {
    const { bytes, at } = c.build();
    const report = await scanBytes(bytes);
    assert.equal(report.verdict, "threat", describeFindings(report.findings));
    const hit = report.findings.find((f) => f.rule === c.rule && f.callable === c.callable);
    assert.ok(hit, `no ${c.rule} for ${c.callable}:\n${describeFindings(report.findings)}`);
    assert.equal(hit.opcode, c.opcode);
    assert.equal(hit.offset, at);
    if (c.severity) assert.equal(hit.severity, c.severity);
  });
}

interface BenignCase {
  name: string;
  bytes: () => Uint8Array;
}

const benign: BenignCase[] = [
  {
    name: "a numpy array pickled with protocol 2 (_reconstruct, dtype, BUILD, _codecs.encode)",
    bytes: numpyPickle,
  },
  {
    name: "plain data in protocol 0 (INT, LONG, FLOAT, STRING, DICT, LIST, TUPLE, POP_MARK, DUP)",
    bytes: () =>
      new PickleWriter().mark().intLine("01").intLine("42").longLine(
        "123456789012345678901234567890L",
      ).floatLine("1.5")
        .stringLine("'a\\'b\\x41'").listMark().mark().str("k").int(1).dictMark().dup().pop().mark()
        .popMark().tuple(2).stop().done(),
  },
  {
    name: "protocol 5 frames with memoized containers",
    bytes: () => {
      const body = new PickleWriter().emptyList().memoize().mark().int(1).binfloat(2.5).str("x")
        .appends().get(0).append().stop().done();
      return new PickleWriter().proto(5).frame(body.length).raw(body).done();
    },
  },
];

for (const c of benign) {
  Deno.test(`scanFile() accepts ${c.name}`, async () => {
    const report = await scanBytes(c.bytes());
    assert.equal(report.format, "pickle");
    assert.equal(report.verdict, "clean", describeFindings(report.findings));
  });
}

interface InvalidCase {
  name: string;
  bytes: () => Uint8Array;
  message: RegExp;
}

const invalid: InvalidCase[] = [
  {
    name: "a pickle without STOP",
    bytes: () => new PickleWriter().proto(2).emptyDict().done(),
    message: /ends at offset 3/,
  },
  {
    name: "an unknown opcode",
    bytes: () => new PickleWriter().proto(2).raw(0xff).stop().done(),
    message: /0xff at offset 2: unknown opcode/,
  },
  {
    name: "a stack underflow",
    bytes: () => new PickleWriter().proto(2).reduce().stop().done(),
    message: /REDUCE at offset 2: stack underflow/,
  },
  {
    name: "a memo entry never stored",
    bytes: () => new PickleWriter().proto(2).get(9).stop().done(),
    message: /BINGET at offset 2: memo entry 9 was never stored/,
  },
  {
    name: "protocol 6",
    bytes: () => new PickleWriter().proto(6).none().stop().done(),
    message: /protocol 6 is newer than 5/,
  },
  {
    name: "an opcode that straddles its frame",
    bytes: () => new PickleWriter().proto(4).frame(2).str("abcdef").stop().done(),
    message: /runs past the end of its frame/,
  },
  {
    name: "invalid UTF-8 in BINUNICODE",
    bytes: () => new PickleWriter().proto(2).raw(0x58, 2, 0, 0, 0, 0xc3, 0x28).stop().done(),
    message: /not valid UTF-8/,
  },
  {
    name: "a dict from an odd number of items",
    bytes: () => new PickleWriter().mark().int(1).dictMark().stop().done(),
    message: /odd number of items/,
  },
  {
    name: "an out-of-band buffer",
    bytes: () => new PickleWriter().proto(5).nextBuffer().stop().done(),
    message: /out-of-band buffers/,
  },
  {
    name: "a BINUNICODE8 length past every limit",
    bytes: () => new PickleWriter().proto(4).raw(0x8d, 0, 0, 0, 0, 0, 1, 0, 0).stop().done(),
    message: /over 1073741824|64-bit length too large|over 16777216/,
  },
  {
    name: "a POP with an empty stack",
    bytes: () => new PickleWriter().proto(2).pop().stop().done(),
    message: /POP at offset 2: stack underflow/,
  },
  {
    name: "a quoted STRING without quotes",
    bytes: () => new PickleWriter().stringLine("abc").stop().done(),
    message: /STRING argument is not quoted/,
  },
];

for (const c of invalid) {
  Deno.test(`scanFile() reports ${c.name} as invalid with where and why`, async () => {
    const report = await scanBytes(c.bytes());
    assert.equal(report.verdict, "invalid", describeFindings(report.findings));
    const finding = report.findings.find((f) => f.rule.endsWith(".invalid"));
    assert.ok(finding);
    assert.match(finding.message, c.message);
  });
}
