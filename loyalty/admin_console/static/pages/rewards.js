// Rewards: the catalog with stock, create and edit, and code pools filled from a CSV file.
import { gql, idempotencyKey } from "../api.js";
import { segmentChoices } from "./segments.js";
import { h, checkboxes, chosen, field, form, int, isoFromLocal, link, localFromIso, page, pagedTable,
  plain, status, text, CHANNELS } from "../ui.js";

const ERRORS = "errors { code field message }";
const REWARD = "id name description kind costPoints active stock perMemberLimit minTier { id name } channels startsAt endsAt segmentIds";

async function tierChoices() {
  const { tiers } = await gql("{ tiers { id name } }");
  return [["", "Any tier"], ...tiers.map((t) => [t.id, t.name])];
}

// The tiers and segments a reward can be limited to.
async function choices() {
  const [tiers, segments] = await Promise.all([tierChoices(), segmentChoices()]);
  return { tiers, segments };
}

function rewardFields(reward, { tiers, segments }, creating) {
  return [h("div", { class: "row" },
    field("Name", "name", { value: reward.name, required: true }),
    field("Cost in points", "costPoints", { type: "number", value: reward.costPoints, required: true }),
    creating ? field("Kind", "kind", { value: "GENERATED_CODE", choices: [["GENERATED_CODE", "Generated code"], ["CODE_POOL", "Code pool (upload codes)"]] }) : null,
    field("Stock (empty: unlimited)", "stock", { type: "number", value: reward.stock,
      help: creating ? "A code pool's stock counts its uploaded codes." : null }),
    field("Per-member limit (empty: none)", "perMemberLimit", { type: "number", value: reward.perMemberLimit }),
    field("Minimum tier", "minTierId", { value: reward.minTier?.id ?? "", choices: tiers }),
    field("Starts at", "startsAt", { type: "datetime-local", value: localFromIso(reward.startsAt) }),
    field("Ends at", "endsAt", { type: "datetime-local", value: localFromIso(reward.endsAt) }),
    field("Active", "active", { type: "checkbox", value: reward.active ?? true })),
    field("Description", "description", { type: "textarea", value: reward.description }),
    checkboxes("Channels (none ticked: all)", "channels", CHANNELS, reward.channels || []),
    segments.length ? checkboxes("Segments (none ticked: every member)", "segmentIds", segments, reward.segmentIds || []) : null,
  ];
}

function rewardInput(data, creating) {
  const input = {
    name: text(data, "name") ?? "", costPoints: int(data, "costPoints"), description: text(data, "description"),
    stock: int(data, "stock"), perMemberLimit: int(data, "perMemberLimit"), minTierId: text(data, "minTierId"),
    channels: chosen(data, "channels"), segmentIds: chosen(data, "segmentIds"), startsAt: isoFromLocal(text(data, "startsAt")),
    endsAt: isoFromLocal(text(data, "endsAt")), active: data.get("active") === "on",
  };
  if (creating) {
    input.kind = data.get("kind");
    if (input.kind === "CODE_POOL") delete input.stock;
    if (input.startsAt === null) delete input.startsAt;
  }
  return input;
}

export async function renderList(main) {
  const lists = await choices();
  const list = pagedTable("Rewards", [
    ["Name", (r) => link(`#/rewards/${encodeURIComponent(r.id)}`, r.name)],
    ["Kind", (r) => r.kind], ["Cost", (r) => String(r.costPoints)],
    ["Stock", (r) => (r.stock === null ? "unlimited" : String(r.stock))],
    ["Active", (r) => (r.active ? "yes" : "no")], ["Minimum tier", (r) => plain(r.minTier?.name)],
  ], async (first, after) => (await gql(`query Rewards($first: Int, $after: String) {
    rewards(first: $first, after: $after) { edges { node { ${REWARD} } } pageInfo { hasNextPage endCursor } } }`,
  { first, after })).rewards);
  const create = form("Create a reward", rewardFields({}, lists, true), async (data, node) => {
    const { createReward } = await gql(`mutation Create($input: CreateRewardInput!) {
      createReward(input: $input) { reward { id } ${ERRORS} } }`, { input: rewardInput(data, true) });
    if (!createReward.errors.length) {
      node.reset();
      list.reload();
      status("Reward created.");
    }
    return createReward.errors;
  }, "Create reward");
  page(main, "Rewards", list, create);
}

// One code per line; the first column of a CSV, with a "code" header skipped.
export function parseCodes(textValue) {
  return textValue.split(/\r?\n/)
    .map((line) => line.split(",")[0].trim().replace(/^"|"$/g, ""))
    .filter((code, index) => code && !(index === 0 && code.toLowerCase() === "code"));
}

function codesForm(reward, reload) {
  return form("Upload codes (CSV)", [
    field("CSV file: one code per line, first column", "file", { type: "file" }),
  ], async (data) => {
    const file = data.get("file");
    if (!file || !file.size) return [{ field: ["file"], message: "Choose a CSV file.", code: "INVALID" }];
    const codes = parseCodes(await file.text());
    const { addRewardCodes } = await gql(`mutation Codes($input: AddRewardCodesInput!) {
      addRewardCodes(input: $input) { added ${ERRORS} } }`,
    { input: { idempotencyKey: idempotencyKey(), rewardId: reward.id, codes } });
    const errors = addRewardCodes.errors.map((e) => ({ ...e, field: ["file"] }));
    if (!errors.length) {
      await reload();
      status(`${addRewardCodes.added} codes added.`);
    }
    return errors;
  }, "Upload");
}

export async function renderReward(main, id) {
  const lists = await choices();
  const { reward } = await gql(`query Reward($id: ID!) { reward(id: $id) { ${REWARD} } }`, { id });
  if (!reward) {
    page(main, "Reward not found", link("#/rewards", "Back to rewards"));
    return;
  }
  const reload = () => renderReward(main, id);
  const edit = form("Edit", rewardFields(reward, lists, false), async (data) => {
    const input = { id, ...rewardInput(data, false) };
    if (reward.kind === "CODE_POOL") delete input.stock;
    const { updateReward } = await gql(`mutation Update($input: UpdateRewardInput!) {
      updateReward(input: $input) { reward { id } ${ERRORS} } }`, { input });
    if (!updateReward.errors.length) {
      await reload();
      status("Reward saved.");
    }
    return updateReward.errors;
  });
  page(main, reward.name, link("#/rewards", "← Rewards"),
    h("p", {}, `${reward.kind === "CODE_POOL" ? "Code pool" : "Generated codes"}; stock: ${reward.stock === null ? "unlimited" : reward.stock}.`),
    reward.kind === "CODE_POOL" ? codesForm(reward, reload) : null, edit);
}
