/**
 * `secai policy …`: the policy engine in this process, no running system needed.
 *
 * - `eval <domain> (--input JSON | --jsonl FILE|-)`: one decision per input, in order. The
 *   batch form streams any number of JSON lines through the pure evaluator in one process.
 * - `test [--dir DIR]`: runs the policy tests as data (`policy/tests/*.yaml`).
 * - `explain <domain> --input JSON` or `explain --seq N`: why a decision came out as it did —
 *   the deciding rule, the rules that passed, the facts, the policy files; for a logged
 *   decision also whether the policy in force still decides the same.
 * - `whatif --candidate DIR`: replays the logged decisions under a candidate policy folder
 *   (either file; the other is the one in force) and lists every decision that would change.
 *
 * The policy in force is the shipped `policy/defaults/` with the state dir's `policy/`
 * overrides (`--policy DIR` names another override folder); path decisions resolve against
 * `--workspace DIR` (default: the agent workspace `<state dir>/vault`). Logged decisions are
 * read from the audit log's JSON lines (`--log FILE|DIR|-`; default: the audit control's
 * segments, `<state dir>/audit/segments/*.jsonl`).
 * @module
 */
import { type CompiledPolicy, compilePolicy, type PolicySource } from "../policy/compile.ts";
import {
  type Decision,
  isPolicyDomain,
  POLICY_DOMAINS,
  type PolicyDomain,
} from "../policy/decision.ts";
import { PolicyEngine } from "../policy/engine.ts";
import { PolicyLoadError } from "../policy/errors.ts";
import {
  DEFAULTS_DIR,
  type PolicyDirs,
  readPolicyFile,
  readPolicySources,
} from "../policy/loader.ts";
import { fromAuditEntry, type LoggedDecision, whatIf } from "../policy/whatif.ts";
import { parseArgs, UsageError } from "./cli_args.ts";
import { resolveHome } from "./home.ts";
import { print, printError } from "./log.ts";
import { loadPolicySuites, POLICY_TESTS_DIR, runPolicySuite } from "./policy_cases.ts";

/** Longest input line of `eval --jsonl`. */
export const MAX_INPUT_LINE = 1024 * 1024;

/** Where the CLI writes; tests redirect it. */
export interface PolicyCommandOptions {
  /** Receives stdout chunks (already newline-terminated); defaults to stdout. */
  write?: (text: string) => void | Promise<void>;
  /** Receives error lines; defaults to `printError`. */
  writeError?: (text: string) => void;
  /** Replaces stdin for `-`. */
  stdin?: ReadableStream<Uint8Array>;
  /** Environment for the state dir lookup. */
  env?: { get(key: string): string | undefined };
}

const USAGE = `Usage:
  secai policy eval <domain> (--input JSON | --jsonl FILE|-) [--workspace DIR] [--policy DIR] [--home DIR] [--json]
  secai policy test [--dir DIR] [--policy DIR] [--home DIR] [--json]
  secai policy explain <domain> --input JSON [--workspace DIR] [--policy DIR] [--home DIR] [--json]
  secai policy explain --seq N [--log FILE|DIR|-] [--workspace DIR] [--policy DIR] [--home DIR] [--json]
  secai policy whatif --candidate DIR [--log FILE|DIR|-] [--limit N] [--workspace DIR] [--policy DIR] [--home DIR] [--json]
Domains: ${POLICY_DOMAINS.join(", ")}`;

const encoder = new TextEncoder();

/** The reader of our output went away (`… | head`): stop quietly, as Unix tools do. */
class OutputClosedError extends Error {
  /** Always OUTPUT_CLOSED. */
  readonly code = "OUTPUT_CLOSED";
  constructor(options: ErrorOptions) {
    super("The output was closed", options);
    this.name = "OutputClosedError";
  }
}

async function writeStdout(text: string): Promise<void> {
  const bytes = encoder.encode(text);
  let written = 0;
  try {
    while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
  } catch (err) {
    if (err instanceof Deno.errors.BrokenPipe) throw new OutputClosedError({ cause: err });
    throw err;
  }
}

