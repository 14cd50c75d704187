/**
 * Weight statistics (spec 13 M28), kept cheap: for each float tensor of rank ≥ 2 and at least
 * {@link MIN_ELEMENTS} elements, the first {@link SAMPLE_BYTES} of its data are decoded and
 * checked for |mean| > 10, variance < 1e-12 with < 99 % zeros, kurtosis > 100, or > 99 %
 * zeros. Small and 1-D tensors (biases, norms) are skipped: zeros and constants are normal
 * there.
 * @module
 */
import type { Finding } from "./types.ts";

/** Bytes of each tensor sampled. */
export const SAMPLE_BYTES = 1 << 20;
/** Smaller tensors are not sampled. */
export const MIN_ELEMENTS = 4096;
/** Tensors sampled per file at most. */
export const MAX_TENSORS = 200_000;
/** Total bytes sampled per file at most. */
export const MAX_TOTAL_SAMPLE = 256 << 20;

/** Element encodings we can decode. */
export type StatDtype = "F32" | "F16" | "BF16" | "F64" | "Q8_0";

/** Statistics of one tensor's sample. */
export interface TensorStats {
  name: string;
  count: number;
  mean: number;
  variance: number;
  kurtosis: number;
  zeroFraction: number;
}

const HALF = buildHalfTable();

function buildHalfTable(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    table[h] = exponent === 0
      ? sign * 2 ** -14 * (mantissa / 1024)
      : exponent === 31
      ? (mantissa ? NaN : sign * Infinity)
      : sign * 2 ** (exponent - 15) * (1 + mantissa / 1024);
  }
  return table;
}

/** Whether a dtype can be sampled. */
export function isStatDtype(dtype: string): dtype is StatDtype {
  return dtype === "F32" || dtype === "F16" || dtype === "BF16" || dtype === "F64" ||
    dtype === "Q8_0";
}

/**
 * Computes statistics over a sample of little-endian tensor data.
 * @returns null when the sample holds no finite values
 */
export function sampleStats(name: string, dtype: StatDtype, bytes: Uint8Array): TensorStats | null {
  let n = 0;
  let sum = 0;
  let sum2 = 0;
  let sum3 = 0;
  let sum4 = 0;
  let zeros = 0;
  const add = (x: number) => {
    if (!Number.isFinite(x)) return;
    n++;
    if (x === 0) zeros++;
    const x2 = x * x;
    sum += x;
    sum2 += x2;
    sum3 += x2 * x;
    sum4 += x2 * x2;
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === "F32") {
    for (let i = 0; i + 4 <= bytes.length; i += 4) add(view.getFloat32(i, true));
  } else if (dtype === "F64") {
    for (let i = 0; i + 8 <= bytes.length; i += 8) add(view.getFloat64(i, true));
  } else if (dtype === "F16") {
    for (let i = 0; i + 2 <= bytes.length; i += 2) add(HALF[view.getUint16(i, true)] ?? 0);
  } else if (dtype === "BF16") {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let i = 0; i + 2 <= bytes.length; i += 2) {
      u[0] = view.getUint16(i, true) << 16;
      add(f[0] ?? 0);
    }
  } else {
    // Q8_0: blocks of an F16 scale and 32 signed bytes.
    for (let b = 0; b + 34 <= bytes.length; b += 34) {
      const d = HALF[view.getUint16(b, true)] ?? 0;
      for (let i = 0; i < 32; i++) add(d * view.getInt8(b + 2 + i));
    }
  }
  if (n === 0) return null;
  const mean = sum / n;
  const variance = Math.max(0, sum2 / n - mean * mean);
  const m4 = sum4 / n - 4 * mean * (sum3 / n) + 6 * mean * mean * (sum2 / n) - 3 * mean ** 4;
  const kurtosis = variance > 0 ? m4 / (variance * variance) : 0;
  return { name, count: n, mean, variance, kurtosis, zeroFraction: zeros / n };
}

/**
 * Findings for anomalous statistics (spec 13 stage 5 thresholds).
 * @param place stage and where the tensor's data starts
 */
export function checkStats(
  stats: TensorStats,
  place: { stage: string; offset: number },
): Finding[] {
  const anomalies: string[] = [];
  if (Math.abs(stats.mean) > 10) anomalies.push(`|mean| ${stats.mean.toPrecision(4)} > 10`);
  if (stats.zeroFraction > 0.99) anomalies.push(`${(stats.zeroFraction * 100).toFixed(2)} % zeros`);
  else if (stats.variance < 1e-12) {
    anomalies.push(`variance ${stats.variance.toExponential(2)} < 1e-12`);
  }
  if (stats.kurtosis > 100) anomalies.push(`kurtosis ${stats.kurtosis.toFixed(1)} > 100`);
  if (anomalies.length === 0) return [];
  return [{
    stage: place.stage,
    rule: "weights.anomaly",
    severity: "medium",
    message: `Tensor "${stats.name}" has anomalous weights (${
      anomalies.join(", ")
    }) in its first ${stats.count} values`,
    offset: place.offset,
  }];
}
