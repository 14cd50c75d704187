/**
 * Sandboxed job: renders the chat templates of a model file (GGUF `tokenizer.chat_template*`,
 * safetensors `__metadata__` templates) or an inline template text on probe conversations
 * (see `_render.ts`). Result: `{ findings: Finding[], templates: number }`. Its time and
 * memory limits end a template that loops or allocates without bound; the caller treats a
 * killed job as a failed check.
 *
 * A `files` batch (`secai scan` of many files) renders each file in turn and returns
 * `{ results: ({ findings, templates } | { error: { code, message } })[] }`, one entry per
 * file: a file whose rendering throws gets an `error` entry and the caller renders it again
 * in a job of its own. A template that loops ends the whole job; the caller then renders
 * every file of the batch on its own.
 *
 * argv: none for a model file or a batch; `["--key", KEY]` names an inline template.
 * @module
 */
import { runJob } from "../../../runtime/kit/job.ts";
import { scanGguf } from "../scanners/gguf.ts";
import { FormatError } from "../scanners/errors.ts";
import { scanSafetensors } from "../scanners/safetensors.ts";
import type { Finding } from "../scanners/types.ts";
import { renderProbe } from "./_render.ts";

const MAX_MESSAGE = 2000;

await runJob(async ({ input, inputPath, inputPaths, args }) => {
  if (input !== null) {
    const key = args[0] === "--key" && args[1] !== undefined ? args[1] : "inline";
    return { findings: renderProbe(input, key), templates: 1 };
  }
  if (inputPaths !== null) {
    const results: unknown[] = [];
    for (const path of inputPaths) {
      try {
        results.push(await renderFile(path));
      } catch (error) {
        if (
          error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
        ) throw error;
        results.push({
          error: {
            code: "RENDER_FAILED",
            message: (error instanceof Error ? error.message : String(error)).slice(0, MAX_MESSAGE),
          },
        });
      }
    }
    return { results };
  }
  if (inputPath === null) {
    throw Object.assign(new TypeError("Cannot render: no input"), { code: "INVALID_INPUT" });
  }
  return await renderFile(inputPath);
});

/** Renders the chat templates of one GGUF or safetensors file. */
async function renderFile(inputPath: string): Promise<{ findings: Finding[]; templates: number }> {
  const file = await Deno.open(inputPath, { read: true });
  try {
    const size = (await file.stat()).size;
    const head = new Uint8Array(4);
    file.readSync(head);
    const templates: { key: string; text: string }[] = [];
    try {
      if (new TextDecoder().decode(head) === "GGUF") {
        templates.push(...scanGguf(file, size).templates);
      } else {
        const scan = scanSafetensors(file, size);
        for (const [key, text] of Object.entries(scan.metadata)) {
          if (/chat_template/i.test(key)) templates.push({ key: `__metadata__.${key}`, text });
        }
      }
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      // The static scan reports the parse failure; there is nothing to render.
      return { findings: [] as Finding[], templates: 0 };
    }
    return {
      findings: templates.flatMap((t) => renderProbe(t.text, t.key)),
      templates: templates.length,
    };
  } finally {
    file.close();
  }
}
