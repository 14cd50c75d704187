import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import {
  checkEvidence,
  type ControlMatrix,
  CONTROLS_DOC_PATH,
  EvidenceError,
  loadControlMatrix,
  MATRIX_PATH,
  parseControlMatrix,
  renderControlsMarkdown,
  renderControlsText,
} from "./evidence.ts";
import type { TestCaseResult } from "./junit.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** yaml reads these two variables when it loads; nothing else is needed. */
const YAML_ENV = ["LOG_TOKENS", "LOG_STREAM"];

/** Every milestone planned, plus the given entries (which replace milestones by id). */
function matrixInput(...entries: Record<string, unknown>[]): Record<string, unknown> {
  const byId = new Map<string, Record<string, unknown>>();
  for (let n = 0; n < 54; n++) {
    byId.set(`M${n}`, {
      id: `M${n}`,
      title: `Milestone ${n}`,
      spec: ["00-overview.md"],
      status: "planned",
    });
  }
  for (const e of entries) byId.set(String(e.id), e);
  return { version: 1, controls: [...byId.values()] };
}

const AUDIT = {
  id: "M13",
  title: "Tamper-evident audit logs",
  spec: ["11-audit.md"],
  status: "partial",
  note: "No Merkle tree yet",
  proofs: [{ file: "workers/audit/store_test.ts", test: "AuditStore appends durably" }],
};
const SUPERVISOR = {
  id: "RT1",
  title: "Runtime supervisor",
  spec: ["ARCHITECTURE.md", "10-runtime-gateway.md §6"],
  status: "working",
  proofs: [
    { file: "tests/supervisor_test.ts", test: "a worker gets NotCapable" },
    { file: "tests/supervisor_test.ts", test: "a hung worker is restarted" },
  ],
};

function parse(input: unknown): ControlMatrix {
  return parseControlMatrix(stringify(input), "controls.yaml");
}

Deno.test({
  name: "parseControlMatrix() accepts planned, partial and working controls",
  permissions: { env: YAML_ENV },
  fn() {
    const matrix = parse(matrixInput(AUDIT, SUPERVISOR));
    equal(matrix.controls.length, 55);
    deepEqual(matrix.controls.find((c) => c.id === "M0")?.proofs, []);
    equal(matrix.controls.find((c) => c.id === "RT1")?.proofs.length, 2);
  },
});

