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

/** Name of a custom metric, rendered as `secai_<name>` (Prometheus naming). */
export const METRIC_NAME_PATTERN: RegExp = /^[a-z][a-z0-9_]{0,62}$/;
/** Most series one control may report. */
export const MAX_CUSTOM_SERIES = 128;

/** One series a control reports in its heartbeat (rendered with a `control` label). */
export type MetricSeries =
  | {
    name: string;
    help: string;
    type: "counter" | "gauge";
    labels: Record<string, string>;
    value: number;
  }
  | {
    name: string;
    help: string;
    type: "histogram";
    labels: Record<string, string>;
    /** Upper bounds (`le`), ascending; +Inf is implicit. */
    bounds: number[];
    /** Non-cumulative counts, one per bound plus the +Inf bucket. */
    buckets: number[];
    sum: number;
    count: number;
  };

interface Registered {
  name: string;
  help: string;
  labels: Record<string, string>;
}

/**
 * The metrics a control exposes on `/metrics` beyond RPC latency: counters, gauges and
 * histograms with custom bounds. The kit ships a snapshot with every heartbeat; the
 * supervisor renders them.
 * @example
 * ```ts
 * const ttft = ctx.metrics.histogram("inference_ttft_seconds", "Time to first token", [0.01, 0.1, 1]);
 * ttft.observe(0.042);
 * ```
 */
export class MetricsRegistry {
  readonly #series = new Map<string, { snapshot: () => MetricSeries }>();

  /** A monotonically increasing counter. */
  counter(
    name: string,
    help: string,
    labels: Record<string, string> = {},
  ): { inc(by?: number): void } {
    let value = 0;
    this.#add({ name, help, labels }, () => ({ name, help, type: "counter", labels, value }));
    return {
      inc(by = 1) {
        if (by >= 0) value += by;
      },
    };
  }

  /** A value that goes up and down. */
  gauge(name: string, help: string, labels: Record<string, string> = {}): { set(v: number): void } {
    let value = 0;
    this.#add({ name, help, labels }, () => ({ name, help, type: "gauge", labels, value }));
    return {
      set(v: number) {
        if (Number.isFinite(v)) value = v;
      },
    };
  }

  /** A histogram with its own bucket bounds (ascending). */
  histogram(
    name: string,
    help: string,
    bounds: readonly number[],
    labels: Record<string, string> = {},
  ): { observe(v: number): void } {
    const counts: number[] = new Array(bounds.length + 1).fill(0);
    let sum = 0;
    let count = 0;
    this.#add({ name, help, labels }, () => ({
      name,
      help,
      type: "histogram",
      labels,
      bounds: [...bounds],
      buckets: [...counts],
      sum,
      count,
    }));
    return {
      observe(v: number) {
        if (!Number.isFinite(v)) return;
        let i = 0;
        while (i < bounds.length && v > (bounds[i] ?? Infinity)) i++;
        counts[i] = (counts[i] ?? 0) + 1;
        sum += v;
        count++;
      },
    };
  }

  /** Every series now. */
  snapshot(): MetricSeries[] {
    return [...this.#series.values()].map((s) => s.snapshot());
  }

  #add(meta: Registered, snapshot: () => MetricSeries): void {
    if (!METRIC_NAME_PATTERN.test(meta.name)) {
      throw new TypeError(`Invalid metric name "${meta.name}"`);
    }
    const key = `${meta.name}${JSON.stringify(Object.entries(meta.labels).sort())}`;
    if (this.#series.has(key)) throw new TypeError(`Metric "${key}" is registered twice`);
    if (this.#series.size >= MAX_CUSTOM_SERIES) {
      throw new RangeError(`More than ${MAX_CUSTOM_SERIES} metric series`);
    }
    this.#series.set(key, { snapshot });
  }
}
