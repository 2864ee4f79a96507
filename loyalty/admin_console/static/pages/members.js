// Members: search and enroll; a member's balance, tier, history; adjust, redeem, export, erase.
import { gql, idempotencyKey } from "../api.js";
import { h, clear, field, flash, form, fullName, int, link, money, page, pagedTable, plain,
  status, text, when, CHANNELS } from "../ui.js";

const LIST = `query Members($first: Int, $after: String, $search: String) {
  members(first: $first, after: $after, search: $search) {
    edges { node { id externalId firstName lastName email status points { available } tier { name } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

const MEMBER = `query Member($id: ID!) {
  member(id: $id) {
    id externalId email phone firstName lastName status enrolledAt
    points { available pending lifetimeEarned redeemed expired expiringSoon }
    tier { id name }
    tierProgress { current { name } next { name threshold } qualifyingPoints pointsToNext }
    consents { marketingEmail marketingSms marketingPush updatedAt }
    rfm { recency frequency monetary computedAt }
  }
}`;

const SECTIONS = {
  ledger: {
    caption: "Ledger",
    query: `ledger(first: $first, after: $after) { edges { node { id kind points balanceAfter occurredAt reason } } pageInfo { hasNextPage endCursor } }`,
    columns: [["When", (e) => when(e.occurredAt)], ["Kind", (e) => e.kind], ["Points", (e) => plain(e.points)],
      ["Balance after", (e) => plain(e.balanceAfter)], ["Reason", (e) => plain(e.reason)]],
  },
  purchases: {
    caption: "Purchases",
    query: `purchases(first: $first, after: $after) { edges { node { id orderId channel total { amount currency } occurredAt pointsAwarded status } } pageInfo { hasNextPage endCursor } }`,
    columns: [["When", (p) => when(p.occurredAt)], ["Order", (p) => p.orderId], ["Channel", (p) => p.channel],
      ["Total", (p) => money(p.total)], ["Points", (p) => plain(p.pointsAwarded)], ["Status", (p) => p.status]],
  },
  redemptions: {
    caption: "Redemptions",
    query: `redemptions(first: $first, after: $after) { edges { node { id reward { name } pointsSpent code status createdAt } } pageInfo { hasNextPage endCursor } }`,
    columns: [["When", (r) => when(r.createdAt)], ["Reward", (r) => r.reward.name], ["Points", (r) => plain(r.pointsSpent)],
      ["Code", (r) => r.code], ["Status", (r) => r.status]],
  },
  feedback: {
    caption: "Feedback",
    query: `feedback(first: $first, after: $after) { edges { node { id kind score comment createdAt } } pageInfo { hasNextPage endCursor } }`,
    columns: [["When", (f) => when(f.createdAt)], ["Kind", (f) => f.kind], ["Score", (f) => plain(f.score)],
      ["Comment", (f) => plain(f.comment)]],
  },
};

function history(id, name) {
  const section = SECTIONS[name];
  const query = `query Section($id: ID!, $first: Int, $after: String) { member(id: $id) { ${section.query} } }`;
  return pagedTable(section.caption, section.columns,
    async (first, after) => (await gql(query, { id, first, after })).member[name], 10);
}

export async function renderList(main) {
  const results = h("div");
  let search = null;
  const showResults = () => clear(results).append(pagedTable("Members", [
    ["Name", (m) => link(`#/members/${encodeURIComponent(m.id)}`, fullName(m))],
    ["External id", (m) => m.externalId],
    ["Email", (m) => plain(m.email)],
    ["Status", (m) => m.status],
    ["Tier", (m) => plain(m.tier?.name)],
    ["Available points", (m) => plain(m.points.available)],
  ], async (first, after) => (await gql(LIST, { first, after, search })).members));

  const searchForm = form("", [
    field("Search members", "search", { type: "search", help: "Part of an external id, email, phone or name." }),
  ], (data) => { search = text(data, "search"); showResults(); return []; }, "Search");
  searchForm.setAttribute("role", "search");

  const enroll = form("Enroll a member", h("div", { class: "row" },
    field("External id", "externalId", { required: true }),
    field("First name", "firstName"),
    field("Last name", "lastName"),
    field("Email", "email", { type: "email" }),
    field("Phone", "phone", { type: "tel" }),
  ), async (data, node) => {
    const input = { externalId: text(data, "externalId") ?? "" };
    for (const name of ["firstName", "lastName", "email", "phone"]) {
      if (text(data, name) !== null) input[name] = text(data, name);
    }
    const { enrollMember } = await gql(`mutation Enroll($input: EnrollMemberInput!) {
      enrollMember(input: $input) { member { id } errors { code field message } } }`, { input });
    if (!enrollMember.errors.length) {
      node.reset();
      status("Member enrolled.");
      showResults();
    }
    return enrollMember.errors;
  }, "Enroll");

  page(main, "Members", searchForm, results, h("details", {}, h("summary", {}, "New member"), enroll));
  showResults();
}

