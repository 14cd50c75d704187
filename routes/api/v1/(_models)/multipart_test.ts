import { deepEqual, equal, rejects, throws } from "node:assert/strict";
import { boundaryOf, MultipartError, type MultipartEvent, readMultipart } from "./multipart.ts";

const enc = new TextEncoder();
const B = "----secai7Xb";

function body(text: string | Uint8Array, chunk = 1 << 20): AsyncIterable<Uint8Array> {
  const bytes = typeof text === "string" ? enc.encode(text) : text;
  return (async function* () {
    for (let i = 0; i < bytes.length; i += chunk) yield bytes.subarray(i, i + chunk);
  })();
}

async function collect(
  source: AsyncIterable<Uint8Array>,
  limits = {},
): Promise<{ parts: MultipartEvent[]; data: Map<string, Uint8Array> }> {
  const parts: MultipartEvent[] = [];
  const data = new Map<string, Uint8Array>();
  let current = "";
  for await (const event of readMultipart(source, B, limits)) {
    if (event.kind === "part") {
      current = event.part.name;
      data.set(current, new Uint8Array(0));
      parts.push(event);
    } else if (event.kind === "data") {
      const prev = data.get(current) as Uint8Array;
      const next = new Uint8Array(prev.length + event.bytes.length);
      next.set(prev);
      next.set(event.bytes, prev.length);
      data.set(current, next);
    } else {
      parts.push(event);
    }
  }
  return { parts, data };
}

/** A form with a signature part and a file part whose content holds near-delimiters. */
function form(file: Uint8Array): Uint8Array {
  const head = enc.encode(
    `--${B}\r\nContent-Disposition: form-data; name="signature"\r\n\r\n{"x":1}\r\n` +
      `--${B}\r\nContent-Disposition: form-data; name="file"; filename="m.safetensors"\r\n` +
      `Content-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = enc.encode(`\r\n--${B}--\r\n`);
  const out = new Uint8Array(head.length + file.length + tail.length);
  out.set(head);
  out.set(file, head.length);
  out.set(tail, head.length + file.length);
  return out;
}

const FILE = (() => {
  const bytes = new Uint8Array(5000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 256;
  // Almost-delimiters inside the content must stay content.
  bytes.set(enc.encode(`\r\n--${B.slice(0, -1)}`), 100);
  bytes.set(enc.encode(`\r\n-${B}`), 2000);
  bytes.set(enc.encode(`--${B}`), 3000);
  return bytes;
})();

for (const chunk of [1, 2, 7, 64, 1 << 20]) {
  Deno.test(`readMultipart() yields every part and byte exactly in ${chunk}-byte reads`, async () => {
    const { parts, data } = await collect(body(form(FILE), chunk));
    deepEqual(parts, [
      { kind: "part", part: { name: "signature", filename: null, contentType: null } },
      {
        kind: "part",
        part: { name: "file", filename: "m.safetensors", contentType: "application/octet-stream" },
      },
      { kind: "end" },
    ]);
    deepEqual(new TextDecoder().decode(data.get("signature")), '{"x":1}');
    deepEqual(data.get("file"), FILE);
  });
}

const REFUSALS: { name: string; body: string; limits?: Record<string, number>; message: RegExp }[] =
  [
    {
      name: "a preamble before the first boundary",
      body: `junk\r\n--${B}\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--${B}--`,
      message: /no preamble/,
    },
    {
      name: "a body that ends inside a part",
      body: `--${B}\r\nContent-Disposition: form-data; name="a"\r\n\r\nxyz`,
      message: /no closing boundary/,
    },
    {
      name: "data after the closing boundary",
      body: `--${B}\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--${B}--\r\nmore`,
      message: /after the closing boundary/,
    },
    {
      name: "a header other than Content-Disposition and Content-Type",
      body: `--${B}\r\nContent-Disposition: form-data; name="a"\r\nX-Evil: 1\r\n\r\nx\r\n--${B}--`,
      message: /"x-evil" is not allowed/,
    },
    {
      name: "an RFC 5987 filename* parameter",
      body:
        `--${B}\r\nContent-Disposition: form-data; name="a"; filename*="x"\r\n\r\nx\r\n--${B}--`,
      message: /not allowed/,
    },
    {
      name: "a repeated name parameter",
      body: `--${B}\r\nContent-Disposition: form-data; name="a"; name="b"\r\n\r\nx\r\n--${B}--`,
      message: /repeated/,
    },
    {
      name: "a part without Content-Disposition",
      body: `--${B}\r\nContent-Type: text/plain\r\n\r\nx\r\n--${B}--`,
      message: /no Content-Disposition/,
    },
    {
      name: "an unquoted disposition parameter",
      body: `--${B}\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--${B}--`,
      message: /quoted parameters/,
    },
    {
      name: "a boundary not followed by CRLF",
      body: `--${B}XContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--${B}--`,
      message: /not followed by CRLF/,
    },
    {
      name: "a body with no part at all",
      body: `--${B}--`,
      message: /no part/,
    },
    {
      name: "part headers over the limit",
      body: `--${B}\r\nContent-Disposition: form-data; name="${
        "a".repeat(300)
      }"\r\n\r\nx\r\n--${B}--`,
      limits: { maxHeaderBytes: 100 },
      message: /exceed 100 bytes/,
    },
    {
      name: "more parts than allowed",
      body: `--${B}\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n`.repeat(3) +
        `--${B}--`,
      limits: { maxParts: 2 },
      message: /More than 2 parts/,
    },
  ];

for (const c of REFUSALS) {
  Deno.test(`readMultipart() refuses ${c.name}`, async () => {
    await rejects(collect(body(c.body, 5), c.limits), (error: unknown) => {
      equal(error instanceof MultipartError, true, String(error));
      equal(c.message.test((error as Error).message), true, (error as Error).message);
      return true;
    });
  });
}

const BOUNDARIES: { type: string; boundary?: string; message?: RegExp }[] = [
  { type: `multipart/form-data; boundary=${B}`, boundary: B },
  { type: `Multipart/Form-Data; boundary="a b:c"`, boundary: "a b:c" },
  { type: "multipart/form-data", message: /Missing or invalid/ },
  { type: "multipart/form-data; boundary=", message: /Missing or invalid/ },
  { type: `multipart/form-data; boundary=${"x".repeat(71)}`, message: /Missing or invalid/ },
  { type: "multipart/form-data; boundary=a\u0000b", message: /Missing or invalid/ },
  { type: "multipart/form-data; boundary=a; boundary=b", message: /Two boundary/ },
  { type: "multipart/mixed; boundary=a", message: /not multipart\/form-data/ },
];

for (const c of BOUNDARIES) {
  Deno.test(`boundaryOf() ${c.boundary ? "reads" : "refuses"} "${c.type.slice(0, 50)}"`, () => {
    if (c.boundary !== undefined) equal(boundaryOf(c.type), c.boundary);
    else throws(() => boundaryOf(c.type), c.message as RegExp);
  });
}
