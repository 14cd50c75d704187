/**
 * Streaming model upload for `POST /api/v1/quarantine`. The gateway has no write permission:
 * the body is read as it arrives and passed to the quarantine control over RPC in ordered
 * chunks of ≤ 1 MiB; the quarantine writes it into its inbox and enforces the size limit on
 * every chunk. Two body forms:
 * - `application/octet-stream` with `?filename=NAME` (and an optional detached signature as
 *   JSON in the `X-SecAI-Signature` header): what the CLI and scripts send;
 * - `multipart/form-data` with one `file` part (its filename is the name) and an optional
 *   `signature` part (JSON) before it: what a browser form sends.
 * - A directory (a diffusion model, spec 13 §4) as `multipart/form-data` with one `file`
 *   part per file whose filename is `DIR/relative/path` (what a browser sends for a
 *   directory picker): every part under the same `DIR`, at most {@link MAX_DIRECTORY_FILES}.
 * A body that stalls for 30 s is refused; a client that goes away aborts the upload.
 * @module
 */
import { z } from "zod";
import { RpcError } from "../../../../runtime/kit/errors.ts";
import {
  ArtifactNameSchema,
  type ArtifactSignature,
  EntryPathSchema,
  MAX_CHUNK_BYTES,
  MAX_DIRECTORY_FILES,
  MAX_SIGNATURE_BUNDLE_BYTES,
  parseSignatureText,
} from "../../../../workers/quarantine/api.ts";
import { GatewayError } from "../../../../workers/gateway/errors.ts";
import type { RouteContext } from "../../../../workers/gateway/routing.ts";
import { boundaryOf, MultipartError, readMultipart } from "./multipart.ts";
import { refusal } from "./respond.ts";

/** A body that sends nothing for this long is refused. */
export const UPLOAD_IDLE_MS = 30_000;
/** Largest signature (header or part). */
const MAX_SIGNATURE_BYTES = MAX_SIGNATURE_BUNDLE_BYTES;
/** Time each chunk call may take (a disk write of 1 MiB). */
const CHUNK_DEADLINE_MS = 30_000;

const FilenameQuerySchema = z.strictObject({ filename: ArtifactNameSchema });

/**
 * Reads an upload and hands it to the quarantine.
 * @param req the request, body unread
 * @param ctx the route context
 * @returns 202 with the new job, or a refusal
 */
export async function streamUpload(req: Request, ctx: RouteContext): Promise<Response> {
  const type = req.headers.get("content-type");
  const essence = type?.split(";", 1)[0]?.trim().toLowerCase();
  if (req.body === null) throw new GatewayError("INVALID_BODY", "The upload has no body");
  const sink = new UploadSink(ctx);
  try {
    if (essence === "application/octet-stream") {
      const { filename } = ctx.query(FilenameQuerySchema);
      const signature = parseSignature(req.headers.get("x-secai-signature"), "header");
      const declared = contentLength(req);
      await sink.begin(filename, signature, declared);
      for await (const chunk of idleLimited(req.body, ctx.signal)) await sink.write(chunk);
    } else if (essence === "multipart/form-data") {
      await readForm(req.body, boundaryOrThrow(type as string), sink, ctx.signal);
    } else {
      throw new GatewayError(
        "UNSUPPORTED_MEDIA_TYPE",
        `Cannot read a ${
          type === null ? "body without Content-Type" : `"${type.slice(0, 100)}" body`
        }: expected "application/octet-stream" or "multipart/form-data"`,
      );
    }
    const job = await sink.finish();
    return Response.json(job, {
      status: 202,
      headers: { location: `/api/v1/quarantine/${job.id}` },
    });
  } catch (error) {
    await sink.abort();
    await req.body.cancel().catch(() => undefined);
    const mapped = refusal(ctx, error);
    if (mapped !== null) return mapped;
    if (error instanceof MultipartError) {
      throw new GatewayError("INVALID_BODY", `Invalid multipart upload: ${error.message}`);
    }
    throw error;
  }
}

