/**
 * Status page: system state and the live capability matrix (each control's state, restarts,
 * granted permissions, peers and jobs). Rendered completely on the server; the
 * `LiveControls` island then keeps it current from `/api/v1/events`.
 * @module
 */
import type { JSX } from "preact";
import LiveControls from "../islands/LiveControls.tsx";
import { Island } from "../workers/gateway/render.tsx";
import type { Handlers, PageProps } from "../workers/gateway/routing.ts";
import type { SystemStatus } from "../workers/gateway/state.ts";

/** Loads the status to render. */
export const handler: Handlers<SystemStatus> = {
  async GET(_req, ctx) {
    return ctx.render(await ctx.state.status({ signal: ctx.signal }));
  },
};

/**
 * The status page.
 * @param props the system status
 * @returns the page content
 */
export default function StatusPage({ data }: PageProps<SystemStatus>): JSX.Element {
  return (
    <>
      <h1>System status</h1>
      <Island name="LiveControls" component={LiveControls} props={{ initial: data }} />
    </>
  );
}
