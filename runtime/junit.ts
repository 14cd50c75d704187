/**
 * A strict, small reader for the JUnit XML that `deno test --junit-path` writes. It accepts
 * only the elements that report uses, the five predefined entities and character references;
 * a DOCTYPE, an unknown element or entity, stray text or a broken nesting is refused with the
 * line, so a truncated or forged report can never read as "all green".
 * @module
 */

/** Largest report read. */
export const MAX_JUNIT_BYTES = 64 * 1024 * 1024;
/** Most test cases in one report. */
export const MAX_JUNIT_CASES = 200_000;
const MAX_DEPTH = 8;

/** How one test case ended. */
export type TestOutcome = "passed" | "failed" | "skipped";

/** One `<testcase>`. */
export interface TestCaseResult {
  /** The test file as the report names it, without a leading `./` (`tests/x_test.ts`). */
  file: string;
  /** The test name; steps read `parent > step`. */
  name: string;
  outcome: TestOutcome;
}

/** The whole report. */
export interface TestReport {
  cases: TestCaseResult[];
}

/** Raised when a report is not the JUnit XML this reader accepts. */
export class JunitError extends Error {
  /** Always JUNIT_INVALID. */
  readonly code = "JUNIT_INVALID";
  /** @param message what is wrong and where */
  constructor(message: string) {
    super(message);
    this.name = "JunitError";
  }
}

/** Which children each element may have (`#text`: non-blank text). */
const CHILDREN: Readonly<Record<string, readonly string[]>> = {
  "#document": ["testsuites"],
  testsuites: ["testsuite"],
  testsuite: ["testcase", "properties", "system-out", "system-err"],
  properties: ["property"],
  property: [],
  testcase: ["failure", "error", "skipped", "system-out", "system-err"],
  failure: ["#text"],
  error: ["#text"],
  skipped: ["#text"],
  "system-out": ["#text"],
  "system-err": ["#text"],
};

const ENTITIES: Readonly<Record<string, string>> = {
  lt: "<",
  gt: ">",
  amp: "&",
  quot: '"',
  apos: "'",
};

const NAME = /[A-Za-z_][A-Za-z0-9_.-]*/y;

interface Element {
  name: string;
  attributes: Map<string, string>;
  /** Child element names, for outcome detection. */
  children: string[];
  /** Where the element starts; turned into a line only for a message. */
  offset: number;
}

/** A cursor over the XML text. */
class Reader {
  pos = 0;
  readonly #xml: string;

  constructor(xml: string) {
    this.#xml = xml;
  }

  line(at = this.pos): number {
    let line = 1;
    for (let i = this.#xml.indexOf("\n"); i !== -1 && i < at; i = this.#xml.indexOf("\n", i + 1)) {
      line++;
    }
    return line;
  }

  fail(message: string, at = this.pos): never {
    throw new JunitError(`Invalid JUnit report at line ${this.line(at)}: ${message}`);
  }

  get isDone(): boolean {
    return this.pos >= this.#xml.length;
  }

  startsWith(text: string): boolean {
    return this.#xml.startsWith(text, this.pos);
  }

  peek(): string | undefined {
    return this.#xml[this.pos];
  }

  /** Reads up to (not including) `end`; fails when it never comes. */
  until(end: string, what: string): string {
    const stop = this.#xml.indexOf(end, this.pos);
    if (stop === -1) this.fail(`unterminated ${what}`);
    const text = this.#xml.slice(this.pos, stop);
    this.pos = stop + end.length;
    return text;
  }

