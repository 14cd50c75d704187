/**
 * Pieces of the islands' tables.
 * @module
 */
import { h, type JSX } from "preact";

/**
 * A table head of one row of column headers.
 * @param labels the column labels, in order (each also the header's key, so unique)
 * @returns the `<thead>` element
 */
export function tableHead(labels: readonly string[]): JSX.Element {
  return h(
    "thead",
    null,
    h("tr", null, ...labels.map((label) => h("th", { scope: "col", key: label }, label))),
  );
}
