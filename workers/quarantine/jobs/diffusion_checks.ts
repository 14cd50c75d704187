/**
 * Sandboxed job of the directory checks (spec 13 §4): stage 2 (`gate`, the directory format
 * gate) and stage 7 (`deep`, components and JSON deep scan) on a directory artifact, whose
 * files are read and parsed only here. The input is a directory, read-only to the job.
 *
 * argv: `["gate" | "deep"]`. Result: `{ report: DirectoryReport }` (`scanners/diffusion.ts`).
 * @module
 */
import { runJob } from "../../../runtime/kit/job.ts";
import { checkDiffusionDirectory, deepCheckDiffusionDirectory } from "../scanners/diffusion.ts";

await runJob(async ({ inputPath, args }) => {
  const mode = args[0];
  if (inputPath === null || (mode !== "gate" && mode !== "deep")) {
    throw Object.assign(
      new TypeError('Cannot check: the job needs a directory input and "gate" or "deep"'),
      { code: "INVALID_INPUT" },
    );
  }
  if (!(await Deno.lstat(inputPath)).isDirectory) {
    throw Object.assign(new TypeError("Cannot check: the input is not a directory"), {
      code: "INVALID_INPUT",
    });
  }
  const report = mode === "gate"
    ? await checkDiffusionDirectory(inputPath)
    : await deepCheckDiffusionDirectory(inputPath);
  return { report };
});