  name(): string {
    NAME.lastIndex = this.pos;
    const match = NAME.exec(this.#xml);
    if (!match) this.fail("expected a name");
    this.pos += match[0].length;
    return match[0];
  }

  skipSpace(): void {
    while (/[ \t\r\n]/.test(this.#xml[this.pos] ?? "")) this.pos++;
  }
}

/** Decodes the predefined entities and character references; refuses anything else. */
function decode(text: string, reader: Reader, at: number): string {
  return text.replace(/&([^;&\s]{0,10});|&/g, (match, entity: string | undefined) => {
    if (entity === undefined) reader.fail('"&" outside an entity', at);
    const named = ENTITIES[entity];
    if (named !== undefined) return named;
    const numeric = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(entity);
    const code = numeric ? parseInt(numeric[1] ?? numeric[2] ?? "", numeric[1] ? 16 : 10) : NaN;
    if (!Number.isFinite(code) || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      reader.fail(`unknown entity "${match}"`, at);
    }
    return String.fromCodePoint(code);
  });
}

function readAttributes(reader: Reader): { attributes: Map<string, string>; isEmpty: boolean } {
  const attributes = new Map<string, string>();
  for (;;) {
    const before = reader.pos;
    reader.skipSpace();
    if (reader.startsWith("/>")) {
      reader.pos += 2;
      return { attributes, isEmpty: true };
    }
    if (reader.startsWith(">")) {
      reader.pos += 1;
      return { attributes, isEmpty: false };
    }
    if (reader.pos === before) reader.fail("expected whitespace before an attribute");
    const name = reader.name();
    reader.skipSpace();
    if (reader.peek() !== "=") reader.fail(`attribute "${name}" has no value`);
    reader.pos++;
    reader.skipSpace();
    const quote = reader.peek();
    if (quote !== '"' && quote !== "'") reader.fail(`attribute "${name}" is not quoted`);
    reader.pos++;
    const at = reader.pos;
    const raw = reader.until(quote, `attribute "${name}"`);
    if (raw.includes("<")) reader.fail(`attribute "${name}" contains "<"`, at);
    if (attributes.has(name)) reader.fail(`attribute "${name}" appears twice`, at);
    attributes.set(name, decode(raw, reader, at));
  }
}

/**
 * Reads a JUnit XML report as written by `deno test --junit-path`.
 * @param xml the report's text
 * @returns every test case with its file, name and outcome
 * @throws {JunitError} JUNIT_INVALID when the text is not such a report
 * @example
 * ```ts
 * const report = parseJunitReport(await Deno.readTextFile("junit.xml"));
 * const failed = report.cases.filter((c) => c.outcome === "failed");
 * ```
 */
export function parseJunitReport(xml: string): TestReport {
  if (xml.length > MAX_JUNIT_BYTES) {
    throw new JunitError(`Invalid JUnit report: larger than ${MAX_JUNIT_BYTES} bytes`);
  }
  const reader = new Reader(xml);
  if (reader.startsWith("<?xml")) reader.until("?>", "XML declaration");
  const cases: TestCaseResult[] = [];
  const stack: Element[] = [{
    name: "#document",
    attributes: new Map(),
    children: [],
    offset: 0,
  }];
  let sawRoot = false;
  while (!reader.isDone) {
    const parent = stack[stack.length - 1] as Element;
    const allowed = CHILDREN[parent.name] ?? [];
    if (reader.startsWith("<!--")) {
      reader.pos += 4;
      reader.until("-->", "comment");
    } else if (reader.startsWith("<![CDATA[")) {
      if (!allowed.includes("#text")) reader.fail(`<${parent.name}> holds no text`);
      reader.pos += 9;
      reader.until("]]>", "CDATA section");
    } else if (reader.startsWith("<!") || reader.startsWith("<?")) {
      reader.fail("declarations and processing instructions are not allowed");
    } else if (reader.startsWith("</")) {
      reader.pos += 2;
      const name = reader.name();
      reader.skipSpace();
      if (reader.peek() !== ">") reader.fail(`malformed closing tag </${name}`);
      reader.pos++;
      if (name !== parent.name) {
        reader.fail(`</${name}> closes <${parent.name}> from line ${reader.line(parent.offset)}`);
      }
      stack.pop();
      closeElement(parent, cases, reader);
    } else if (reader.startsWith("<")) {
      const at = reader.pos;
      reader.pos++;
      const name = reader.name();
      if (!allowed.includes(name)) {
        reader.fail(
          parent.name === "#document"
            ? `the root element is <${name}>, expected <testsuites>`
            : `<${name}> is not allowed in <${parent.name}>`,
          at,
        );
      }
      if (parent.name === "#document") {
        if (sawRoot) reader.fail("a second root element", at);
        sawRoot = true;
      }
      if (stack.length > MAX_DEPTH) reader.fail("elements nested too deep", at);
      const { attributes, isEmpty } = readAttributes(reader);
      parent.children.push(name);
      const element: Element = { name, attributes, children: [], offset: at };
      if (isEmpty) closeElement(element, cases, reader);
      else stack.push(element);
    } else {
      const at = reader.pos;
      const next = xml.indexOf("<", reader.pos);
      const text = xml.slice(reader.pos, next === -1 ? xml.length : next);
      reader.pos = next === -1 ? xml.length : next;
      if (text.trim() !== "") {
        const first = at + text.length - text.trimStart().length;
        if (!allowed.includes("#text")) {
          reader.fail(
            parent.name === "#document"
              ? "text outside <testsuites>"
              : `<${parent.name}> holds no text`,
            first,
          );
        }
        decode(text, reader, at);
      }
    }
  }
  if (stack.length > 1) {
    const open = stack[stack.length - 1] as Element;
    reader.fail(`<${open.name}> from line ${reader.line(open.offset)} is never closed`);
  }
  if (!sawRoot) reader.fail("no <testsuites> element");
  return { cases };
}

function closeElement(element: Element, cases: TestCaseResult[], reader: Reader): void {
  if (element.name !== "testcase") return;
  const name = element.attributes.get("name");
  const classname = element.attributes.get("classname");
  if (name === undefined || name === "" || classname === undefined || classname === "") {
    reader.fail("<testcase> lacks a name or classname", element.offset);
  }
  if (cases.length >= MAX_JUNIT_CASES) reader.fail(`more than ${MAX_JUNIT_CASES} test cases`);
  const isFailed = element.children.includes("failure") || element.children.includes("error");
  const outcome: TestOutcome = isFailed
    ? "failed"
    : element.children.includes("skipped")
    ? "skipped"
    : "passed";
  cases.push({ file: classname.replace(/^\.\//, ""), name, outcome });
}
