// Dashboard: programStats over a chosen range, KPIs and SVG charts per period.
import { gql } from "../api.js";
import { barChart, lineChart } from "../chart.js";
import { h, clear, errorBox, field, form, money, page, percent, plain, CHANNELS } from "../ui.js";

const STATS = `query Stats($from: DateTime!, $to: DateTime!, $groupBy: StatsGrouping, $channel: Channel) {
  programStats(from: $from, to: $to, groupBy: $groupBy, channel: $channel) {
    totals { ...period salesGrowth }
    periods { ...period }
  }
}
fragment period on StatsPeriod {
  start end newMembers activeMembers purchases revenue { amount currency }
  averageOrderValue { amount currency } repeatPurchaseRate pointsIssued pointsRedeemed
  pointsExpired redemptionRate liabilityAtEnd csatAverage nps feedbackCount
}`;

function isoDate(date) {
  return date.toISOString().slice(0, 10);
}

function localMidnight(value) {
  const [year, month, day] = value.split("-").map(Number);
  return new Date(year, month - 1, day).toISOString();
}

function kpis(totals) {
  const items = [
    ["Revenue", money(totals.revenue)],
    ["Purchases", plain(totals.purchases)],
    ["Active members", plain(totals.activeMembers)],
    ["New members", plain(totals.newMembers)],
    ["Repeat purchase rate", percent(totals.repeatPurchaseRate)],
    ["Average order", money(totals.averageOrderValue)],
    ["Points issued", plain(totals.pointsIssued)],
    ["Points redeemed", plain(totals.pointsRedeemed)],
    ["Points expired", plain(totals.pointsExpired)],
    ["Liability at end", plain(totals.liabilityAtEnd)],
    ["NPS", totals.nps === null ? "—" : totals.nps.toFixed(0)],
    ["CSAT average", totals.csatAverage === null ? "—" : totals.csatAverage.toFixed(2)],
    ["Sales growth", percent(totals.salesGrowth)],
  ];
  return h("dl", { class: "kpis" }, items.map(([label, value]) => h("div", { class: "kpi" }, h("dt", {}, label), h("dd", {}, value))));
}

function charts(periods, groupBy) {
  const labels = periods.map((p) => {
    const start = new Date(p.start);
    return groupBy === "MONTH" ? start.toLocaleDateString(undefined, { month: "short", year: "2-digit" })
      : start.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  });
  const pick = (name) => periods.map((p) => p[name]);
  return h("div", { class: "charts" },
    barChart("Points issued, redeemed and expired", labels, [
      { name: "Issued", values: pick("pointsIssued") },
      { name: "Redeemed", values: pick("pointsRedeemed") },
      { name: "Expired", values: pick("pointsExpired") },
    ]),
    barChart("Active members", labels, [{ name: "Active members", values: pick("activeMembers") }]),
    lineChart("Repeat purchase rate (%)", labels, [
      { name: "Repeat rate", values: periods.map((p) => (p.repeatPurchaseRate === null ? null : p.repeatPurchaseRate * 100)) },
    ]),
    lineChart("Revenue", labels, [{ name: "Revenue", values: periods.map((p) => Number(p.revenue.amount)) }]),
    lineChart("NPS (−100 to 100) and CSAT average (1 to 5)", labels, [
      { name: "NPS", values: pick("nps") },
      { name: "CSAT average", values: pick("csatAverage") },
    ]),
  );
}

export async function render(main) {
  const today = new Date();
  const start = new Date(today.getTime() - 29 * 86400000);
  const tomorrow = new Date(today.getTime() + 86400000);
  const results = h("div", { class: "results" });
  const pickers = form("", h("div", { class: "row" },
    field("From", "from", { type: "date", value: isoDate(start), required: true }),
    field("To (exclusive)", "to", { type: "date", value: isoDate(tomorrow), required: true }),
    field("Group by", "groupBy", { value: "DAY", choices: [["DAY", "Day"], ["WEEK", "Week"], ["MONTH", "Month"]] }),
    field("Channel", "channel", { value: "", choices: [["", "All channels"], ...CHANNELS] }),
  ), async (data) => {
    const from = data.get("from");
    const to = data.get("to");
    if (!from || !to) return [{ field: [from ? "to" : "from"], message: "Pick a date.", code: "INVALID" }];
    const groupBy = data.get("groupBy");
    clear(results).append(h("p", { class: "loading", role: "status" }, "Computing the figures…"));
    try {
      const { programStats } = await gql(STATS, {
        from: localMidnight(from), to: localMidnight(to), groupBy, channel: data.get("channel") || null,
      });
      clear(results).append(kpis(programStats.totals), charts(programStats.periods, groupBy));
    } catch (error) {
      clear(results).append(errorBox(error));
    }
    return [];
  }, "Show");
  page(main, "Dashboard", pickers, results);
  pickers.requestSubmit();
}