const brokenMatrices: { name: string; input: unknown; text?: string; message: string }[] = [
  {
    name: "a missing milestone",
    input: (() => {
      const m = matrixInput();
      m.controls = (m.controls as { id: string }[]).filter((c) => c.id !== "M7" && c.id !== "M53");
      return m;
    })(),
    message: 'at "controls": every milestone of spec 00 must be listed; missing M7, M53',
  },
  {
    name: "a milestone spec 00 does not have",
    input: matrixInput({ id: "M54", title: "x", spec: ["00-overview.md"], status: "planned" }),
    message: 'at "controls": spec 00 has no milestone M54',
  },
  {
    name: "a control listed twice",
    input: (() => {
      const m = matrixInput();
      (m.controls as unknown[]).push({
        id: "M3",
        title: "again",
        spec: ["13-quarantine-registry.md"],
        status: "planned",
      });
      return m;
    })(),
    message: 'at "controls.M3.id": "M3" is listed twice',
  },
  {
    name: "a working control without proofs",
    input: matrixInput({ ...SUPERVISOR, proofs: [] }),
    message: 'at "controls.RT1.proofs": a working control needs at least one proof',
  },
  {
    name: "a planned control with proofs",
    input: matrixInput({ ...AUDIT, status: "planned" }),
    message: 'at "controls.M13.proofs": a planned control claims nothing and lists no proofs',
  },
  {
    name: "a partial control without a note",
    input: matrixInput({ ...AUDIT, note: undefined }),
    message: 'at "controls.M13.note": a partial control says in a note what is missing',
  },
  {
    name: "an unknown status",
    input: matrixInput({ ...AUDIT, status: "implemented" }),
    message:
      "at \"controls.M13.status\": Invalid enum value. Expected 'planned' | 'partial' | 'working', received 'implemented'",
  },
  {
    name: "an unknown field",
    input: matrixInput({ ...AUDIT, verified: true }),
    message: "at \"controls.M13\": Unrecognized key(s) in object: 'verified'",
  },
  {
    name: "an unknown spec file",
    input: matrixInput({ ...AUDIT, spec: ["99-magic.md"] }),
    message:
      'at "controls.M13.spec.0": expected a spec file (00-overview.md, 10-runtime-gateway.md, 11-audit.md, 12-policy-tool-firewall.md, 13-quarantine-registry.md, 14-inference-ui.md, 20-agent.md, 21-mcp-firewall.md, 22-airlock-search-pii.md, 30-enforcement.md, 31-vault-auth-ops.md, 32-supply-chain-image.md, ARCHITECTURE.md), optionally followed by " §<section>"',
  },
  {
    name: "a proof outside the project's test files",
    input: matrixInput({ ...AUDIT, proofs: [{ file: "tests/../../etc/x_test.ts", test: "t" }] }),
    message:
      'at "controls.M13.proofs.0.file": expected a project test file such as tests/x_test.ts',
  },
  {
    name: "a proof that is no test file",
    input: matrixInput({ ...AUDIT, proofs: [{ file: "workers/audit/store.ts", test: "t" }] }),
    message:
      'at "controls.M13.proofs.0.file": expected a project test file such as tests/x_test.ts',
  },
  {
    name: "a proof listed twice",
    input: matrixInput({ ...AUDIT, proofs: [{ ...AUDIT.proofs[0] }, { ...AUDIT.proofs[0] }] }),
    message: 'at "controls.M13.proofs.1": duplicate proof',
  },
  {
    name: "an id of unknown form",
    input: matrixInput({ ...AUDIT, id: "X1" }),
    message: 'at "controls.X1.id": expected M<n>, R<n> or RT<n>',
  },
  {
    name: "an id that is not even a name",
    input: matrixInput({ ...AUDIT, id: "m 13" }),
    message: 'at "controls.54.id": expected M<n>, R<n> or RT<n>',
  },
  {
    name: "an unknown version",
    input: { ...matrixInput(), version: 2 },
    message: 'at "version": Invalid literal value, expected 1',
  },
  {
    name: "a duplicate YAML key",
    input: null,
    text: "version: 1\nversion: 1\ncontrols: []\n",
    message: "is not valid YAML: Map keys must be unique",
  },
  {
    name: "YAML aliases",
    input: null,
    text: "version: &v 1\ncontrols: [*v]\n",
    message: "is not valid YAML: Alias resolution is disabled",
  },
  {
    name: "a document that is not a mapping",
    input: null,
    text: "- M0\n",
    message: 'at "(root)": Expected object, received array',
  },
  {
    name: "an oversized file",
    input: null,
    text: `# ${"x".repeat(256 * 1024)}\n`,
    message: "is larger than 262144 bytes",
  },
];

for (const c of brokenMatrices) {
  Deno.test({
    name: `parseControlMatrix() refuses ${c.name}`,
    permissions: { env: YAML_ENV },
    fn() {
      const text = c.text ?? stringify(c.input);
      throws(() => parseControlMatrix(text, "controls.yaml"), (err: unknown) => {
        equal(err instanceof EvidenceError, true);
        equal((err as EvidenceError).code, "EVIDENCE_INVALID");
        const message = (err as EvidenceError).message;
        const expected = c.message.startsWith("at ")
          ? `Control matrix "controls.yaml" is invalid ${c.message}`
          : `Control matrix "controls.yaml" ${c.message}`;
        ok(message.startsWith(expected), `${message}\n  does not start with\n${expected}`);
        return true;
      });
    },
  });
}

