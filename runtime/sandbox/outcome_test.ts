import assert from "node:assert/strict";
import { LAYERS_MARKER, SETUP_FAILED_MARKER } from "./_protocol.ts";
import { decideOutcome, type Observation, parseSandboxStart, stripMarkers } from "./outcome.ts";

const LAYERS = {
  rlimits: true,
  noNewPrivs: true,
  nonDumpable: true,
  capabilitiesDropped: true,
  landlockAbi: 7,
  seccomp: true,
};
const encoder = new TextEncoder();

function seen(overrides: Partial<Observation> = {}): Observation {
  return {
    exitCode: 0,
    signal: null,
    timedOut: false,
    cancelled: false,
    stdoutOverflow: false,
    stdout: encoder.encode('{"ok":true,"result":{"n":1}}\n'),
    start: { kind: "layers", layers: LAYERS },
    stderrTail: "",
    timeoutMs: 1000,
    ...overrides,
  };
}

const cases: { name: string; seen: Observation; status: string; code: string | null }[] = [
  { name: "a clean exit with a result is ok", seen: seen(), status: "ok", code: null },
  {
    name: "a cancel wins over a result",
    seen: seen({ cancelled: true, signal: "SIGKILL" }),
    status: "killed",
    code: "CANCELLED",
  },
  {
    name: "a timeout wins over a signal",
    seen: seen({ timedOut: true, signal: "SIGKILL" }),
    status: "timeout",
    code: "TIMEOUT",
  },
  {
    name: "too much stdout is invalid output",
    seen: seen({ stdoutOverflow: true, signal: "SIGKILL" }),
    status: "invalid_output",
    code: "OUTPUT_TOO_LARGE",
  },
  {
    name: "SIGXCPU is the CPU limit",
    seen: seen({ signal: "SIGXCPU", exitCode: 152 }),
    status: "killed",
    code: "CPU_LIMIT",
  },
  {
    name: "a V8 heap abort is out of memory",
    seen: seen({ signal: "SIGTRAP", stderrTail: "Fatal JavaScript out of memory: heap limit" }),
    status: "killed",
    code: "OUT_OF_MEMORY",
  },
  {
    name: "another signal is killed",
    seen: seen({ signal: "SIGSEGV" }),
    status: "killed",
    code: "KILLED",
  },
  {
    name: "a result without the sandbox's report is refused",
    seen: seen({ start: { kind: "none" } }),
    status: "failed",
    code: "SANDBOX_SETUP_FAILED",
  },
  {
    name: "a setup failure is reported as such",
    seen: seen({ exitCode: 125, start: { kind: "setup_failed", code: "X", message: "m" } }),
    status: "failed",
    code: "SANDBOX_SETUP_FAILED",
  },
  {
    name: "a job's error keeps its code",
    seen: seen({
      exitCode: 1,
      stdout: encoder.encode('{"ok":false,"error":{"code":"BAD_MAGIC","message":"m"}}'),
    }),
    status: "failed",
    code: "BAD_MAGIC",
  },
  {
    name: "a result with a nonzero exit fails",
    seen: seen({ exitCode: 3 }),
    status: "failed",
    code: "EXIT_NONZERO",
  },
  {
    name: "garbage with a nonzero exit fails",
    seen: seen({ exitCode: 1, stdout: encoder.encode("panic") }),
    status: "failed",
    code: "EXIT_NONZERO",
  },
  {
    name: "garbage with exit 0 is invalid output",
    seen: seen({ stdout: encoder.encode("not json") }),
    status: "invalid_output",
    code: "INVALID_OUTPUT",
  },
  {
    name: "an extra field is invalid output",
    seen: seen({ stdout: encoder.encode('{"ok":true,"result":1,"more":2}') }),
    status: "invalid_output",
    code: "INVALID_OUTPUT",
  },
  {
    name: "an error code out of pattern is invalid output",
    seen: seen({
      stdout: encoder.encode('{"ok":false,"error":{"code":"lower","message":"m"}}'),
    }),
    status: "invalid_output",
    code: "INVALID_OUTPUT",
  },
  {
    name: "empty stdout is invalid output",
    seen: seen({ stdout: new Uint8Array() }),
    status: "invalid_output",
    code: "INVALID_OUTPUT",
  },
];

for (const c of cases) {
  Deno.test(`decideOutcome() says ${c.name}`, () => {
    const outcome = decideOutcome(c.seen);
    assert.equal(outcome.status, c.status);
    assert.equal(outcome.error?.code ?? null, c.code);
    if (c.status !== "ok") assert.equal(outcome.result, null);
  });
}

Deno.test("parseSandboxStart() trusts only the first marker line", () => {
  const forged = JSON.stringify({ ...LAYERS, landlockAbi: 99 });
  const real = JSON.stringify({ ...LAYERS, seccomp: false });
  const head = `Warning: x\n${LAYERS_MARKER}${real}\n${LAYERS_MARKER}${forged}\n`;
  assert.deepEqual(parseSandboxStart(head), {
    kind: "layers",
    layers: { ...LAYERS, seccomp: false },
  });
});

Deno.test("parseSandboxStart() refuses a malformed report", () => {
  assert.deepEqual(parseSandboxStart(`${LAYERS_MARKER}{"rlimits":true}\n`), { kind: "none" });
  assert.deepEqual(parseSandboxStart(`${LAYERS_MARKER}not json\n`), { kind: "none" });
  assert.deepEqual(parseSandboxStart("nothing here\n"), { kind: "none" });
});

Deno.test("parseSandboxStart() reads a setup failure", () => {
  const line = `${SETUP_FAILED_MARKER}${JSON.stringify({ code: "CALL_FAILED", message: "m" })}`;
  assert.deepEqual(parseSandboxStart(line), {
    kind: "setup_failed",
    code: "CALL_FAILED",
    message: "m",
  });
});

Deno.test("stripMarkers() removes the sandbox's lines from stderr", () => {
  assert.equal(stripMarkers(`${LAYERS_MARKER}{}\njob says hi\n`), "job says hi\n");
});
