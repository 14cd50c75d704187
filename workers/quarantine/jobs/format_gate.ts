/**
 * Sandboxed job of stage 2 (format gate, spec 13 §2–§3): reads only the first bytes of the
 * artifact and decides whether its content is what its extension claims. GGUF: magic `GGUF`
 * and version 2 or 3. safetensors: u64 LE header length L with 2 ≤ L ≤ 100 MiB and
 * 8 + L ≤ file size, header starting with `{` and ending with `}` before trailing spaces.
 * Any format: the first 32 bytes must not start a pickle (protocol 2–5 or a protocol-0
 * `c<module>` import of os/posix/sys/builtins) nor be a zip/gzip/bz2/xz container.
 * The full header, metadata and template validation is the static scan's (stage 5).
 *
 * argv: [expected format: "gguf" | "safetensors"]. Result: `{ verdict, format, code?,
 * message?, facts }`.
 * @module
 */
import { runJob } from "../../../runtime/kit/job.ts";

/** safetensors header limit (spec 13 §2: 2 ≤ L ≤ 100 MiB). */
const MAX_SAFETENSORS_HEADER = 100 << 20;
const PREFIX_BYTES = 32;

interface GateResult {
  verdict: "pass" | "fail";
  format: "gguf" | "safetensors" | null;
  code?: string;
  message?: string;
  facts: Record<string, number>;
}

const PICKLE_PREFIXES: readonly [string, Uint8Array][] = [
  ["pickle protocol 2", Uint8Array.of(0x80, 0x02)],
  ["pickle protocol 3", Uint8Array.of(0x80, 0x03)],
  ["pickle protocol 4", Uint8Array.of(0x80, 0x04)],
  ["pickle protocol 5", Uint8Array.of(0x80, 0x05)],
  ["pickle import of os", new TextEncoder().encode("cos\n")],
  ["pickle import of posix", new TextEncoder().encode("cposix\n")],
  ["pickle import of sys", new TextEncoder().encode("csys\n")],
  ["pickle import of builtins", new TextEncoder().encode("cbuiltins\n")],
];

const CONTAINERS: readonly [string, Uint8Array][] = [
  ["zip archive (PyTorch checkpoint?)", Uint8Array.of(0x50, 0x4b, 0x03, 0x04)],
  ["gzip stream", Uint8Array.of(0x1f, 0x8b)],
  ["bzip2 stream", new TextEncoder().encode("BZh")],
  ["xz stream", Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)],
];

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return bytes.length >= prefix.length && prefix.every((b, i) => bytes[i] === b);
}

async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const out = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const n = await file.read(out.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return out.subarray(0, filled);
}

/**
 * Judges the first bytes of a file.
 * @param path the artifact (read-only)
 * @param expected the format its extension names
 * @returns the gate's verdict
 */
export async function gate(path: string, expected: string): Promise<GateResult> {
  const file = await Deno.open(path, { read: true });
  try {
    const size = (await file.stat()).size;
    const head = await readAt(file, 0, PREFIX_BYTES);
    const failWith = (code: string, message: string): GateResult => ({
      verdict: "fail",
      format: null,
      code,
      message,
      facts: { size },
    });
    for (const [what, prefix] of PICKLE_PREFIXES) {
      if (startsWith(head, prefix)) {
        return failWith("PICKLE_POLYGLOT", `The file begins like a ${what} (offset 0)`);
      }
    }
    for (const [what, prefix] of CONTAINERS) {
      if (startsWith(head, prefix)) {
        return failWith("DENIED_FORMAT", `The file is a ${what}, not a ${expected} file`);
      }
    }
    const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
    const isGguf = head.length >= 8 && new TextDecoder().decode(head.subarray(0, 4)) === "GGUF";
    if (expected === "gguf") {
      if (!isGguf) return failWith("INVALID_HEADER", 'GGUF magic "GGUF" missing at offset 0');
      const version = view.getUint32(4, true);
      if (version !== 2 && version !== 3) {
        return failWith("INVALID_HEADER", `GGUF version ${version} at offset 4 is not 2 or 3`);
      }
      return { verdict: "pass", format: "gguf", facts: { size, version } };
    }
    if (expected === "safetensors") {
      if (isGguf) {
        return failWith("FORMAT_MISMATCH", "The file is GGUF but is named .safetensors");
      }
      if (head.length < 8) return failWith("INVALID_HEADER", `File of ${size} bytes has no header`);
      const length = view.getBigUint64(0, true);
      if (length < 2n || length > BigInt(MAX_SAFETENSORS_HEADER)) {
        return failWith(
          "INVALID_HEADER",
          `safetensors header length ${length} at offset 0 is not between 2 and ${MAX_SAFETENSORS_HEADER}`,
        );
      }
      const headerLength = Number(length);
      if (8 + headerLength > size) {
        return failWith(
          "INVALID_HEADER",
          `safetensors header of ${headerLength} bytes runs past the end of the ${size}-byte file`,
        );
      }
      if (head[8] !== 0x7b) {
        return failWith("INVALID_HEADER", "safetensors header does not begin with '{' (offset 8)");
      }
      // The header may be padded with spaces only; find its last other byte.
      const tailLength = Math.min(headerLength, 4096);
      const tail = await readAt(file, 8 + headerLength - tailLength, tailLength);
      let end = tail.length - 1;
      while (end >= 0 && tail[end] === 0x20) end--;
      if (end < 0 || tail[end] !== 0x7d) {
        return failWith(
          "INVALID_HEADER",
          "safetensors header does not end with '}' before its padding spaces",
        );
      }
      return {
        verdict: "pass",
        format: "safetensors",
        facts: { size, headerBytes: headerLength },
      };
    }
    return failWith("UNKNOWN_FORMAT", `Unknown expected format "${expected.slice(0, 40)}"`);
  } finally {
    file.close();
  }
}

if (import.meta.main) {
  await runJob(({ inputPath, args }) => {
    if (inputPath === null) throw new TypeError("format_gate needs a file input");
    return gate(inputPath, args[0] ?? "");
  });
}
