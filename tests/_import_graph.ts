/**
 * The import graph of our own TypeScript: a small lexer that understands comments, strings,
 * template literals, regular expressions and JSX well enough to find every `import`,
 * `export … from`, dynamic `import("…")` and `new Worker(…)` in real code (and none in
 * strings, comments or JSX text), and a reader that builds the graph of the project's files.
 * The rules over the graph live in `_architecture_rules.ts`; they never touch the disk.
 * @module
 */
import { dirname, join, normalize, relative, sep } from "node:path";
import { z } from "zod";

/** How a module refers to another. */
export type ImportKind = "static" | "reexport" | "dynamic";

/** One import found in a source file. */
export interface ImportRef {
  /** The specifier exactly as written. */
  specifier: string;
  /** 1-based line of the specifier. */
  line: number;
  kind: ImportKind;
  /** `import type …` / `export type … from`: erased at run time. */
  isTypeOnly: boolean;
}

/** How a `new Worker(…)` call passes its Deno permissions. */
export type SpawnPermissions =
  /** `permissions: toWorkerPermissions(…)`: the one audited way. */
  | "toWorkerPermissions"
  /** `permissions: "inherit"`. */
  | "inherit"
  /** No `permissions` key: a Deno worker then inherits every permission of its parent. */
  | "missing"
  /** Anything else (a variable, a literal object, a spread): cannot be verified. */
  | "other";

/** One `new Worker(…)` call. */
export interface WorkerSpawnRef {
  /** 1-based line of `new`. */
  line: number;
  permissions: SpawnPermissions;
}

/** Something the lexer found but cannot turn into an edge (a computed dynamic import). */
export interface ScanProblem {
  line: number;
  message: string;
}

/** What one source file imports and spawns. */
export interface ModuleScan {
  imports: ImportRef[];
  spawns: WorkerSpawnRef[];
  problems: ScanProblem[];
}

/** Options of {@linkcode scanModule}. */
export interface ScanOptions {
  /** Parse JSX (`.tsx` files). */
  isJsx: boolean;
}

type TokenType = "ident" | "punct" | "string" | "template" | "number" | "regex";

interface Token {
  type: TokenType;
  /** Identifier name, punctuator, or the cooked text of a string / plain template. */
  value: string;
  /** Character offset where the token starts. */
  start: number;
  /** Template literals only: true when it has `${…}` parts. */
  hasSubstitutions?: boolean;
}

/** Keywords after which `/` starts a regular expression and `<` starts JSX. */
const EXPRESSION_KEYWORDS = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "case",
  "do",
  "else",
  "yield",
  "await",
  "extends",
  "default",
]);

const IDENT_START = /[\p{ID_Start}$_]/u;
const IDENT_PART = /[\p{ID_Continue}$\u200c\u200d]/u;
const JSX_NAME = /[\p{ID_Continue}$.:-]/u;

/** Thrown inside the lexer when a speculative JSX or regex reading must be undone. */
class Backtrack extends Error {
  constructor() {
    super("backtrack");
    this.name = "Backtrack";
  }
}

/**
 * A lexer over one file. It emits only the tokens of code: JSX text, comments and the raw
 * parts of literals are skipped, so `import` inside a string or a comment is never seen.
 */
class Lexer {
  readonly tokens: Token[] = [];
  /** False when an unclosed template, brace or string ended the file early. */
  isComplete = true;
  #pos = 0;
  readonly #src: string;
  readonly #isJsx: boolean;

  constructor(src: string, isJsx: boolean) {
    this.#src = src;
    this.#isJsx = isJsx;
  }

  run(): void {
    if (this.#src.startsWith("#!")) {
      const end = this.#src.indexOf("\n");
      this.#pos = end === -1 ? this.#src.length : end;
    }
    try {
      this.#code(false);
    } catch (err) {
      if (!(err instanceof Backtrack)) throw err;
      this.isComplete = false;
    }
  }

