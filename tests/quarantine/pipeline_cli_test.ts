/**
 * `secai import`, `secai models` and `secai models revoke` as a user runs them, without a
 * running instance: the command starts the audit, policy, registry and quarantine controls
 * in its own process (holding the instance lock), runs the pipeline and stops them.
 */
import assert, { deepEqual, equal, match, ok } from "node:assert/strict";
import { secai } from "../_cli.ts";
import { benignSafetensors } from "./_system.ts";

Deno.test("secai import runs the pipeline in-process; secai models lists and revokes the model", async () => {
  const home = await Deno.makeTempDir({ prefix: "secai-cli-import-" });
  const dir = await Deno.makeTempDir({ prefix: "secai-cli-model-" });
  try {
    await Deno.writeFile(`${dir}/cli-model.safetensors`, benignSafetensors());
    const imported = await secai([
      "import",
      `${dir}/cli-model.safetensors`,
      "--home",
      home,
      "--json",
    ]);
    equal(imported.code, 0, imported.stderr);
    const result = JSON.parse(imported.stdout);
    equal(result.state, "promoted");
    match(result.modelId, /^m[0-9a-f]{24}$/);
    match(result.fsverity, /^[0-9a-f]{64}$/);

    const listed = await secai(["models", "--home", home, "--json"]);
    equal(listed.code, 0, listed.stderr);
    deepEqual(JSON.parse(listed.stdout).models.map((m: { id: string }) => m.id), [result.modelId]);
    const text = await secai(["models", "--home", home]);
    ok(text.stdout.includes(`fs-verity ${result.fsverity}`), text.stdout);

    const revoked = await secai([
      "models",
      "revoke",
      result.modelId,
      "--reason",
      "cli test",
      "--home",
      home,
    ]);
    equal(revoked.code, 0, revoked.stderr);
    match(revoked.stdout, /Revoked m[0-9a-f]{24} \(cli-model\.safetensors\): cli test/);
    deepEqual(JSON.parse((await secai(["models", "--home", home, "--json"])).stdout).models, []);
    const all = JSON.parse((await secai(["models", "--all", "--home", home, "--json"])).stdout);
    equal(all.models[0]?.revokedReason, "cli test");
    // The instance lock is released: nothing holds the state dir any more.
    await Deno.stat(`${home}/run/supervisor.pid`).then(
      () => assert.fail("the pid file was left behind"),
      (error) => ok(error instanceof Deno.errors.NotFound),
    );
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("secai import of a pickle polyglot exits 1 and prints the failure class and finding", async () => {
  const home = await Deno.makeTempDir({ prefix: "secai-cli-import-" });
  const dir = await Deno.makeTempDir({ prefix: "secai-cli-model-" });
  try {
    const pickle = Uint8Array.from([0x80, 0x04, 0x95, ...new Uint8Array(60)]);
    await Deno.writeFile(`${dir}/sneaky.safetensors`, pickle);
    const r = await secai(["import", `${dir}/sneaky.safetensors`, "--home", home]);
    equal(r.code, 1, r.stderr);
    match(
      r.stdout,
      /Not promoted: "sneaky\.safetensors" is rejected at format_gate: PICKLE_POLYGLOT/,
    );
    match(
      r.stdout,
      /\[high\] format_gate\.pickle_polyglot: The file begins like a pickle protocol 4 \(offset 0\)/,
    );
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
});

const REFUSED: { args: string[]; code: number; mentions: RegExp }[] = [
  {
    args: ["import", "https://huggingface.co/org/repo/resolve/main/model.gguf"],
    code: 1,
    mentions: /needs network egress through the airlock/,
  },
  { args: ["import"], code: 2, mentions: /Expected one FILE or URL/ },
  { args: ["import", "/nonexistent/model.gguf"], code: 1, mentions: /no such file/ },
  { args: ["models", "revoke", "m000000000000000000000000"], code: 2, mentions: /needs --reason/ },
  { args: ["models", "bogus"], code: 2, mentions: /Unknown models command "bogus"/ },
];

for (const c of REFUSED) {
  Deno.test(`secai ${c.args.join(" ")} exits ${c.code} with a clear message`, async () => {
    const r = await secai(c.args);
    equal(r.code, c.code, r.stderr);
    match(r.stderr, c.mentions);
  });
}
