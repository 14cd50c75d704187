/**
 * Chat-template analysis on the template's syntax tree (spec 13 weakness 8: regexes flag
 * legitimate Jinja such as `namespace` or `read(`). The template is parsed with
 * `@huggingface/jinja` (never rendered here) and every node is checked for sandbox-escape
 * gadgets: dunder/private attribute access, attribute names built at run time, the `attr`
 * filter, Jinja globals that reach Python objects (`cycler`, `joiner`, `lipsum`, `self`,
 * `config`, `request`…), code-running callables, include/import/extends, and huge ranges.
 * @module
 */
import { parse, tokenize } from "@huggingface/jinja";
import type { Finding } from "./types.ts";

/** Names that reach Python objects in a stock Jinja environment. */
const GADGET_GLOBALS = new Set([
  "self",
  "cycler",
  "joiner",
  "lipsum",
  "config",
  "request",
  "url_for",
  "get_flashed_messages",
  "session",
  "g",
  "os",
  "subprocess",
  "builtins",
  "__builtins__",
]);

/** Callables and methods that run code, touch files or the network. */
const CODE_CALLS = new Set([
  "eval",
  "exec",
  "compile",
  "open",
  "getattr",
  "setattr",
  "delattr",
  "__import__",
  "import_module",
  "system",
  "popen",
  "popen2",
  "spawn",
  "spawnv",
  "spawnl",
  "fork",
  "execv",
  "execve",
  "check_output",
  "check_call",
  "urlopen",
  "mro",
  "load_module",
]);

/** Literal text that only a gadget needs. */
const DUNDER_TEXT =
  /__(class|mro|subclasses|globals|builtins|init|import|dict|base|bases|getattribute|code|func|self|loader|spec)__/;
const SHELL_TEXT =
  /\b(curl|wget)\s+-|\/bin\/(ba)?sh\b|\bos\.(system|popen)\b|\bsubprocess\b|\bsocket\.socket\b/;
