/**
 * Entropy samples (spec 13 stage 5): Shannon entropy of three 1 MiB samples (start; middle
 * when the file is over 3 MiB; end). Above 7.99 bits/byte a sample is indistinguishable from
 * encrypted or compressed data: a possible hidden payload.
 * @module
 */
import type { Finding } from "./types.ts";

/** Sample size. */
export const ENTROPY_SAMPLE = 1 << 20;
/** Threshold in bits per byte. */
export const ENTROPY_LIMIT = 7.99;

/** Shannon entropy of bytes, in bits per byte. */
export function shannonEntropy(bytes: Uint8Array): number {
  if (bytes.length === 0) return 0;
  const counts = new Uint32Array(256);
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] ?? 0;
    counts[byte] = (counts[byte] ?? 0) + 1;
  }
  let entropy = 0;
  for (const count of counts) {
    if (count === 0) continue;
    const p = count / bytes.length;
    entropy -= p * Math.log2(p);
  }
  return entropy;
}

/** Offsets of the samples of a file of `size` bytes. */
export function sampleOffsets(size: number): number[] {
  if (size <= ENTROPY_SAMPLE) return [0];
  const offsets = [0];
  if (size > 3 * ENTROPY_SAMPLE) offsets.push(Math.floor((size - ENTROPY_SAMPLE) / 2));
  offsets.push(size - ENTROPY_SAMPLE);
  return offsets;
}

/** Findings for samples over the limit. */
export function checkEntropy(samples: { offset: number; bytes: Uint8Array }[]): Finding[] {
  const findings: Finding[] = [];
  for (const sample of samples) {
    // A tiny sample cannot reach 7.99 bits honestly; only full samples count.
    if (sample.bytes.length < 4096) continue;
    const entropy = shannonEntropy(sample.bytes);
    if (entropy > ENTROPY_LIMIT) {
      findings.push({
        stage: "entropy",
        rule: "entropy.high",
        severity: "high",
        message: `Sample at offset ${sample.offset} has ${
          entropy.toFixed(4)
        } bits/byte (limit ${ENTROPY_LIMIT}): possible hidden payload`,
        offset: sample.offset,
      });
    }
  }
  return findings;
}
