import assert, { equal, throws } from "node:assert/strict";
import { ConfigError, DEFAULT_CONFIG_YAML, loadConfig, parseConfig } from "./config.ts";

Deno.test("parseConfig() accepts the shipped defaults", () => {
  const config = parseConfig(DEFAULT_CONFIG_YAML, "config.yaml");
  equal(config.gateway.host, "127.0.0.1");
  equal(config.gateway.port, 8480);
  equal(config.supervisor.heartbeatMs, 1000);
});

const invalid: { name: string; yaml: string; mentions: string }[] = [
  { name: "an unknown key", yaml: "gateway:\n  hostt: x\n", mentions: '"gateway"' },
  { name: "an unknown section", yaml: "extra: {}\n", mentions: "extra" },
  { name: "a wrong type", yaml: "gateway:\n  port: eighty\n", mentions: '"gateway.port"' },
  { name: "an out-of-range port", yaml: "gateway:\n  port: 70000\n", mentions: '"gateway.port"' },
  { name: "a duplicate key", yaml: "gateway:\n  port: 1\n  port: 2\n", mentions: "not valid YAML" },
  { name: "broken YAML", yaml: "gateway: [\n", mentions: "not valid YAML" },
  { name: "a host with spaces", yaml: "gateway:\n  host: 'a b'\n", mentions: '"gateway.host"' },
  { name: "a non-mapping document", yaml: "- 1\n- 2\n", mentions: "(root)" },
  { name: "a YAML alias", yaml: "a: &x {}\ngateway: *x\n", mentions: "aliases" },
  {
    name: "a trusted key with neither key form",
    yaml: "quarantine:\n  trustedKeys:\n    - id: vendor\n",
    mentions: '"quarantine.trustedKeys.0": give exactly one of publicKey',
  },
  {
    name: "an audit retention below two segments",
    yaml: "audit:\n  segmentMaxBytes: 1048576\n  retainMaxBytes: 1048576\n",
    mentions: "retainMaxBytes must be 0 (keep all) or at least twice segmentMaxBytes",
  },
];
for (const c of invalid) {
  Deno.test(`parseConfig() refuses ${c.name} and names the field`, () => {
    throws(() => parseConfig(c.yaml, "config.yaml"), (err: unknown) => {
      assert(err instanceof ConfigError);
      equal(err.code, "CONFIG_INVALID");
      assert(err.message.includes(c.mentions), err.message);
      return true;
    });
  });
}

Deno.test("loadConfig() creates the documented defaults once and keeps user edits", async () => {
  const home = await Deno.makeTempDir();
  try {
    const first = await loadConfig(home);
    equal(first.created, true);
    const text = await Deno.readTextFile(`${home}/config.yaml`);
    assert(text.includes("# Listen address"));
    equal(((await Deno.stat(`${home}/config.yaml`)).mode ?? 0) & 0o777, 0o600);
    await Deno.writeTextFile(`${home}/config.yaml`, text.replace("port: 8480", "port: 9000"));
    const second = await loadConfig(home);
    equal(second.created, false);
    equal(second.config.gateway.port, 9000);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
