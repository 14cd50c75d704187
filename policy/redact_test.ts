import { deepEqual, equal, ok } from "node:assert/strict";
import { DEFAULTS_DIR, loadPolicy } from "./loader.ts";
import { redactInput, redactionRules, restoreForReplay, STRICT_REDACTION } from "./redact.ts";

const policy = await loadPolicy({ defaultsDir: DEFAULTS_DIR, overrideDir: null });
const RULES = redactionRules(policy.policy);

Deno.test("redactInput() redacts sensitive, credential-like and long tool arguments", () => {
  const long = "y".repeat(600);
  const { input, redacted } = redactInput({
    domain: "tool_access",
    input: {
      tool: "filesystem.write",
      args: {
        path: "outputs/a.txt",
        content: "my diary",
        nested: { apiKey: "sk-123", note: long },
      },
    },
  }, RULES);
  deepEqual(input, {
    tool: "filesystem.write",
    args: {
      path: "outputs/a.txt",
      content: "[redacted len=8]",
      nested: { apiKey: "[redacted credential]", note: "[redacted len=600]" },
    },
  });
  deepEqual(redacted.sort(), ["args.content", "args.nested.apiKey", "args.nested.note"]);
  ok(!JSON.stringify(input).includes("sk-123"));
});

Deno.test("redactInput() redacts prompt-like names unless the policy keeps raw prompts", () => {
  const args = { tool: "x.y", args: { prompt: "secret plan", output: "answer" } };
  deepEqual(redactInput({ domain: "tool_access", input: args }, STRICT_REDACTION).redacted.sort(), [
    "args.output",
    "args.prompt",
  ]);
  const keep = { ...STRICT_REDACTION, isKeepingPrompts: true };
  deepEqual(redactInput({ domain: "tool_access", input: args }, keep).redacted, ["args.output"]);
});

Deno.test("redactInput() replaces an egress query by its length and keeps host and path", () => {
  const { input, redacted } = redactInput({
    domain: "egress",
    input: { url: "https://a.com/p?token=abc" },
  }, RULES);
  deepEqual(input, { url: "https://a.com/p?[redacted len=9]" });
  deepEqual(redacted, ["url.query"]);
});

Deno.test("redactInput() caps the nesting it logs", () => {
  let deep: unknown = "leaf";
  for (let i = 0; i < 20; i++) deep = { d: deep };
  const { input, redacted } = redactInput({
    domain: "tool_access",
    input: { tool: "x.y", args: { v: deep } },
  }, RULES);
  equal(redacted.length, 1);
  ok(JSON.stringify(input).includes("[redacted len="));
});

Deno.test("restoreForReplay() rebuilds stand-ins of the same length and marks them approximate", () => {
  const logged = redactInput({
    domain: "tool_access",
    input: {
      tool: "filesystem.write",
      args: { path: "outputs/a.txt", content: "12345" },
    },
  }, RULES);
  const restored = restoreForReplay(logged.input, logged.redacted);
  equal(restored.isApproximate, true);
  deepEqual(restored.input, {
    tool: "filesystem.write",
    args: { path: "outputs/a.txt", content: "xxxxx" },
  });
  const url = redactInput({ domain: "egress", input: { url: "https://a.com/?q=1" } }, RULES);
  deepEqual(restoreForReplay(url.input, url.redacted).input, { url: "https://a.com/?xxx" });
});

Deno.test("restoreForReplay() leaves an input without redactions exact", () => {
  const input = { url: "https://a.com/" };
  deepEqual(restoreForReplay(input, []), { input, isApproximate: false });
});