/** Accumulates bytes into chunks and sends them in order. */
class UploadSink {
  readonly #ctx: RouteContext;
  #uploadId: string | null = null;
  #maxBytes = 0;
  #offset = 0;
  /** Bytes of the earlier files of a directory upload. */
  #total = 0;
  #buffer = new Uint8Array(MAX_CHUNK_BYTES);
  #filled = 0;

  constructor(ctx: RouteContext) {
    this.#ctx = ctx;
  }

  get isOpen(): boolean {
    return this.#uploadId !== null;
  }

  async begin(
    filename: string,
    signature: ArtifactSignature | null,
    size: number | null,
    kind: "file" | "directory" = "file",
  ) {
    const opened = await this.#ctx.state.quarantine.uploadBegin({
      filename,
      ...(size === null ? {} : { size }),
      ...(signature === null ? {} : { signature }),
      ...(kind === "directory" ? { kind } : {}),
    }, { signal: this.#ctx.signal });
    this.#uploadId = opened.uploadId;
    this.#maxBytes = opened.maxBytes;
  }

  /** Starts the next file of a directory upload (the bytes so far belong to the previous). */
  async entry(path: string): Promise<void> {
    if (this.#uploadId === null) throw new GatewayError("INVALID_BODY", "The upload has no file");
    await this.#flush();
    await this.#ctx.state.quarantine.uploadEntry({ uploadId: this.#uploadId, path }, {
      signal: this.#ctx.signal,
      deadlineMs: CHUNK_DEADLINE_MS,
    });
    this.#total += this.#offset;
    this.#offset = 0;
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.#total + this.#offset + this.#filled + bytes.length > this.#maxBytes) {
      throw new GatewayError("PAYLOAD_TOO_LARGE", `Upload exceeds ${this.#maxBytes} bytes`);
    }
    let at = 0;
    while (at < bytes.length) {
      const take = Math.min(bytes.length - at, MAX_CHUNK_BYTES - this.#filled);
      this.#buffer.set(bytes.subarray(at, at + take), this.#filled);
      this.#filled += take;
      at += take;
      if (this.#filled === MAX_CHUNK_BYTES) await this.#flush();
    }
  }

  async #flush(): Promise<void> {
    if (this.#filled === 0 || this.#uploadId === null) return;
    const { received } = await this.#ctx.state.quarantine.uploadChunk({
      uploadId: this.#uploadId,
      offset: this.#offset,
      data: this.#buffer.subarray(0, this.#filled),
    }, { signal: this.#ctx.signal, deadlineMs: CHUNK_DEADLINE_MS });
    this.#offset = received;
    this.#filled = 0;
  }

  async finish() {
    if (this.#uploadId === null) throw new GatewayError("INVALID_BODY", "The upload has no file");
    await this.#flush();
    const job = await this.#ctx.state.quarantine.uploadFinish({ uploadId: this.#uploadId });
    this.#uploadId = null;
    return job;
  }

  /** Discards the upload (best effort: the quarantine also discards idle uploads). */
  async abort(): Promise<void> {
    const id = this.#uploadId;
    this.#uploadId = null;
    if (id === null) return;
    await this.#ctx.state.quarantine.uploadAbort({ uploadId: id }).catch((error: unknown) => {
      if (!(error instanceof RpcError)) throw error;
    });
  }
}