const PASSED: TestCaseResult[] = [
  { file: "workers/audit/store_test.ts", name: "AuditStore appends durably", outcome: "passed" },
  { file: "tests/supervisor_test.ts", name: "a worker gets NotCapable", outcome: "passed" },
  { file: "tests/supervisor_test.ts", name: "a hung worker is restarted", outcome: "passed" },
];

function withOutcome(
  cases: TestCaseResult[],
  name: string,
  outcome: TestCaseResult["outcome"] | "absent",
): TestCaseResult[] {
  return outcome === "absent"
    ? cases.filter((c) => c.name !== name)
    : cases.map((c) => (c.name === name ? { ...c, outcome } : c));
}

const runs: { name: string; cases: TestCaseResult[]; expected: string[] }[] = [
  { name: "accepts a report in which every proof passed", cases: PASSED, expected: [] },
  {
    name: "refuses a working control whose test failed",
    cases: withOutcome(PASSED, "a hung worker is restarted", "failed"),
    expected: [
      'Control RT1 "Runtime supervisor" is working, but its test "a hung worker is restarted" in tests/supervisor_test.ts failed',
    ],
  },
  {
    name: "refuses a working control whose test was skipped",
    cases: withOutcome(PASSED, "a worker gets NotCapable", "skipped"),
    expected: [
      'Control RT1 "Runtime supervisor" is working, but its test "a worker gets NotCapable" in tests/supervisor_test.ts was skipped',
    ],
  },
  {
    name: "refuses a partial control whose test no longer exists",
    cases: [
      ...withOutcome(PASSED, "AuditStore appends durably", "absent"),
      { file: "workers/audit/store_test.ts", name: "AuditStore appends", outcome: "passed" },
    ],
    expected: [
      'Control M13 "Tamper-evident audit logs" is partial, but its test "AuditStore appends durably" in workers/audit/store_test.ts does not exist (renamed or removed?)',
    ],
  },
  {
    name: "refuses a claim whose test file did not run",
    cases: withOutcome(PASSED, "AuditStore appends durably", "absent"),
    expected: [
      'Control M13 "Tamper-evident audit logs" is partial, but its test "AuditStore appends durably" in workers/audit/store_test.ts did not run (no test of that file is in the report)',
    ],
  },
  {
    name: "refuses a table-driven test that failed in one of its runs",
    cases: [...PASSED, { ...(PASSED[1] as TestCaseResult), outcome: "failed" }],
    expected: [
      'Control RT1 "Runtime supervisor" is working, but its test "a worker gets NotCapable" in tests/supervisor_test.ts failed',
    ],
  },
  {
    name: "accepts a test that passed in one run and was skipped in another",
    cases: [...PASSED, { ...(PASSED[0] as TestCaseResult), outcome: "skipped" }],
    expected: [],
  },
  {
    name: "refuses every claim for an empty report",
    cases: [],
    expected: [
      'Control M13 "Tamper-evident audit logs" is partial, but its test "AuditStore appends durably" in workers/audit/store_test.ts did not run (no test of that file is in the report)',
      'Control RT1 "Runtime supervisor" is working, but its test "a worker gets NotCapable" in tests/supervisor_test.ts did not run (no test of that file is in the report)',
      'Control RT1 "Runtime supervisor" is working, but its test "a hung worker is restarted" in tests/supervisor_test.ts did not run (no test of that file is in the report)',
    ],
  },
];

for (const c of runs) {
  Deno.test({
    name: `checkEvidence() ${c.name}`,
    permissions: { env: YAML_ENV },
    fn() {
      const matrix = parse(matrixInput(AUDIT, SUPERVISOR));
      deepEqual(checkEvidence(matrix, { cases: c.cases }).map((p) => p.message), c.expected);
    },
  });
}

