/**
 * The one interface through which routes get live data ({@link GatewayState}), and its
 * implementation over the RPC clients the manifest grants the gateway. Every method rejects
 * with the peer's `RpcError` (UNAVAILABLE while the peer is down): callers fail closed.
 * @module
 */
import type { CallInput, CallOptions, CallOutput, RpcClient } from "../../runtime/kit/rpc.ts";
import type { systemApi } from "../../runtime/kit/system_api.ts";
import type { Decision, policyApi } from "../policy/api.ts";
import type { auditAppendApi, auditQueryApi } from "../audit/api.ts";

/** The supervisor's view of the system (`system.status`). */
export type SystemStatus = CallOutput<typeof systemApi, "status">;
/** The evidence matrix (`system.evidence`). */
export type EvidenceView = CallOutput<typeof systemApi, "evidence">;
/** A long-poll request for events (`system.events`). */
export type EventsQuery = CallInput<typeof systemApi, "events">;
/** A page of events. */
export type EventsPage = CallOutput<typeof systemApi, "events">;
/** A decision request (`policy.decide`). */
export type DecideRequest = CallInput<typeof policyApi, "decide">;
/** An audit query (`audit-query.query`). */
export type AuditQuery = CallInput<typeof auditQueryApi, "query">;
/** A page of audit entries. */
export type AuditPage = CallOutput<typeof auditQueryApi, "query">;
/** An entry the gateway appends (`audit-append.append`). */
export type AuditRecord = CallInput<typeof auditAppendApi, "append">;

/** Live data for routes. One instance per gateway; routes never see RPC clients. */
export interface GatewayState {
  /** System state and the capability matrix. */
  status(options?: CallOptions): Promise<SystemStatus>;
  /** The evidence matrix: which tests prove which control. */
  evidence(options?: CallOptions): Promise<EvidenceView>;
  /** Prometheus text exposition rendered by the supervisor. */
  metrics(options?: CallOptions): Promise<string>;
  /** Events with seq > `query.after`, waiting up to `query.waitMs` for the first one. */
  events(query: EventsQuery, options?: CallOptions): Promise<EventsPage>;
  /** Asks the policy control; an error instead of a decision means deny. */
  decide(request: DecideRequest, options?: CallOptions): Promise<Decision>;
  /** Reads the audit log, newest first. */
  queryAudit(query: AuditQuery, options?: CallOptions): Promise<AuditPage>;
  /** Appends an entry to the audit log as the gateway. */
  recordAudit(entry: AuditRecord, options?: CallOptions): Promise<void>;
}

/** The RPC clients {@link createGatewayState} is built from. */
export interface GatewayClients {
  system: RpcClient<typeof systemApi>;
  policy: RpcClient<typeof policyApi>;
  auditQuery: RpcClient<typeof auditQueryApi>;
  auditAppend: RpcClient<typeof auditAppendApi>;
}

/** Time a long-poll call may take beyond its own wait before it counts as timed out. */
export const EVENTS_DEADLINE_MARGIN_MS = 5_000;

/**
 * Builds the gateway state over RPC clients.
 * @param clients one client per granted contract
 * @returns the state routes read from
 * @example
 * ```ts
 * const state = createGatewayState({
 *   system: ctx.client(systemApi),
 *   policy: ctx.client(policyApi),
 *   auditQuery: ctx.client(auditQueryApi),
 *   auditAppend: ctx.client(auditAppendApi),
 * });
 * ```
 */
export function createGatewayState(clients: GatewayClients): GatewayState {
  return {
    status: (options) => clients.system.call("status", {}, options),
    evidence: (options) => clients.system.call("evidence", {}, options),
    metrics: async (options) => (await clients.system.call("metrics", {}, options)).text,
    events(query, options = {}) {
      // The call waits on purpose; its deadline must outlast the wait.
      const deadlineMs = options.deadlineMs ??
        (query.waitMs ?? 0) + EVENTS_DEADLINE_MARGIN_MS;
      return clients.system.call("events", query, { ...options, deadlineMs });
    },
    decide: (request, options) => clients.policy.call("decide", request, options),
    queryAudit: (query, options) => clients.auditQuery.call("query", query, options),
    async recordAudit(entry, options) {
      await clients.auditAppend.call("append", entry, options);
    },
  };
}
