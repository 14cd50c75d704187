import { equal, ok } from "node:assert/strict";
import { renderPrometheus } from "./prometheus.ts";

const SYSTEM = { isReady: true, uptimeSeconds: 1, rssBytes: 1 };

Deno.test("renderPrometheus() renders a control's own metrics with a control label", () => {
  const text = renderPrometheus([{
    name: "inference",
    isUp: true,
    restarts: 0,
    served: {},
    custom: [
      {
        name: "inference_requests_total",
        help: "Requests.",
        type: "counter",
        labels: { outcome: "ok" },
        value: 2,
      },
      {
        name: "inference_ttft_seconds",
        help: "TTFT.",
        type: "histogram",
        labels: {},
        bounds: [0.1, 1],
        buckets: [1, 2, 3],
        sum: 9,
        count: 6,
      },
    ],
  }], SYSTEM);
  for (
    const line of [
      "# TYPE secai_inference_requests_total counter",
      'secai_inference_requests_total{control="inference",outcome="ok"} 2',
      "# TYPE secai_inference_ttft_seconds histogram",
      'secai_inference_ttft_seconds_bucket{control="inference",le="0.1"} 1',
      'secai_inference_ttft_seconds_bucket{control="inference",le="1"} 3',
      'secai_inference_ttft_seconds_bucket{control="inference",le="+Inf"} 6',
      'secai_inference_ttft_seconds_sum{control="inference"} 9',
    ]
  ) ok(text.split("\n").includes(line), `missing: ${line}`);
});

Deno.test("renderPrometheus() keeps one type per name when two controls disagree", () => {
  const text = renderPrometheus([
    {
      name: "a",
      isUp: true,
      restarts: 0,
      served: {},
      custom: [{ name: "x", help: "", type: "gauge", labels: {}, value: 1 }],
    },
    {
      name: "b",
      isUp: true,
      restarts: 0,
      served: {},
      custom: [{ name: "x", help: "", type: "counter", labels: {}, value: 2 }],
    },
  ], SYSTEM);
  equal(text.split("\n").filter((l) => l.startsWith("# TYPE secai_x ")).length, 1);
  ok(text.includes('secai_x{control="a"} 1'));
  equal(text.includes('secai_x{control="b"}'), false);
});

Deno.test("renderPrometheus() escapes label values a control reports", () => {
  const text = renderPrometheus([{
    name: "c",
    isUp: true,
    restarts: 0,
    served: {},
    custom: [{ name: "y", help: "", type: "gauge", labels: { k: 'a"b\nc' }, value: 1 }],
  }], SYSTEM);
  ok(text.includes('secai_y{control="c",k="a\\"b\\nc"} 1'));
});
