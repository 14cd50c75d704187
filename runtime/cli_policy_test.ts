import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { UsageError } from "./cli_args.ts";
import { policyCommand, type PolicyCommandOptions } from "./cli_policy.ts";

const DEFAULT_POLICY = await Deno.readTextFile(
  new URL("../policy/defaults/policy.yaml", import.meta.url),
);

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs the command against a temp state dir (no overrides, an empty workspace). */
async function run(argv: string[], home: string, extra: PolicyCommandOptions = {}): Promise<Run> {
  let out = "";
  let err = "";
  const code = await policyCommand(argv, {
    write: (t) => {
      out += t;
    },
    writeError: (t) => {
      err += `${t}\n`;
    },
    env: { get: (k: string) => (k === "SECAI_HOME" ? home : undefined) },
    ...extra,
  });
  return { code, out, err };
}

async function withHome(fn: (home: string) => Promise<void>): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "secai-cli-policy-" });
  try {
    await Deno.mkdir(`${home}/policy`);
    await Deno.mkdir(`${home}/vault/user_docs`, { recursive: true });
    await Deno.writeTextFile(`${home}/vault/user_docs/a.txt`, "a");
    await fn(home);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

function streamOf(text: string): ReadableStream<Uint8Array> {
  return new Blob([text]).stream();
}

Deno.test("secai policy eval --input prints the decision and exits 1 on deny", async () => {
  await withHome(async (home) => {
    const r = await run(["eval", "egress", "--input", '{"url":"https://0x7f.1/"}'], home);
    equal(r.code, 1);
    match(r.out, /^deny\tegress\.url\.ip_literal\t/);
  });
});

Deno.test("secai policy eval --input exits 0 on allow and resolves paths in the workspace", async () => {
  await withHome(async (home) => {
    const r = await run(
      ["eval", "path_access", "--input", '{"path":"user_docs/a.txt","op":"read"}', "--json"],
      home,
    );
    equal(r.code, 0);
    const d = JSON.parse(r.out);
    equal(d.decision, "allow");
    equal(d.rule, "agent.workspace.readable");
  });
});

Deno.test("secai policy eval --workspace resolves against another folder", async () => {
  await withHome(async (home) => {
    const r = await run(
      [
        "eval",
        "path_access",
        "--input",
        '{"path":"user_docs/a.txt","op":"read"}',
        "--workspace",
        `${home}/nowhere`,
      ],
      home,
    );
    equal(r.code, 1);
    match(r.out, /path\.fs\.no_workspace/);
  });
});

Deno.test("secai policy eval --jsonl decides thousands of lines in order, in one process", async () => {
  await withHome(async (home) => {
    const lines: string[] = [];
    for (let i = 0; i < 5000; i++) {
      lines.push(
        JSON.stringify({
          url: i % 2 ? `https://10.0.0.${i % 250}/` : `https://huggingface.co/${i}`,
        }),
      );
    }
    lines.splice(10, 0, "not json", "", "   ");
    await Deno.writeTextFile(`${home}/in.jsonl`, `${lines.join("\n")}\n`);
    const r = await run(["eval", "egress", "--jsonl", `${home}/in.jsonl`, "--json"], home);
    equal(r.code, 0);
    const out = r.out.trimEnd().split("\n").map((l) => JSON.parse(l));
    equal(out.length, 5001, "one decision per non-blank line");
    equal(out[0].rule, "defaults.network.egress_deny");
    equal(out[1].rule, "egress.url.ip_literal");
    equal(out[10].rule, "input.invalid");
    match(out[10].reasons[0], /Line 11 is not JSON/);
    equal(out[11].rule, "defaults.network.egress_deny", "blank lines produce nothing");
    ok(out.every((d) => d.decision === "deny"));
  });
});

Deno.test("secai policy eval --jsonl - reads standard input", async () => {
  await withHome(async (home) => {
    const r = await run(["eval", "sensitivity", "--jsonl", "-"], home, {
      stdin: streamOf('{"level":"low","ceiling":"high"}\n{"level":"high","ceiling":"low"}'),
    });
    equal(r.code, 0);
    deepEqual(r.out.trimEnd().split("\n").map((l) => l.split("\t")[1]), [
      "sensitivity.ok",
      "sensitivity.exceeded",
    ]);
  });
});

Deno.test("secai policy eval --jsonl denies an over-long line in its place", async () => {
  await withHome(async (home) => {
    const r = await run(["eval", "egress", "--jsonl", "-"], home, {
      stdin: streamOf(
        `{"url":"https://a.com/"}\n${"x".repeat(1024 * 1024 + 10)}\n{"url":"http://a.com/"}\n`,
      ),
    });
    deepEqual(r.out.trimEnd().split("\n").map((l) => l.split("\t")[1]), [
      "defaults.network.egress_deny",
      "input.too_long",
      "egress.url.scheme",
    ]);
  });
});

const usage: { argv: string[]; message: RegExp }[] = [
  { argv: ["eval", "teleport", "--input", "{}"], message: /Unknown domain "teleport"/ },
  { argv: ["eval", "egress"], message: /exactly one of --input/ },
  { argv: ["eval", "egress", "--input", "{}", "--jsonl", "-"], message: /exactly one of --input/ },
  { argv: ["eval", "egress", "--input", "[1]"], message: /JSON object/ },
  { argv: ["eval", "egress", "--input", "{"], message: /not JSON/ },
  { argv: ["eval", "egress", "--jsonl", "/nonexistent/x.jsonl"], message: /No such file/ },
  { argv: ["eval", "egress", "--input", "{}", "--candidate", "x"], message: /does not apply/ },
  { argv: ["whatif"], message: /--candidate/ },
  { argv: ["bogus"], message: /Unknown policy command/ },
];
for (const u of usage) {
  Deno.test(`secai policy ${u.argv.join(" ")} is a usage error`, async () => {
    await withHome(async (home) => {
      await rejects(
        run(u.argv, home),
        (err: unknown) => err instanceof UsageError && u.message.test(err.message),
      );
    });
  });
}

Deno.test("secai policy eval refuses an invalid override, naming the field", async () => {
  await withHome(async (home) => {
    await Deno.writeTextFile(
      `${home}/policy/policy.yaml`,
      DEFAULT_POLICY.replace("default: deny", "default: allow"),
      { mode: 0o600 },
    );
    const r = await run(["eval", "egress", "--input", '{"url":"https://a.com/"}'], home);
    equal(r.code, 1);
    match(r.err, /Policy "policy\.yaml" is invalid at "tools\.default"/);
  });
});

Deno.test("secai policy test runs the shipped suites and passes", async () => {
  await withHome(async (home) => {
    const r = await run(["test"], home);
    equal(r.code, 0, r.out);
    match(r.out, /^\d+ passed, 0 failed$/m);
  });
});

Deno.test("secai policy test fails and names a case that decides otherwise", async () => {
  await withHome(async (home) => {
    await Deno.mkdir(`${home}/suites`);
    await Deno.writeTextFile(
      `${home}/suites/x.yaml`,
      [
        "name: wrong on purpose",
        "cases:",
        "  - { name: expects an allow, domain: egress, input: { url: 'https://a.com/' }, expect: { decision: allow } }",
      ].join("\n"),
    );
    const r = await run(["test", "--dir", `${home}/suites`], home);
    equal(r.code, 1);
    match(
      r.out,
      /FAIL wrong on purpose › expects an allow\n {2}expected allow, got deny \(defaults\.network\.egress_deny\)/,
    );
    match(r.out, /0 passed, 1 failed/);
  });
});

Deno.test("secai policy explain shows the deciding rule, the rules passed and the facts", async () => {
  await withHome(async (home) => {
    const r = await run(
      ["explain", "egress", "--input", '{"url":"https://huggingface.co/x"}'],
      home,
    );
    equal(r.code, 0);
    match(r.out, /Decision: {2}deny/);
    match(r.out, /Rule: {6}defaults\.network\.egress_deny/);
    match(r.out, /Passed: {4}egress\.url/);
    match(r.out, /Facts: {5}host="huggingface\.co", path="\/x"/);
    match(r.out, /Files: {5}policy\.yaml: default/);
  });
});

/** A log as the policy control writes it (one entry per decision, seq from 0). */
async function writeLog(
  home: string,
  decisions: { domain: string; input: Record<string, unknown> }[],
) {
  const lines: string[] = [];
  for (const [seq, d] of decisions.entries()) {
    const r = await run(["eval", d.domain, "--input", JSON.stringify(d.input), "--json"], home);
    const decision = JSON.parse(r.out);
    lines.push(JSON.stringify({
      seq,
      ts: "2026-01-01T00:00:00.000Z",
      control: "policy",
      type: "policy.decision",
      actor: "gateway",
      subject: d.domain,
      decision: decision.decision,
      evidence: decision.evidence,
      data: {
        rule: decision.rule,
        policy_version: decision.policy_version,
        input: d.input,
        redacted: [],
      },
    }));
  }
  lines.push('{"head":{"v":1}}', "torn {");
  await Deno.writeTextFile(`${home}/log.jsonl`, `${lines.join("\n")}\n`);
}

Deno.test("secai policy explain --seq explains a logged decision and re-decides it", async () => {
  await withHome(async (home) => {
    await writeLog(home, [{ domain: "egress", input: { url: "https://huggingface.co/" } }]);
    const r = await run(["explain", "--seq", "0", "--log", `${home}/log.jsonl`], home);
    equal(r.code, 0);
    match(r.out, /Logged decision #0 \(egress\): deny by defaults\.network\.egress_deny/);
    match(r.out, /\(same outcome\)/);
    const missing = await run(["explain", "--seq", "7", "--log", `${home}/log.jsonl`], home);
    equal(missing.code, 1);
  });
});

Deno.test("secai policy whatif lists the logged decisions a candidate would change", async () => {
  await withHome(async (home) => {
    await writeLog(home, [
      { domain: "egress", input: { url: "https://huggingface.co/" } },
      { domain: "egress", input: { url: "https://127.0.0.1/" } },
      { domain: "path_access", input: { path: "user_docs/a.txt", op: "read" } },
    ]);
    await Deno.mkdir(`${home}/candidate`);
    await Deno.writeTextFile(
      `${home}/candidate/policy.yaml`,
      DEFAULT_POLICY.replace("enabled: false", "enabled: true"),
      { mode: 0o600 },
    );
    const r = await run([
      "whatif",
      "--candidate",
      `${home}/candidate`,
      "--log",
      `${home}/log.jsonl`,
      "--json",
    ], home);
    equal(r.code, 0, r.err);
    const report = JSON.parse(r.out);
    equal(report.replayed, 3);
    deepEqual(
      report.changed.map((
        c: { seq: number; after: { decision: string } },
      ) => [c.seq, c.after.decision]),
      [[0, "allow"]],
    );
    const text = await run([
      "whatif",
      "--candidate",
      `${home}/candidate`,
      "--log",
      `${home}/log.jsonl`,
    ], home);
    match(
      text.out,
      /1 would change \(1 change allow\/deny\/ask\):\n {2}#0 egress: deny \(defaults\.network\.egress_deny\) → allow/,
    );
    await Deno.writeTextFile(`${home}/candidate/policy.yaml`, "version: 1\n", { mode: 0o600 });
    const bad = await run([
      "whatif",
      "--candidate",
      `${home}/candidate`,
      "--log",
      `${home}/log.jsonl`,
    ], home);
    equal(bad.code, 1);
    match(bad.err, /is invalid at "defaults"/);
  });
});
