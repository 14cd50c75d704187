/**
 * The agreement between the server that renders islands and `client.ts` that hydrates them:
 * each island's markup sits in an element with `data-island="<Name>"` and
 * `data-island-id="<n>"`, and all islands' props sit, as JSON data, in one
 * `<script type="application/json" id="__secai_islands">` element (never executed).
 * @module
 */

/** Id of the element holding the islands' props. */
export const ISLAND_DATA_ID = "__secai_islands";

/** One island instance as serialized in the page: its registry name and public props. */
export interface IslandRecord {
  name: string;
  props: unknown;
}
