/**
 * The evidence gate and the matrix document.
 *
 *     deno run --allow-read tools/evidence.ts check <junit.xml>
 *     deno run --allow-read --allow-write=docs tools/evidence.ts render
 *
 * `check` holds a test run (the JUnit report of `deno test --junit-path`) to
 * policy/controls.yaml and exits 1 naming every claimed control whose test is missing, skipped
 * or failing. `render` writes docs/CONTROLS.md from the matrix. Exit 2: usage error.
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { JunitError, parseJunitReport } from "../runtime/junit.ts";
import {
  checkEvidence,
  CONTROLS_DOC_PATH,
  EvidenceError,
  loadControlMatrix,
  MATRIX_PATH,
  renderControlsMarkdown,
  summarize,
} from "../runtime/evidence.ts";
import { print, printError } from "../runtime/log.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const USAGE = "usage: tools/evidence.ts check <junit.xml> | render";

async function check(reportPath: string): Promise<number> {
  const matrix = await loadControlMatrix(join(ROOT, MATRIX_PATH));
  const report = parseJunitReport(await Deno.readTextFile(reportPath));
  const problems = checkEvidence(matrix, report);
  for (const problem of problems) printError(problem.message);
  const n = summarize(matrix);
  if (problems.length > 0) {
    printError(`${problems.length} claim(s) in ${MATRIX_PATH} are not proven by this run`);
    return 1;
  }
  const tests = new Set(matrix.controls.flatMap((c) => c.proofs.map((p) => `${p.file} ${p.test}`)));
  print(
    `evidence: ${n.working} working and ${n.partial} partial controls proven by ${tests.size} ` +
      `passing tests (${n.planned} planned)`,
  );
  return 0;
}

async function render(): Promise<number> {
  const matrix = await loadControlMatrix(join(ROOT, MATRIX_PATH));
  await Deno.mkdir(join(ROOT, "docs"), { recursive: true });
  await Deno.writeTextFile(join(ROOT, CONTROLS_DOC_PATH), renderControlsMarkdown(matrix));
  print(`wrote ${CONTROLS_DOC_PATH}`);
  return 0;
}

/**
 * Runs the tool.
 * @param argv `check <junit.xml>` or `render`
 * @returns the exit code
 */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === "check" && rest.length === 1 && rest[0]) return await check(rest[0]);
    if (command === "render" && rest.length === 0) return await render();
    printError(USAGE);
    return 2;
  } catch (err) {
    if (err instanceof EvidenceError || err instanceof JunitError) {
      printError(`error: ${err.message}`);
      return 1;
    }
    if (err instanceof Deno.errors.NotFound) {
      printError(`error: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
