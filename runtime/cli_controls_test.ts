import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { controlsCommand } from "./cli_controls.ts";
import { UsageError } from "./cli_args.ts";

const PERMISSIONS: Deno.PermissionOptions = {
  read: [new URL("../policy/", import.meta.url)],
  env: ["LOG_TOKENS", "LOG_STREAM"],
};

function capture(): {
  out: string[];
  err: string[];
  write: (t: string) => void;
  writeError: (t: string) => void;
} {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, write: (t) => out.push(t), writeError: (t) => err.push(t) };
}

Deno.test({
  name: "secai controls prints every control with its status and exits 0",
  permissions: PERMISSIONS,
  async fn() {
    const io = capture();
    equal(await controlsCommand([], io), 0);
    deepEqual(io.err, []);
    const text = io.out.join("\n");
    ok(text.startsWith("Controls: "), text);
    ok(/^M0 +planned +Threat model, dataflow, invariants$/m.test(text), text);
    ok(/^M53 +planned +Harder CI gates for release branches$/m.test(text), text);
    ok(/^RT1 +working +Runtime supervisor/m.test(text), text);
    ok(text.includes("proof: tests/supervisor_test.ts: "));
  },
});

Deno.test({
  name: "secai controls --json prints the validated matrix",
  permissions: PERMISSIONS,
  async fn() {
    const io = capture();
    equal(await controlsCommand(["--json"], io), 0);
    const matrix = JSON.parse(io.out.join("\n"));
    equal(matrix.version, 1);
    const ids = matrix.controls.map((c: { id: string }) => c.id);
    for (let n = 0; n < 54; n++) ok(ids.includes(`M${n}`), `M${n} missing`);
  },
});

const usageCases: { args: string[]; message: string }[] = [
  { args: ["--yaml"], message: 'Unknown option "--yaml"' },
  { args: ["--json=1"], message: 'Option "--json" takes no value' },
  { args: ["M13"], message: 'Unexpected argument "M13"' },
];

for (const c of usageCases) {
  Deno.test(`secai controls ${c.args.join(" ")} is a usage error`, async () => {
    await rejects(controlsCommand(c.args, capture()), (err: unknown) => {
      equal(err instanceof UsageError, true);
      equal((err as UsageError).code, "USAGE");
      equal((err as UsageError).message, c.message);
      return true;
    });
  });
}

Deno.test({
  name: "secai controls exits 1 naming the file when the matrix cannot be read",
  permissions: { read: true },
  async fn() {
    const io = capture();
    equal(await controlsCommand([], { ...io, matrixPath: "/nonexistent/controls.yaml" }), 1);
    deepEqual(io.err, ['error: Cannot read control matrix "/nonexistent/controls.yaml"']);
    deepEqual(io.out, []);
  },
});
