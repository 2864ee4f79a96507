// Earning rules: list, create and edit (a section per effect, conditions and limits), archive,
// and previewPurchase of a sample basket.
import { currentProgram, gql } from "../api.js";
import { segmentChoices } from "./segments.js";
import { h, append, checkboxes, chosen, clear, field, form, int, isoFromLocal, link, list,
  localFromIso, page, pagedTable, plain, status, table, text, CHANNELS } from "../ui.js";

const ERRORS = "errors { code field message }";
const RULE = `id name status version priority exclusive startsAt endsAt pointsAwarded budgetUsed
  effect { kind value }
  conditions { channels storeIds tierIds minTotal daysOfWeek hours firstPurchase skus categories eventType segmentIds }
  limits { perPurchase perMemberPerDay perMemberPerWeek perMemberPerMonth perMemberTotal budget }`;
const EFFECTS = [
  ["MULTIPLY", "Multiply base points (value ×)"], ["FIXED_BONUS", "Fixed bonus (value points)"],
  ["POINTS_PER_UNIT", "Points per unit bought"], ["POINTS_PER_CURRENCY", "Points per 1.00 spent"],
];
const DAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"].map((d) => [d, d[0] + d.slice(1, 3).toLowerCase()]);
const LIMITS = [["perPurchase", "Per purchase"], ["perMemberPerDay", "Per member per day"],
  ["perMemberPerWeek", "Per member per week"], ["perMemberPerMonth", "Per member per month"],
  ["perMemberTotal", "Per member in total"], ["budget", "Budget (all members)"]];

function ruleFields(rule, tiers, segments) {
  const c = rule.conditions || {};
  const l = rule.limits || {};
  const join = (values) => (values || []).join(", ");
  return [
    h("fieldset", {}, h("legend", {}, "Rule"), h("div", { class: "row" },
      field("Name", "name", { value: rule.name, required: true }),
      field("Priority", "priority", { type: "number", value: rule.priority ?? 0 }),
      field("Starts at (empty: now)", "startsAt", { type: "datetime-local", value: localFromIso(rule.startsAt) }),
      field("Ends at (empty: never)", "endsAt", { type: "datetime-local", value: localFromIso(rule.endsAt) }),
      field("Exclusive (stops lower-priority rules)", "exclusive", { type: "checkbox", value: rule.exclusive }))),
    h("fieldset", {}, h("legend", {}, "Effect"), h("div", { class: "row" },
      field("Kind", "effect.kind", { value: rule.effect?.kind ?? "MULTIPLY", choices: EFFECTS }),
      field("Value", "effect.value", { value: rule.effect?.value ?? "", required: true, help: "A decimal, e.g. 2 or 50 or 0.5." }))),
    h("fieldset", {}, h("legend", {}, "Conditions (empty: any)"),
      checkboxes("Channels", "conditions.channels", CHANNELS, c.channels || []),
      checkboxes("Days of week", "conditions.daysOfWeek", DAYS, c.daysOfWeek || []),
      tiers.length ? checkboxes("Tiers", "conditions.tierIds", tiers.map((t) => [t.id, t.name]), c.tierIds || []) : null,
      segments.length ? checkboxes("Segments (members in one of them)", "conditions.segmentIds", segments, c.segmentIds || []) : null,
      h("div", { class: "row" },
        field("Minimum total", "conditions.minTotal", { value: c.minTotal ?? "" }),
        field("Hours (comma separated, 0–23)", "conditions.hours", { value: join(c.hours) }),
        field("Store ids (comma separated)", "conditions.storeIds", { value: join(c.storeIds) }),
        field("SKUs (comma separated)", "conditions.skus", { value: join(c.skus) }),
        field("Categories (comma separated)", "conditions.categories", { value: join(c.categories) }),
        field("First purchase", "conditions.firstPurchase", { value: c.firstPurchase === null || c.firstPurchase === undefined ? "" : String(c.firstPurchase),
          choices: [["", "Any purchase"], ["true", "First purchase only"], ["false", "Not the first"]] }),
        field("Event type (empty: purchases)", "conditions.eventType", { value: c.eventType ?? "" }))),
    h("fieldset", {}, h("legend", {}, "Limits (empty: no cap)"), h("div", { class: "row" },
      LIMITS.map(([name, label]) => field(label, `limits.${name}`, { type: "number", value: l[name] ?? "" })))),
  ];
}

