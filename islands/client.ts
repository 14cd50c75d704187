/**
 * Entry of the islands bundle (`static/build/islands.js`, built by `runtime/bundle.ts`).
 * Hydrates every `[data-island]` element the server rendered, with the props the server put
 * in the page's JSON data element. Loaded as an external module: the page has no inline
 * script to run.
 * @module
 */
import { type ComponentType, h, hydrate } from "preact";
import { ISLAND_DATA_ID, type IslandRecord } from "./hydration.ts";
import AuditVerify from "./AuditVerify.tsx";
import AuthForm from "./AuthForm.tsx";
import ChatPanel from "./ChatPanel.tsx";
import LiveControls from "./LiveControls.tsx";
import ModelsPanel from "./ModelsPanel.tsx";
import PolicyEditor from "./PolicyEditor.tsx";
import SessionControls from "./SessionControls.tsx";

/** Islands this bundle can hydrate, by the name the server renders. */
export const ISLANDS: Readonly<Record<string, ComponentType<never>>> = {
  AuditVerify,
  AuthForm,
  ChatPanel,
  LiveControls,
  ModelsPanel,
  PolicyEditor,
  SessionControls,
};

/**
 * Hydrates the islands of a document. An element whose name or props are unknown keeps
 * its server-rendered markup.
 * @param doc the page
 * @returns how many islands were hydrated
 */
export function hydrateIslands(doc: Document): number {
  const data = doc.getElementById(ISLAND_DATA_ID)?.textContent;
  if (!data) return 0;
  const records: unknown = JSON.parse(data);
  if (!Array.isArray(records)) return 0;
  let count = 0;
  for (const el of doc.querySelectorAll<HTMLElement>("[data-island]")) {
    const name = el.dataset.island ?? "";
    const record = records[Number(el.dataset.islandId)] as IslandRecord | undefined;
    const component = Object.hasOwn(ISLANDS, name) ? ISLANDS[name] : undefined;
    if (component === undefined || record?.name !== name) continue;
    hydrate(h(component as ComponentType<object>, record.props as object), el);
    count++;
  }
  return count;
}

if (typeof document !== "undefined") hydrateIslands(document);
