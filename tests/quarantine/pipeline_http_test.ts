/**
 * The quarantine and registry over HTTP, through the real gateway worker of the shipped
 * manifest (every control running), with a real signed-in session: streamed uploads (raw and
 * multipart) handed to the quarantine over RPC, progress as server-sent events, findings,
 * cancel, the registry's list, signed manifest, verify and revoke — and the refusals.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { Job, JobSummary } from "../../workers/quarantine/api.ts";
import type { Model } from "../../workers/registry/api.ts";
import { DEFAULT_CONTROLS } from "../../runtime/manifest.ts";
import { benignSafetensors, signIn, startPipeline, writeBigSafetensors } from "./_system.ts";

const MAX_BYTES = 80 << 20;

function multipart(
  filename: string,
  content: Uint8Array,
  boundary = "----secaiTest42",
): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder();
  const head = enc.encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\n` +
      `Content-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = enc.encode(`\r\n--${boundary}--\r\n`);
  const out = new Uint8Array(head.length + content.length + tail.length);
  out.set(head);
  out.set(content, head.length);
  out.set(tail, head.length + content.length);
  return out;
}

/** Reads an SSE response to its end: `[event, data]` pairs. */
async function readEvents(res: Response): Promise<[string, Record<string, unknown>][]> {
  const text = await res.text();
  const events: [string, Record<string, unknown>][] = [];
  for (const block of text.split("\n\n")) {
    const name = /^event: (.+)$/m.exec(block)?.[1];
    const data = /^data: (.+)$/m.exec(block)?.[1];
    if (name !== undefined && data !== undefined) events.push([name, JSON.parse(data)]);
  }
  return events;
}

async function json<T>(res: Response, status: number): Promise<T> {
  const body = await res.json();
  equal(res.status, status, JSON.stringify(body));
  return body as T;
}

