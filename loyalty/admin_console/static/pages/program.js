// Program settings and tiers; a threshold change is previewed (previewTierChange) before it is
// saved, so the admin sees how many members would move.
import { currentProgram, gql } from "../api.js";
import { h, append, clear, field, form, int, list, page, plain, status, table, text } from "../ui.js";

const ERRORS = "errors { code field message }";
const PROGRAM_FIELDS = "name currency pointsPerUnit pendingDays pointsExpireAfterDays tierWindowDays timeZone maxBackdateDays referrerPoints refereePoints referralLimit idempotencyRetentionDays";
const TIERS = "{ tiers { id name rank threshold multiplier benefits retentionDays } }";

const SETTINGS = [
  ["name", "Name", "text"], ["currency", "Currency (ISO 4217)", "text"],
  ["pointsPerUnit", "Points per 1.00 spent", "decimal"], ["pendingDays", "Pending days", "int"],
  ["pointsExpireAfterDays", "Points expire after days (empty: never)", "int"],
  ["tierWindowDays", "Tier window days", "int"], ["timeZone", "Time zone", "text"],
  ["maxBackdateDays", "Max backdate days", "int"], ["referrerPoints", "Referrer points", "int"],
  ["refereePoints", "Referee points", "int"], ["referralLimit", "Referral limit (empty: none)", "int"],
  ["idempotencyRetentionDays", "Idempotency retention days", "int"],
];
const NULLABLE = new Set(["pointsExpireAfterDays", "referralLimit"]);

function settingsForm(program) {
  return form("Settings", h("div", { class: "row" }, SETTINGS.map(([name, label, kind]) =>
    field(label, name, { type: kind === "int" ? "number" : "text", value: program[name] ?? "" }))),
  async (data) => {
    const input = {};
    for (const [name, , kind] of SETTINGS) {
      const value = kind === "int" ? int(data, name) : text(data, name);
      if (value === null && !NULLABLE.has(name)) continue;
      if (value !== program[name]) input[name] = value;
    }
    const { updateProgram } = await gql(`mutation Program($input: UpdateProgramInput!) {
      updateProgram(input: $input) { program { ${PROGRAM_FIELDS} } ${ERRORS} } }`, { input });
    if (!updateProgram.errors.length) {
      Object.assign(program, updateProgram.program);
      await currentProgram(true);
      status("Settings saved.");
    }
    return updateProgram.errors;
  });
}

// Editing leaves the threshold out: a threshold changes through its preview only.
function tierFields(tier = {}, withThreshold = true) {
  return h("div", { class: "row" },
    field("Name", "name", { value: tier.name, required: true }),
    field("Rank", "rank", { type: "number", value: tier.rank, required: true }),
    withThreshold ? field("Threshold (qualifying points)", "threshold", { type: "number", value: tier.threshold, required: true }) : null,
    field("Multiplier", "multiplier", { value: tier.multiplier ?? "1" }),
    field("Retention days", "retentionDays", { type: "number", value: tier.retentionDays ?? 0 }),
    field("Benefits (comma separated)", "benefits", { value: (tier.benefits || []).join(", ") }));
}

function tierInput(data) {
  return { name: text(data, "name") ?? "", rank: int(data, "rank"), threshold: int(data, "threshold"),
    multiplier: text(data, "multiplier") ?? "1", retentionDays: int(data, "retentionDays") ?? 0,
    benefits: list(data, "benefits") ?? [] };
}

function previewTable(lines) {
  return table("Members per tier if the thresholds applied now", [
    ["Rank", (l) => (l.rank < 0 ? "below all" : String(l.rank))], ["Tier", (l) => plain(l.name)],
    ["Threshold", (l) => String(l.threshold)], ["Members", (l) => String(l.members)],
    ["Moved up", (l) => String(l.movedUp)], ["Moved down", (l) => String(l.movedDown)], ["Stayed", (l) => String(l.stayed)],
  ], lines);
}