function ruleInput(data) {
  const hours = list(data, "conditions.hours");
  const firstPurchase = text(data, "conditions.firstPurchase");
  const conditions = {
    channels: chosen(data, "conditions.channels"), daysOfWeek: chosen(data, "conditions.daysOfWeek"),
    tierIds: chosen(data, "conditions.tierIds"), segmentIds: chosen(data, "conditions.segmentIds"), minTotal: text(data, "conditions.minTotal"),
    hours: hours && hours.map(Number), storeIds: list(data, "conditions.storeIds"),
    skus: list(data, "conditions.skus"), categories: list(data, "conditions.categories"),
    firstPurchase: firstPurchase === null ? null : firstPurchase === "true",
    eventType: text(data, "conditions.eventType"),
  };
  const limits = Object.fromEntries(LIMITS.map(([name]) => [name, int(data, `limits.${name}`)]));
  const input = {
    name: text(data, "name") ?? "", priority: int(data, "priority") ?? 0, exclusive: data.get("exclusive") === "on",
    startsAt: isoFromLocal(text(data, "startsAt")), endsAt: isoFromLocal(text(data, "endsAt")),
    effect: { kind: data.get("effect.kind"), value: text(data, "effect.value") ?? "" },
    conditions, limits,
  };
  if (input.startsAt === null) delete input.startsAt;
  return input;
}

async function previewForm() {
  const program = await currentProgram();
  const lines = h("div", { class: "lines" });
  const addLine = () => lines.append(h("fieldset", { class: "line" }, h("legend", {}, `Line ${lines.children.length + 1}`),
    h("div", { class: "row" },
      field("SKU", "lines.sku"), field("Category", "lines.category"),
      field("Quantity", "lines.quantity", { type: "number", value: 1, min: 1 }),
      field(`Unit price (${program.currency})`, "lines.unitPrice"))));
  addLine();
  const result = h("div", { class: "preview", "aria-live": "polite" });
  const node = form("Preview a sample basket", [
    h("div", { class: "row" },
      field("Member external id", "memberExternalId", { required: true }),
      field("Channel", "channel", { value: "IN_STORE", choices: CHANNELS }),
      field(`Total (${program.currency})`, "total.amount", { required: true }),
      field("Store id", "storeId")),
    lines,
    h("button", { type: "button", onclick: addLine }, "Add a line"),
    result,
  ], async (data) => {
    clear(result);
    const skus = data.getAll("lines.sku");
    const basket = skus.map((_, i) => ({
      sku: data.getAll("lines.sku")[i].trim() || null, category: data.getAll("lines.category")[i].trim() || null,
      quantity: Number.parseInt(data.getAll("lines.quantity")[i], 10) || 1,
      unitPrice: data.getAll("lines.unitPrice")[i].trim() ? { amount: data.getAll("lines.unitPrice")[i].trim(), currency: program.currency } : null,
    })).filter((line) => line.sku || line.category || line.unitPrice);
    const input = { orderId: `console-preview-${Date.now()}`, channel: data.get("channel"),
      memberExternalId: text(data, "memberExternalId") ?? "", storeId: text(data, "storeId"),
      total: { amount: text(data, "total.amount") ?? "", currency: program.currency }, lines: basket.length ? basket : null };
    const { previewPurchase } = await gql(`query Preview($input: PreviewPurchaseInput!) {
      previewPurchase(input: $input) { pointsAwarded pointsBreakdown { points description rule { id name } } ${ERRORS} } }`, { input });
    if (!previewPurchase.errors.length) {
      append(result, [h("p", { class: "big" }, `${previewPurchase.pointsAwarded} points`),
        table("Points breakdown", [["Source", (i) => plain(i.rule?.name ?? i.description)], ["Points", (i) => String(i.points)]],
          previewPurchase.pointsBreakdown)]);
    }
    return previewPurchase.errors;
  }, "Preview");
  return node;
}

