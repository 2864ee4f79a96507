// Segments: list, create and edit with a field per filter condition, delete after a ticked
// confirmation, and a segment's member count and members (paged).
import { currentProgram, gql } from "../api.js";
import { h, checkboxes, chosen, field, flash, form, fullName, int, isoFromLocal, link, localFromIso,
  page, pagedTable, plain, status, text, CHANNELS } from "../ui.js";

const ERRORS = "errors { code field message }";
const FILTER = `filter { tierIds minAvailablePoints maxAvailablePoints minLifetimeSpend { amount currency }
  purchasedWithinDays notPurchasedForDays minPurchases purchasesWithinDays channels enrolledAfter
  enrolledBefore minRecency minFrequency minMonetary marketingConsent }`;
const SEGMENT = `id name description createdAt updatedAt ${FILTER}`;
const LIST = `query Segments($first: Int, $after: String) {
  segments(first: $first, after: $after) { edges { node { id name description updatedAt } } pageInfo { hasNextPage endCursor } }
}`;
const MEMBERS = `query SegmentMembers($id: ID!, $first: Int, $after: String) {
  segment(id: $id) { members(first: $first, after: $after) {
    edges { node { id externalId firstName lastName email status points { available } tier { name } } }
    pageInfo { hasNextPage endCursor } } }
}`;
const SCORES = [["", "Any"], ...[1, 2, 3, 4, 5].map((n) => [String(n), `${n} or more`])];
const CONSENTS = [["", "Not required"], ["EMAIL", "Email"], ["SMS", "SMS"], ["PUSH", "Push"]];
// Whole-number conditions: [input name, label, help].
const NUMBERS = [
  ["minAvailablePoints", "Available points at least", null],
  ["maxAvailablePoints", "Available points at most", "Not below the minimum."],
  ["purchasedWithinDays", "Bought within the last N days", "1 to 36500."],
  ["notPurchasedForDays", "No purchase for N days", "Members who never bought count too."],
  ["minPurchases", "At least N purchases", null],
  ["purchasesWithinDays", "…within the last N days", "Only with a minimum of purchases; empty: ever."],
];

// Segment ids and names for pickers on other pages: the first 100 segments, oldest first.
export async function segmentChoices() {
  const { segments } = await gql("{ segments(first: 100) { edges { node { id name } } } }");
  return segments.edges.map(({ node }) => [node.id, node.name]);
}

function segmentFields(segment, tiers, currency) {
  const f = segment.filter || {};
  const value = (name) => f[name] ?? "";
  return [
    h("div", { class: "row" },
      field("Name", "name", { value: segment.name, required: true }),
      field("Description", "description", { type: "textarea", value: segment.description })),
    h("fieldset", {}, h("legend", {}, "Filter (every condition given must hold; empty: anyone)"),
      tiers.length ? checkboxes("Tiers (none ticked: any)", "filter.tierIds", tiers, f.tierIds || []) : null,
      checkboxes("Bought through (none ticked: any)", "filter.channels", CHANNELS, f.channels || []),
      h("div", { class: "row" },
        NUMBERS.map(([name, label, help]) => field(label, `filter.${name}`, { type: "number", value: value(name), help })),
        field(`Lifetime spend at least (${currency})`, "filter.minLifetimeSpend", { value: f.minLifetimeSpend?.amount ?? "" }),
        field("Enrolled at or after", "filter.enrolledAfter", { type: "datetime-local", value: localFromIso(f.enrolledAfter) }),
        field("Enrolled before", "filter.enrolledBefore", { type: "datetime-local", value: localFromIso(f.enrolledBefore) }),
        field("RFM recency", "filter.minRecency", { value: String(value("minRecency")), choices: SCORES }),
        field("RFM frequency", "filter.minFrequency", { value: String(value("minFrequency")), choices: SCORES }),
        field("RFM monetary", "filter.minMonetary", { value: String(value("minMonetary")), choices: SCORES }),
        field("Marketing consent", "filter.marketingConsent", { value: value("marketingConsent"), choices: CONSENTS }))),
  ];
}

