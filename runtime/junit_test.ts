import { deepEqual, equal, throws } from "node:assert/strict";
import { JunitError, parseJunitReport } from "./junit.ts";

/** What `deno test --junit-path` wrote for passing, ignored, failing and stepped tests. */
const DENO_REPORT = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="deno test" tests="8" failures="3" errors="0" time="0.008">
    <testsuite name="./tests/a_test.ts" tests="8" disabled="2" errors="0" failures="3">
        <testcase name="plain &lt;ok&gt; &amp; &quot;quoted&quot; &apos;x&apos; &#233;&#x2192;" classname="./tests/a_test.ts" time="0.000" line="1" col="6">
        </testcase>
        <testcase name="ignored one" classname="./tests/a_test.ts" time="0.000" line="2" col="6">
            <skipped/>
        </testcase>
        <testcase name="fails" classname="./tests/a_test.ts" time="0.000" line="3" col="6">
            <failure message="Uncaught Error: boom &lt;b&gt; &amp; x
line2">Error: boom &lt;b&gt; &amp; x
    at file:///tmp/a_test.ts:3:34</failure>
        </testcase>
        <testcase name="with steps" classname="./tests/a_test.ts" time="0.002" line="4" col="6">
            <failure message="1 test step failed">1 test step failed.</failure>
        </testcase>
        <testcase name="with steps &gt; step a" classname="./tests/a_test.ts" time="0.000" line="5" col="11">
        </testcase>
        <testcase name="with steps &gt; step b" classname="./tests/a_test.ts" time="0.000" line="6" col="11">
            <skipped/>
        </testcase>
    </testsuite>
    <testsuite name="./runtime/b_test.ts" tests="1" disabled="0" errors="0" failures="0">
        <testcase name="errored" classname="./runtime/b_test.ts" time="0.001" line="1" col="6">
            <error message="x"><![CDATA[raw <text> & more]]></error>
        </testcase>
    </testsuite>
</testsuites>
`;

Deno.test("parseJunitReport() reads deno's report: outcomes, entities, steps and files", () => {
  deepEqual(parseJunitReport(DENO_REPORT).cases, [
    { file: "tests/a_test.ts", name: "plain <ok> & \"quoted\" 'x' é→", outcome: "passed" },
    { file: "tests/a_test.ts", name: "ignored one", outcome: "skipped" },
    { file: "tests/a_test.ts", name: "fails", outcome: "failed" },
    { file: "tests/a_test.ts", name: "with steps", outcome: "failed" },
    { file: "tests/a_test.ts", name: "with steps > step a", outcome: "passed" },
    { file: "tests/a_test.ts", name: "with steps > step b", outcome: "skipped" },
    { file: "runtime/b_test.ts", name: "errored", outcome: "failed" },
  ]);
});

Deno.test("parseJunitReport() reads an empty run", () => {
  deepEqual(parseJunitReport('<testsuites name="deno test" tests="0"></testsuites>').cases, []);
});

function wrap(body: string): string {
  return `<?xml version="1.0"?>\n<testsuites>\n<testsuite name="x">\n${body}\n</testsuite>\n</testsuites>\n`;
}

const CASE = '<testcase name="t" classname="./a_test.ts">';

const broken: { name: string; xml: string; message: string }[] = [
  {
    name: "a DOCTYPE (entity expansion)",
    xml: '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">]>\n<testsuites/>',
    message: "line 2: declarations and processing instructions are not allowed",
  },
  {
    name: "an unknown entity",
    xml: wrap('<testcase name="&lol;" classname="./a_test.ts"/>'),
    message: 'line 4: unknown entity "&lol;"',
  },
  {
    name: "a bare ampersand",
    xml: wrap('<testcase name="a & b" classname="./a_test.ts"/>'),
    message: 'line 4: "&" outside an entity',
  },
  {
    name: "an out-of-range character reference",
    xml: wrap('<testcase name="&#xD800;" classname="./a_test.ts"/>'),
    message: 'line 4: unknown entity "&#xD800;"',
  },
  {
    name: "an unknown element",
    xml: wrap(`${CASE}<passed/></testcase>`),
    message: "line 4: <passed> is not allowed in <testcase>",
  },
  {
    name: "a test case outside a suite",
    xml: `<testsuites>\n${CASE}</testcase>\n</testsuites>`,
    message: "line 2: <testcase> is not allowed in <testsuites>",
  },
  {
    name: "another root element",
    xml: '<?xml version="1.0"?>\n<results/>',
    message: "line 2: the root element is <results>, expected <testsuites>",
  },
  {
    name: "a second root element",
    xml: "<testsuites/>\n<testsuites/>",
    message: "line 2: a second root element",
  },
  {
    name: "no root element",
    xml: '<?xml version="1.0"?>\n',
    message: "line 2: no <testsuites> element",
  },
  {
    name: "text where none belongs",
    xml: wrap(`${CASE}passed</testcase>`),
    message: "line 4: <testcase> holds no text",
  },
  {
    name: "text outside the root",
    xml: "<testsuites/>\nok",
    message: "line 2: text outside <testsuites>",
  },
  {
    name: "a truncated report",
    xml: `<testsuites>\n<testsuite name="x">\n${CASE}\n`,
    message: "line 4: <testcase> from line 3 is never closed",
  },
  {
    name: "a tag cut off in its attributes",
    xml: '<testsuites>\n<testsuite name="x',
    message: 'line 2: unterminated attribute "name"',
  },
  {
    name: "a mismatched closing tag",
    xml: wrap(`${CASE}</testsuite>`),
    message: "line 4: </testsuite> closes <testcase> from line 4",
  },
  {
    name: "a test case without a classname",
    xml: wrap('<testcase name="t"/>'),
    message: "line 4: <testcase> lacks a name or classname",
  },
  {
    name: "a test case with an empty name",
    xml: wrap('<testcase name="" classname="./a_test.ts"/>'),
    message: "line 4: <testcase> lacks a name or classname",
  },
  {
    name: "an unquoted attribute",
    xml: wrap("<testcase name=t classname=x/>"),
    message: 'line 4: attribute "name" is not quoted',
  },
  {
    name: "a repeated attribute",
    xml: wrap('<testcase name="a" name="b" classname="./a_test.ts"/>'),
    message: 'line 4: attribute "name" appears twice',
  },
  {
    name: '"<" inside an attribute',
    xml: wrap('<testcase name="a<b" classname="./a_test.ts"/>'),
    message: 'line 4: attribute "name" contains "<"',
  },
];

for (const c of broken) {
  Deno.test(`parseJunitReport() refuses ${c.name}`, () => {
    throws(() => parseJunitReport(c.xml), (err: unknown) => {
      equal(err instanceof JunitError, true);
      equal((err as JunitError).code, "JUNIT_INVALID");
      equal((err as JunitError).message, `Invalid JUnit report at ${c.message}`);
      return true;
    });
  });
}