interface Context {
  flags: Record<string, string | boolean>;
  positional: string[];
  write: (text: string) => void | Promise<void>;
  writeError: (text: string) => void;
  stdin: () => ReadableStream<Uint8Array>;
  home: string;
}

/**
 * Runs `secai policy <sub-command>`.
 * @param argv the arguments after `policy`
 * @param options output redirection for tests
 * @returns the exit code: 0 ok (eval: allowed), 1 denied / failing test / invalid policy
 * @throws {UsageError} on a malformed command line (exit 2)
 * @example
 * ```ts
 * await policyCommand(["eval", "egress", "--input", '{"url":"https://0x7f.1/"}']); // 1
 * ```
 */
export async function policyCommand(
  argv: string[],
  options: PolicyCommandOptions = {},
): Promise<number> {
  const [sub, ...rest] = argv;
  const { flags, positional } = parseArgs(rest, {
    input: "string",
    jsonl: "string",
    workspace: "string",
    policy: "string",
    home: "string",
    json: "boolean",
    dir: "string",
    seq: "string",
    log: "string",
    candidate: "string",
    limit: "string",
  });
  const env = options.env ?? Deno.env;
  const ctx: Context = {
    flags,
    positional,
    write: options.write ?? writeStdout,
    writeError: options.writeError ?? printError,
    stdin: () => options.stdin ?? Deno.stdin.readable,
    home: resolveHome(flags.home as string | undefined, env),
  };
  try {
    switch (sub) {
      case "eval":
        return await evalCommand(ctx);
      case "test":
        return await testCommand(ctx);
      case "explain":
        return await explainCommand(ctx);
      case "whatif":
        return await whatifCommand(ctx);
      case undefined:
      case "help":
        print(USAGE);
        return sub === undefined ? 2 : 0;
      default:
        throw new UsageError(`Unknown policy command "${sub}"\n${USAGE}`);
    }
  } catch (err) {
    if (err instanceof PolicyLoadError) {
      ctx.writeError(`error: ${err.message}`);
      return 1;
    }
    if (err instanceof OutputClosedError) return 0;
    throw err;
  }
}

function allowFlags(ctx: Context, allowed: readonly string[]): void {
  for (const name of Object.keys(ctx.flags)) {
    if (!allowed.includes(name)) throw new UsageError(`Option "--${name}" does not apply here`);
  }
}

function policyDirs(ctx: Context): PolicyDirs {
  return {
    defaultsDir: DEFAULTS_DIR,
    overrideDir: typeof ctx.flags.policy === "string" ? ctx.flags.policy : `${ctx.home}/policy`,
  };
}

async function loadCompiled(ctx: Context): Promise<CompiledPolicy> {
  const sources = await readPolicySources(policyDirs(ctx));
  const [policy, agent] = sources;
  if (!policy || !agent) throw new TypeError("Both policy files are required");
  return compilePolicy(policy, agent);
}