function facts(pairs) {
  return h("dl", { class: "facts" },
    ...pairs.map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, plain(value)))));
}

// Marketing consents and RFM scores (1 to 5, as of the last rfm job).
function marketing(member) {
  const yes = (value) => (value ? "yes" : "no");
  const { consents, rfm } = member;
  return [
    h("section", { class: "card" }, h("h2", {}, "Marketing consents"),
      facts([["Email", yes(consents.marketingEmail)], ["SMS", yes(consents.marketingSms)],
        ["Push", yes(consents.marketingPush)], ["Last set", when(consents.updatedAt)]])),
    h("section", { class: "card" }, h("h2", {}, "RFM scores"),
      rfm ? facts([["Recency", rfm.recency], ["Frequency", rfm.frequency], ["Monetary", rfm.monetary],
        ["Computed", when(rfm.computedAt)]])
        : h("p", {}, "Not scored: no purchase in the last rfm job's window, or the job has not run.")),
  ];
}

function summary(member) {
  const progress = member.tierProgress;
  const target = progress.next ? progress.next.threshold : null;
  const bar = target ? h("progress", { max: target, value: Math.min(progress.qualifyingPoints, target),
    "aria-label": `Progress to ${progress.next.name}` }) : null;
  return h("div", { class: "cards" },
    h("section", { class: "card" }, h("h2", {}, "Points"),
      h("dl", { class: "facts" },
        ...[["Available", member.points.available], ["Pending", member.points.pending],
          ["Lifetime earned", member.points.lifetimeEarned], ["Redeemed", member.points.redeemed],
          ["Expired", member.points.expired], ["Expiring in 30 days", member.points.expiringSoon]]
          .map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, plain(value)))))),
    h("section", { class: "card" }, h("h2", {}, "Tier"),
      h("p", { class: "big" }, plain(member.tier?.name)),
      h("p", {}, `Qualifying points: ${progress.qualifyingPoints}`),
      progress.next ? h("p", {}, `${progress.pointsToNext} to ${progress.next.name}`) : h("p", {}, "Top tier or no next tier."),
      bar),
    h("section", { class: "card" }, h("h2", {}, "Contact"),
      h("dl", { class: "facts" },
        ...[["External id", member.externalId], ["Email", member.email], ["Phone", member.phone],
          ["Status", member.status], ["Enrolled", when(member.enrolledAt)]]
          .map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, plain(value)))))),
    marketing(member),
  );
}

function adjustForm(member, refresh) {
  return form("Adjust points", h("div", { class: "row" },
    field("Points (negative to deduct)", "points", { type: "number", required: true }),
    field("Reason", "reason", { required: true }),
    field("Counts toward tiers", "qualifying", { type: "checkbox" }),
  ), async (data) => {
    const input = { idempotencyKey: idempotencyKey(), memberId: member.id, points: int(data, "points") ?? 0,
      reason: text(data, "reason") ?? "", qualifying: data.get("qualifying") === "on" };
    const { adjustPoints } = await gql(`mutation Adjust($input: AdjustPointsInput!) {
      adjustPoints(input: $input) { entry { id } errors { code field message } } }`, { input });
    if (!adjustPoints.errors.length) refresh("Points adjusted.");
    return adjustPoints.errors;
  }, "Adjust");
}

