/**
 * Inputs shared by the policy benchmarks: for each domain a mix of allowed and denied
 * requests (as JSON lines), the shipped policy with the airlock enabled (so egress reaches
 * the allowlist), and a workspace tree for path decisions.
 * @module
 */
import type { PolicyDomain } from "../../policy/decision.ts";

/** The shipped policy.yaml with the airlock on. */
export function benchPolicyText(text: string): string {
  return text.replace("enabled: false", "enabled: true");
}

/** Creates `<tmp>/ws` with user_docs/, outputs/ and a few files and links; returns its path. */
export async function makeBenchWorkspace(): Promise<string> {
  const base = await Deno.realPath(await Deno.makeTempDir({ prefix: "secai-policy-bench-" }));
  const ws = `${base}/ws`;
  await Deno.mkdir(`${ws}/user_docs/reports/2026`, { recursive: true });
  await Deno.mkdir(`${ws}/outputs`, { recursive: true });
  await Deno.writeTextFile(`${ws}/user_docs/a.txt`, "a");
  await Deno.writeTextFile(`${ws}/user_docs/reports/2026/q1.md`, "q1");
  await Deno.symlink("/etc/passwd", `${ws}/user_docs/evil`);
  await Deno.symlink("reports/2026/q1.md", `${ws}/user_docs/latest`);
  return ws;
}

const lines = (inputs: Record<string, unknown>[]) => inputs.map((i) => JSON.stringify(i));

/** JSON lines per domain. */
export const BENCH_INPUTS: Record<PolicyDomain, string[]> = {
  egress: lines([
    { url: "https://huggingface.co/meta-llama/Llama-3-8B/resolve/main/model.gguf" },
    { url: "https://registry.ollama.ai/v2/library/llama3/manifests/latest" },
    { url: "https://evil.example.com/x" },
    { url: "https://0x7f.1/" },
    { url: "http://huggingface.co/" },
    { url: "https://huggingface.co/a/%2e%2e/b" },
  ]),
  path_access: lines([
    { path: "user_docs/a.txt", op: "read" },
    { path: "user_docs/reports/2026/q1.md", op: "read" },
    { path: "user_docs/latest", op: "read" },
    { path: "user_docs/evil", op: "read" },
    { path: "outputs/new.txt", op: "write" },
    { path: "user_docs/%252e%252e/x", op: "read" },
  ]),
  tool_access: lines([
    { tool: "filesystem.read", args: { path: "user_docs/a.txt" } },
    { tool: "filesystem.write", args: { path: "outputs/r.md", content: "# Report\nAll good." } },
    { tool: "filesystem.list", args: { path: "user_docs" } },
    { tool: "shell.exec", args: { command: "ls" } },
    { tool: "filesystem.read", args: { path: "user_docs/a.txt", extra: 1 } },
    { tool: "unknown.tool", args: {} },
  ]),
  agent_risk: lines([
    { action: "summarize" },
    { action: "outbound_request", allow_online: true },
    { action: "read_file", preference: "always" },
    { action: "change_security" },
    { action: "summarize", sensitivity: "high" },
  ]),
  sensitivity: lines([
    { level: "low", ceiling: "medium" },
    { level: "high", ceiling: "medium" },
    { level: "bogus", ceiling: "high" },
  ]),
  model_promotion: lines([
    { model: "llama", format: "gguf", smoke_score: 0.1, smoke_critical: 0 },
    { model: "m", format: "pickle" },
    { model: "m", format: "onnx" },
  ]),
};