const INCLUDE = /\{%-?\s*(include|import|extends|from)\b/;
const MAX_RANGE = 100_000;

interface Node {
  type: string;
  [key: string]: unknown;
}

function isNode(value: unknown): value is Node {
  return value !== null && typeof value === "object" &&
    typeof (value as { type?: unknown }).type === "string";
}

/** Options of {@link analyzeTemplate}. */
export interface AnalyzeTemplateOptions {
  /** Metadata key the template came from. */
  key: string;
  /** Offset of the template in the file. */
  offset?: number;
  /** Finding stage; default `template`. */
  stage?: string;
}

/**
 * Analyses one chat template.
 * @returns findings; one with rule `template.invalid` when the template cannot be parsed
 * (it is then not known to be safe)
 */
export function analyzeTemplate(text: string, options: AnalyzeTemplateOptions): Finding[] {
  const stage = options.stage ?? "template";
  const findings: Finding[] = [];
  const at = options.offset === undefined ? {} : { offset: options.offset };
  const add = (rule: string, severity: Finding["severity"], why: string) => {
    if (findings.some((f) => f.rule === rule && f.message.endsWith(why))) return;
    findings.push({
      stage,
      rule,
      severity,
      message: `Chat template "${options.key}": ${why}`,
      ...at,
    });
  };
  if (INCLUDE.test(text)) {
    add("template.include", "high", `loads another template ("${INCLUDE.exec(text)?.[0]}")`);
  }
  let program: unknown;
  try {
    program = parse(tokenize(text));
  } catch (error) {
    findings.push({
      stage,
      rule: "template.invalid",
      severity: "high",
      message: `Chat template "${options.key}" cannot be parsed: ${
        error instanceof Error ? error.message.slice(0, 200) : "unknown error"
      }`,
      ...at,
    });
    return findings;
  }
  const assigned = new Set<string>();
  collectAssigned(program, assigned, 0);
  walk(program, 0, (node) => {
    switch (node.type) {
      case "MemberExpression": {
        const property = node.property;
        if (!isNode(property)) return;
        const name = property.type === "Identifier" || property.type === "StringLiteral"
          ? String(property.value)
          : null;
        if (name !== null && name.startsWith("_")) {
          add(
            "template.dunder_access",
            "critical",
            `accesses the private attribute "${name}" (object traversal toward Python internals)`,
          );
        } else if (
          node.computed === true &&
          ["BinaryExpression", "FilterExpression", "CallExpression"].includes(property.type)
        ) {
          add(
            "template.computed_attribute",
            "high",
            "builds an attribute name at run time (a way around name checks)",
          );
        }
        return;
      }
      case "Identifier": {
        const name = String(node.value);
        if (GADGET_GLOBALS.has(name) && !assigned.has(name)) {
          add(
            "template.jinja_gadget",
            "high",
            `uses "${name}", a global that reaches Python objects in Jinja`,
          );
        }
        if (name.startsWith("__")) {
          add("template.dunder_access", "critical", `uses the name "${name}"`);
        }
        return;
      }
      case "FilterExpression":
      case "FilterStatement": {
        const filter = node.filter;
        const filterName = isNode(filter)
          ? filter.type === "Identifier"
            ? String(filter.value)
            : isNode(filter.callee)
            ? String(filter.callee.value)
            : ""
          : "";
        if (filterName === "attr") {
          add("template.attr_filter", "high", "uses the attr filter (attribute access by string)");
        }
        return;
      }
      case "StringLiteral": {
        const value = String(node.value);
        if (DUNDER_TEXT.test(value)) {
          add(
            "template.dunder_string",
            "high",
            `holds the string "${DUNDER_TEXT.exec(value)?.[0]}"`,
          );
        }
        if (SHELL_TEXT.test(value)) {
          add(
            "template.suspicious_text",
            "medium",
            `holds shell or network code ("${SHELL_TEXT.exec(value)?.[0]}")`,
          );
        }
        return;
      }
      case "CallExpression": {
        const callee = node.callee;
        const args = Array.isArray(node.args) ? node.args : [];
        // Calling eval/open/…, or a method such as .system()/.popen(): code execution.
        const calleeName = !isNode(callee)
          ? null
          : callee.type === "Identifier"
          ? (assigned.has(String(callee.value)) ? null : String(callee.value))
          : callee.type === "MemberExpression" && isNode(callee.property) &&
              callee.property.type === "Identifier"
          ? String(callee.property.value)
          : null;
        if (calleeName !== null && CODE_CALLS.has(calleeName)) {
          add("template.code_execution", "critical", `calls "${calleeName}"`);
        }
        if (isNode(callee) && callee.type === "Identifier" && callee.value === "range") {
          for (const arg of args) {
            if (isNode(arg) && arg.type === "IntegerLiteral" && Number(arg.value) > MAX_RANGE) {
              add("template.resource_exhaustion", "medium", `iterates over range(${arg.value})`);
            }
          }
        }
        return;
      }
      default:
        return;
    }
  });
  return findings;
}

/** Names the template defines itself (set, for, macro), so `config` as a loop variable is fine. */
function collectAssigned(node: unknown, out: Set<string>, depth: number): void {
  walk(node, depth, (n) => {
    if (n.type === "SetStatement" || n.type === "For") {
      const target = n.assignee ?? n.loopvar;
      walk(target, 0, (t) => {
        if (t.type === "Identifier") out.add(String(t.value));
      });
    }
    if (n.type === "Macro") {
      const args = Array.isArray(n.args) ? n.args : [];
      for (const arg of args) {
        if (isNode(arg) && arg.type === "Identifier") out.add(String(arg.value));
      }
    }
  });
}

function walk(node: unknown, depth: number, visit: (node: Node) => void): void {
  if (depth > 500) return;
  if (Array.isArray(node)) {
    for (const item of node) walk(item, depth + 1, visit);
    return;
  }
  if (node instanceof Map) {
    for (const [key, value] of node) {
      walk(key, depth + 1, visit);
      walk(value, depth + 1, visit);
    }
    return;
  }
  if (!isNode(node)) return;
  visit(node);
  for (const [key, value] of Object.entries(node)) {
    if (key === "type" || key === "operator") continue;
    if (value !== null && typeof value === "object") walk(value, depth + 1, visit);
  }
}
