/**
 * Writers of directory artifacts for the tests: a benign, real-shaped diffusers layout
 * (`model_index.json`, scheduler, CLIP and T5 text encoders with their tokenizers, UNet and
 * VAE as tiny safetensors files, a sentencepiece `spiece.model`), a protobuf encoder for the
 * sentencepiece model, and one mutation per rule of spec 13 §4 that a directory can break.
 * Nothing here is product code.
 * @module
 */
import { safetensorsFile } from "./_system.ts";

const enc = new TextEncoder();

// ---- protobuf ------------------------------------------------------------------------------

/** A varint. */
export function varint(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v === 0n ? low : low | 0x80);
  } while (v !== 0n);
  return out;
}

/** One field: a varint, a fixed32 float, or length-delimited bytes (a string or a message). */
export function field(
  number: number,
  value: number | bigint | string | Uint8Array | { float: number },
): number[] {
  if (typeof value === "number" || typeof value === "bigint") {
    return [...varint(number << 3), ...varint(value)];
  }
  if (typeof value === "object" && "float" in value) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value.float, true);
    return [...varint((number << 3) | 5), ...b];
  }
  const bytes = typeof value === "string" ? enc.encode(value) : value;
  return [...varint((number << 3) | 2), ...varint(bytes.length), ...bytes];
}

/** A sentencepiece piece: `[piece, score, type]` (type 1 normal, 2 unknown, 3 control). */
export type Piece = [string, number, number];

/** The pieces of the benign model. */
export const PIECES: Piece[] = [
  ["<unk>", 0, 2],
  ["<s>", 0, 3],
  ["</s>", 0, 3],
  ["\u2581a", -1.5, 1],
  ["\u2581photo", -2.25, 1],
  ["\u2581of", -2.5, 1],
  ["\u2581cat", -3, 1],
];

/** A sentencepiece `ModelProto` (unigram) with these pieces. */
export function sentencepieceModel(pieces: Piece[] = PIECES): Uint8Array {
  const out: number[] = [];
  for (const [piece, score, type] of pieces) {
    const body = [...field(1, piece), ...field(2, { float: score }), ...field(3, type)];
    out.push(...field(1, Uint8Array.from(body)));
  }
  const trainer = [
    ...field(3, 1),
    ...field(4, pieces.length),
    ...field(40, 0),
    ...field(41, 1),
    ...field(42, 2),
    // pad_id -1: a negative int32, sign-extended to ten bytes on the wire.
    ...field(43, -1),
  ];
  const normalizer = [
    ...field(1, "identity"),
    ...field(3, 1),
    ...field(2, Uint8Array.of(0, 1, 2, 3)),
  ];
  out.push(...field(2, Uint8Array.from(trainer)), ...field(3, Uint8Array.from(normalizer)));
  return Uint8Array.from(out);
}

// ---- the benign layout ---------------------------------------------------------------------

/** `model_index.json` of the benign layout. */
export function modelIndex(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    _class_name: "StableDiffusion3Pipeline",
    _diffusers_version: "0.31.0",
    scheduler: ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    text_encoder: ["transformers", "CLIPTextModelWithProjection"],
    text_encoder_2: ["transformers", "T5EncoderModel"],
    tokenizer: ["transformers", "CLIPTokenizer"],
    tokenizer_2: ["transformers", "T5TokenizerFast"],
    transformer: ["diffusers", "SD3Transformer2DModel"],
    vae: ["diffusers", "AutoencoderKL"],
    image_encoder: [null, null],
    force_zeros_for_empty_prompt: true,
    ...extra,
  };
}

const json = (value: unknown) => enc.encode(JSON.stringify(value, null, 2) + "\n");

