/**
 * Sandboxed job of the registry (spec 13 §6 `gguf_guard_manifest`/`gguf_guard_fingerprint`,
 * §7, weakness 2): the facts of a model file's per-tensor manifest. The strict readers of
 * `../scanners/` parse the file (GGUF: every key/value and tensor info; safetensors: the
 * header), then one sequential pass hashes the whole file, the header (everything before
 * the data section), every tensor's bytes and the bytes that belong to no tensor.
 *
 * The registry runs it inside its promotion transaction (the manifest is stored with the
 * artifact) and for its tensor-level manifest check; it validates the result and computes the
 * structural fingerprint itself (workers/registry/tensor_manifest.ts), so that nothing a
 * hostile file could steer in this process is trusted beyond a value checked there.
 * The job lives beside the readers it reuses; the registry's manifest entry names it.
 *
 * argv: [format: "gguf" | "safetensors"]. Result: {@link TensorFacts}. Errors: the reader's
 * `MALFORMED`/`TRUNCATED`/`LIMIT_EXCEEDED`/`UNSUPPORTED` with the offset in the message;
 * `MANIFEST_TOO_LARGE` when the manifest would not fit the job's output.
 * @module
 */
import { runJob } from "../../../runtime/kit/job.ts";
import { digestRegions } from "../../../runtime/kit/region_digest.ts";
import { scanGguf } from "../scanners/gguf.ts";
import { scanSafetensors } from "../scanners/safetensors.ts";

/** Most tensors a manifest lists (the job's output is capped at 16 MiB). */
export const MAX_MANIFEST_TENSORS = 65_536;
/** Largest result, well under the runner's 16 MiB stdout cap. */
const MAX_RESULT_CHARS = 12 << 20;

/** One tensor of the manifest. */
export interface TensorFact {
  name: string;
  /** ggml type (GGUF) or dtype (safetensors). */
  type: string;
  /** GGUF: ggml order (ne[0] first); safetensors: the header's shape. */
  dims: number[];
  /** Absolute offset of its data in the file. */
  offset: number;
  size: number;
  /** SHA-256 of its bytes. */
  sha256: string;
}

/** What the job returns. */
export interface TensorFacts {
  format: "gguf" | "safetensors";
  size: number;
  /** SHA-256 of the whole file (the registry checks it is the promoted content). */
  sha256: string;
  /** Everything before the data section: magic, metadata, tensor infos (or JSON header). */
  header: { offset: 0; size: number; sha256: string };
  /** Bytes in neither the header nor a tensor: alignment padding, gaps, trailing data. */
  rest: { size: number; sha256: string };
  /** The structure-relevant facts the fingerprint covers besides the tensor list. */
  structure: Record<string, string | number | boolean | null>;
  /** In the file's declared order. */
  tensors: TensorFact[];
}

/** GGUF metadata, per architecture (`<arch>.<suffix>`), that shapes the network. */
const GGUF_STRUCTURE_KEYS: readonly [string, string][] = [
  ["contextLength", "context_length"],
  ["embeddingLength", "embedding_length"],
  ["blockCount", "block_count"],
  ["feedForwardLength", "feed_forward_length"],
  ["headCount", "attention.head_count"],
  ["headCountKv", "attention.head_count_kv"],
  ["expertCount", "expert_count"],
  ["expertUsedCount", "expert_used_count"],
];

function tooLarge(message: string): Error {
  return Object.assign(new RangeError(message), { code: "MANIFEST_TOO_LARGE" });
}

/**
 * Reads a model file with the strict reader of its format and hashes its parts.
 * @param path the model file (read-only)
 * @param format the format the registry recorded for it
 * @param options cancellation
 * @returns the manifest's facts
 * @throws {FormatError} when the file breaks its format (code and offset kept)
 * @throws {RangeError} `MANIFEST_TOO_LARGE` past {@link MAX_MANIFEST_TENSORS} or the output cap
 */
export async function deriveTensorFacts(
  path: string,
  format: string,
  options: { signal?: AbortSignal } = {},
): Promise<TensorFacts> {
  if (format !== "gguf" && format !== "safetensors") {
    throw Object.assign(
      new TypeError(`Cannot build a tensor manifest for format "${format.slice(0, 40)}"`),
      { code: "INVALID_INPUT" },
    );
  }
  const file = await Deno.open(path, { read: true });
  let headerSize: number;
  let structure: TensorFacts["structure"];
  let tensors: Omit<TensorFact, "sha256">[];
  try {
    const size = (await file.stat()).size;
    if (format === "gguf") {
      const scan = scanGguf(file, size);
      const text = (key: string) => {
        const value = scan.metadata.get(key);
        return typeof value === "string" ? value : null;
      };
      const architecture = text("general.architecture");
      structure = {
        version: scan.version,
        alignment: scan.alignment,
        architecture,
        tensorCount: scan.tensors.length,
        tokenizerModel: text("tokenizer.ggml.model"),
      };
      for (const [field, suffix] of GGUF_STRUCTURE_KEYS) {
        const key = `${architecture}.${suffix}`;
        const value = architecture === null ? undefined : scan.metadata.get(key);
        const length = architecture === null ? undefined : scan.arrayLengths.get(key);
        // A per-layer array (some architectures) counts by its length.
        structure[field] = typeof value === "number"
          ? value
          : length === undefined
          ? null
          : `array[${length}]`;
      }
      const vocabulary = scan.arrayLengths.get("tokenizer.ggml.tokens") ??
        (architecture === null ? undefined : scan.metadata.get(`${architecture}.vocab_size`));
      structure.vocabSize = typeof vocabulary === "number" ? vocabulary : null;
      headerSize = scan.dataOffset;
      tensors = scan.tensors.map((t) => ({ ...t }));
    } else {
      const scan = scanSafetensors(file, size);
      structure = { tensorCount: scan.tensors.length };
      headerSize = scan.dataOffset;
      tensors = scan.tensors.map((t) => ({
        name: t.name,
        type: t.dtype,
        dims: t.shape,
        offset: t.offset,
        size: t.size,
      }));
    }
  } finally {
    file.close();
  }
  if (tensors.length > MAX_MANIFEST_TENSORS) {
    throw tooLarge(
      `The file has ${tensors.length} tensors; a manifest lists at most ${MAX_MANIFEST_TENSORS}`,
    );
  }
  const digests = await digestRegions(
    path,
    [{ offset: 0, size: headerSize }, ...tensors],
    options.signal ? { signal: options.signal } : {},
  );
  const [headerSha, ...tensorShas] = digests.regions;
  if (headerSha === undefined || headerSha === null || tensorShas.includes(null)) {
    // The reader checked every range against the size; a shorter file now changed under us.
    throw Object.assign(new RangeError("The file changed while its manifest was built"), {
      code: "FILE_CHANGED",
    });
  }
  const facts: TensorFacts = {
    format,
    size: digests.size,
    sha256: digests.sha256,
    header: { offset: 0, size: headerSize, sha256: headerSha },
    rest: digests.rest,
    structure,
    tensors: tensors.map((t, i) => ({ ...t, sha256: tensorShas[i] as string })),
  };
  if (JSON.stringify(facts).length > MAX_RESULT_CHARS) {
    throw tooLarge(`The manifest of ${tensors.length} tensors is larger than the job may return`);
  }
  return facts;
}

if (import.meta.main) {
  await runJob(({ inputPath, args }) => {
    if (inputPath === null) {
      throw Object.assign(new TypeError("Cannot build a tensor manifest without a file input"), {
        code: "INVALID_INPUT",
      });
    }
    return deriveTensorFacts(inputPath, args[0] ?? "");
  });
}
