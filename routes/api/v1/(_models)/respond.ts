/**
 * How the quarantine and registry routes answer: JSON, and the codes of those two controls
 * mapped to HTTP statuses. Codes not listed go to the gateway's one error mapping (503 for
 * an unavailable control, a plain 500 for anything unexpected).
 * @module
 */
import type { RouteContext } from "../../../../workers/gateway/routing.ts";
import { answerJson, mappedRefusal } from "../(_answer)/answer.ts";

/** Status of each quarantine/registry refusal. */
export const MODEL_ERROR_STATUS: Readonly<Record<string, number>> = {
  JOB_NOT_FOUND: 404,
  MODEL_NOT_FOUND: 404,
  UPLOAD_NOT_FOUND: 404,
  INVALID_STATE: 409,
  CONFLICT: 409,
  MODEL_REVOKED: 409,
  REVOKED_CONTENT: 409,
  INTEGRITY_MISMATCH: 409,
  UPLOAD_OUT_OF_ORDER: 400,
  UPLOAD_SIZE_MISMATCH: 400,
  UPLOAD_INVALID_ENTRY: 400,
  UPLOAD_TOO_LARGE: 413,
  TOO_MANY_UPLOADS: 429,
  POLICY_UNAVAILABLE: 503,
  AUDIT_UNAVAILABLE: 503,
  MANIFEST_FAILED: 503,
};

/**
 * Runs a call to the quarantine or registry and answers with its result as JSON.
 * @param ctx the route context (request id)
 * @param call the call
 * @param init status of a success (default 200)
 * @returns the response; a mapped refusal becomes `{error: {code, message, requestId}}`
 * @throws what is not mapped here, for the gateway's error mapping
 */
export async function answer(
  ctx: Pick<RouteContext, "requestId">,
  call: () => Promise<unknown>,
  init: { status?: number } = {},
): Promise<Response> {
  return await answerJson(ctx, call, {
    statuses: MODEL_ERROR_STATUS,
    ...(init.status === undefined ? {} : { status: init.status }),
  });
}

/** The response for a mapped quarantine/registry refusal, or null. */
export function refusal(ctx: Pick<RouteContext, "requestId">, error: unknown): Response | null {
  return mappedRefusal(ctx, error, { statuses: MODEL_ERROR_STATUS });
}
