/**
 * The one interface through which routes get live data ({@link GatewayState}), and its
 * implementation over the RPC clients the manifest grants the gateway. Every method rejects
 * with the peer's `RpcError` (UNAVAILABLE while the peer is down): callers fail closed.
 * @module
 */
import type {
  ApiContract,
  CallInput,
  CallOptions,
  CallOutput,
  MethodName,
  RpcClient,
} from "../../runtime/kit/rpc.ts";
import { RpcError } from "../../runtime/kit/errors.ts";
import type { systemApi } from "../../runtime/kit/system_api.ts";
import type { Decision, policyApi, policyViewApi } from "../policy/api.ts";
import type { toolFirewallApi } from "../tool-firewall/api.ts";
import type { auditAppendApi, auditQueryApi } from "../audit/api.ts";
import type { authApi } from "../auth/api.ts";
import { quarantineApi } from "../quarantine/api.ts";
import { registryApi } from "../registry/api.ts";
import { inferenceApi } from "../inference/api.ts";

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
/** The policy in force (`policy-view.current`). */
export type PolicyCurrent = CallOutput<typeof policyViewApi, "current">;
/** A what-if request (`policy-view.whatif`). */
export type WhatIfRequest = CallInput<typeof policyViewApi, "whatif">;
/** A what-if report. */
export type WhatIfReport = CallOutput<typeof policyViewApi, "whatif">;
/** A proposed tool call (`tool-firewall.check`). */
export type ToolCheckRequest = CallInput<typeof toolFirewallApi, "check">;
/** The tool firewall's answer. */
export type ToolCheckAnswer = CallOutput<typeof toolFirewallApi, "check">;
/** An audit query (`audit-query.query`). */
export type AuditQuery = CallInput<typeof auditQueryApi, "query">;
/** A page of audit entries. */
export type AuditPage = CallOutput<typeof auditQueryApi, "query">;
/** An entry the gateway appends (`audit-append.append`). */
export type AuditRecord = CallInput<typeof auditAppendApi, "append">;

/** Authentication, answered by the auth control (one method per `auth` contract method). */
export type AuthState = {
  [K in keyof typeof authApi.methods]: (
    input: CallInput<typeof authApi, K>,
    options?: CallOptions,
  ) => Promise<CallOutput<typeof authApi, K>>;
};

/** One function per method of a contract, answered by the control serving it. */
export type ContractState<C extends ApiContract> = {
  [K in MethodName<C>]: (
    input: CallInput<C, K>,
    options?: CallOptions,
  ) => Promise<CallOutput<C, K>>;
};
/** Model quarantine: uploads, jobs, cancel, approve (`quarantine` contract). */
export type QuarantineState = ContractState<typeof quarantineApi>;
/** Trusted registry: models, revoke, verify, signed manifest (`registry` contract). */
export type RegistryState = ContractState<typeof registryApi>;
/** Local inference behind the OpenAI-compatible `/v1` API (`inference` contract). */
export type InferenceState = ContractState<typeof inferenceApi>;

/**
 * The audit log's read side, answered by the audit control (one method per `audit-query`
 * contract method: query, head, proof, consistency, verify, export).
 */
export type AuditLogState = {
  [K in keyof typeof auditQueryApi.methods]: (
    input: CallInput<typeof auditQueryApi, K>,
    options?: CallOptions,
  ) => Promise<CallOutput<typeof auditQueryApi, K>>;
};

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
  /** The policy in force. */
  policyCurrent(options?: CallOptions): Promise<PolicyCurrent>;
  /** Replays logged decisions under a candidate policy. */
  policyWhatIf(request: WhatIfRequest, options?: CallOptions): Promise<WhatIfReport>;
  /** Asks the tool firewall about one tool call; an error means deny. */
  checkTool(request: ToolCheckRequest, options?: CallOptions): Promise<ToolCheckAnswer>;
  /** Reads the audit log, newest first. */
  queryAudit(query: AuditQuery, options?: CallOptions): Promise<AuditPage>;
  /** Appends an entry to the audit log as the gateway. */
  recordAudit(entry: AuditRecord, options?: CallOptions): Promise<void>;
  /** The audit log: signed head, proofs, verification, export. */
  auditLog: AuditLogState;
  /** Sessions, login, setup: the auth control (the gateway holds no auth secret). */
  auth: AuthState;
  /** The model quarantine (the gateway writes no file: uploads go over RPC in chunks). */
  quarantine: QuarantineState;
  /** The trusted model registry. */
  registry: RegistryState;
  /** Local inference (client tokens are checked by the inference control, not here). */
  inference: InferenceState;
}