async function readForm(
  body: ReadableStream<Uint8Array>,
  boundary: string,
  sink: UploadSink,
  signal: AbortSignal,
): Promise<void> {
  let signature: ArtifactSignature | null = null;
  let current: "signature" | "file" | null = null;
  let signatureText = "";
  let hasFile = false;
  /** The directory of a directory upload (its first file part named `DIR/…`). */
  let directory: string | null = null;
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const parts = readMultipart(idleLimited(body, signal), boundary, {
    maxParts: MAX_DIRECTORY_FILES + 1,
  });
  for await (const event of parts) {
    if (event.kind === "part") {
      if (current === "signature") signature = parseSignature(signatureText, "part");
      const { name, filename } = event.part;
      if (
        name === "file" && filename !== null &&
        (directory !== null || (!hasFile && filename.includes("/")))
      ) {
        const slash = filename.indexOf("/");
        const top = filename.slice(0, slash);
        const path = EntryPathSchema.safeParse(filename.slice(slash + 1));
        if (directory === null) {
          directory = bareName(top, "directory name");
          hasFile = true;
          await sink.begin(top, signature, null, "directory");
        }
        if (slash <= 0 || top !== directory || !path.success) {
          throw new GatewayError(
            "INVALID_BODY",
            `Invalid file "${
              filename.slice(0, 200)
            }" of the directory upload: expected "${directory}/" and a relative path of bare names`,
          );
        }
        current = "file";
        await sink.entry(path.data);
      } else if (name === "signature" && !hasFile && signatureText === "" && filename === null) {
        current = "signature";
      } else if (name === "file" && !hasFile && filename !== null) {
        const artifact = bareName(filename, "file name");
        hasFile = true;
        current = "file";
        await sink.begin(artifact, signature, null);
      } else {
        throw new GatewayError(
          "INVALID_BODY",
          `Unexpected part "${
            name.slice(0, 40)
          }": send an optional "signature" then one "file" part (or one per file of a directory)`,
        );
      }
    } else if (event.kind === "data") {
      if (current === "file") {
        await sink.write(event.bytes);
      } else {
        signatureText += decoder.decode(event.bytes, { stream: true });
        if (signatureText.length > MAX_SIGNATURE_BYTES) {
          throw new GatewayError("INVALID_BODY", "The signature part is too large");
        }
      }
    }
  }
  if (!hasFile) throw new GatewayError("INVALID_BODY", 'The upload has no "file" part');
}

/** The name of an artifact (a file, or a directory upload's top directory) as sent. */
function bareName(value: string, what: "file name" | "directory name"): string {
  const parsed = ArtifactNameSchema.safeParse(value);
  if (!parsed.success) {
    throw new GatewayError(
      "INVALID_BODY",
      `Invalid ${what} "${
        value.slice(0, 100)
      }": expected a bare name of letters, digits and . _ + - ( ) [ ]`,
    );
  }
  return parsed.data;
}

function boundaryOrThrow(type: string): string {
  try {
    return boundaryOf(type);
  } catch (error) {
    if (error instanceof MultipartError) {
      throw new GatewayError("INVALID_HEADER", `Invalid "Content-Type": ${error.message}`);
    }
    throw error;
  }
}

function parseSignature(text: string | null, where: "header" | "part"): ArtifactSignature | null {
  if (text === null || text === "") return null;
  const label = where === "header" ? '"X-SecAI-Signature" header' : '"signature" part';
  const parsed = parseSignatureText(text);
  if (typeof parsed === "string") {
    throw new GatewayError(
      where === "header" ? "INVALID_HEADER" : "INVALID_BODY",
      `Invalid ${label}: ${parsed} (expected {version: 1, algorithm: "ed25519", keyId, ` +
        `signature} or an OpenSSF model signing bundle)`,
    );
  }
  return parsed;
}

function contentLength(req: Request): number | null {
  const value = req.headers.get("content-length");
  if (value === null) return null;
  if (!/^[0-9]{1,15}$/.test(value)) {
    throw new GatewayError("INVALID_HEADER", 'Invalid "Content-Length" header');
  }
  return Number(value);
}

/** The body's chunks; a read that waits longer than {@link UPLOAD_IDLE_MS} ends the upload. */
async function* idleLimited(
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  try {
    for (;;) {
      signal.throwIfAborted();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new GatewayError("REQUEST_TIMEOUT", `No upload data for ${UPLOAD_IDLE_MS / 1000} s`),
            ),
          UPLOAD_IDLE_MS,
        );
      });
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await Promise.race([reader.read(), idle]);
      } finally {
        clearTimeout(timer);
      }
      if (next.done) return;
      yield next.value;
    }
  } finally {
    reader.releaseLock();
  }
}