async function redeemForm(member, refresh) {
  const { rewards } = await gql(`{ rewards(first: 100, availableOnly: true) { edges { node { id name costPoints } } } }`);
  const choices = rewards.edges.map(({ node }) => [node.id, `${node.name} (${node.costPoints} points)`]);
  return form("Redeem a reward", h("div", { class: "row" },
    field("Reward", "rewardId", { choices: [["", "Choose a reward"], ...choices] }),
    field("Channel", "channel", { value: "IN_STORE", choices: CHANNELS }),
  ), async (data) => {
    const input = { idempotencyKey: idempotencyKey(), memberId: member.id,
      rewardId: text(data, "rewardId") ?? "", channel: data.get("channel") };
    const { redeemReward } = await gql(`mutation Redeem($input: RedeemRewardInput!) {
      redeemReward(input: $input) { redemption { code } errors { code field message } } }`, { input });
    if (!redeemReward.errors.length) refresh(`Redeemed: code ${redeemReward.redemption.code}.`);
    return redeemReward.errors;
  }, "Redeem");
}

function exportButton(member) {
  const result = h("span", { class: "help" });
  const button = h("button", { type: "button", onclick: async () => {
    const { exportMemberData } = await gql(`query Export($id: ID!) {
      exportMemberData(memberId: $id) { export errors { code field message } } }`, { id: member.id });
    if (exportMemberData.errors.length) {
      result.textContent = exportMemberData.errors.map((e) => e.message).join(" ");
      return;
    }
    const blob = new Blob([JSON.stringify(exportMemberData.export, null, 2)], { type: "application/json" });
    const anchor = h("a", { href: URL.createObjectURL(blob), download: `member-${member.id}.json` });
    anchor.click();
    result.textContent = "Export downloaded.";
  } }, "Export member data (JSON)");
  return h("section", {}, h("h3", {}, "Export"), button, " ", result);
}

function eraseForm(member) {
  return form("Erase personal data", [
    h("p", {}, "Erasure removes names, contact details and other personal data for good; points still held are forfeited. It cannot be undone."),
    field("Reason (kept in the audit log)", "reason", { required: true }),
    field(`Type ERASE to confirm`, "confirm", { required: true }),
  ], async (data) => {
    if (text(data, "confirm") !== "ERASE") {
      return [{ field: ["confirm"], message: "Type ERASE to confirm.", code: "INVALID" }];
    }
    const input = { idempotencyKey: idempotencyKey(), memberId: member.id, reason: text(data, "reason") ?? "" };
    const { eraseMember } = await gql(`mutation Erase($input: EraseMemberInput!) {
      eraseMember(input: $input) { member { id status } errors { code field message } } }`, { input });
    if (!eraseMember.errors.length) {
      flash("Member erased: personal data removed, points forfeited.");
      window.location.hash = "#/members";
    }
    return eraseMember.errors;
  }, "Erase member");
}

export async function renderMember(main, id) {
  const { member } = await gql(MEMBER, { id });
  if (!member) {
    page(main, "Member not found", link("#/members", "Back to members"));
    return;
  }
  const refresh = async (message) => {
    await renderMember(main, id);
    status(message);
  };
  page(main, fullName(member), link("#/members", "← Members"), summary(member),
    h("div", { class: "cards" }, adjustForm(member, refresh), await redeemForm(member, refresh)),
    ...Object.keys(SECTIONS).map((name) => history(member.id, name)),
    exportButton(member),
    member.status === "ERASED" ? null : h("details", { class: "danger" }, h("summary", {}, "Erase this member"), eraseForm(member)));
}
