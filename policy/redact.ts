/**
 * Redaction of decision inputs before they are logged (spec 12 §3.5), and their restoration
 * for what-if replay. Logged inputs are what makes a decision replayable under a candidate
 * policy; they must not carry secrets. Redacted:
 * - inside tool arguments: credential-like names ⇒ `[redacted credential]`; prompt- and
 *   response-like names, arguments the registry marks sensitive or the policy marks `redact`,
 *   and any string over 512 characters ⇒ `[redacted len=N]`;
 * - in egress URLs: the query string ⇒ `?[redacted len=N]` (scheme, host and path stay, as in
 *   spec 22's airlock record).
 * Every redaction is listed by path, so a replay knows which inputs it could only approximate:
 * a redacted string is replayed as a string of the same length.
 * @module
 */
import type { PolicyFile } from "./schema.ts";
import { TOOL_REGISTRY } from "./tools.ts";

/** Longest string kept verbatim in a log. */
export const MAX_LOGGED_STRING = 512;
/** Deepest value kept in a log (the audit log bounds the nesting of a whole entry). */
export const MAX_LOGGED_DEPTH = 8;

const CREDENTIAL_NAME =
  /pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|cookie|auth|credential|bearer|^key$|[_-]key$/i;
const PROMPT_NAMES: ReadonlySet<string> = new Set([
  "content",
  "prompt",
  "query",
  "message",
  "messages",
  "body",
  "payload",
  "input",
  "text",
  "context",
  "instruction",
  "instructions",
]);
const RESPONSE_NAMES: ReadonlySet<string> = new Set(["response", "result", "output"]);

/** Which name classes are kept verbatim (`defaults.logging.store_raw_*`). */
interface KeepRaw {
  prompts: boolean;
  responses: boolean;
}

/** What the policy says about redaction. */
export interface RedactionRules {
  /** `defaults.logging.store_raw_prompts`. */
  isKeepingPrompts: boolean;
  /** `defaults.logging.store_raw_responses`. */
  isKeepingResponses: boolean;
  /** Tool → arguments marked `redact: true` in `tools.allow`. */
  redactedArgs: ReadonlyMap<string, ReadonlySet<string>>;
}

/** Reads the redaction rules out of a validated `policy.yaml`. */
export function redactionRules(policy: PolicyFile): RedactionRules {
  const redactedArgs = new Map<string, Set<string>>();
  for (const entry of policy.tools.allow) {
    const names = Object.entries(entry.args).filter(([, r]) => r.redact).map(([n]) => n);
    if (names.length) redactedArgs.set(entry.name, new Set(names));
  }
  return {
    isKeepingPrompts: policy.defaults.logging.store_raw_prompts,
    isKeepingResponses: policy.defaults.logging.store_raw_responses,
    redactedArgs,
  };
}

/** Redaction with no policy at hand: everything the name rules catch is redacted. */
export const STRICT_REDACTION: RedactionRules = {
  isKeepingPrompts: false,
  isKeepingResponses: false,
  redactedArgs: new Map(),
};

/** A redacted copy of an input and the paths that were redacted. */
export interface RedactedInput {
  input: Record<string, unknown>;
  /** Dotted paths (`args.content`, `url.query`). */
  redacted: string[];
}

function marker(value: unknown): string {
  const len = typeof value === "string" ? value.length : (JSON.stringify(value) ?? "").length;
  return `[redacted len=${len}]`;
}

function redactTree(
  value: unknown,
  path: string,
  out: string[],
  depth: number,
  keep: KeepRaw,
): unknown {
  if (typeof value === "string") {
    if (value.length > MAX_LOGGED_STRING) {
      out.push(path);
      return marker(value);
    }
    return value;
  }
  if (depth > MAX_LOGGED_DEPTH) {
    out.push(path);
    return marker(value);
  }
  if (Array.isArray(value)) {
    return value.map((v, i) => redactTree(v, `${path}.${i}`, out, depth + 1, keep));
  }
  if (value !== null && typeof value === "object") {
    const copy: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      copy[k] = redactArg(k, v, { path: `${path}.${k}`, out, depth: depth + 1, keep });
    }
    return copy;
  }
  return value;
}

interface ArgContext {
  path: string;
  out: string[];
  depth: number;
  keep: KeepRaw;
  isSensitive?: boolean;
}