Deno.test({
  name: "checkEvidence() reports the control, file, test and outcome of each problem",
  permissions: { env: YAML_ENV },
  fn() {
    const matrix = parse(matrixInput(AUDIT, SUPERVISOR));
    const [problem] = checkEvidence(matrix, {
      cases: withOutcome(PASSED, "a hung worker is restarted", "skipped"),
    });
    deepEqual({ ...problem, message: undefined }, {
      control: "RT1",
      file: "tests/supervisor_test.ts",
      test: "a hung worker is restarted",
      outcome: "skipped",
      message: undefined,
    });
  },
});

Deno.test({
  name: "renderControlsText() prints one line per control and its proofs",
  permissions: { env: YAML_ENV },
  fn() {
    const text = renderControlsText(parse(matrixInput(AUDIT, SUPERVISOR)));
    const lines = text.split("\n");
    equal(
      lines[0],
      "Controls: 1 working, 1 partial, 53 planned (55 controls); source policy/controls.yaml",
    );
    ok(lines.includes("M0   planned  Milestone 0"));
    ok(lines.includes("M13  partial  Tamper-evident audit logs"));
    ok(
      lines.includes(
        "              proof: workers/audit/store_test.ts: AuditStore appends durably",
      ),
    );
    ok(lines.includes("RT1  working  Runtime supervisor"));
  },
});

Deno.test({
  name: "renderControlsMarkdown() escapes Markdown in titles, notes and test names",
  permissions: { env: YAML_ENV },
  fn() {
    const md = renderControlsMarkdown(parse(matrixInput({
      ...AUDIT,
      title: "Audit | *bold* <b>",
      note: "Use `x` and [link](y)",
      proofs: [{ file: "tests/a_test.ts", test: "a_b <script> | c" }],
    })));
    ok(md.includes("| M13 | Audit \\| \\*bold\\* \\<b\\> "), md);
    ok(md.includes("Use \\`x\\` and \\[link\\](y)"), md);
    ok(md.includes("- `tests/a_test.ts`: a\\_b \\<script\\> \\| c"), md);
  },
});

Deno.test({
  name: "the shipped matrix is valid and names only existing test files",
  permissions: { read: [ROOT], env: YAML_ENV },
  async fn() {
    const matrix = await loadControlMatrix(`${ROOT}${MATRIX_PATH}`);
    const missing: string[] = [];
    for (const control of matrix.controls) {
      for (const proof of control.proofs) {
        const text = await Deno.readTextFile(`${ROOT}${proof.file}`).catch((err) => {
          if (err instanceof Deno.errors.NotFound) return null;
          throw err;
        });
        if (text === null) missing.push(`${control.id}: ${proof.file}`);
      }
    }
    deepEqual(missing, []);
  },
});

Deno.test({
  name: "docs/CONTROLS.md is generated from policy/controls.yaml and up to date",
  permissions: { read: [ROOT], env: YAML_ENV },
  async fn() {
    const matrix = await loadControlMatrix(`${ROOT}${MATRIX_PATH}`);
    const committed = await Deno.readTextFile(`${ROOT}${CONTROLS_DOC_PATH}`);
    ok(
      committed === renderControlsMarkdown(matrix),
      `${CONTROLS_DOC_PATH} is stale: run \`tools/deno task controls:render\``,
    );
  },
});

Deno.test({
  name: "loadControlMatrix() refuses a missing file with EVIDENCE_UNREADABLE",
  permissions: { read: true, env: YAML_ENV },
  async fn() {
    const path = `${ROOT}policy/no-such-controls.yaml`;
    const err = await loadControlMatrix(path).then(() => null, (e: unknown) => e);
    equal(err instanceof EvidenceError, true);
    equal((err as EvidenceError).code, "EVIDENCE_UNREADABLE");
    equal((err as EvidenceError).message, `Cannot read control matrix "${path}"`);
  },
});
