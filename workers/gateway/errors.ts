/**
 * Errors the gateway answers with, and the one table that maps an error code to an HTTP
 * status. Route handlers throw; the app's single `onError` turns what they throw into
 * `{ error: { code, message, requestId } }` with the status from {@link errorAnswer}.
 * @module
 */
import { RpcError } from "../../runtime/kit/errors.ts";

/** Codes the gateway itself produces. */
export type GatewayErrorCode =
  | "CROSS_SITE_REQUEST"
  | "HOST_NOT_ALLOWED"
  | "INVALID_BODY"
  | "INVALID_HEADER"
  | "INVALID_JSON"
  | "INVALID_QUERY"
  | "METHOD_NOT_ALLOWED"
  | "NOT_FOUND"
  | "PAYLOAD_TOO_LARGE"
  | "REQUEST_TIMEOUT"
  | "TOO_MANY_STREAMS"
  | "UNSUPPORTED_MEDIA_TYPE";

/** Options of a {@link GatewayError}. */
export interface GatewayErrorOptions extends ErrorOptions {
  /** Headers the error response must carry (e.g. `Allow` on 405, `Retry-After` on 503). */
  headers?: Record<string, string>;
}

/** A request the gateway refuses, with a code the client can act on. */
export class GatewayError extends Error {
  /** Machine-readable code, UPPER_SNAKE. */
  readonly code: GatewayErrorCode;
  /** Headers to add to the error response. */
  readonly headers: Readonly<Record<string, string>>;

  /**
   * @param code what went wrong, picks the status
   * @param message sentence-case, no trailing period, safe to show the client
   * @param options `cause` and extra response headers
   */
  constructor(code: GatewayErrorCode, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "GatewayError";
    this.code = code;
    this.headers = options.headers ?? {};
  }
}

/** How an error code shows on the wire. */
interface CodeMapping {
  status: number;
  /** Whether the error's own message may reach the client (else a generic one does). */
  isMessagePublic: boolean;
}

const GATEWAY_STATUS: Record<GatewayErrorCode, number> = {
  CROSS_SITE_REQUEST: 403,
  HOST_NOT_ALLOWED: 403,
  INVALID_BODY: 400,
  INVALID_HEADER: 400,
  INVALID_JSON: 400,
  INVALID_QUERY: 400,
  METHOD_NOT_ALLOWED: 405,
  NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  REQUEST_TIMEOUT: 408,
  TOO_MANY_STREAMS: 503,
  UNSUPPORTED_MEDIA_TYPE: 415,
};

/**
 * RPC codes a control may send us. Anything not listed (INTERNAL, UNKNOWN_METHOD,
 * NOT_CAPABLE, a control's own code) is answered as a plain 500 so internals never leak.
 */
const RPC_MAPPING: Readonly<Record<string, CodeMapping>> = {
  UNAVAILABLE: { status: 503, isMessagePublic: true },
  DEADLINE_EXCEEDED: { status: 503, isMessagePublic: true },
  OVERLOADED: { status: 503, isMessagePublic: true },
  CANCELLED: { status: 503, isMessagePublic: true },
  INVALID_REQUEST: { status: 400, isMessagePublic: true },
  // The peer broke its contract: say so, but not how (the message names schema internals).
  INVALID_RESPONSE: { status: 502, isMessagePublic: false },
  PROTOCOL_ERROR: { status: 502, isMessagePublic: false },
};

/** What the client is told about an error. */
export interface ErrorAnswer {
  status: number;
  code: string;
  message: string;
  headers: Readonly<Record<string, string>>;
}

/** Whether an error is one the gateway did not expect (answered as a plain 500). */
export function isUnexpected(error: unknown): boolean {
  if (error instanceof GatewayError) return false;
  return !(error instanceof RpcError && Object.hasOwn(RPC_MAPPING, error.code));
}

/**
 * Maps anything thrown while handling a request to its answer. Unknown errors (and RPC
 * codes without a mapping) become a plain 500 without message or stack.
 * @param error what was thrown
 * @param requestId the request's id, quoted in the generic 500 message
 * @returns status, code, client-safe message and headers
 */
export function errorAnswer(error: unknown, requestId: string): ErrorAnswer {
  if (error instanceof GatewayError) {
    return {
      status: GATEWAY_STATUS[error.code],
      code: error.code,
      message: error.message,
      headers: error.headers,
    };
  }
  if (error instanceof RpcError && Object.hasOwn(RPC_MAPPING, error.code)) {
    const mapping = RPC_MAPPING[error.code] as CodeMapping;
    return {
      status: mapping.status,
      code: error.code,
      message: mapping.isMessagePublic
        ? error.message
        : `A control answered outside its contract (request ${requestId})`,
      headers: mapping.status === 503 ? { "retry-after": "1" } : {},
    };
  }
  return {
    status: 500,
    code: "INTERNAL",
    message: `Internal error (request ${requestId})`,
    headers: {},
  };
}
