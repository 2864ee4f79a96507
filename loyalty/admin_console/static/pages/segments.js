// Segments, where the server has them: a server without the segments API answers the query
// with a validation error, and the page says so instead of failing.
import { gql } from "../api.js";
import { h, page, pagedTable, plain } from "../ui.js";

const SEGMENTS = `query Segments($first: Int, $after: String) {
  segments(first: $first, after: $after) { edges { node { id name description memberCount } } pageInfo { hasNextPage endCursor } }
}`;

export async function render(main) {
  try {
    await gql(SEGMENTS, { first: 0 });
  } catch (error) {
    if (/segment/i.test(error.message)) {
      page(main, "Segments", h("p", {}, "This server does not offer segments yet; they arrive with a later version."));
      return;
    }
    throw error;
  }
  page(main, "Segments", pagedTable("Segments", [
    ["Name", (s) => s.name], ["Description", (s) => plain(s.description)], ["Members", (s) => plain(s.memberCount)],
  ], async (first, after) => (await gql(SEGMENTS, { first, after })).segments));
}