function thresholdForm(tier, tiers, reload) {
  const preview = h("div", { class: "preview", "aria-live": "polite" });
  const save = h("button", { type: "button", disabled: true }, "Save threshold");
  let proposed = null;
  const node = form(`Change ${tier.name}'s threshold`, [
    field("New threshold", "threshold", { type: "number", value: tier.threshold, required: true }),
    preview,
  ], async (data) => {
    proposed = int(data, "threshold");
    save.disabled = true;
    clear(preview);
    const input = { tiers: tiers.map((t) => ({ rank: t.rank, name: t.name,
      threshold: t.id === tier.id ? proposed : t.threshold })) };
    const { previewTierChange } = await gql(`query Preview($input: PreviewTierChangeInput!) {
      previewTierChange(input: $input) { tiers { rank name threshold members movedUp movedDown stayed } ${ERRORS} } }`, { input });
    const errors = previewTierChange.errors.map((e) => ({ ...e,
      field: e.field && e.field.includes("threshold") ? ["threshold"] : e.field }));
    if (!errors.length) {
      preview.append(previewTable(previewTierChange.tiers));
      save.disabled = false;
    }
    return errors;
  }, "Preview");
  save.addEventListener("click", async () => {
    const { updateTier } = await gql(`mutation Update($input: UpdateTierInput!) {
      updateTier(input: $input) { tier { id } ${ERRORS} } }`, { input: { id: tier.id, threshold: proposed } });
    if (updateTier.errors.length) {
      node.querySelector(".form-error").textContent = updateTier.errors.map((e) => e.message).join(" ");
      return;
    }
    await reload();
    status(`${tier.name}: threshold saved.`);
  });
  node.querySelector(".actions").append(save);
  return node;
}

function editTierForm(tier, reload) {
  return form(`Edit ${tier.name}`, tierFields(tier, false), async (data) => {
    const { threshold, ...rest } = tierInput(data);
    const input = { id: tier.id, ...rest };
    const { updateTier } = await gql(`mutation Update($input: UpdateTierInput!) {
      updateTier(input: $input) { tier { id } ${ERRORS} } }`, { input });
    if (!updateTier.errors.length) {
      await reload();
      status("Tier saved.");
    }
    return updateTier.errors;
  });
}

function tierSection(tier, tiers, reload) {
  return h("details", { class: "tier" },
    h("summary", {}, `${tier.rank}. ${tier.name} — from ${tier.threshold} points, ×${tier.multiplier}`),
    thresholdForm(tier, tiers, reload), editTierForm(tier, reload),
    h("button", { type: "button", class: "danger", onclick: async () => {
      const { deleteTier } = await gql(`mutation Delete($input: DeleteTierInput!) {
        deleteTier(input: $input) { membersMoved ${ERRORS} } }`, { input: { id: tier.id } });
      if (deleteTier.errors.length) status(deleteTier.errors.map((e) => e.message).join(" "), "error");
      else { await reload(); status(`${tier.name} deleted.`); }
    } }, `Delete ${tier.name}`));
}

export async function render(main) {
  const { program } = await gql(`{ program { ${PROGRAM_FIELDS} } }`);
  const tierList = h("section", { "aria-labelledby": "tiers-heading" });
  const reload = async () => {
    const { tiers } = await gql(TIERS);
    append(clear(tierList), [h("h2", { id: "tiers-heading" }, "Tiers"),
      tiers.length ? tiers.map((tier) => tierSection(tier, tiers, reload)) : h("p", {}, "No tiers yet."),
      form("Create a tier", tierFields(), async (data, node) => {
        const { createTier } = await gql(`mutation Create($input: CreateTierInput!) {
          createTier(input: $input) { tier { id } ${ERRORS} } }`, { input: tierInput(data) });
        if (!createTier.errors.length) {
          await reload();
          status("Tier created.");
        }
        return createTier.errors;
      }, "Create tier")]);
  };
  await reload();
  page(main, "Program & tiers", settingsForm(program), tierList);
}
