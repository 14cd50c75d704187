/**
 * Messages between the supervisor and a control worker (over the worker's own
 * postMessage channel). Peer traffic never goes this way: it uses the ports handed out in
 * `init`, one per declared edge.
 * @module
 */
import { z } from "zod";
import {
  type HistogramSnapshot,
  MAX_CUSTOM_SERIES,
  METRIC_NAME_PATTERN,
  type MetricSeries,
} from "./metrics.ts";

const Port = z.custom<MessagePort>(
  (value) => value instanceof MessagePort,
  "expected a MessagePort",
);
const Name = z.string().regex(/^[a-z][a-z0-9-]{0,39}$/);

/** A port on which this worker serves `api` to `caller`. */
export const ServedPortSchema = z.strictObject({ api: Name, caller: Name, port: Port });

/** Supervisor → worker. */
export const ToWorkerSchema = z.discriminatedUnion("t", [
  z.strictObject({
    t: z.literal("init"),
    control: Name,
    home: z.string().min(1).max(4096),
    config: z.unknown(),
    /** Client ends, keyed by contract name; null while the provider is down. */
    clients: z.record(Name, Port.nullable()),
    servers: z.array(ServedPortSchema).max(64),
  }),
  z.strictObject({ t: z.literal("ping"), seq: z.number().int().nonnegative() }),
  /** A peer restarted (new port) or went down (null). */
  z.strictObject({
    t: z.literal("rewire"),
    api: Name,
    port: Port.nullable(),
    reason: z.string().max(500),
  }),
  /** A caller restarted: serve it on a new port. */
  z.strictObject({ t: z.literal("serve"), served: ServedPortSchema }),
  z.strictObject({ t: z.literal("stop") }),
]);
/** Supervisor → worker message. */
export type ToWorker = z.infer<typeof ToWorkerSchema>;

const HistogramSchema: z.ZodType<HistogramSnapshot> = z.strictObject({
  buckets: z.array(z.number().int().nonnegative()).max(64),
  sum: z.number().nonnegative(),
  count: z.number().int().nonnegative(),
});

const Labels = z.record(z.string().regex(/^[a-z][a-z0-9_]{0,30}$/), z.string().max(100))
  .refine((labels) => Object.keys(labels).length <= 4, "at most 4 labels");
const Value = z.number().finite();

/** One custom metric series (runtime/kit/metrics.ts), bounded like everything from a worker. */
const MetricSeriesSchema: z.ZodType<MetricSeries> = z.union([
  z.strictObject({
    name: z.string().regex(METRIC_NAME_PATTERN),
    help: z.string().max(200),
    type: z.enum(["counter", "gauge"]),
    labels: Labels,
    value: Value,
  }),
  z.strictObject({
    name: z.string().regex(METRIC_NAME_PATTERN),
    help: z.string().max(200),
    type: z.literal("histogram"),
    labels: Labels,
    bounds: z.array(Value).max(32),
    buckets: z.array(z.number().int().nonnegative()).max(33),
    sum: Value,
    count: z.number().int().nonnegative(),
  }).refine((h) => h.buckets.length === h.bounds.length + 1, "one bucket per bound plus +Inf"),
]);

/** Worker → supervisor. */
export const FromWorkerSchema = z.discriminatedUnion("t", [
  z.strictObject({ t: z.literal("ready") }),
  z.strictObject({
    t: z.literal("pong"),
    seq: z.number().int().nonnegative(),
    /** Latency of calls this worker served, keyed `api.method`. */
    served: z.record(z.string().max(130), HistogramSchema),
    /** The control's own metrics (counters, gauges, histograms), when it has any. */
    metrics: z.array(MetricSeriesSchema).max(MAX_CUSTOM_SERIES).optional(),
  }),
  z.strictObject({
    t: z.literal("event"),
    type: z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/),
    data: z.record(z.string().max(64), z.unknown()),
  }),
  /** The worker cannot run (bad config, unreadable state): do not restart blindly. */
  z.strictObject({
    t: z.literal("fatal"),
    code: z.string().max(64),
    message: z.string().max(2000),
  }),
  z.strictObject({ t: z.literal("stopped") }),
]);
/** Worker → supervisor message. */
export type FromWorker = z.infer<typeof FromWorkerSchema>;
