/**
 * Local inference through the whole system vs node-llama-cpp called directly in this process
 * (the baseline), on the same random llama GGUF, same prompt lengths, same threads, greedy,
 * measured in the same run, one after the other (never at once: they would share the CPU):
 * - time to first token and decoding tokens/s of a 256-token answer, streamed over
 *   `POST /v1/completions` (gateway → inference control → supervisor → sandboxed engine)
 *   against `sequence.evaluate()` in-process (target: overhead ≤ 10 %);
 * - the API layer's added latency per request: a 1-token completion end to end vs 1 token
 *   in-process (HTTP, auth, queue, two RPC hops, the engine pipe).
 *   tools/deno task bench:inference [runs=5] [tokens=256]
 */
import { getLlama, LlamaLogLevel, type Token } from "node-llama-cpp";
import { tinyGguf } from "../fixtures/llm/tiny_gguf.ts";
import { clientToken, postJson, promote, startInferenceSystem } from "../inference/_system.ts";

const RUNS = Number(Deno.args[0] ?? 5);
const TOKENS = Number(Deno.args[1] ?? 256);
const LATENCY_REQUESTS = 30;
const THREADS = Math.max(1, navigator.hardwareConcurrency - 1);
/** Big enough that decoding, not bookkeeping, dominates a token (~4 M parameters). */
const MODEL = tinyGguf({
  layers: 4,
  hidden: 256,
  heads: 8,
  feedForward: 1024,
  contextLength: 2048,
  seed: 3,
});

interface Run {
  ttftMs: number;
  tokensPerSecond: number;
  totalMs: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** A prompt that differs from the start, so neither side reuses a cached prefix. */
function prompt(i: number): string {
  return `${"abcdefghij"[i % 10]}${i} the quick brown fox jumps over the lazy dog, then`;
}

async function direct(path: string): Promise<{ runs: Run[]; oneToken: number[] }> {
  const llama = await getLlama({
    gpu: false,
    build: "never",
    logLevel: LlamaLogLevel.error,
    maxThreads: THREADS,
  });
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: 2048,
    sequences: 1,
    threads: THREADS,
    batchSize: 512,
  });
  const sequence = context.getSequence();
  const generate = async (text: string, n: number): Promise<Run> => {
    await sequence.clearHistory();
    const tokens = model.tokenize(text);
    if (model.tokens.bos !== null) tokens.unshift(model.tokens.bos);
    const started = performance.now();
    let first = 0;
    let last = 0;
    let count = 0;
    const out: Token[] = [];
    for await (const token of sequence.evaluate(tokens, { temperature: 0 })) {
      const now = performance.now();
      if (count === 0) first = now;
      last = now;
      out.push(token);
      model.detokenize([token]); // the engine turns each token into text too
      if (++count >= n) break;
    }
    return {
      ttftMs: first - started,
      tokensPerSecond: count > 1 ? (count - 1) / ((last - first) / 1000) : 0,
      totalMs: performance.now() - started,
    };
  };
  await generate(prompt(99), 16); // warm-up
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await generate(prompt(i), TOKENS));
  const oneToken: number[] = [];
  for (let i = 0; i < LATENCY_REQUESTS; i++) oneToken.push((await generate(prompt(i), 1)).totalMs);
  await llama.dispose();
  return { runs, oneToken };
}

async function throughApi(
  base: string,
  token: string,
  model: string,
): Promise<{ runs: Run[]; oneToken: number[] }> {
  const generate = async (text: string, n: number): Promise<Run> => {
    const started = performance.now();
    const res = await postJson(`${base}/v1/completions`, token, {
      model,
      prompt: text,
      max_tokens: n,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    if (res.status !== 200 || res.body === null) {
      throw new Error(`status ${res.status}: ${await res.text()}`);
    }
    let first = 0;
    let last = 0;
    let completion = 0;
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const bytes of res.body) {
      const now = performance.now();
      buffer += decoder.decode(bytes, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const data = buffer.slice(6, end);
        buffer = buffer.slice(end + 2);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.usage) completion = chunk.usage.completion_tokens;
        if (chunk.choices?.[0]?.text) {
          if (first === 0) first = now;
          last = now;
        }
      }
    }
    return {
      ttftMs: first - started,
      tokensPerSecond: completion > 1 && last > first
        ? (completion - 1) / ((last - first) / 1000)
        : 0,
      totalMs: performance.now() - started,
    };
  };
  await generate(prompt(99), 16); // loads the model (not measured)
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await generate(prompt(i), TOKENS));
  const oneToken: number[] = [];
  for (let i = 0; i < LATENCY_REQUESTS; i++) oneToken.push((await generate(prompt(i), 1)).totalMs);
  return { runs, oneToken };
}

const dir = await Deno.makeTempDir({ prefix: "secai-bench-llm-" });
const path = `${dir}/bench.gguf`;
await Deno.writeFile(path, MODEL);
const sys = await startInferenceSystem({ inference: { threads: THREADS, contextSize: 2048 } });
let api: Awaited<ReturnType<typeof throughApi>>;
try {
  const id = await promote(sys, "bench.gguf", MODEL);
  api = await throughApi(sys.base, await clientToken(sys.home, "bench"), id);
} finally {
  await sys.stop();
}
const base = await direct(path);
await Deno.remove(dir, { recursive: true });

const row = (name: string, runs: Run[]) =>
  `${name.padEnd(34)} TTFT p50 ${median(runs.map((r) => r.ttftMs)).toFixed(1).padStart(6)} ms   ` +
  `decode p50 ${median(runs.map((r) => r.tokensPerSecond)).toFixed(0).padStart(5)} tok/s`;
const ttftRatio = median(api.runs.map((r) => r.ttftMs)) / median(base.runs.map((r) => r.ttftMs));
const speedRatio = median(base.runs.map((r) => r.tokensPerSecond)) /
  median(api.runs.map((r) => r.tokensPerSecond));
const added = median(api.oneToken) - median(base.oneToken);
// deno-lint-ignore no-console -- a bench script reports on stdout
console.log([
  `model ~4M params F32, ${THREADS} thread(s), ${RUNS} runs × ${TOKENS} tokens, greedy, ${navigator.hardwareConcurrency} CPUs`,
  row("node-llama-cpp in-process (baseline)", base.runs),
  row("POST /v1/completions (stream)", api.runs),
  `decode overhead ${((speedRatio - 1) * 100).toFixed(1)} % (target ≤ 10 %)   TTFT ratio ${
    ttftRatio.toFixed(2)
  }x`,
  `1-token request p50: in-process ${median(base.oneToken).toFixed(1)} ms, API ${
    median(api.oneToken).toFixed(1)
  } ms → API layer adds ${added.toFixed(1)} ms per request`,
].join("\n"));