Deno.test("models are uploaded, followed, inspected, verified and revoked over HTTP", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "secai-http-" });
  const sys = await startPipeline({
    controls: DEFAULT_CONTROLS,
    sections: { quarantine: { maxArtifactBytes: MAX_BYTES } },
  });
  try {
    const c = await signIn(sys, "pipeline_http_test");
    let promoted: Job | undefined;

    await t.step(
      "a raw upload streams in and its progress arrives as server-sent events",
      async () => {
        const big = `${dir}/web.safetensors`;
        await writeBigSafetensors(big, 64);
        const file = await Deno.open(big, { read: true });
        const res = await fetch(`${c.base}/api/v1/quarantine?filename=web.safetensors`, {
          method: "POST",
          headers: { ...c.session, "content-type": "application/octet-stream" },
          body: file.readable,
        });
        const job = await json<JobSummary>(res, 202);
        equal(res.headers.get("location"), `/api/v1/quarantine/${job.id}`);
        equal(job.size, (await Deno.stat(big)).size);
        const stream = await fetch(`${c.base}/api/v1/quarantine/${job.id}/events`, {
          headers: c.session,
        });
        equal(stream.status, 200);
        match(stream.headers.get("content-type") ?? "", /^text\/event-stream/);
        const events = await readEvents(stream);
        const last = events.at(-1);
        equal(last?.[0], "job");
        equal(last?.[1].state, "promoted");
        ok(
          events.some(([name, data]) => name === "stage" && data.stage === "static_scan"),
          JSON.stringify(events),
        );
        ok(events.every(([, data]) => data.jobId === undefined || data.jobId === job.id));
        promoted = await json<Job>(
          await fetch(`${c.base}/api/v1/quarantine/${job.id}`, { headers: c.session }),
          200,
        );
        equal(promoted.stages.length, 7);
      },
    );

    await t.step(
      "a multipart upload of a pickle polyglot is rejected and its findings are served",
      async () => {
        const pickle = Uint8Array.from([0x80, 0x04, 0x95, ...new Uint8Array(40)]);
        const res = await fetch(`${c.base}/api/v1/quarantine`, {
          method: "POST",
          headers: {
            ...c.session,
            "content-type": "multipart/form-data; boundary=----secaiTest42",
          },
          body: multipart("polyglot.safetensors", pickle),
        });
        const job = await json<JobSummary>(res, 202);
        const events = await readEvents(
          await fetch(`${c.base}/api/v1/quarantine/${job.id}/events`, { headers: c.session }),
        );
        equal(events.at(-1)?.[1].state, "rejected");
        const findings = await json<
          { error: { code: string }; findings: { pipelineStage: string; rule: string }[] }
        >(
          await fetch(`${c.base}/api/v1/quarantine/${job.id}/findings`, { headers: c.session }),
          200,
        );
        equal(findings.error.code, "PICKLE_POLYGLOT");
        equal(findings.findings[0]?.pipelineStage, "format_gate");
      },
    );

    await t.step(
      "the registry lists, exports a signed manifest, verifies and revokes",
      async () => {
        const id = promoted?.modelId as string;
        const list = await json<Model[] | { models: Model[] }>(
          await fetch(`${c.base}/api/v1/models`, { headers: c.session }),
          200,
        );
        deepEqual((list as { models: Model[] }).models.map((m) => m.id), [id]);
        const signed = await json<{ manifest: string; signature: string; publicKey: string }>(
          await fetch(`${c.base}/api/v1/models/manifest`, { headers: c.session }),
          200,
        );
        const key = await crypto.subtle.importKey(
          "raw",
          Uint8Array.from(atob(signed.publicKey), (ch) => ch.charCodeAt(0)),
          { name: "Ed25519" },
          false,
          ["verify"],
        );
        ok(
          await crypto.subtle.verify(
            { name: "Ed25519" },
            key,
            Uint8Array.from(atob(signed.signature), (ch) => ch.charCodeAt(0)),
            new TextEncoder().encode(signed.manifest),
          ),
        );
        const verified = await json<{ status: string }>(
          await fetch(`${c.base}/api/v1/models/${id}/verify`, {
            method: "POST",
            headers: { ...c.session, "content-type": "application/json" },
            body: "{}",
          }),
          200,
        );
        equal(verified.status, "verified");
        const revoked = await json<Model>(
          await fetch(`${c.base}/api/v1/models/${id}/revoke`, {
            method: "POST",
            headers: { ...c.session, "content-type": "application/json" },
            body: JSON.stringify({ reason: "test revocation" }),
          }),
          200,
        );
        equal(revoked.revokedReason, "test revocation");
        const after = await json<{ models: Model[] }>(
          await fetch(`${c.base}/api/v1/models`, { headers: c.session }),
          200,
        );
        deepEqual(after.models, []);
      },
    );

    await t.step("refusals map to statuses: 404, 409, 413, 415, 401, 403", async () => {
      const cases: {
        name: string;
        request: () => Promise<Response>;
        status: number;
        code: string;
      }[] = [
        {
          name: "unknown job",
          request: () =>
            fetch(`${c.base}/api/v1/quarantine/q000000000000000000000000`, { headers: c.session }),
          status: 404,
          code: "JOB_NOT_FOUND",
        },
        {
          name: "malformed job id",
          request: () => fetch(`${c.base}/api/v1/quarantine/nope`, { headers: c.session }),
          status: 404,
          code: "NOT_FOUND",
        },
        {
          name: "cancel after the end",
          request: () =>
            fetch(`${c.base}/api/v1/quarantine/${promoted?.id}/cancel`, {
              method: "POST",
              headers: { ...c.session, "content-type": "application/json" },
              body: "{}",
            }),
          status: 409,
          code: "INVALID_STATE",
        },
        {
          name: "a declared size over the limit",
          request: () =>
            fetch(`${c.base}/api/v1/quarantine?filename=huge.safetensors`, {
              method: "POST",
              headers: { ...c.session, "content-type": "application/octet-stream" },
              body: new Uint8Array(MAX_BYTES + 1),
            }),
          status: 413,
          code: "UPLOAD_TOO_LARGE",
        },
        {
          name: "a streamed multipart body over the limit",
          request: () =>
            fetch(`${c.base}/api/v1/quarantine`, {
              method: "POST",
              headers: {
                ...c.session,
                "content-type": "multipart/form-data; boundary=----secaiTest42",
              },
              body: multipart("huge.safetensors", new Uint8Array(MAX_BYTES + 1)),
            }),
          status: 413,
          code: "PAYLOAD_TOO_LARGE",
        },
        {
          name: "a JSON body",
          request: () =>
            fetch(`${c.base}/api/v1/quarantine`, {
              method: "POST",
              headers: { ...c.session, "content-type": "application/json" },
              body: "{}",
            }),
          status: 415,
          code: "UNSUPPORTED_MEDIA_TYPE",
        },
        {
          name: "a path as the file name",
          request: () =>
            fetch(`${c.base}/api/v1/quarantine?filename=../x.safetensors`, {
              method: "POST",
              headers: { ...c.session, "content-type": "application/octet-stream" },
              body: benignSafetensors(),
            }),
          status: 400,
          code: "INVALID_QUERY",
        },
        {
          name: "an upload without a session",
          request: () =>
            fetch(`${c.base}/api/v1/quarantine?filename=anon.safetensors`, {
              method: "POST",
              headers: { origin: c.base, "content-type": "application/octet-stream" },
              body: benignSafetensors(),
            }),
          status: 401,
          code: "UNAUTHENTICATED",
        },
        {
          name: "an upload from another site",
          request: () =>
            fetch(`${c.base}/api/v1/quarantine?filename=csrf.safetensors`, {
              method: "POST",
              headers: {
                ...c.session,
                origin: "https://evil.example",
                "content-type": "application/octet-stream",
              },
              body: benignSafetensors(),
            }),
          status: 403,
          code: "CROSS_SITE_REQUEST",
        },
        {
          name: "an upload with the read-only CLI token",
          request: () =>
            fetch(`${c.base}/api/v1/quarantine?filename=cli.safetensors`, {
              method: "POST",
              headers: {
                authorization: `Bearer ${c.cliToken}`,
                "content-type": "application/octet-stream",
              },
              body: benignSafetensors(),
            }),
          status: 403,
          code: "TOKEN_READ_ONLY",
        },
      ];
      for (const r of cases) {
        const res = await r.request();
        const body = await res.json();
        equal(res.status, r.status, `${r.name}: ${JSON.stringify(body)}`);
        equal(body.error?.code, r.code, r.name);
      }
      // Nothing refused left a job or a file behind.
      const { jobs } = await json<{ jobs: JobSummary[] }>(
        await fetch(`${c.base}/api/v1/quarantine`, {
          headers: { authorization: `Bearer ${c.cliToken}` },
        }),
        200,
      );
      equal(jobs.length, 2);
      deepEqual(
        [...Deno.readDirSync(`${sys.home}/quarantine/incoming`)].map((e) => e.name),
        [],
      );
    });
  } finally {
    await sys.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