  /** Reads code until the end, or (when `untilBrace`) until the `}` that closes it. */
  #code(untilBrace: boolean): void {
    const src = this.#src;
    let depth = 0;
    while (this.#pos < src.length) {
      const ch = src[this.#pos] as string;
      const next = src[this.#pos + 1];
      if (ch === "\n" || ch === " " || ch === "\t" || ch === "\r" || ch === "\f") {
        this.#pos++;
      } else if (ch === "/" && next === "/") {
        const end = src.indexOf("\n", this.#pos);
        this.#pos = end === -1 ? src.length : end;
      } else if (ch === "/" && next === "*") {
        const end = src.indexOf("*/", this.#pos + 2);
        this.#pos = end === -1 ? src.length : end + 2;
      } else if (ch === "'" || ch === '"') {
        this.#string(ch);
      } else if (ch === "`") {
        this.#template();
      } else if (IDENT_START.test(ch) || ch === "\\") {
        this.#identifier();
      } else if (/[0-9]/.test(ch) || (ch === "." && next !== undefined && /[0-9]/.test(next))) {
        const start = this.#pos;
        while (this.#pos < src.length && /[\w.]/.test(src[this.#pos] as string)) this.#pos++;
        this.tokens.push({ type: "number", value: src.slice(start, this.#pos), start });
      } else if (ch === "/" && this.#expressionMayStart()) {
        if (!this.#try(() => this.#regex())) this.#punct(ch);
      } else if (ch === "<" && this.#isJsx && this.#expressionMayStart()) {
        if (!this.#try(() => this.#jsxElement())) this.#punct(ch);
      } else if (ch === "{") {
        depth++;
        this.#punct(ch);
      } else if (ch === "}") {
        if (untilBrace && depth === 0) return;
        depth--;
        this.#punct(ch);
      } else {
        this.#punct(ch);
      }
    }
    if (untilBrace) throw new Backtrack();
  }

  /** Runs a speculative reading; on failure restores the position and the tokens. */
  #try(read: () => void): boolean {
    const pos = this.#pos;
    const count = this.tokens.length;
    try {
      read();
      return true;
    } catch (err) {
      if (!(err instanceof Backtrack)) throw err;
      this.#pos = pos;
      this.tokens.length = count;
      return false;
    }
  }

  #punct(ch: string): void {
    this.tokens.push({ type: "punct", value: ch, start: this.#pos });
    this.#pos++;
  }

  /** Whether the previous token ends an operand, so `/` divides and `<` compares. */
  #expressionMayStart(): boolean {
    const prev = this.tokens.at(-1);
    if (!prev) return true;
    switch (prev.type) {
      case "number":
      case "string":
      case "template":
      case "regex":
        return false;
      case "ident":
        return EXPRESSION_KEYWORDS.has(prev.value);
      case "punct":
        return prev.value !== ")" && prev.value !== "]" && prev.value !== "}";
    }
  }

  #identifier(): void {
    const src = this.#src;
    const start = this.#pos;
    this.#pos++;
    while (this.#pos < src.length && IDENT_PART.test(src[this.#pos] as string)) this.#pos++;
    this.tokens.push({ type: "ident", value: src.slice(start, this.#pos), start });
  }

  #string(quote: string): void {
    const src = this.#src;
    const start = this.#pos;
    let value = "";
    this.#pos++;
    while (this.#pos < src.length) {
      const ch = src[this.#pos] as string;
      if (ch === quote) {
        this.#pos++;
        break;
      }
      if (ch === "\n") break; // unterminated: stop at the line end like a parser's recovery
      if (ch === "\\") {
        value += src.slice(this.#pos, this.#pos + 2);
        this.#pos += 2;
        continue;
      }
      value += ch;
      this.#pos++;
    }
    this.tokens.push({ type: "string", value, start });
  }

  #template(): void {
    const src = this.#src;
    const start = this.#pos;
    let value = "";
    let hasSubstitutions = false;
    this.#pos++;
    while (this.#pos < src.length) {
      const ch = src[this.#pos] as string;
      if (ch === "`") {
        this.#pos++;
        break;
      }
      if (ch === "\\") {
        value += src.slice(this.#pos, this.#pos + 2);
        this.#pos += 2;
        continue;
      }
      if (ch === "$" && src[this.#pos + 1] === "{") {
        hasSubstitutions = true;
        // The substitution's tokens come first; the template token closes them.
        this.#pos += 2;
        this.#code(true);
        this.#pos++; // the closing brace
        continue;
      }
      value += ch;
      this.#pos++;
    }
    this.tokens.push({ type: "template", value, start, hasSubstitutions });
  }

  /** A regular expression literal; one that reaches a line end was a division after all. */
  #regex(): void {
    const src = this.#src;
    const start = this.#pos;
    let inClass = false;
    this.#pos++;
    for (;;) {
      const ch = src[this.#pos];
      if (ch === undefined || ch === "\n") throw new Backtrack();
      this.#pos++;
      if (ch === "\\") {
        this.#pos++;
      } else if (ch === "[") {
        inClass = true;
      } else if (ch === "]") {
        inClass = false;
      } else if (ch === "/" && !inClass) {
        break;
      }
    }
    while (this.#pos < src.length && IDENT_PART.test(src[this.#pos] as string)) this.#pos++;
    this.tokens.push({ type: "regex", value: src.slice(start, this.#pos), start });
  }

  /**
   * A JSX element or fragment starting at `<`. Text children are skipped; `{…}` children and
   * attribute values are read as code. Anything that is not JSX (a generic arrow `<T,>(…)`,
   * an unclosed tag) backtracks and the `<` is read as an operator.
   */
  #jsxElement(): void {
    const src = this.#src;
    const start = this.#pos;
    this.#pos++; // <
    const name = this.#jsxName();
    this.#skipSpace();
    if (name && (src[this.#pos] === "," || src.startsWith("extends", this.#pos))) {
      throw new Backtrack();
    }
    if (name) {
      for (;;) {
        this.#skipSpace();
        const ch = src[this.#pos];
        if (ch === undefined) throw new Backtrack();
        if (ch === "/" && src[this.#pos + 1] === ">") {
          this.#pos += 2;
          this.#jsxDone(start);
          return;
        }
        if (ch === ">") break;
        if (ch === "{") {
          this.#jsxBraces();
        } else if (!this.#jsxName()) {
          throw new Backtrack();
        } else {
          this.#skipSpace();
          if (src[this.#pos] === "=") {
            this.#pos++;
            this.#skipSpace();
            this.#jsxAttributeValue();
          }
        }
      }
    } else if (src[this.#pos] !== ">") {
      throw new Backtrack();
    }
    this.#pos++; // >
    this.#jsxChildren(name);
    this.#jsxDone(start);
  }

  #jsxDone(start: number): void {
    // The element is one operand: push a stand-in so a following `/` divides.
    this.tokens.push({ type: "number", value: "<jsx>", start });
  }

  #jsxChildren(name: string): void {
    const src = this.#src;
    for (;;) {
      const ch = src[this.#pos];
      if (ch === undefined) throw new Backtrack();
      if (ch === "<" && src[this.#pos + 1] === "/") {
        this.#pos += 2;
        this.#skipSpace();
        const closing = this.#jsxName();
        this.#skipSpace();
        if (closing !== name || src[this.#pos] !== ">") throw new Backtrack();
        this.#pos++;
        return;
      }
      if (ch === "<") {
        this.#jsxElement();
      } else if (ch === "{") {
        this.#jsxBraces();
      } else {
        this.#pos++;
      }
    }
  }

  #jsxAttributeValue(): void {
    const src = this.#src;
    const ch = src[this.#pos];
    if (ch === '"' || ch === "'") {
      const end = src.indexOf(ch, this.#pos + 1);
      if (end === -1) throw new Backtrack();
      this.#pos = end + 1;
    } else if (ch === "{") {
      this.#jsxBraces();
    } else if (ch === "<") {
      this.#jsxElement();
    } else {
      throw new Backtrack();
    }
  }

  /** `{ code }` inside JSX. */
  #jsxBraces(): void {
    this.#pos++;
    this.tokens.push({ type: "punct", value: "(", start: this.#pos - 1 });
    this.#code(true);
    this.tokens.push({ type: "punct", value: ")", start: this.#pos });
    this.#pos++;
  }

  #jsxName(): string {
    const src = this.#src;
    const start = this.#pos;
    while (this.#pos < src.length && JSX_NAME.test(src[this.#pos] as string)) this.#pos++;
    return src.slice(start, this.#pos);
  }

  #skipSpace(): void {
    const src = this.#src;
    while (this.#pos < src.length && /\s/.test(src[this.#pos] as string)) this.#pos++;
  }
}

/** Offsets of line starts, for turning offsets into 1-based lines. */
function lineIndex(src: string): (offset: number) => number {
  const starts = [0];
  for (let i = src.indexOf("\n"); i !== -1; i = src.indexOf("\n", i + 1)) starts.push(i + 1);
  return (offset: number): number => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] as number) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
}

function isIdent(token: Token | undefined, value: string): boolean {
  return token?.type === "ident" && token.value === value;
}

function isPunct(token: Token | undefined, value: string): boolean {
  return token?.type === "punct" && token.value === value;
}

/** A string or a template without substitutions: a specifier known before run time. */
function literalOf(token: Token | undefined): string | null {
  if (token?.type === "string") return token.value;
  if (token?.type === "template" && !token.hasSubstitutions) return token.value;
  return null;
}

/** Skips a balanced `{…}` starting at `i`; returns the index after it, or -1. */
function skipBraces(tokens: Token[], i: number): number {
  let depth = 0;
  for (let j = i; j < tokens.length; j++) {
    const t = tokens[j];
    if (isPunct(t, "{")) depth++;
    else if (isPunct(t, "}")) {
      depth--;
      if (depth === 0) return j + 1;
    } else if (t?.type === "string" || t?.type === "template" || t?.type === "regex") {
      return -1; // import clauses hold names only
    }
  }
  return -1;
}

/**
 * From the token after `import` / `export`: the index of the `from` of a clause such as
 * `X`, `* as X`, `{ a, type b }`, `X, { … }`, or -1 when this is no import/re-export clause.
 */
function findFrom(tokens: Token[], i: number): number {
  let j = i;
  for (let guard = 0; guard < 16 && j < tokens.length; guard++) {
    const t = tokens[j];
    if (isIdent(t, "from") && tokens[j + 1]?.type === "string") return j;
    if (isPunct(t, "{")) {
      j = skipBraces(tokens, j);
      if (j === -1) return -1;
    } else if (t?.type === "ident" || isPunct(t, "*") || isPunct(t, ",")) {
      j++;
    } else {
      return -1;
    }
  }
  return -1;
}

/** Reads how the arguments of `new Worker(` (tokens from `open`, the `(`) pass permissions. */
function spawnPermissions(tokens: Token[], open: number): SpawnPermissions {
  let depth = 0;
  let result: SpawnPermissions = "missing";
  for (let j = open; j < tokens.length; j++) {
    const t = tokens[j];
    if (isPunct(t, "(") || isPunct(t, "{") || isPunct(t, "[")) depth++;
    else if (isPunct(t, ")") || isPunct(t, "}") || isPunct(t, "]")) {
      depth--;
      if (depth === 0) break;
    } else if (isIdent(t, "permissions")) {
      const after = tokens[j + 1];
      if (!isPunct(after, ":")) return "other"; // shorthand `{ permissions }`: unverifiable
      const value = tokens[j + 2];
      if (isIdent(value, "toWorkerPermissions") && isPunct(tokens[j + 3], "(")) {
        result = "toWorkerPermissions";
      } else if (literalOf(value) === "inherit") {
        return "inherit";
      } else {
        return "other";
      }
    } else if (isPunct(t, ".") && isPunct(tokens[j + 1], ".")) {
      return "other"; // a spread may carry anything
    }
  }
  return result;
}

/**
 * Finds the imports, re-exports, dynamic imports and worker spawns of one source file.
 * @param source the file's text
 * @param options whether the file is JSX
 * @returns every reference with its line; computed dynamic imports as problems
 * @example
 * ```ts
 * const scan = scanModule('import { z } from "zod";', { isJsx: false });
 * // scan.imports → [{ specifier: "zod", line: 1, kind: "static", isTypeOnly: false }]
 * ```
 */
export function scanModule(source: string, options: ScanOptions): ModuleScan {
  const lexer = new Lexer(source, options.isJsx);
  lexer.run();
  const tokens = lexer.tokens;
  const lineOf = lineIndex(source);
  const scan: ModuleScan = { imports: [], spawns: [], problems: [] };
  if (!lexer.isComplete) {
    scan.problems.push({
      line: lineOf(source.length),
      message: "the file ends inside a template literal or a brace and cannot be read",
    });
  }
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as Token;
    const prev = tokens[i - 1];
    if (t.type !== "ident" || isPunct(prev, ".")) continue;
    if (t.value === "import") {
      const next = tokens[i + 1];
      if (isPunct(next, "(")) {
        const specifier = literalOf(tokens[i + 2]);
        const close = tokens[i + 3];
        if (specifier !== null && (isPunct(close, ")") || isPunct(close, ","))) {
          const line = lineOf((tokens[i + 2] as Token).start);
          scan.imports.push({ specifier, line, kind: "dynamic", isTypeOnly: false });
        } else {
          scan.problems.push({
            line: lineOf(t.start),
            message: "a dynamic import with a computed specifier cannot be checked",
          });
        }
        continue;
      }
      const literal = literalOf(next);
      if (next?.type === "string" && literal !== null) {
        scan.imports.push({
          specifier: literal,
          line: lineOf(next.start),
          kind: "static",
          isTypeOnly: false,
        });
        continue;
      }
      // `import type X from`, but not `import type from "x"` (a default import named type).
      const isTypeOnly = isIdent(next, "type") && !isIdent(tokens[i + 2], "from");
      const from = findFrom(tokens, isTypeOnly ? i + 2 : i + 1);
      if (from !== -1) {
        const spec = tokens[from + 1] as Token;
        scan.imports.push({
          specifier: spec.value,
          line: lineOf(spec.start),
          kind: "static",
          isTypeOnly,
        });
      }
    } else if (t.value === "export") {
      const next = tokens[i + 1];
      const isTypeOnly = isIdent(next, "type");
      const first = isTypeOnly ? i + 2 : i + 1;
      if (!isPunct(tokens[first], "*") && !isPunct(tokens[first], "{")) continue;
      const from = findFrom(tokens, first);
      if (from !== -1) {
        const spec = tokens[from + 1] as Token;
        scan.imports.push({
          specifier: spec.value,
          line: lineOf(spec.start),
          kind: "reexport",
          isTypeOnly,
        });
      }
    } else if (
      t.value === "new" && isIdent(tokens[i + 1], "Worker") && isPunct(tokens[i + 2], "(")
    ) {
      scan.spawns.push({ line: lineOf(t.start), permissions: spawnPermissions(tokens, i + 2) });
    }
  }
  return scan;
}

/** One edge of the graph: `from` imports `specifier`. */
export interface ImportEdge {
  /** Importing file, relative to the project root with `/` separators. */
  from: string;
  specifier: string;
  /**
   * For relative specifiers: the imported path relative to the project root (it may start
   * with `../` when it escapes the project); `null` for packages and other schemes.
   */
  to: string | null;
  line: number;
  kind: ImportKind;
  isTypeOnly: boolean;
}

/** A `new Worker(…)` call in some file. */
export interface WorkerSpawn extends WorkerSpawnRef {
  file: string;
}

/** Something in a file that the graph cannot represent. */
export interface GraphProblem extends ScanProblem {
  file: string;
}

/** The graph the architecture rules judge. A plain value, so tests can build broken ones. */
export interface ImportGraph {
  /** Every source file, relative to the project root, sorted. */
  files: string[];
  edges: ImportEdge[];
  spawns: WorkerSpawn[];
  problems: GraphProblem[];
  /** The keys of import_map.json: bare names (`zod`) and prefixes (`preact/`). */
  importMapKeys: string[];
}

/** The part of import_map.json the rules need: its bare names and prefixes. */
const ImportMapSchema = z.strictObject({
  imports: z.record(z.string().min(1).max(200), z.string().min(1).max(300)),
  scopes: z.record(z.string().max(300), z.record(z.string().max(200), z.string().max(300)))
    .optional(),
});

/** Folders never read: dependencies, the pinned Deno, build output and scratch space. */
export const EXCLUDED_DIRS: readonly string[] = [
  "node_modules",
  "tools/deno-npm",
  "static/build",
  "coverage",
];

/**
 * Resolves a relative specifier against the importing file.
 * @param from importing file, project-relative
 * @param specifier the specifier as written
 * @returns the project-relative target, or null when the specifier is not relative
 */
export function resolveRelative(from: string, specifier: string): string | null {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return null;
  const path = specifier.split(/[?#]/, 1)[0] as string;
  return normalize(join(dirname(from), path)).split(sep).join("/");
}

async function listSources(root: string, dir: string, out: string[]): Promise<void> {
  for await (const entry of Deno.readDir(join(root, dir))) {
    const rel = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory) {
      // Dot folders hold state, CI scripts and scratch files (.secai, .scratch, .ci, .git).
      if (entry.name.startsWith(".") || EXCLUDED_DIRS.includes(rel)) continue;
      await listSources(root, rel, out);
    } else if (entry.isFile && /\.tsx?$/.test(entry.name)) {
      out.push(rel);
    }
  }
}

/**
 * Reads every `.ts`/`.tsx` file of the project (outside {@linkcode EXCLUDED_DIRS} and dot
 * folders) and builds its import graph.
 * @param root the project root
 * @returns the graph with project-relative paths
 */
export async function readImportGraph(root: string): Promise<ImportGraph> {
  const files: string[] = [];
  await listSources(root, "", files);
  files.sort();
  const graph: ImportGraph = { files, edges: [], spawns: [], problems: [], importMapKeys: [] };
  const map = ImportMapSchema.parse(
    JSON.parse(await Deno.readTextFile(join(root, "import_map.json"))),
  );
  graph.importMapKeys = Object.keys(map.imports).sort();
  await Promise.all(files.map(async (file) => {
    const source = await Deno.readTextFile(join(root, file));
    const scan = scanModule(source, { isJsx: file.endsWith(".tsx") });
    for (const ref of scan.imports) {
      graph.edges.push({ from: file, to: resolveRelative(file, ref.specifier), ...ref });
    }
    for (const spawn of scan.spawns) graph.spawns.push({ file, ...spawn });
    for (const problem of scan.problems) graph.problems.push({ file, ...problem });
  }));
  const byPlace = (a: { file?: string; from?: string; line: number }, b: typeof a) =>
    (a.file ?? a.from ?? "").localeCompare(b.file ?? b.from ?? "") || a.line - b.line;
  graph.edges.sort(byPlace);
  graph.spawns.sort(byPlace);
  graph.problems.sort(byPlace);
  return graph;
}

/** Project-relative path of an absolute one, with `/` separators. */
export function projectPath(root: string, absolute: string): string {
  return relative(root, absolute).split(sep).join("/");
}
