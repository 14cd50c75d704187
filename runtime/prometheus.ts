/**
 * Renders the supervisor's view of every worker as Prometheus text (exposition 0.0.4).
 * @module
 */
import { type HistogramSnapshot, LATENCY_BUCKETS_S, type MetricSeries } from "./kit/metrics.ts";

/** What is rendered per control. */
export interface ControlMetrics {
  name: string;
  isUp: boolean;
  restarts: number;
  /** Served-call latency, keyed `api.method`. */
  served: Record<string, HistogramSnapshot>;
  /** The control's own metrics (validated in its heartbeat), rendered as `secai_<name>`. */
  custom?: MetricSeries[];
}

function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Renders the metrics page. */
export function renderPrometheus(
  controls: ControlMetrics[],
  system: { isReady: boolean; uptimeSeconds: number; rssBytes: number },
): string {
  const out: string[] = [];
  out.push("# HELP secai_system_ready 1 when every required control is ready.");
  out.push("# TYPE secai_system_ready gauge");
  out.push(`secai_system_ready ${system.isReady ? 1 : 0}`);
  out.push("# HELP secai_uptime_seconds Seconds since the supervisor started.");
  out.push("# TYPE secai_uptime_seconds gauge");
  out.push(`secai_uptime_seconds ${system.uptimeSeconds.toFixed(3)}`);
  out.push(
    "# HELP secai_process_resident_memory_bytes RSS of the supervisor process (all workers).",
  );
  out.push("# TYPE secai_process_resident_memory_bytes gauge");
  out.push(`secai_process_resident_memory_bytes ${system.rssBytes}`);
  out.push("# HELP secai_control_up 1 when the control's worker is ready.");
  out.push("# TYPE secai_control_up gauge");
  for (const c of controls) {
    out.push(`secai_control_up{control="${label(c.name)}"} ${c.isUp ? 1 : 0}`);
  }
  out.push("# HELP secai_control_restarts_total Restarts since the supervisor started.");
  out.push("# TYPE secai_control_restarts_total counter");
  for (const c of controls) {
    out.push(`secai_control_restarts_total{control="${label(c.name)}"} ${c.restarts}`);
  }
  out.push("# HELP secai_rpc_served_seconds Latency of RPC calls served by a control.");
  out.push("# TYPE secai_rpc_served_seconds histogram");
  for (const c of controls) {
    for (const [key, h] of Object.entries(c.served).sort(([a], [b]) => a.localeCompare(b))) {
      const [api = "", method = ""] = key.split(".", 2);
      const base = `control="${label(c.name)}",api="${label(api)}",method="${label(method)}"`;
      let cumulative = 0;
      LATENCY_BUCKETS_S.forEach((le, i) => {
        cumulative += h.buckets[i] ?? 0;
        out.push(`secai_rpc_served_seconds_bucket{${base},le="${le}"} ${cumulative}`);
      });
      out.push(`secai_rpc_served_seconds_bucket{${base},le="+Inf"} ${h.count}`);
      out.push(`secai_rpc_served_seconds_sum{${base}} ${h.sum}`);
      out.push(`secai_rpc_served_seconds_count{${base}} ${h.count}`);
    }
  }
  out.push(...renderCustom(controls));
  return out.join("\n") + "\n";
}

/**
 * The controls' own series, grouped by name with one HELP/TYPE each. A name reported with
 * two different types (two controls disagreeing) keeps the first type; the others are left
 * out rather than rendered as invalid exposition.
 */
function renderCustom(controls: ControlMetrics[]): string[] {
  const groups = new Map<string, { type: string; help: string; lines: string[] }>();
  for (const c of controls) {
    for (const series of c.custom ?? []) {
      const name = `secai_${series.name}`;
      let group = groups.get(name);
      if (group === undefined) {
        group = { type: series.type, help: series.help, lines: [] };
        groups.set(name, group);
      }
      if (group.type !== series.type) continue;
      const labels = [
        `control="${label(c.name)}"`,
        ...Object.entries(series.labels).sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => `${k}="${label(v)}"`),
      ].join(",");
      if (series.type !== "histogram") {
        group.lines.push(`${name}{${labels}} ${series.value}`);
        continue;
      }
      let cumulative = 0;
      series.bounds.forEach((le, i) => {
        cumulative += series.buckets[i] ?? 0;
        group.lines.push(`${name}_bucket{${labels},le="${le}"} ${cumulative}`);
      });
      group.lines.push(`${name}_bucket{${labels},le="+Inf"} ${series.count}`);
      group.lines.push(`${name}_sum{${labels}} ${series.sum}`);
      group.lines.push(`${name}_count{${labels}} ${series.count}`);
    }
  }
  const out: string[] = [];
  for (const [name, group] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    out.push(`# HELP ${name} ${group.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
    out.push(`# TYPE ${name} ${group.type}`);
    out.push(...group.lines);
  }
  return out;
}