function workspaceOf(ctx: Context): string {
  const dir = typeof ctx.flags.workspace === "string" ? ctx.flags.workspace : `${ctx.home}/vault`;
  return dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`;
}

function domainArg(ctx: Context): PolicyDomain {
  const domain = ctx.positional[0];
  if (domain === undefined) throw new UsageError(`Name a domain (${POLICY_DOMAINS.join(", ")})`);
  if (!isPolicyDomain(domain)) {
    throw new UsageError(`Unknown domain "${domain}" (expected ${POLICY_DOMAINS.join(", ")})`);
  }
  if (ctx.positional.length > 1) throw new UsageError(`Unexpected argument "${ctx.positional[1]}"`);
  return domain;
}

function parseInputFlag(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--input is not JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UsageError("--input must be a JSON object");
  }
  return value as Record<string, unknown>;
}

function oneLine(d: Decision): string {
  return `${d.decision}\t${d.rule}\t${d.reasons[0] ?? ""}`;
}

/** A decision for an input line that could not be read: deny, in its place in the output. */
function unreadable(
  domain: PolicyDomain,
  policy: CompiledPolicy,
  rule: string,
  reason: string,
): Decision {
  return {
    decision: "deny",
    domain,
    rule,
    reasons: [reason],
    evidence: { domain, policy_digest: policy.digest, rule_id: rule },
    policy_version: policy.version,
  };
}

/** Splits a byte stream into lines, bounding each; over-long lines yield `null`. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string | null> {
  const decoder = new TextDecoder();
  let buffer = "";
  let isSkipping = false;
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf("\n")) !== -1) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (isSkipping) {
        isSkipping = false;
        continue;
      }
      yield line.length > MAX_INPUT_LINE ? null : line;
    }
    if (buffer.length > MAX_INPUT_LINE) {
      if (!isSkipping) yield null;
      isSkipping = true;
      buffer = "";
    }
  }
  buffer += decoder.decode();
  if (buffer.length > 0 && !isSkipping) yield buffer.length > MAX_INPUT_LINE ? null : buffer;
}

async function openInput(ctx: Context, path: string): Promise<ReadableStream<Uint8Array>> {
  if (path === "-") return ctx.stdin();
  try {
    return (await Deno.open(path, { read: true })).readable;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new UsageError(`No such file "${path}"`);
    throw err;
  }
}

async function evalCommand(ctx: Context): Promise<number> {
  allowFlags(ctx, ["input", "jsonl", "workspace", "policy", "home", "json"]);
  const domain = domainArg(ctx);
  const { input, jsonl } = ctx.flags;
  if ((input === undefined) === (jsonl === undefined)) {
    throw new UsageError("Give exactly one of --input JSON or --jsonl FILE|-");
  }
  const policy = await loadCompiled(ctx);
  const engine = new PolicyEngine(policy, { workspace: workspaceOf(ctx) });
  const isJson = ctx.flags.json === true;
  const format = (d: Decision) => (isJson ? JSON.stringify(d) : oneLine(d));
  if (typeof input === "string") {
    const d = engine.decide({ domain, input: parseInputFlag(input) });
    await ctx.write(`${format(d)}\n`);
    return d.decision === "allow" ? 0 : 1;
  }
  const stream = await openInput(ctx, jsonl as string);
  let out = "";
  let n = 0;
  for await (const line of lines(stream)) {
    n++;
    let d: Decision;
    if (line === null) {
      d = unreadable(
        domain,
        policy,
        "input.too_long",
        `Line ${n} is longer than ${MAX_INPUT_LINE} characters`,
      );
    } else if (line.trim() === "") {
      continue;
    } else {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        if (!(err instanceof SyntaxError)) throw err;
        value = undefined;
      }
      d = value === undefined
        ? unreadable(domain, policy, "input.invalid", `Line ${n} is not JSON`)
        : engine.decide({ domain, input: value });
    }
    out += `${format(d)}\n`;
    if (out.length > 64 * 1024) {
      await ctx.write(out);
      out = "";
    }
  }
  if (out) await ctx.write(out);
  return 0;
}

async function testCommand(ctx: Context): Promise<number> {
  allowFlags(ctx, ["dir", "policy", "home", "json"]);
  if (ctx.positional.length) throw new UsageError(`Unexpected argument "${ctx.positional[0]}"`);
  const dir = typeof ctx.flags.dir === "string" ? ctx.flags.dir : POLICY_TESTS_DIR;
  const suites = await loadPolicySuites(dir);
  let passed = 0;
  let failed = 0;
  const report: unknown[] = [];
  let out = "";
  for (const suite of suites) {
    const results = await runPolicySuite(suite, policyDirs(ctx));
    for (const r of results) {
      if (r.isPassed) passed++;
      else failed++;
      report.push(r);
      if (!r.isPassed) {
        out += `FAIL ${r.suite} › ${r.name}\n  expected ${r.expected.decision}${
          r.expected.rule ? ` (${r.expected.rule})` : ""
        }, got ${r.actual.decision} (${r.actual.rule}): ${r.actual.reasons[0] ?? ""}\n`;
      }
    }
    if (ctx.flags.json !== true) {
      out += `${
        results.every((r) => r.isPassed) ? "ok  " : "FAIL"
      } ${suite.suite.name} (${results.length} cases)\n`;
    }
  }
  if (ctx.flags.json === true) {
    await ctx.write(`${JSON.stringify({ passed, failed, results: report })}\n`);
  } else {
    await ctx.write(`${out}${passed} passed, ${failed} failed\n`);
  }
  return failed === 0 ? 0 : 1;
}

function describeSources(policy: CompiledPolicy): string {
  return policy.sources.map((s) => `${s.name}: ${s.origin}${s.path ? ` (${s.path})` : ""}`).join(
    "; ",
  );
}

function explainText(d: Decision, policy: CompiledPolicy): string {
  const ev = d.evidence as {
    checks?: string[];
    facts?: Record<string, unknown>;
    input_hash?: string;
    eval_time_us?: number;
  };
  const facts = Object.entries(ev.facts ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return [
    `Decision:  ${d.decision}`,
    `Rule:      ${d.rule}`,
    ...d.reasons.map((r, i) => `${i === 0 ? "Why:       " : "           "}${r}`),
    `Passed:    ${
      ev.checks?.length ? ev.checks.join(" → ") : "(no rule passed before the deciding one)"
    }`,
    `Facts:     ${facts.length ? facts.join(", ") : "(none)"}`,
    `Policy:    ${d.policy_version}`,
    `Files:     ${describeSources(policy)}`,
    `Input:     sha256 ${ev.input_hash ?? "?"} (first 16 hex), evaluated in ${
      ev.eval_time_us ?? "?"
    } µs`,
  ].join("\n");
}

/** The audit log's JSON-lines files: a file, `-`, or a folder of `*.jsonl` in name order. */
async function logFiles(ctx: Context): Promise<string[]> {
  let path = typeof ctx.flags.log === "string" ? ctx.flags.log : null;
  if (path === null) {
    // The audit control's segments (workers/audit/offline/format.ts), else a single file.
    const segments = `${ctx.home}/audit/segments`;
    path = await Deno.stat(segments).then(() => segments, (err) => {
      if (err instanceof Deno.errors.NotFound) return `${ctx.home}/audit/log.jsonl`;
      throw err;
    });
  }
  if (path === "-") return ["-"];
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new UsageError(`No audit log at "${path}"`);
    throw err;
  }
  if (!info.isDirectory) return [path];
  const names: string[] = [];
  for await (const e of Deno.readDir(path)) {
    if (e.isFile && e.name.endsWith(".jsonl")) names.push(e.name);
  }
  return names.sort().map((n) => `${path}/${n}`);
}

async function readLogged(ctx: Context): Promise<LoggedDecision[]> {
  const out: LoggedDecision[] = [];
  for (const file of await logFiles(ctx)) {
    for await (const line of lines(await openInput(ctx, file))) {
      if (line === null || line.trim() === "") continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        if (!(err instanceof SyntaxError)) throw err;
        continue; // a torn or foreign line is not a decision
      }
      const logged = fromAuditEntry(value);
      if (logged) out.push(logged);
    }
  }
  return out;
}

async function explainCommand(ctx: Context): Promise<number> {
  allowFlags(ctx, ["input", "seq", "log", "workspace", "policy", "home", "json"]);
  const policy = await loadCompiled(ctx);
  const engine = new PolicyEngine(policy, { workspace: workspaceOf(ctx) });
  const isJson = ctx.flags.json === true;
  if (typeof ctx.flags.seq === "string") {
    if (ctx.positional.length) throw new UsageError(`Unexpected argument "${ctx.positional[0]}"`);
    if (!/^\d{1,15}$/.test(ctx.flags.seq)) throw new UsageError("--seq must be an entry number");
    const seq = Number(ctx.flags.seq);
    const logged = (await readLogged(ctx)).find((e) => e.seq === seq);
    if (!logged) {
      ctx.writeError(`error: no policy decision with seq ${seq} in the log`);
      return 1;
    }
    const now = engine.decide({ domain: logged.domain, input: logged.input });
    const isSame = now.decision === logged.decision && now.rule === logged.rule;
    if (isJson) {
      await ctx.write(`${JSON.stringify({ logged, now, same: isSame })}\n`);
      return 0;
    }
    await ctx.write([
      `Logged decision #${seq} (${logged.domain}): ${logged.decision} by ${logged.rule}` +
      ` under ${logged.policy_version ?? "an unrecorded policy"}`,
      `Input (as logged${
        logged.redacted.length ? `, redacted: ${logged.redacted.join(", ")}` : ""
      }): ${JSON.stringify(logged.input)}`,
      "",
      `Under the policy in force${isSame ? " (same outcome)" : " (DIFFERENT outcome)"}:`,
      explainText(now, policy),
      "",
    ].join("\n"));
    return 0;
  }
  const domain = domainArg(ctx);
  if (typeof ctx.flags.input !== "string") throw new UsageError("Give --input JSON or --seq N");
  const d = engine.decide({ domain, input: parseInputFlag(ctx.flags.input) });
  await ctx.write(`${isJson ? JSON.stringify(d) : explainText(d, policy)}\n`);
  return 0;
}

