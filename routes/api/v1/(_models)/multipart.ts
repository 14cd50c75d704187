/**
 * A strict, streaming reader of `multipart/form-data` (RFC 7578 over RFC 2046 §5.1) for
 * uploads: it never buffers a part's content, only up to one delimiter's length of it.
 * Strict on purpose (a lenient multipart parser is a classic request-smuggling and filter
 * bypass surface): the body must begin with the first delimiter (no preamble), each part
 * may carry only `Content-Disposition: form-data; name="…"[; filename="…"]` and
 * `Content-Type`, header blocks and part counts are bounded, and nothing but an optional
 * CRLF may follow the close delimiter.
 * @module
 */

/** Headers of one part. */
export interface MultipartPart {
  name: string;
  filename: string | null;
  contentType: string | null;
}

/** What the reader yields, in body order. */
export type MultipartEvent =
  | { kind: "part"; part: MultipartPart }
  | { kind: "data"; bytes: Uint8Array }
  | { kind: "end" };

/** Limits of {@link readMultipart}. */
export interface MultipartLimits {
  /** Largest header block of one part. Default 8 KiB. */
  maxHeaderBytes?: number;
  /** Most parts. Default 8. */
  maxParts?: number;
}

/** A malformed multipart body; the message names what is wrong. */
export class MultipartError extends Error {
  /** Always INVALID_MULTIPART. */
  readonly code = "INVALID_MULTIPART";
  /** @param message what is wrong */
  constructor(message: string) {
    super(message);
    this.name = "MultipartError";
  }
}

const CRLF = new Uint8Array([13, 10]);
const HEADER_END = new Uint8Array([13, 10, 13, 10]);
/** RFC 2046 bchars, 1–70 of them, not ending in a space. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The boundary of a `multipart/form-data` content type.
 * @param contentType the request's `Content-Type`
 * @returns the boundary
 * @throws {MultipartError} when the type is not multipart/form-data with a valid boundary
 */
export function boundaryOf(contentType: string): string {
  const [essence, ...params] = contentType.split(";");
  if (essence?.trim().toLowerCase() !== "multipart/form-data") {
    throw new MultipartError("Content type is not multipart/form-data");
  }
  let boundary: string | null = null;
  for (const param of params) {
    const eq = param.indexOf("=");
    if (eq === -1) throw new MultipartError("Malformed Content-Type parameter");
    const key = param.slice(0, eq).trim().toLowerCase();
    let value = param.slice(eq + 1).trim();
    if (value.startsWith('"')) {
      if (!value.endsWith('"') || value.length < 2) {
        throw new MultipartError("Malformed quoted Content-Type parameter");
      }
      value = value.slice(1, -1);
    }
    if (key === "boundary") {
      if (boundary !== null) throw new MultipartError("Two boundary parameters");
      boundary = value;
    }
  }
  if (boundary === null || !BOUNDARY.test(boundary)) {
    throw new MultipartError("Missing or invalid multipart boundary");
  }
  return boundary;
}

/** Index of `needle` in `haystack` at or after `from`, or -1. */
function indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0] as number;
  const last = haystack.length - needle.length;
  for (
    let i = haystack.indexOf(first, from);
    i !== -1 && i <= last;
    i = haystack.indexOf(first, i + 1)
  ) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Parses one part's header block (without the final CRLF CRLF). */
function parseHeaders(block: Uint8Array): MultipartPart {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(block);
  } catch (error) {
    if (error instanceof TypeError) throw new MultipartError("Part headers are not UTF-8");
    throw error;
  }
  let disposition: string | null = null;
  let contentType: string | null = null;
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new MultipartError("Malformed part header line");
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name)) throw new MultipartError("Malformed part header name");
    if (name === "content-disposition") {
      if (disposition !== null) throw new MultipartError("Two Content-Disposition headers");
      disposition = value;
    } else if (name === "content-type") {
      if (contentType !== null) throw new MultipartError("Two Content-Type headers");
      contentType = value.slice(0, 200);
    } else {
      throw new MultipartError(`Part header "${name.slice(0, 40)}" is not allowed`);
    }
  }
  if (disposition === null) throw new MultipartError("Part has no Content-Disposition");
  return { ...parseDisposition(disposition), contentType };
}

