/**
 * Directory artifacts (diffusion models, spec 13 §4) through the real pipeline: the shipped
 * audit, policy, registry and quarantine controls under a real supervisor, the directory
 * checks and static scan in real sandboxed jobs, the tree hash as the integrity pin, and the
 * shipped policy refusing to promote a local directory. Directories come in as RPC uploads
 * (as `secai import DIR` sends them), through the inbox, and over HTTP as multipart.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { planDirectoryImport, uploadDirectory } from "../../runtime/cli_import_dir.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import { digestTree } from "../../runtime/kit/tree.ts";
import { DEFAULT_CONTROLS } from "../../runtime/manifest.ts";
import { auditQueryApi } from "../../workers/audit/api.ts";
import { type Job, type JobSummary, quarantineApi } from "../../workers/quarantine/api.ts";
import { registryApi } from "../../workers/registry/api.ts";
import {
  benignDiffusionFiles,
  MALFORMATIONS,
  removeDiffusion,
  writeBenignDiffusion,
} from "./_diffusion.ts";
import { type PipelineSystem, settle, signIn, startPipeline } from "./_system.ts";

async function uploadDir(sys: PipelineSystem, root: string): Promise<Job> {
  const q = sys.supervisor.client(quarantineApi);
  const plan = await planDirectoryImport(root);
  return await settle(q, await uploadDirectory(q, plan, root.slice(root.lastIndexOf("/") + 1)));
}

function assertEmptyQuarantine(sys: PipelineSystem): void {
  deepEqual([...Deno.readDirSync(`${sys.home}/quarantine/processing`)], []);
  deepEqual([...Deno.readDirSync(`${sys.home}/promotion-staging`)], []);
}

Deno.test("a benign diffusion directory passes all seven stages and the policy refuses to promote a local one", async () => {
  const sys = await startPipeline();
  const root = await writeBenignDiffusion("tiny-sd3");
  try {
    const expected = await digestTree(root);
    const job = await uploadDir(sys, root);

    equal(job.format, "diffusion-directory");
    equal(job.filename, "tiny-sd3");
    equal(job.size, expected.size);
    equal(job.sha256, expected.sha256, "the tree hash is the integrity pin");
    equal(job.fsverity, null);
    deepEqual(job.stages.map((s) => [s.stage, s.verdict]), [
      ["source_policy", "pass"],
      ["format_gate", "pass"],
      ["integrity_pin", "pass"],
      ["provenance", "pass"],
      ["static_scan", "pass"],
      ["smoke_test", "skipped"],
      ["diffusion_checks", "pass"],
    ]);
    match(job.stages[1]?.note ?? "", /StableDiffusion3Pipeline.*16 files \(4 safetensors/);
    match(job.stages[4]?.note ?? "", /as diffusion-directory/);
    match(job.stages[5]?.note ?? "", /No behavioural test for diffusion/);
    match(job.stages[6]?.note ?? "", /text_encoder_2, tokenizer, tokenizer_2, transformer, vae/);

    equal(job.state, "rejected");
    equal(job.error?.code, "PROMOTION_DENIED");
    match(job.error?.message ?? "", /local diffusion directory is never promoted/);
    equal(job.decision?.decision, "deny");
    equal(job.decision?.rule, "models.diffusion_directory_pin");

    deepEqual((await sys.supervisor.client(registryApi).call("list", {})).models, []);
    assertEmptyQuarantine(sys);
    const audit = sys.supervisor.client(auditQueryApi);
    const rejected =
      (await audit.call("query", { type: "quarantine.rejected", limit: 10 })).entries;
    equal(rejected[0]?.subject, job.id);
    equal(rejected[0]?.evidence.code, "PROMOTION_DENIED");
    const decisions = (await audit.call("query", { type: "policy.decision", limit: 50 })).entries;
    ok(decisions.some((d) =>
      d.subject === "model_promotion" && d.decision === "deny" &&
      JSON.stringify(d).includes("models.diffusion_directory_pin")
    ));
  } finally {
    await removeDiffusion(root);
    await sys.stop();
  }
});

Deno.test("a malformed directory stops at the stage whose rule it breaks, with the rule and the path", async () => {
  const sys = await startPipeline();
  try {
    const cases = [
      { rule: "diffusion.forbidden_key", member: "model_index.json" },
      { rule: "diffusion.code_marker", member: "scheduler/scheduler_config.json" },
      { rule: "diffusion.sentencepiece.invalid", member: "tokenizer_2/spiece.model" },
      { rule: "diffusion.component_missing", member: "text_encoder_2" },
      { rule: "diffusion.unexpected_directory", member: "extras" },
    ];
    for (const c of cases) {
      const m = MALFORMATIONS.find((m) => m.rule === c.rule && m.member === c.member);
      ok(m, c.rule);
      const root = await writeBenignDiffusion();
      try {
        await m.apply(root);
        const job = await uploadDir(sys, root);
        equal(job.state, "rejected", c.rule);
        equal(job.stage, m.stage === 2 ? "format_gate" : "diffusion_checks", c.rule);
        equal(job.error?.code, m.stage === 2 ? "INVALID_DIRECTORY" : "DIFFUSION_CHECK_FAILED");
        ok(job.error?.message.includes(`${c.rule} at "${c.member}"`), job.error?.message);
        const record = job.stages.find((s) => s.stage === job.stage);
        ok(record?.findings.some((f) => f.rule === c.rule && f.member === c.member), c.rule);
      } finally {
        await removeDiffusion(root);
      }
    }
    assertEmptyQuarantine(sys);
  } finally {
    await sys.stop();
  }
});

Deno.test("the inbox claims dropped directories: a link inside is refused by name, a hard link is cut", async () => {
  const sys = await startPipeline();
  try {
    const inbox = `${sys.home}/quarantine/incoming`;
    const q = sys.supervisor.client(quarantineApi);
    // Written outside, then moved in whole (as an importer publishes a directory).
    const linked = await writeBenignDiffusion("linked-sd");
    await Deno.symlink("/etc/passwd", `${linked}/vae/passwd.json`);
    // A hard link held outside: the claim must replace it by a copy, or the holder could
    // change what is scanned (and the tree hash refuses hard links).
    const hard = await writeBenignDiffusion("hardlinked-sd");
    const outside = `${sys.home}/outside.json`;
    await Deno.writeTextFile(outside, "{}");
    await Deno.link(outside, `${hard}/vae/extra.json`);
    for (const root of [linked, hard]) {
      await Deno.rename(root, `${inbox}/${root.slice(root.lastIndexOf("/") + 1)}`);
      await removeDiffusion(root);
    }

    const claimed = async (name: string): Promise<Job> => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const summary = (await q.call("list", { limit: 10 })).jobs.find((j) => j.filename === name);
        if (summary) return await settle(q, summary.id);
        if (Date.now() > deadline) throw new Error(`${name} was not claimed`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const refused = await claimed("linked-sd");
    equal(refused.state, "rejected");
    equal(refused.stage, "format_gate");
    equal(refused.error?.code, "INVALID_DIRECTORY");
    const gate = refused.stages.find((s) => s.stage === "format_gate");
    ok(gate?.findings.some((f) => f.rule === "diffusion.link" && f.member === "vae/passwd.json"));

    const cut = await claimed("hardlinked-sd");
    deepEqual(
      cut.stages.map((s) => s.verdict),
      ["pass", "pass", "pass", "pass", "pass", "skipped", "pass"],
      JSON.stringify(cut.stages.map((s) => s.findings)),
    );
    equal(cut.error?.code, "PROMOTION_DENIED");
    equal(await Deno.readTextFile(outside), "{}");
    deepEqual([...Deno.readDirSync(inbox)].filter((e) => !e.name.startsWith(".")), []);
    assertEmptyQuarantine(sys);
  } finally {
    await sys.stop();
  }
});

Deno.test("a directory upload refuses bad entry paths, chunks out of order and a file twice", async () => {
  const sys = await startPipeline();
  try {
    const q = sys.supervisor.client(quarantineApi);
    const codeOf = (p: Promise<unknown>) =>
      p.then(() => "OK", (e: unknown) => e instanceof RpcError ? e.code : String(e));
    const begin = () => q.call("uploadBegin", { filename: "bad-sd", kind: "directory" });

    for (const path of ["../x.json", "/abs.json", "a//b.json", ".hidden.json", "a/./b.json"]) {
      const { uploadId } = await begin();
      equal(await codeOf(q.call("uploadEntry", { uploadId, path })), "INVALID_REQUEST", path);
      await q.call("uploadAbort", { uploadId });
    }
    {
      const { uploadId } = await begin();
      const data = new TextEncoder().encode("{}");
      equal(
        await codeOf(q.call("uploadChunk", { uploadId, offset: 0, data })),
        "UPLOAD_OUT_OF_ORDER",
      );
      await q.call("uploadEntry", { uploadId, path: "a/b.json", size: 2 });
      await q.call("uploadChunk", { uploadId, offset: 0, data });
      equal(
        await codeOf(q.call("uploadEntry", { uploadId, path: "a/b.json" })),
        "UPLOAD_INVALID_ENTRY",
      );
      // The refusal discarded the upload.
      equal(await codeOf(q.call("uploadFinish", { uploadId })), "UPLOAD_NOT_FOUND");
    }
    {
      const { uploadId } = await begin();
      await q.call("uploadEntry", { uploadId, path: "a.json", size: 10 });
      await q.call("uploadChunk", { uploadId, offset: 0, data: new Uint8Array(2) });
      equal(await codeOf(q.call("uploadFinish", { uploadId })), "UPLOAD_SIZE_MISMATCH");
    }
    {
      const { uploadId } = await begin();
      await q.call("uploadEntry", { uploadId, path: "a.json" });
      // A file where a directory must go.
      equal(
        await codeOf(q.call("uploadEntry", { uploadId, path: "a.json/b.json" })),
        "UPLOAD_INVALID_ENTRY",
      );
    }
    {
      // A single-file upload takes no entries.
      const { uploadId } = await q.call("uploadBegin", { filename: "x.safetensors" });
      equal(
        await codeOf(q.call("uploadEntry", { uploadId, path: "a.json" })),
        "UPLOAD_INVALID_ENTRY",
      );
      await q.call("uploadAbort", { uploadId });
    }
    deepEqual(
      [...Deno.readDirSync(`${sys.home}/quarantine/incoming`)].map((e) => e.name),
      [],
      "every refused upload left nothing behind",
    );
    deepEqual((await q.call("list", {})).jobs, []);
  } finally {
    await sys.stop();
  }
});

Deno.test("a directory uploaded over HTTP as multipart runs the pipeline; a part outside it is refused", async () => {
  const sys = await startPipeline({ controls: DEFAULT_CONTROLS });
  try {
    const { base, session } = await signIn(sys, "pipeline_diffusion_test");
    const boundary = "----secaiDiffusion7";
    const headers = {
      ...session,
      "content-type": `multipart/form-data; boundary=${boundary}`,
    };
    const enc = new TextEncoder();
    const body = (files: [string, Uint8Array][]) => {
      const parts: Uint8Array<ArrayBuffer>[] = [];
      for (const [name, bytes] of files) {
        parts.push(
          enc.encode(
            `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n` +
              "Content-Type: application/octet-stream\r\n\r\n",
          ),
          new Uint8Array(bytes),
          enc.encode("\r\n"),
        );
      }
      parts.push(enc.encode(`--${boundary}--\r\n`));
      return new Blob(parts);
    };
    const files = Object.entries(benignDiffusionFiles()).map(([p, b]) =>
      [`web-sd/${p}`, b] as [string, Uint8Array]
    );
    const res = await fetch(`${base}/api/v1/quarantine`, {
      method: "POST",
      headers,
      body: body(files),
    });
    const summary = await res.json() as JobSummary;
    equal(res.status, 202, JSON.stringify(summary));
    equal(summary.filename, "web-sd");
    const job = await settle(sys.supervisor.client(quarantineApi), summary.id);
    equal(job.format, "diffusion-directory");
    equal(job.stages.find((s) => s.stage === "diffusion_checks")?.verdict, "pass");
    equal(job.state, "rejected");
    equal(job.decision?.rule, "models.diffusion_directory_pin");

    for (
      const bad of [
        [...files, ["other-sd/x.json", enc.encode("{}")]],
        [...files.slice(0, 2), ["web-sd/../x.json", enc.encode("{}")]],
      ] as [string, Uint8Array][][]
    ) {
      const refused = await fetch(`${base}/api/v1/quarantine`, {
        method: "POST",
        headers,
        body: body(bad),
      });
      const error = await refused.json();
      equal(refused.status, 400, JSON.stringify(error));
      match(error.error.message, /of the directory upload/);
    }
    equal((await sys.supervisor.client(quarantineApi).call("list", {})).jobs.length, 1);
  } finally {
    await sys.stop();
  }
});
