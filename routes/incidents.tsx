/**
 * `/incidents`: placeholder. The incident recorder control does not exist yet, so the page
 * says so (never fake data); refused requests and lockouts are in the audit log meanwhile.
 * @module
 */
import type { JSX } from "preact";
import { NotAvailable } from "./(_components)/ui.tsx";

/**
 * The incidents page.
 * @returns the page content
 */
export default function IncidentsPage(): JSX.Element {
  return (
    <>
      <h1>Incidents</h1>
      <NotAvailable feature="Incident recording and containment">
        <p>
          This runtime has no incident recorder yet (spec 30). Until it does, security-relevant
          events are in the <a href="/audit">audit log</a>: refused cross-site requests{" "}
          (<code>gateway.request_denied</code>), failed logins and lockouts (<code>auth.login</code>
          {" "}
          with decision deny) and control crashes.
        </p>
      </NotAvailable>
    </>
  );
}
