/**
 * Chat templates: a conversation becomes the prompt text the model was trained on, by the
 * model's own Jinja template (GGUF `tokenizer.chat_template`), rendered with
 * `@huggingface/jinja`. Runs only inside the sandboxed engine process: a template comes from
 * the model file, and one that loops or allocates without bound ends that process, never a
 * long-lived worker. The quarantine probed the template already (stage 5).
 *
 * A model without a template (or with one that does not parse) gets a plain fallback format;
 * the engine reports which one is in use.
 * @module
 */
import { Template } from "@huggingface/jinja";
import type { ChatMessage } from "../../runtime/kit/engine_api.ts";

/** Largest rendered prompt accepted (characters). */
export const MAX_RENDERED_CHARS = 4 << 20;

/**
 * The fallback format, for models without a template of their own: role headers that a
 * base model continues sensibly, and a stop string at the next header.
 */
export const FALLBACK_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}### {{ m['role'] | capitalize }}:\n{{ m['content'] }}\n\n" +
  "{% endfor %}{% if add_generation_prompt %}### Assistant:\n{% endif %}";
/** Stop string of the fallback format. */
export const FALLBACK_STOP = "\n### ";

/** Special-token strings a template may use. */
export interface TemplateTokens {
  bos: string;
  eos: string;
}

/** A compiled chat template. */
export interface ChatTemplate {
  source: "model" | "fallback";
  /** Stop strings the format implies (the fallback's next header). */
  stops: readonly string[];
  render(messages: readonly ChatMessage[]): string;
}

/** Raised when a template cannot render a conversation. */
export class TemplateError extends Error {
  /** Always TEMPLATE_FAILED. */
  readonly code = "TEMPLATE_FAILED";
  /** @param message what failed, without the template text */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TemplateError";
  }
}

/**
 * Compiles the model's template, or the fallback when there is none or it does not parse.
 * @param text the model's `tokenizer.chat_template`, or null
 * @param tokens BOS/EOS strings of the model
 * @returns a renderer
 */
export function compileChatTemplate(text: string | null, tokens: TemplateTokens): ChatTemplate {
  if (text !== null && text.length > 0) {
    try {
      const template = new Template(text);
      return { source: "model", stops: [], render: (m) => render(template, m, tokens) };
    } catch (error) {
      if (!(error instanceof Error)) throw error;
      // Falls through to the fallback; the engine reports `chatTemplate: "fallback"`.
    }
  }
  const fallback = new Template(FALLBACK_TEMPLATE);
  return {
    source: "fallback",
    stops: [FALLBACK_STOP],
    render: (m) => render(fallback, m, tokens),
  };
}

function render(
  template: Template,
  messages: readonly ChatMessage[],
  tokens: TemplateTokens,
): string {
  let text: string;
  try {
    text = template.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: true,
      bos_token: tokens.bos,
      eos_token: tokens.eos,
    });
  } catch (error) {
    if (error instanceof TemplateError) throw error;
    throw new TemplateError(
      `The chat template cannot render the conversation: ${
        error instanceof Error ? error.message.slice(0, 200) : String(error).slice(0, 200)
      }`,
      { cause: error },
    );
  }
  if (text.length > MAX_RENDERED_CHARS) {
    throw new TemplateError(
      `The chat template rendered ${text.length} characters (at most ${MAX_RENDERED_CHARS})`,
    );
  }
  return text;
}
