/**
 * The compressed fixtures of the wrapper tests (`tests/fixtures/compress/`): what each one
 * holds, as the corpus writers make it, and the Debian tool command that compressed it.
 * `bzip2` and `xz` are not on a fresh Debian 12 (priority "standard"), so the files are
 * committed; `tests/fixtures/compress/generate.ts` rewrites them where the tools exist.
 * @module
 */
import { PickleWriter, torchZip } from "./_corpus.ts";

/** Directory of the committed fixtures. */
export const FIXTURE_DIR = new URL("../fixtures/compress/", import.meta.url).pathname;

/** A pickle that calls `os.system("id")` through GLOBAL + REDUCE. */
export function evilPickle(): { bytes: Uint8Array; at: number } {
  const p = new PickleWriter().proto(2).at("hit").global("os", "system").str("id").tuple(1).reduce()
    .stop();
  return { bytes: p.done(), at: p.labels.hit ?? 0 };
}

/** What the fixtures hold. */
export const CONTENTS = {
  "evil-pickle": () => evilPickle().bytes,
  "torch-zip": () => torchZip().file,
  /** 16 MiB of zeros: a few hundred compressed bytes, for the decompression-bomb limit. */
  zeros: () => new Uint8Array(16 << 20),
} as const satisfies Record<string, () => Uint8Array>;

/** One committed fixture. */
export interface WrappedFixture {
  file: string;
  content: keyof typeof CONTENTS;
  /** The command that wrote it (content on stdin, compressed on stdout). */
  command: string[];
  /** Set when the decoder refuses it (`UNSUPPORTED`), with the message it gives. */
  refused?: RegExp;
}

/** Every committed fixture. */
export const FIXTURES: readonly WrappedFixture[] = [
  { file: "evil-pickle.bz2", content: "evil-pickle", command: ["bzip2", "-9", "-c"] },
  { file: "evil-pickle.xz", content: "evil-pickle", command: ["xz", "-c"] },
  { file: "evil-pickle.lzma", content: "evil-pickle", command: ["xz", "--format=lzma", "-c"] },
  { file: "torch-zip.bz2", content: "torch-zip", command: ["bzip2", "-9", "-c"] },
  { file: "torch-zip.xz", content: "torch-zip", command: ["xz", "-c"] },
  {
    file: "torch-zip.blocks-crc32.xz",
    content: "torch-zip",
    command: ["xz", "--check=crc32", "--block-size=2048", "-c"],
  },
  { file: "torch-zip.sha256.xz", content: "torch-zip", command: ["xz", "--check=sha256", "-c"] },
  { file: "torch-zip.none.xz", content: "torch-zip", command: ["xz", "--check=none", "-0", "-c"] },
  { file: "torch-zip.lzma", content: "torch-zip", command: ["xz", "--format=lzma", "-c"] },
  { file: "torch-zip.1.bz2", content: "torch-zip", command: ["bzip2", "-1", "-c"] },
  {
    file: "torch-zip.x86.xz",
    content: "torch-zip",
    command: ["xz", "--x86", "--lzma2", "-c"],
    refused: /filter chain \[0x4, 0x21\]/,
  },
  { file: "zeros.bz2", content: "zeros", command: ["bzip2", "-9", "-c"] },
  { file: "zeros.xz", content: "zeros", command: ["xz", "-c"] },
  { file: "zeros.lzma", content: "zeros", command: ["xz", "--format=lzma", "-c"] },
];

/** The bytes of a committed fixture. */
export function readFixture(file: string): Uint8Array {
  return Deno.readFileSync(`${FIXTURE_DIR}${file}`);
}
