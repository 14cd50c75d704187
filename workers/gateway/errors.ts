/**
 * Errors the gateway answers with, and the one table that maps an error code to an HTTP
 * status. Route handlers throw; the app's single `onError` turns what they throw into
 * `{ error: { code, message, requestId } }` with the status from {@link errorAnswer}.
 * @module
 */
import { RpcError } from "../../runtime/kit/errors.ts";

/** Codes the gateway itself produces. */
export type GatewayErrorCode =
  | "ALREADY_CONFIGURED"
  | "AUTH_BUSY"
  | "CROSS_SITE_REQUEST"
  | "CSRF_TOKEN_INVALID"
  | "HOST_NOT_ALLOWED"
  | "INVALID_BODY"
  | "INVALID_HEADER"
  | "INVALID_JSON"
  | "INVALID_QUERY"
  | "LOGIN_LOCKED"
  | "METHOD_NOT_ALLOWED"
  | "NOT_CONFIGURED"
  | "NOT_FOUND"
  | "PAYLOAD_TOO_LARGE"
  | "REQUEST_TIMEOUT"
  | "SETUP_CODE_INVALID"
  | "SETUP_REQUIRED"
  | "TOKEN_READ_ONLY"
  | "TOO_MANY_STREAMS"
  | "UNAUTHENTICATED"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "WEAK_PASSPHRASE"
  | "WRONG_PASSPHRASE";

/** Options of a {@link GatewayError}. */
export interface GatewayErrorOptions extends ErrorOptions {
  /** Headers the error response must carry (e.g. `Allow` on 405, `Retry-After` on 503). */
  headers?: Record<string, string>;
  /**
   * Fields added beside `error` in the JSON answer, for clients that act on them
   * (`setup_required`, `locked_until`). Plain public data only.
   */
  extra?: Record<string, string | number | boolean | null>;
}

/** A request the gateway refuses, with a code the client can act on. */
export class GatewayError extends Error {
  /** Machine-readable code, UPPER_SNAKE. */
  readonly code: GatewayErrorCode;
  /** Headers to add to the error response. */
  readonly headers: Readonly<Record<string, string>>;
  /** Fields added beside `error` in the answer. */
  readonly extra: Readonly<Record<string, string | number | boolean | null>>;

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
    this.extra = options.extra ?? {};
  }
}

/** How an error code shows on the wire. */
interface CodeMapping {
  status: number;
  /** Whether the error's own message may reach the client (else a generic one does). */
  isMessagePublic: boolean;
}

const GATEWAY_STATUS: Record<GatewayErrorCode, number> = {
  ALREADY_CONFIGURED: 409,
  AUTH_BUSY: 503,
  CROSS_SITE_REQUEST: 403,
  CSRF_TOKEN_INVALID: 403,
  HOST_NOT_ALLOWED: 403,
  INVALID_BODY: 400,
  INVALID_HEADER: 400,
  INVALID_JSON: 400,
  INVALID_QUERY: 400,
  LOGIN_LOCKED: 423,
  METHOD_NOT_ALLOWED: 405,
  NOT_CONFIGURED: 409,
  NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  REQUEST_TIMEOUT: 408,
  SETUP_CODE_INVALID: 403,
  SETUP_REQUIRED: 401,
  TOKEN_READ_ONLY: 403,
  TOO_MANY_STREAMS: 503,
  UNAUTHENTICATED: 401,
  UNSUPPORTED_MEDIA_TYPE: 415,
  WEAK_PASSPHRASE: 400,
  WRONG_PASSPHRASE: 401,
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
  /** Fields added beside `error` (GatewayError `extra`). */
  extra: Readonly<Record<string, string | number | boolean | null>>;
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
      extra: error.extra,
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
      extra: {},
    };
  }
  return {
    status: 500,
    code: "INTERNAL",
    message: `Internal error (request ${requestId})`,
    headers: {},
    extra: {},
  };
}