function redactArg(name: string, value: unknown, ctx: ArgContext): unknown {
  if (CREDENTIAL_NAME.test(name)) {
    ctx.out.push(ctx.path);
    return "[redacted credential]";
  }
  const lower = name.toLowerCase();
  if (
    ctx.isSensitive === true || (!ctx.keep.prompts && PROMPT_NAMES.has(lower)) ||
    (!ctx.keep.responses && RESPONSE_NAMES.has(lower))
  ) {
    ctx.out.push(ctx.path);
    return marker(value);
  }
  return redactTree(value, ctx.path, ctx.out, ctx.depth, ctx.keep);
}

function redactUrl(url: string, out: string[]): string {
  const q = url.indexOf("?");
  if (q === -1) return url.length > 8192 ? (out.push("url"), marker(url)) : url;
  out.push("url.query");
  return `${url.slice(0, Math.min(q, 8192))}?[redacted len=${url.length - q - 1}]`;
}

/**
 * Redacts a decision input for the log.
 * @param request the decision's domain and input as it was decided
 * @param rules the policy's `redact` flags and logging switches
 * @returns the copy to log and the redacted paths
 */
export function redactInput(
  request: { domain: string; input: Record<string, unknown> },
  rules: RedactionRules,
): RedactedInput {
  const { domain, input } = request;
  const redacted: string[] = [];
  const copy: Record<string, unknown> = {};
  const keep: KeepRaw = { prompts: rules.isKeepingPrompts, responses: rules.isKeepingResponses };
  for (const [key, value] of Object.entries(input)) {
    const isArgs = domain === "tool_access" && key === "args" && value !== null &&
      typeof value === "object" && !Array.isArray(value);
    if (isArgs) {
      const tool = typeof input.tool === "string" ? input.tool : "";
      const spec = TOOL_REGISTRY.get(tool);
      const marked = rules.redactedArgs.get(tool);
      const args: Record<string, unknown> = {};
      for (const [name, v] of Object.entries(value)) {
        const kind = spec?.kinds[name];
        const isSensitive = (kind?.kind === "text" && kind.isSensitive) ||
          marked?.has(name) === true;
        args[name] = redactArg(name, v, {
          path: `args.${name}`,
          out: redacted,
          depth: 1,
          keep,
          isSensitive,
        });
      }
      copy[key] = args;
    } else if (domain === "egress" && key === "url" && typeof value === "string") {
      copy[key] = redactUrl(value, redacted);
    } else {
      copy[key] = redactTree(value, key, redacted, 1, keep);
    }
  }
  return { input: copy, redacted };
}

const LEN_MARKER = /^\[redacted len=(\d{1,9})\]$/;
const QUERY_MARKER = /\?\[redacted len=(\d{1,9})\]$/;
/** Longest stand-in generated for one redacted value. */
const MAX_STANDIN = 1024 * 1024;

function standIn(stored: unknown): unknown {
  if (typeof stored !== "string") return stored;
  const m = LEN_MARKER.exec(stored);
  if (m) return "x".repeat(Math.min(MAX_STANDIN, Number(m[1])));
  return stored;
}

/**
 * Rebuilds a replayable input from a logged one: each redacted string becomes a string of
 * the same length (`x…`), a redacted query a query of the same length.
 * @returns the input and whether any part of it was only approximated
 */
export function restoreForReplay(
  input: Record<string, unknown>,
  redacted: readonly string[],
): { input: Record<string, unknown>; isApproximate: boolean } {
  if (redacted.length === 0) return { input, isApproximate: false };
  const copy = structuredClone(input);
  for (const path of redacted) {
    if (path === "url.query" && typeof copy.url === "string") {
      copy.url = copy.url.replace(
        QUERY_MARKER,
        (_m, n: string) => `?${"x".repeat(Math.min(MAX_STANDIN, Number(n)))}`,
      );
      continue;
    }
    const parts = path.split(".");
    let node: unknown = copy;
    for (const part of parts.slice(0, -1)) {
      node = node !== null && typeof node === "object"
        ? (node as Record<string, unknown>)[part]
        : undefined;
    }
    const last = parts[parts.length - 1] ?? "";
    if (node !== null && typeof node === "object" && Object.hasOwn(node, last)) {
      (node as Record<string, unknown>)[last] = standIn((node as Record<string, unknown>)[last]);
    }
  }
  return { input: copy, isApproximate: true };
}