/** Every file of the benign layout, by relative path. */
export function benignDiffusionFiles(): Record<string, Uint8Array> {
  const vocab: Record<string, number> = { "<|startoftext|>": 0, "<|endoftext|>": 1 };
  for (const [i, w] of ["a</w>", "photo</w>", "of</w>", "cat</w>", "ca", "t</w>"].entries()) {
    vocab[w] = i + 2;
  }
  return {
    "model_index.json": json(modelIndex()),
    "scheduler/scheduler_config.json": json({
      _class_name: "FlowMatchEulerDiscreteScheduler",
      _diffusers_version: "0.31.0",
      num_train_timesteps: 1000,
      shift: 3.0,
    }),
    "text_encoder/config.json": json({
      architectures: ["CLIPTextModelWithProjection"],
      hidden_size: 64,
      num_hidden_layers: 1,
      vocab_size: 8,
      torch_dtype: "float32",
    }),
    "text_encoder/model.safetensors": safetensorsFile({
      "text_model.embeddings.token_embedding.weight": [64, 64],
      "text_model.final_layer_norm.weight": [64],
    }),
    "text_encoder_2/config.json": json({
      architectures: ["T5EncoderModel"],
      d_model: 32,
      num_layers: 1,
      vocab_size: 7,
    }),
    "text_encoder_2/model.safetensors": safetensorsFile({ "shared.weight": [32, 32] }),
    "tokenizer/vocab.json": json(vocab),
    "tokenizer/merges.txt": enc.encode("#version: 0.2\nc a\nca t</w>\n"),
    "tokenizer/special_tokens_map.json": json({
      bos_token: "<|startoftext|>",
      eos_token: "<|endoftext|>",
    }),
    "tokenizer/tokenizer_config.json": json({ model_max_length: 77, do_lower_case: true }),
    "tokenizer_2/spiece.model": sentencepieceModel(),
    "tokenizer_2/tokenizer_config.json": json({ model_max_length: 256, extra_ids: 0 }),
    "transformer/config.json": json({
      _class_name: "SD3Transformer2DModel",
      num_layers: 1,
      sample_size: 8,
    }),
    "transformer/diffusion_pytorch_model.safetensors": safetensorsFile({
      "pos_embed.proj.weight": [64, 64],
      "transformer_blocks.0.attn.to_q.weight": [64, 64],
    }),
    "vae/config.json": json({ _class_name: "AutoencoderKL", latent_channels: 4 }),
    "vae/diffusion_pytorch_model.safetensors": safetensorsFile({
      "encoder.conv_in.weight": [32, 3, 3, 3],
      "decoder.conv_out.weight": [3, 32, 3, 3],
    }),
  };
}

