import { equal, throws } from "node:assert/strict";
import { compileChatTemplate, FALLBACK_STOP, TemplateError } from "./template.ts";

const TOKENS = { bos: "<s>", eos: "</s>" };
const CHATML =
  "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n" +
  "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

Deno.test("compileChatTemplate() renders the model's own template with a generation prompt", () => {
  const template = compileChatTemplate(CHATML, TOKENS);
  equal(template.source, "model");
  equal(
    template.render([{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }]),
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
  );
});

Deno.test("compileChatTemplate() passes the model's BOS and EOS strings to the template", () => {
  const template = compileChatTemplate(
    "{{ bos_token }}{{ messages[0]['content'] }}{{ eos_token }}",
    TOKENS,
  );
  equal(template.render([{ role: "user", content: "x" }]), "<s>x</s>");
});

Deno.test("compileChatTemplate() falls back to a plain format with a stop string when the model has none", () => {
  const template = compileChatTemplate(null, TOKENS);
  equal(template.source, "fallback");
  equal(template.stops[0], FALLBACK_STOP);
  equal(template.render([{ role: "user", content: "Hi" }]), "<s>### User:\nHi\n\n### Assistant:\n");
});

Deno.test("compileChatTemplate() falls back when the model's template does not parse", () => {
  equal(compileChatTemplate("{% for %}", TOKENS).source, "fallback");
});

Deno.test("compileChatTemplate() turns a template's raise_exception into a TemplateError", () => {
  const template = compileChatTemplate("{{ raise_exception('no system role') }}", TOKENS);
  throws(
    () => template.render([{ role: "user", content: "x" }]),
    (e: unknown) =>
      e instanceof TemplateError && e.code === "TEMPLATE_FAILED" &&
      /no system role/.test(e.message),
  );
});
