/**
 * How the API routes of a control answer: JSON, with that control's refusal codes mapped to
 * HTTP statuses. Codes a route family does not list go to the gateway's one error mapping.
 * @module
 */
import { RpcError } from "../../../../runtime/kit/errors.ts";
import type { RouteContext } from "../../../../workers/gateway/routing.ts";

/** Options of {@link answerJson} and {@link mappedRefusal}. */
export interface MappedAnswerOptions {
  /** HTTP status of each refusal code the routes map. */
  statuses: Readonly<Record<string, number>>;
  /** Status of a success (default 200). */
  status?: number;
}

/**
 * Runs a call to a control and answers with its result as JSON.
 * @param ctx the route context (request id)
 * @param call the call
 * @param options the refusal codes' statuses, and the status of a success
 * @returns the response; a mapped refusal becomes `{error: {code, message, requestId}}`
 * @throws what is not mapped, for the gateway's error mapping
 */
export async function answerJson(
  ctx: Pick<RouteContext, "requestId">,
  call: () => Promise<unknown>,
  options: MappedAnswerOptions,
): Promise<Response> {
  try {
    return Response.json(await call(), { status: options.status ?? 200 });
  } catch (error) {
    const response = mappedRefusal(ctx, error, options);
    if (response === null) throw error;
    return response;
  }
}

/**
 * The response for a mapped refusal, or null when the error is not one.
 * @param ctx the route context (request id)
 * @param error what the call threw
 * @param options the refusal codes' statuses
 * @returns `{error: {code, message, requestId}}` with the code's status, or null
 */
export function mappedRefusal(
  ctx: Pick<RouteContext, "requestId">,
  error: unknown,
  options: Pick<MappedAnswerOptions, "statuses">,
): Response | null {
  const { statuses } = options;
  if (!(error instanceof RpcError) || !Object.hasOwn(statuses, error.code)) return null;
  const status = statuses[error.code] as number;
  return Response.json(
    { error: { code: error.code, message: error.message, requestId: ctx.requestId } },
    { status, headers: status === 503 ? { "retry-after": "1" } : {} },
  );
}
