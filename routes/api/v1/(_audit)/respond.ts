/**
 * How the audit routes answer: JSON, with the audit control's codes mapped to HTTP statuses.
 * Codes not listed go to the gateway's one error mapping.
 * @module
 */
import type { RouteContext } from "../../../../workers/gateway/routing.ts";
import { answerJson } from "../(_answer)/answer.ts";

/** Status of each audit refusal. */
export const AUDIT_ERROR_STATUS: Readonly<Record<string, number>> = {
  AUDIT_NOT_FOUND: 404,
  AUDIT_RANGE_INVALID: 400,
  AUDIT_MALFORMED: 409,
  AUDIT_UNAVAILABLE: 503,
};

/**
 * Runs a call to the audit control and answers with its result as JSON.
 * @param ctx the route context (request id)
 * @param call the call
 * @returns the response; a mapped refusal becomes `{error: {code, message, requestId}}`
 * @throws what is not mapped here, for the gateway's error mapping
 */
export async function answerAudit(
  ctx: Pick<RouteContext, "requestId">,
  call: () => Promise<unknown>,
): Promise<Response> {
  return await answerJson(ctx, call, { statuses: AUDIT_ERROR_STATUS });
}
