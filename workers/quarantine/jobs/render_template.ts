/**
 * Sandboxed job: renders the chat templates of a model file (GGUF `tokenizer.chat_template*`,
 * safetensors `__metadata__` templates) or an inline template text on probe conversations
 * (see `_render.ts`). Result: `{ findings: Finding[], templates: number }`. Its time and
 * memory limits end a template that loops or allocates without bound; the caller treats a
 * killed job as a failed check.
 *
 * argv: none for a model file; `["--key", KEY]` names an inline template.
 * @module
 */
import { runJob } from "../../../runtime/kit/job.ts";
import { scanGguf } from "../scanners/gguf.ts";
import { FormatError } from "../scanners/errors.ts";
import { scanSafetensors } from "../scanners/safetensors.ts";
import type { Finding } from "../scanners/types.ts";
import { renderProbe } from "./_render.ts";

await runJob(async ({ input, inputPath, args }) => {
  if (input !== null) {
    const key = args[0] === "--key" && args[1] !== undefined ? args[1] : "inline";
    return { findings: renderProbe(input, key), templates: 1 };
  }
  if (inputPath === null) {
    throw Object.assign(new TypeError("Cannot render: no input"), { code: "INVALID_INPUT" });
  }
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
});
