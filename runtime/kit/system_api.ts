/**
 * Contract of the `system` port: the supervisor's read-only view of the system, handed to
 * the gateway only. It grants no control over workers.
 * @module
 */
import { z } from "zod";
import { defineApi } from "./rpc.ts";

/** Lifecycle state of one control. */
export const ControlStateSchema = z.enum([
  "starting",
  "ready",
  "restarting",
  "failed",
  "stopping",
  "stopped",
]);
/** Control state. */
export type ControlState = z.infer<typeof ControlStateSchema>;

/** Deno permissions as granted to a worker (after resolution against the state dir). */
export const GrantedPermissionsSchema = z.strictObject({
  read: z.array(z.string().max(4096)).max(64),
  write: z.array(z.string().max(4096)).max(64),
  net: z.array(z.string().max(300)).max(64),
  env: z.array(z.string().max(200)).max(64),
  sys: z.array(z.string().max(64)).max(16),
  run: z.literal(false),
  ffi: z.literal(false),
  import: z.literal(false),
});
/** Granted permissions. */
export type GrantedPermissions = z.infer<typeof GrantedPermissionsSchema>;

/** One row of the live capability matrix. */
export const ControlStatusSchema = z.strictObject({
  name: z.string().max(40),
  description: z.string().max(300),
  state: ControlStateSchema,
  required: z.boolean(),
  restarts: z.number().int().nonnegative(),
  lastError: z.string().max(2000).nullable(),
  since: z.string().max(40),
  permissions: GrantedPermissionsSchema,
  /** Contracts this control serves. */
  provides: z.array(z.string().max(40)).max(32),
  /** Contracts this control may call (its outgoing edges), with the serving control. */
  uses: z.array(z.strictObject({ api: z.string().max(40), control: z.string().max(40) })).max(32),
  /** Job modules it may run in the sandbox. */
  jobs: z.array(z.string().max(64)).max(64),
});
/** Control status. */
export type ControlStatus = z.infer<typeof ControlStatusSchema>;

/** A supervisor or control event, as streamed to the UI. */
export const SystemEventSchema = z.strictObject({
  seq: z.number().int().nonnegative(),
  ts: z.string().max(40),
  source: z.string().max(40),
  type: z.string().max(64),
  data: z.record(z.string().max(64), z.unknown()),
});
/** System event. */
export type SystemEvent = z.infer<typeof SystemEventSchema>;

/** The evidence matrix as shown to users (policy/controls.yaml, validated by the runtime). */
export const EvidenceViewSchema = z.strictObject({
  summary: z.strictObject({
    planned: z.number().int().nonnegative(),
    partial: z.number().int().nonnegative(),
    working: z.number().int().nonnegative(),
  }),
  controls: z.array(z.strictObject({
    id: z.string().max(8),
    title: z.string().max(160),
    status: z.enum(["planned", "partial", "working"]),
    issue: z.number().int().positive().nullable(),
    note: z.string().max(600).nullable(),
    proofs: z.array(z.strictObject({ file: z.string().max(200), test: z.string().max(300) }))
      .max(32),
  })).max(200),
});
/** Evidence view. */
export type EvidenceView = z.infer<typeof EvidenceViewSchema>;

/** The system contract. */
export const systemApi = defineApi("system", {
  status: {
    input: z.strictObject({}),
    output: z.strictObject({
      ready: z.boolean(),
      state: z.enum(["starting", "ready", "degraded", "stopping"]),
      version: z.string().max(40),
      startedAt: z.string().max(40),
      controls: z.array(ControlStatusSchema).max(64),
    }),
  },
  /** Which controls are proven by which tests. */
  evidence: { input: z.strictObject({}), output: EvidenceViewSchema },
  metrics: {
    input: z.strictObject({}),
    output: z.strictObject({ text: z.string().max(1 << 20) }),
  },
  /** Long-poll: events with seq > after, waiting up to waitMs for the first one. */
  events: {
    input: z.strictObject({
      after: z.number().int().min(-1),
      waitMs: z.number().int().min(0).max(30_000).default(0),
      limit: z.number().int().min(1).max(500).default(100),
    }),
    output: z.strictObject({
      events: z.array(SystemEventSchema).max(500),
      /** Seq of the last event returned (the newest known when none); pass it back as `after`. */
      last: z.number().int().min(-1),
      /** True when events older than `after` were dropped from the ring. */
      gap: z.boolean(),
    }),
  },
});