async function tiersList() {
  return (await gql("{ tiers { id name } }")).tiers;
}

// The tiers and segments a rule's conditions can name.
async function choices() {
  const [tiers, segments] = await Promise.all([tiersList(), segmentChoices()]);
  return { tiers, segments };
}

export async function renderList(main) {
  const { tiers, segments } = await choices();
  const rules = pagedTable("Earning rules", [
    ["Name", (r) => link(`#/rules/${encodeURIComponent(r.id)}`, r.name)], ["Status", (r) => r.status],
    ["Effect", (r) => `${r.effect.kind} ${r.effect.value}`], ["Priority", (r) => String(r.priority)],
    ["Points awarded", (r) => String(r.pointsAwarded)],
  ], async (first, after) => (await gql(`query Rules($first: Int, $after: String) {
    earningRules(first: $first, after: $after, includeArchived: true) { edges { node { ${RULE} } } pageInfo { hasNextPage endCursor } } }`,
  { first, after })).earningRules);
  const create = form("Create an earning rule", ruleFields({}, tiers, segments), async (data, node) => {
    const { createEarningRule } = await gql(`mutation Create($input: CreateEarningRuleInput!) {
      createEarningRule(input: $input) { earningRule { id } ${ERRORS} } }`, { input: ruleInput(data) });
    if (!createEarningRule.errors.length) {
      node.reset();
      rules.reload();
      status("Earning rule created.");
    }
    return createEarningRule.errors;
  }, "Create rule");
  page(main, "Earning rules", rules, h("details", {}, h("summary", {}, "New earning rule"), create), await previewForm());
}

export async function renderRule(main, id) {
  const { tiers, segments } = await choices();
  const { earningRule: rule } = await gql(`query Rule($id: ID!) { earningRule(id: $id) { ${RULE} } }`, { id });
  if (!rule) {
    page(main, "Earning rule not found", link("#/rules", "Back to earning rules"));
    return;
  }
  const edit = form(`Edit (saves version ${rule.version + 1}, in force from now)`, ruleFields(rule, tiers, segments), async (data) => {
    const input = { id, ...ruleInput(data) };
    const { updateEarningRule } = await gql(`mutation Update($input: UpdateEarningRuleInput!) {
      updateEarningRule(input: $input) { earningRule { id } ${ERRORS} } }`, { input });
    if (!updateEarningRule.errors.length) {
      await renderRule(main, id);
      status("Earning rule saved.");
    }
    return updateEarningRule.errors;
  });
  const archive = rule.status === "ARCHIVED" ? null : h("button", { type: "button", class: "danger", onclick: async () => {
    const { archiveEarningRule } = await gql(`mutation Archive($input: ArchiveEarningRuleInput!) {
      archiveEarningRule(input: $input) { earningRule { id } ${ERRORS} } }`, { input: { id } });
    if (archiveEarningRule.errors.length) status(archiveEarningRule.errors.map((e) => e.message).join(" "), "error");
    else { await renderRule(main, id); status("Earning rule archived."); }
  } }, "Archive this rule");
  page(main, rule.name, link("#/rules", "← Earning rules"),
    h("p", {}, `${rule.status}, version ${rule.version}; ${rule.pointsAwarded} points awarded, budget used ${rule.budgetUsed}.`),
    rule.status === "ARCHIVED" ? null : edit, archive, await previewForm());
}