function filterInput(data, currency) {
  const spend = text(data, "filter.minLifetimeSpend");
  const filter = {
    tierIds: chosen(data, "filter.tierIds"), channels: chosen(data, "filter.channels"),
    minLifetimeSpend: spend === null ? null : { amount: spend, currency },
    enrolledAfter: isoFromLocal(text(data, "filter.enrolledAfter")),
    enrolledBefore: isoFromLocal(text(data, "filter.enrolledBefore")),
    minRecency: int(data, "filter.minRecency"), minFrequency: int(data, "filter.minFrequency"),
    minMonetary: int(data, "filter.minMonetary"), marketingConsent: text(data, "filter.marketingConsent"),
  };
  for (const [name] of NUMBERS) filter[name] = int(data, `filter.${name}`);
  return filter;
}

function segmentInput(data, currency) {
  return { name: text(data, "name") ?? "", description: text(data, "description"), filter: filterInput(data, currency) };
}

async function context() {
  const [{ tiers }, program] = await Promise.all([gql("{ tiers { id name } }"), currentProgram()]);
  return { tiers: tiers.map((t) => [t.id, t.name]), currency: program.currency };
}

export async function renderList(main) {
  const { tiers, currency } = await context();
  const list = pagedTable("Segments", [
    ["Name", (s) => link(`#/segments/${encodeURIComponent(s.id)}`, s.name)],
    ["Description", (s) => plain(s.description)],
  ], async (first, after) => (await gql(LIST, { first, after })).segments);
  const create = form("Create a segment", segmentFields({}, tiers, currency), async (data, node) => {
    const { createSegment } = await gql(`mutation Create($input: CreateSegmentInput!) {
      createSegment(input: $input) { segment { id } ${ERRORS} } }`, { input: segmentInput(data, currency) });
    if (!createSegment.errors.length) {
      node.reset();
      list.reload();
      status("Segment created.");
    }
    return createSegment.errors;
  }, "Create segment");
  page(main, "Segments", h("p", {}, "Member counts are on each segment's page: each is one count over the members."),
    list, create);
}

function deleteForm(segment) {
  return form("Delete this segment", [
    h("p", {}, "A segment a live earning rule or a reward names cannot be deleted."),
    field(`Yes, delete “${segment.name}”`, "confirm", { type: "checkbox" }),
  ], async (data) => {
    if (data.get("confirm") !== "on") {
      return [{ field: ["confirm"], message: "Tick the box to confirm.", code: "INVALID" }];
    }
    const { deleteSegment } = await gql(`mutation Delete($input: DeleteSegmentInput!) {
      deleteSegment(input: $input) { segment { id } ${ERRORS} } }`, { input: { id: segment.id } });
    if (!deleteSegment.errors.length) {
      flash("Segment deleted.");
      window.location.hash = "#/segments";
    }
    return deleteSegment.errors;
  }, "Delete segment");
}

export async function renderSegment(main, id) {
  const [{ tiers, currency }, { segment }] = await Promise.all([
    context(), gql(`query Segment($id: ID!) { segment(id: $id) { ${SEGMENT} } }`, { id })]);
  if (!segment) {
    page(main, "Segment not found", link("#/segments", "Back to segments"));
    return;
  }
  const count = h("p", { class: "big", "aria-live": "polite" }, "Counting members…");
  gql("query Count($id: ID!) { segment(id: $id) { memberCount } }", { id })
    .then(({ segment: counted }) => { count.textContent = `${counted.memberCount} members now`; })
    .catch((error) => { count.textContent = error.message; });
  const edit = form("Edit (applies at once)", segmentFields(segment, tiers, currency), async (data) => {
    const { updateSegment } = await gql(`mutation Update($input: UpdateSegmentInput!) {
      updateSegment(input: $input) { segment { id } ${ERRORS} } }`, { input: { id, ...segmentInput(data, currency) } });
    if (!updateSegment.errors.length) {
      await renderSegment(main, id);
      status("Segment saved.");
    }
    return updateSegment.errors;
  });
  const members = pagedTable("Members in this segment", [
    ["Name", (m) => link(`#/members/${encodeURIComponent(m.id)}`, fullName(m))],
    ["External id", (m) => m.externalId], ["Email", (m) => plain(m.email)],
    ["Tier", (m) => plain(m.tier?.name)], ["Available points", (m) => plain(m.points.available)],
  ], async (first, after) => (await gql(MEMBERS, { id, first, after })).segment.members);
  page(main, segment.name, link("#/segments", "← Segments"), segment.description ? h("p", {}, segment.description) : null,
    count, members, edit, h("details", { class: "danger" }, h("summary", {}, "Delete this segment"), deleteForm(segment)));
}
