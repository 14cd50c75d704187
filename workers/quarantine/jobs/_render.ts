/**
 * The sandboxed chat-template renderer: renders a template with `@huggingface/jinja` on
 * probe conversations and checks what it produces. Imported only by job modules: a template
 * may loop forever or allocate without bound, so it is rendered only inside a sandboxed
 * subprocess whose time and memory limits end it (spec 13 weakness 8).
 * @module
 */
import { Template } from "@huggingface/jinja";
import { checkMetadataString, firstInvisible } from "../scanners/metadata.ts";
import type { Finding } from "../scanners/types.ts";

/** Largest rendering accepted. */
export const MAX_RENDER = 1 << 20;

const MARKERS = {
  system: "PROBE_SYSTEM_5f1c2a",
  user: "PROBE_USER_8d3e41",
  assistant: "PROBE_ASSISTANT_2b9f07",
  user2: "PROBE_USER_c47a90",
} as const;

function conversation(withSystem: boolean): { role: string; content: string }[] {
  return [
    ...(withSystem ? [{ role: "system", content: MARKERS.system }] : []),
    { role: "user", content: MARKERS.user },
    { role: "assistant", content: MARKERS.assistant },
    { role: "user", content: MARKERS.user2 },
  ];
}

function render(template: Template, withSystem: boolean): string {
  return template.render({
    messages: conversation(withSystem),
    add_generation_prompt: true,
    bos_token: "<s>",
    eos_token: "</s>",
  });
}

/**
 * Renders one template on probe conversations (with, then without, a system message) and
 * reports: a template that cannot render, drops the user's messages, writes instructions or
 * invisible characters of its own, or explodes in size.
 * @param text the template
 * @param key the metadata key it came from
 * @returns findings (`template.invalid` when it cannot be rendered at all)
 */
export function renderProbe(text: string, key: string): Finding[] {
  const findings: Finding[] = [];
  const add = (rule: string, severity: Finding["severity"], why: string) =>
    findings.push({ stage: "template", rule, severity, message: `Chat template "${key}": ${why}` });
  let template: Template;
  try {
    template = new Template(text);
  } catch (error) {
    add(
      "template.invalid",
      "high",
      `cannot be parsed: ${error instanceof Error ? error.message.slice(0, 200) : error}`,
    );
    return findings;
  }
  let output: string | null = null;
  let lastError = "";
  for (const withSystem of [true, false]) {
    try {
      output = render(template, withSystem);
      break;
    } catch (error) {
      lastError = error instanceof Error ? error.message.slice(0, 200) : String(error);
    }
  }
  if (output === null) {
    add("template.invalid", "high", `cannot render a probe conversation: ${lastError}`);
    return findings;
  }
  if (output.length > MAX_RENDER) {
    add(
      "template.output_explosion",
      "medium",
      `renders ${output.length} characters for a 4-message conversation`,
    );
  }
  if (!output.includes(MARKERS.user) || !output.includes(MARKERS.user2)) {
    add("template.drops_messages", "medium", "leaves the user's messages out of the prompt");
  }
  // What the template writes by itself: the output without the probe messages.
  let own = output;
  for (const marker of Object.values(MARKERS)) own = own.split(marker).join(" ");
  const invisible = firstInvisible(own);
  if (invisible !== null) {
    add(
      "template.invisible_text",
      "high",
      `writes the invisible character ${invisible} into every prompt`,
    );
  }
  for (const finding of checkMetadataString(own, { stage: "template", key })) {
    if (finding.rule === "metadata.hidden_instruction") {
      add(
        "template.injected_instruction",
        "high",
        `writes an instruction into every prompt (${
          finding.message.slice(finding.message.indexOf(":") + 2)
        })`,
      );
    }
  }
  return findings;
}
