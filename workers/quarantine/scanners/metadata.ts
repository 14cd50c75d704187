/**
 * Checks model metadata strings (GGUF key/values, safetensors `__metadata__`) for hidden
 * instructions: invisible Unicode (zero-width, bidi controls, tag characters), injected chat
 * turns, "ignore previous instructions"-style text, and oversized values.
 * @module
 */
import type { Finding } from "./types.ts";

/** Largest ordinary metadata string; chat templates and tokenizer data are exempt. */
export const MAX_METADATA_STRING = 64 << 10;

/**
 * Invisible or direction-changing code points: zero-width characters, bidi embeddings,
 * overrides and isolates, word joiner and invisible operators, BOM, tag characters
 * (used to smuggle instructions past a reader), interlinear annotations.
 */
const INVISIBLE =
  /[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]|\u{e0000}|[\u{e0001}-\u{e007f}]/u;

/** Turn markers of common chat formats: metadata that contains them injects a turn. */
const TURN =
  /<\|im_start\|>|<\|im_end\|>|<\|start_header_id\|>|<\|end_header_id\|>|<\|eot_id\|>|<\|(system|user|assistant)\|>|\[\/?INST\]|<<\/?SYS>>|<start_of_turn>|<end_of_turn>|^\s*###\s*(system|instruction|assistant)\s*:/im;

/** Text addressed to the model rather than describing the file. */
const INSTRUCTION =
  /\b(ignore|disregard|forget)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all)\b[^.\n]{0,20}\b(instructions?|prompts?|rules?)\b|\byou are now\b|\bnew system prompt\b|\bdo not (tell|reveal|mention)\b[^.\n]{0,40}\buser\b/i;

/** Keys whose values are tokenizer data (turn markers and odd characters are normal there). */
export function isTokenizerData(key: string): boolean {
  return /^tokenizer\.(ggml\.(tokens|merges|token_type|scores|added_tokens)|huggingface\.json)$/
    .test(key) ||
    /^tokenizer\.ggml\.\w+_token_id$/.test(key);
}

/** Whether a key names a chat template (`tokenizer.chat_template`, `…chat_template.tool_use`). */
export function isChatTemplateKey(key: string): boolean {
  return /chat_template/i.test(key);
}

/** Where a metadata string sits, for findings. */
export interface MetadataPlace {
  stage: string;
  key: string;
  offset?: number;
}

/** The first invisible character in a string, as `U+XXXX`, or null. */
export function firstInvisible(text: string): string | null {
  const match = INVISIBLE.exec(text);
  const code = match?.[0]?.codePointAt(0);
  return code === undefined ? null : `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * Checks one metadata string.
 * @returns findings (empty when it is plain)
 */
export function checkMetadataString(value: string, place: MetadataPlace): Finding[] {
  if (isTokenizerData(place.key)) return [];
  const findings: Finding[] = [];
  const at = place.offset === undefined ? {} : { offset: place.offset };
  const template = isChatTemplateKey(place.key);
  const invisible = firstInvisible(value);
  if (invisible !== null) {
    findings.push({
      stage: place.stage,
      rule: "metadata.invisible_unicode",
      severity: "high",
      message:
        `Metadata "${place.key}" contains the invisible character ${invisible}, which can hide instructions from a reader`,
      ...at,
    });
  }
  if (!template && TURN.test(value)) {
    findings.push({
      stage: place.stage,
      rule: "metadata.injected_turn",
      severity: "high",
      message: `Metadata "${place.key}" contains chat turn markers ("${
        TURN.exec(value)?.[0]
      }"): an injected conversation turn`,
      ...at,
    });
  }
  const instruction = INSTRUCTION.exec(value);
  if (instruction !== null) {
    findings.push({
      stage: place.stage,
      rule: "metadata.hidden_instruction",
      severity: template ? "high" : "medium",
      message: `Metadata "${place.key}" contains an instruction to the model: "${
        instruction[0].slice(0, 80)
      }"`,
      ...at,
    });
  }
  if (!template && value.length > MAX_METADATA_STRING) {
    findings.push({
      stage: place.stage,
      rule: "metadata.oversized_value",
      severity: "medium",
      message:
        `Metadata "${place.key}" holds ${value.length} characters (limit ${MAX_METADATA_STRING} outside templates and tokenizer data)`,
      ...at,
    });
  }
  return findings;
}
