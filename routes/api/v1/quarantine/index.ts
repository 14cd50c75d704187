/**
 * `GET /api/v1/quarantine`: quarantine jobs, newest first (`?limit=`, `?state=`, `?ticket=`
 * for the job an importer's inbox item became).
 * `POST /api/v1/quarantine`: submits a model for quarantine, streamed to the quarantine
 * control (see `(_models)/upload.ts` for the two body forms); answers 202 with the job.
 * @module
 */
import { z } from "zod";
import { JobStateSchema, TicketSchema } from "../../../../workers/quarantine/api.ts";
import type { Handlers, RouteConfig } from "../../../../workers/gateway/routing.ts";
import { answer } from "../(_models)/respond.ts";
import { streamUpload } from "../(_models)/upload.ts";

/** The upload is read by the handler as it streams, never buffered by the gateway. */
export const config: RouteConfig = { body: "stream" };

const ListQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  state: JobStateSchema.optional(),
  ticket: TicketSchema.optional(),
});

/** Lists jobs and takes uploads. */
export const handler: Handlers = {
  GET(_req, ctx) {
    const query = ctx.query(ListQuerySchema);
    return answer(ctx, () =>
      ctx.state.quarantine.list(
        {
          limit: query.limit,
          ...(query.state ? { state: query.state } : {}),
          ...(query.ticket ? { ticket: query.ticket } : {}),
        },
        { signal: ctx.signal },
      ));
  },
  POST: (req, ctx) => streamUpload(req, ctx),
};
