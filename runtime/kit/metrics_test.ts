import { deepEqual, equal, throws } from "node:assert/strict";
import { MetricsRegistry } from "./metrics.ts";
import { FromWorkerSchema } from "./protocol.ts";

Deno.test("MetricsRegistry.snapshot() reports counters, gauges and histograms with their labels", () => {
  const registry = new MetricsRegistry();
  const ok = registry.counter("requests_total", "Requests.", { outcome: "ok" });
  const depth = registry.gauge("queue_depth", "Waiting.");
  const ttft = registry.histogram("ttft_seconds", "First token.", [0.1, 1]);
  ok.inc();
  ok.inc(2);
  ok.inc(-5); // a counter never goes down
  depth.set(3);
  depth.set(Number.NaN); // ignored
  for (const v of [0.05, 0.5, 5]) ttft.observe(v);
  deepEqual(registry.snapshot(), [
    {
      name: "requests_total",
      help: "Requests.",
      type: "counter",
      labels: { outcome: "ok" },
      value: 3,
    },
    { name: "queue_depth", help: "Waiting.", type: "gauge", labels: {}, value: 3 },
    {
      name: "ttft_seconds",
      help: "First token.",
      type: "histogram",
      labels: {},
      bounds: [0.1, 1],
      buckets: [1, 1, 1],
      sum: 5.55,
      count: 3,
    },
  ]);
});

Deno.test("MetricsRegistry refuses invalid names and a series registered twice", () => {
  const registry = new MetricsRegistry();
  throws(() => registry.counter("Bad-Name", "x"), TypeError);
  registry.gauge("up", "x", { a: "1" });
  throws(() => registry.gauge("up", "x", { a: "1" }), TypeError);
  registry.gauge("up", "x", { a: "2" });
});

const pong = (metrics: unknown) => ({ t: "pong", seq: 1, served: {}, metrics });
const invalid: { name: string; metrics: unknown }[] = [
  {
    name: "a metric name with a dash",
    metrics: [{ name: "a-b", help: "", type: "gauge", labels: {}, value: 1 }],
  },
  {
    name: "a non-finite value",
    metrics: [{ name: "a", help: "", type: "gauge", labels: {}, value: Infinity }],
  },
  {
    name: "a histogram whose buckets do not match its bounds",
    metrics: [{
      name: "h",
      help: "",
      type: "histogram",
      labels: {},
      bounds: [1],
      buckets: [1],
      sum: 1,
      count: 1,
    }],
  },
  {
    name: "five labels",
    metrics: [{
      name: "a",
      help: "",
      type: "gauge",
      labels: { a: "", b: "", c: "", d: "", e: "" },
      value: 1,
    }],
  },
  {
    name: "an unknown field",
    metrics: [{ name: "a", help: "", type: "gauge", labels: {}, value: 1, x: 1 }],
  },
];
for (const c of invalid) {
  Deno.test(`FromWorkerSchema refuses a heartbeat whose metrics have ${c.name}`, () => {
    equal(FromWorkerSchema.safeParse(pong(c.metrics)).success, false);
  });
}

Deno.test("FromWorkerSchema accepts a heartbeat with or without metrics", () => {
  equal(FromWorkerSchema.safeParse({ t: "pong", seq: 1, served: {} }).success, true);
  equal(
    FromWorkerSchema.safeParse(
      pong([{ name: "a", help: "h", type: "counter", labels: {}, value: 2 }]),
    )
      .success,
    true,
  );
});