async function candidateSources(ctx: Context, dir: string): Promise<PolicySource[]> {
  const current = await readPolicySources(policyDirs(ctx));
  const out: PolicySource[] = [];
  let found = 0;
  for (const s of current) {
    const path = `${dir}/${s.name}`;
    const text = await readPolicyFile(path);
    if (text === null) out.push(s);
    else {
      found++;
      out.push({ name: s.name, origin: "candidate", path, text });
    }
  }
  if (found === 0) throw new UsageError(`"${dir}" holds neither policy.yaml nor agent.yaml`);
  return out;
}

async function whatifCommand(ctx: Context): Promise<number> {
  allowFlags(ctx, ["candidate", "log", "limit", "workspace", "policy", "home", "json"]);
  if (ctx.positional.length) throw new UsageError(`Unexpected argument "${ctx.positional[0]}"`);
  if (typeof ctx.flags.candidate !== "string") throw new UsageError("Give --candidate DIR");
  const limitText = typeof ctx.flags.limit === "string" ? ctx.flags.limit : "10000";
  if (!/^\d{1,5}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > 10_000) {
    throw new UsageError("--limit must be 1-10000");
  }
  const policy = await loadCompiled(ctx);
  const [cp, ca] = await candidateSources(ctx, ctx.flags.candidate);
  if (!cp || !ca) throw new TypeError("Both policy files are required");
  const candidate = compilePolicy(cp, ca);
  const engine = new PolicyEngine(policy, { workspace: workspaceOf(ctx) });
  const logged = (await readLogged(ctx)).slice(-Number(limitText));
  const report = whatIf(engine, { candidate, entries: logged });
  if (ctx.flags.json === true) {
    await ctx.write(`${JSON.stringify(report)}\n`);
    return 0;
  }
  const lines = [
    `Replayed ${report.replayed} logged decisions under ${report.candidate_version}`,
    `(in force: ${report.current_version}; ${report.approximate} replayed with redacted values)`,
    `${report.changed.length} would change (${report.effect_changes} change allow/deny/ask):`,
    ...report.changed.map((c) =>
      `  #${c.seq} ${c.domain}: ${c.before.decision} (${c.before.rule}) → ${c.after.decision} (${c.after.rule})${
        c.isApproximate ? " [approximate]" : ""
      }  ${JSON.stringify(c.input).slice(0, 200)}`
    ),
  ];
  await ctx.write(`${lines.join("\n")}\n`);
  return 0;
}