/** `form-data; name="x"; filename="y"` with quoted-string values (no escapes, no `filename*`). */
function parseDisposition(value: string): { name: string; filename: string | null } {
  const match = /^form-data((?:\s*;\s*[A-Za-z*]+="[^"\\\r\n]*")*)\s*$/i.exec(value);
  if (match === null) {
    throw new MultipartError("Content-Disposition is not form-data with quoted parameters");
  }
  let name: string | null = null;
  let filename: string | null = null;
  for (const param of (match[1] ?? "").matchAll(/;\s*([A-Za-z*]+)="([^"]*)"/g)) {
    const key = (param[1] as string).toLowerCase();
    const v = param[2] as string;
    if (key === "name" && name === null) name = v;
    else if (key === "filename" && filename === null) filename = v;
    else {throw new MultipartError(
        `Content-Disposition parameter "${key.slice(0, 20)}" is repeated or not allowed`,
      );}
  }
  if (name === null || name.length === 0) throw new MultipartError("Part has no name");
  return { name, filename };
}

/**
 * Reads a multipart/form-data body as a stream of part headers and content chunks.
 * @param body the request body
 * @param boundary from {@link boundaryOf}
 * @param limits header size and part count
 * @throws {MultipartError} on any deviation from the strict form
 */
export async function* readMultipart(
  body: AsyncIterable<Uint8Array>,
  boundary: string,
  limits: MultipartLimits = {},
): AsyncGenerator<MultipartEvent> {
  const maxHeaderBytes = limits.maxHeaderBytes ?? 8192;
  const maxParts = limits.maxParts ?? 8;
  const encoder = new TextEncoder();
  const first = encoder.encode(`--${boundary}`);
  const delimiter = encoder.encode(`\r\n--${boundary}`);
  let pending: Uint8Array = new Uint8Array(0);
  let state: "start" | "after-delimiter" | "headers" | "body" | "done" = "start";
  let parts = 0;
  const iterator = body[Symbol.asyncIterator]();
  let isEof = false;

  async function more(): Promise<boolean> {
    if (isEof) return false;
    const next = await iterator.next();
    if (next.done) {
      isEof = true;
      return false;
    }
    pending = concat(pending, next.value);
    return true;
  }

  for (;;) {
    if (state === "start") {
      while (pending.length < first.length) {
        if (!await more()) throw new MultipartError("Body ends before the first boundary");
      }
      if (indexOf(pending.subarray(0, first.length), first) !== 0) {
        throw new MultipartError("Body does not begin with the boundary (no preamble allowed)");
      }
      pending = pending.subarray(first.length);
      state = "after-delimiter";
    } else if (state === "after-delimiter") {
      while (pending.length < 2) {
        if (!await more()) throw new MultipartError("Body ends after a boundary");
      }
      if (pending[0] === 45 && pending[1] === 45) {
        pending = pending.subarray(2);
        // Only an optional CRLF may follow the close delimiter.
        while (await more()) {
          if (pending.length > 2) throw new MultipartError("Data after the closing boundary");
        }
        if (pending.length > 0 && indexOf(pending, CRLF) !== 0) {
          throw new MultipartError("Data after the closing boundary");
        }
        if (pending.length > 2) throw new MultipartError("Data after the closing boundary");
        if (parts === 0) throw new MultipartError("Body has no part");
        yield { kind: "end" };
        return;
      }
      if (pending[0] !== 13 || pending[1] !== 10) {
        throw new MultipartError("Boundary is not followed by CRLF");
      }
      pending = pending.subarray(2);
      if (++parts > maxParts) throw new MultipartError(`More than ${maxParts} parts`);
      state = "headers";
    } else if (state === "headers") {
      let end = indexOf(pending, HEADER_END);
      while (end === -1) {
        if (pending.length > maxHeaderBytes) {
          throw new MultipartError(`Part headers exceed ${maxHeaderBytes} bytes`);
        }
        if (!await more()) throw new MultipartError("Body ends inside part headers");
        end = indexOf(pending, HEADER_END);
      }
      if (end > maxHeaderBytes) {
        throw new MultipartError(`Part headers exceed ${maxHeaderBytes} bytes`);
      }
      const part = parseHeaders(pending.subarray(0, end));
      pending = pending.subarray(end + HEADER_END.length);
      yield { kind: "part", part };
      state = "body";
    } else if (state === "body") {
      const at = indexOf(pending, delimiter);
      if (at !== -1) {
        if (at > 0) yield { kind: "data", bytes: pending.subarray(0, at) };
        pending = pending.subarray(at + delimiter.length);
        state = "after-delimiter";
        continue;
      }
      // Keep what could be the start of a delimiter split across reads.
      const safe = pending.length - (delimiter.length - 1);
      if (safe > 0) {
        yield { kind: "data", bytes: pending.subarray(0, safe) };
        pending = pending.subarray(safe);
      }
      if (!await more()) throw new MultipartError("Body ends inside a part (no closing boundary)");
    } else {
      return;
    }
  }
}