/** Writes files (relative path → bytes) under `root`, creating directories. */
export async function writeTree(root: string, files: Record<string, Uint8Array>): Promise<void> {
  for (const [path, bytes] of Object.entries(files)) {
    const at = `${root}/${path}`;
    await Deno.mkdir(at.slice(0, at.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(at, bytes);
  }
}

/** Writes the benign layout into a fresh temp dir `<tmp>/<name>`; returns its path. */
export async function writeBenignDiffusion(name = "tiny-sd3"): Promise<string> {
  const parent = await Deno.makeTempDir({ prefix: "secai-diffusion-" });
  const root = `${parent}/${name}`;
  await Deno.mkdir(root);
  await writeTree(root, benignDiffusionFiles());
  return root;
}

/** Removes a directory written by {@link writeBenignDiffusion} (and its temp parent). */
export async function removeDiffusion(root: string): Promise<void> {
  await Deno.remove(root.slice(0, root.lastIndexOf("/")), { recursive: true });
}

async function mkfifo(path: string): Promise<void> {
  const out = await new Deno.Command("mkfifo", { args: [path] }).output();
  if (!out.success) throw new Error(`mkfifo failed: ${new TextDecoder().decode(out.stderr)}`);
}

/** One way a directory breaks a rule of spec 13 §4, and where the finding must point. */
export interface Malformation {
  name: string;
  /** Changes the benign layout at `root`. */
  apply(root: string): Promise<void>;
  /** Stage whose checks must catch it: 2 (format gate) or 7 (deep scan). */
  stage: 2 | 7;
  rule: string;
  /** The relative path the finding must name. */
  member: string;
  /** Lowered limits the check runs with. */
  limits?: Record<string, number>;
}

/** A stage-2 malformation that replaces the file `member` of the benign layout with `bytes()`. */
function rewritten(
  name: string,
  member: string,
  rule: string,
  bytes: () => Uint8Array,
): Malformation {
  return {
    name,
    apply: (root) => Deno.writeFile(`${root}/${member}`, bytes()),
    stage: 2,
    rule,
    member,
  };
}

/** A stage-2 malformation that cuts the last `cut` bytes off the file `member`. */
function truncated(name: string, member: string, rule: string, cut: number): Malformation {
  return {
    name,
    apply: async (root) => {
      const bytes = await Deno.readFile(`${root}/${member}`);
      await Deno.writeFile(`${root}/${member}`, bytes.subarray(0, bytes.length - cut));
    },
    stage: 2,
    rule,
    member,
  };
}

/** Every malformation, each caught with its own rule and path. */
export const MALFORMATIONS: readonly Malformation[] = [
  {
    name: "a symbolic link",
    apply: (root) => Deno.symlink("/etc/passwd", `${root}/vae/passwd.json`),
    stage: 2,
    rule: "diffusion.link",
    member: "vae/passwd.json",
  },
  {
    name: "a FIFO",
    apply: (root) => mkfifo(`${root}/unet.safetensors`),
    stage: 2,
    rule: "diffusion.special_file",
    member: "unet.safetensors",
  },
  {
    name: "a file with a suffix outside the allowlist",
    apply: (root) => Deno.writeTextFile(`${root}/vae/pipeline.py`, "print('hi')\n"),
    stage: 2,
    rule: "diffusion.suffix_not_allowed",
    member: "vae/pipeline.py",
  },
  rewritten(
    "a pickle checkpoint beside the safetensors",
    "vae/diffusion_pytorch_model.bin",
    "diffusion.suffix_not_allowed",
    () => Uint8Array.of(0x80, 2, 0x2e),
  ),
  {
    name: "no model_index.json",
    apply: (root) => Deno.remove(`${root}/model_index.json`),
    stage: 2,
    rule: "diffusion.model_index_missing",
    member: "model_index.json",
  },
  rewritten(
    "a model_index.json without a valid _class_name",
    "model_index.json",
    "diffusion.model_index.invalid",
    () => json(modelIndex({ _class_name: "9Pipeline;rm" })),
  ),
  rewritten(
    "a model_index.json larger than 1 MiB",
    "model_index.json",
    "diffusion.model_index.invalid",
    () => json(modelIndex({ _comment: "x".repeat(1 << 20) })),
  ),
  rewritten(
    "a forbidden key in model_index.json",
    "model_index.json",
    "diffusion.forbidden_key",
    () => json(modelIndex({ custom_pipeline: "evil_pipeline" })),
  ),
  rewritten(
    "trust_remote_code in a component config",
    "text_encoder/config.json",
    "diffusion.forbidden_key",
    () => json({ architectures: ["CLIPTextModel"], auto: { trust_remote_code: true } }),
  ),
  rewritten(
    "a URL in a JSON file",
    "vae/config.json",
    "diffusion.url",
    () => json({ _class_name: "AutoencoderKL", weights: "https://evil.example/vae.bin" }),
  ),
  rewritten(
    "a code marker in a JSON file",
    "scheduler/scheduler_config.json",
    "diffusion.code_marker",
    () => json({ _class_name: "X", hook: "__import__('os').system('id')" }),
  ),
  rewritten(
    "an escaped byte string in a JSON file",
    "tokenizer/tokenizer_config.json",
    "diffusion.code_marker",
    () => enc.encode('{"x": "\\\\x90\\\\x90\\\\xcc"}'),
  ),
  rewritten(
    "a JSON file with a duplicate key",
    "vae/config.json",
    "diffusion.json.invalid",
    () => enc.encode('{"a": 1, "a": 2}'),
  ),
  rewritten(
    "a component that is not [library, class]",
    "model_index.json",
    "diffusion.bad_component",
    () => json(modelIndex({ unet: ["my_lib.pipelines", "Unet"] })),
  ),
  rewritten(
    "a component key that is a path",
    "model_index.json",
    "diffusion.bad_component",
    () => json(modelIndex({ "../vae": ["diffusers", "AutoencoderKL"] })),
  ),
  rewritten(
    "a control character in tokenizer text",
    "tokenizer/merges.txt",
    "diffusion.text.control_char",
    () => enc.encode("#version: 0.2\nc a\u001b[31m\n"),
  ),
  rewritten(
    "a NUL in tokenizer text",
    "tokenizer/merges.txt",
    "diffusion.text.control_char",
    () => enc.encode("#version: 0.2\nc\u0000a\n"),
  ),
  rewritten(
    "tokenizer text that is not UTF-8",
    "tokenizer/merges.txt",
    "diffusion.text.invalid",
    () => Uint8Array.of(0x63, 0x20, 0xc3, 0x28, 0x0a),
  ),
  // Cut inside the last message: its length now runs past the end of the file.
  truncated(
    "a sentencepiece model that is not a valid protobuf",
    "tokenizer_2/spiece.model",
    "diffusion.sentencepiece.invalid",
    3,
  ),
  rewritten(
    "a sentencepiece model without an unknown piece",
    "tokenizer_2/spiece.model",
    "diffusion.sentencepiece.invalid",
    () => sentencepieceModel(PIECES.map(([p, s, t]) => [p, s, t === 2 ? 1 : t])),
  ),
  truncated(
    "a safetensors file with a broken header",
    "vae/diffusion_pytorch_model.safetensors",
    "diffusion.safetensors.invalid",
    4,
  ),
  {
    name: "no safetensors file at all",
    apply: async (root) => {
      for (const path of benignPaths().filter((p) => p.endsWith(".safetensors"))) {
        await Deno.remove(`${root}/${path}`);
      }
    },
    stage: 2,
    rule: "diffusion.no_safetensors",
    member: "",
  },
  {
    name: "a tree deeper than the limit",
    apply: async (root) => {
      await Deno.mkdir(`${root}/vae/a/b/c`, { recursive: true });
      await Deno.writeTextFile(`${root}/vae/a/b/c/deep.json`, "{}");
    },
    stage: 2,
    rule: "diffusion.too_deep",
    member: "vae/a/b/c",
    limits: { maxDepth: 3 },
  },
  {
    name: "more files than the limit",
    apply: async (root) => {
      for (let i = 0; i < 4; i++) await Deno.writeTextFile(`${root}/vae/extra_${i}.json`, "{}");
    },
    stage: 2,
    rule: "diffusion.too_many_files",
    // The 20th file in byte order is the first past a limit of 19 (16 benign + 4 extra).
    member: "vae/extra_3.json",
    limits: { maxFiles: 19 },
  },
  {
    name: "a file larger than the limit",
    apply: () => Promise.resolve(),
    stage: 2,
    rule: "diffusion.file_too_large",
    member: "text_encoder/model.safetensors",
    limits: { maxFileBytes: 10_000 },
  },
  {
    name: "a component without its directory",
    apply: (root) => Deno.remove(`${root}/text_encoder_2`, { recursive: true }),
    stage: 7,
    rule: "diffusion.component_missing",
    member: "text_encoder_2",
  },
  {
    name: "an unexpected top-level directory",
    apply: async (root) => {
      await Deno.mkdir(`${root}/extras`);
      await Deno.writeTextFile(`${root}/extras/notes.json`, "{}");
    },
    stage: 7,
    rule: "diffusion.unexpected_directory",
    member: "extras",
  },
];

/** Relative paths of the benign layout. */
export function benignPaths(): string[] {
  return Object.keys(benignDiffusionFiles());
}
