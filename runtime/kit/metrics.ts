/**
 * Latency histograms in Prometheus shape, small enough to ship in every heartbeat.
 * @module
 */

/** Upper bounds in seconds (Prometheus `le`); +Inf is implicit. */
export const LATENCY_BUCKETS_S: readonly number[] = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** Snapshot of one histogram: cumulative-free bucket counts, sum and count. */
export interface HistogramSnapshot {
  buckets: number[];
  sum: number;
  count: number;
}

/** A fixed-bucket latency histogram. */
export class Histogram {
  #counts: number[] = new Array(LATENCY_BUCKETS_S.length + 1).fill(0);
  #sum = 0;
  #count = 0;

  /** Records one observation in seconds. */
  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS_S.length && seconds > (LATENCY_BUCKETS_S[i] ?? Infinity)) i++;
    this.#counts[i] = (this.#counts[i] ?? 0) + 1;
    this.#sum += seconds;
    this.#count++;
  }

  /** Returns a copy of the current state. */
  snapshot(): HistogramSnapshot {
    return { buckets: [...this.#counts], sum: this.#sum, count: this.#count };
  }
}