/** The RPC clients {@link createGatewayState} is built from. */
export interface GatewayClients {
  system: RpcClient<typeof systemApi>;
  policy: RpcClient<typeof policyApi>;
  auditQuery: RpcClient<typeof auditQueryApi>;
  auditAppend: RpcClient<typeof auditAppendApi>;
  auth: RpcClient<typeof authApi>;
  /** Absent: the policy-view methods fail closed with UNAVAILABLE. */
  policyView?: RpcClient<typeof policyViewApi>;
  /** Absent: tool checks fail closed with UNAVAILABLE. */
  toolFirewall?: RpcClient<typeof toolFirewallApi>;
  /** Absent: quarantine methods fail closed with UNAVAILABLE. */
  quarantine?: RpcClient<typeof quarantineApi>;
  /** Absent: registry methods fail closed with UNAVAILABLE. */
  registry?: RpcClient<typeof registryApi>;
  /** Absent: inference methods fail closed with UNAVAILABLE. */
  inference?: RpcClient<typeof inferenceApi>;
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
 *   auth: ctx.client(authApi),
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
    policyCurrent: async (options) =>
      await required(clients.policyView, "policy-view").call("current", {}, options),
    policyWhatIf: async (request, options) =>
      await required(clients.policyView, "policy-view").call("whatif", request, options),
    checkTool: async (request, options) =>
      await required(clients.toolFirewall, "tool-firewall").call("check", request, options),
    queryAudit: (query, options) => clients.auditQuery.call("query", query, options),
    async recordAudit(entry, options) {
      await clients.auditAppend.call("append", entry, options);
    },
    auditLog: {
      query: (input, options) => clients.auditQuery.call("query", input, options),
      head: (input, options) => clients.auditQuery.call("head", input, options),
      proof: (input, options) => clients.auditQuery.call("proof", input, options),
      consistency: (input, options) => clients.auditQuery.call("consistency", input, options),
      verify: (input, options) => clients.auditQuery.call("verify", input, options),
      export: (input, options) => clients.auditQuery.call("export", input, options),
    },
    auth: {
      check: (input, options) => clients.auth.call("check", input, options),
      setup: (input, options) => clients.auth.call("setup", input, options),
      login: (input, options) => clients.auth.call("login", input, options),
      logout: (input, options) => clients.auth.call("logout", input, options),
      change: (input, options) => clients.auth.call("change", input, options),
    },
    quarantine: bindContract(quarantineApi, clients.quarantine),
    registry: bindContract(registryApi, clients.registry),
    inference: bindContract(inferenceApi, clients.inference),
  };
}

/** Binds every method of a contract to a client; without one, each call fails closed. */
function bindContract<C extends ApiContract>(
  contract: C,
  client: RpcClient<C> | undefined,
): ContractState<C> {
  const bound: Record<string, unknown> = {};
  for (const method of Object.keys(contract.methods) as MethodName<C>[]) {
    bound[method] = async (input: CallInput<C, typeof method>, options?: CallOptions) =>
      await required(client, contract.name).call(method, input, options);
  }
  return bound as ContractState<C>;
}

/** A client the gateway was not given fails every call closed. */
function required<C extends RpcClient<ApiContract>>(client: C | undefined, peer: string): C {
  if (client) return client;
  throw new RpcError("UNAVAILABLE", `The gateway has no port to "${peer}"`);
}
