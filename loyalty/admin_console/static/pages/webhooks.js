// Webhooks: endpoints, their delivery log and redelivery; a secret is shown once.
import { gql } from "../api.js";
import { h, checkboxes, chosen, clear, field, flash, form, link, page, pagedTable, plain, status, text, when } from "../ui.js";

const ERRORS = "errors { code field message }";
const WEBHOOK = "id url events description active disabledReason createdAt";
const EVENTS = ["member.enrolled", "member.updated", "member.erased", "points.earned", "points.adjusted",
  "points.redeemed", "points.refunded", "points.released", "points.expired",
  "points.forfeited", "tier.changed", "redemption.issued", "redemption.used", "redemption.cancelled",
  "purchase.recorded", "purchase.refunded", "referral.rewarded"].map((e) => [e, e]);

function secretNotice(secret) {
  return h("div", { class: "notice", role: "alert" },
    h("p", {}, "Signing secret — shown this once; give it to the receiver:"), h("code", { class: "secret" }, secret));
}

export async function renderList(main) {
  const shown = h("div");
  const list = pagedTable("Webhook endpoints", [
    ["URL", (w) => link(`#/webhooks/${encodeURIComponent(w.id)}`, w.url)],
    ["Events", (w) => w.events.join(", ")], ["Active", (w) => (w.active ? "yes" : plain(w.disabledReason) || "paused")],
    ["Created", (w) => when(w.createdAt)],
  ], async (first, after) => (await gql(`query Webhooks($first: Int, $after: String) {
    webhooks(first: $first, after: $after) { edges { node { ${WEBHOOK} } } pageInfo { hasNextPage endCursor } } }`,
  { first, after })).webhooks);
  const create = form("Add an endpoint", [
    field("URL", "url", { type: "url", required: true, help: "https with a public address." }),
    field("Description", "description"),
    checkboxes("Events", "events", EVENTS),
  ], async (data, node) => {
    const input = { url: text(data, "url") ?? "", events: chosen(data, "events") ?? [], description: text(data, "description") };
    const { createWebhook } = await gql(`mutation Create($input: CreateWebhookInput!) {
      createWebhook(input: $input) { webhook { id } secret ${ERRORS} } }`, { input });
    if (!createWebhook.errors.length) {
      node.reset();
      clear(shown).append(secretNotice(createWebhook.secret));
      list.reload();
    }
    return createWebhook.errors;
  }, "Add endpoint");
  page(main, "Webhooks", shown, list, create);
}

export async function renderWebhook(main, id) {
  const { webhook } = await gql(`query Webhook($id: ID!) { webhook(id: $id) { ${WEBHOOK} } }`, { id });
  if (!webhook) {
    page(main, "Webhook not found", link("#/webhooks", "Back to webhooks"));
    return;
  }
  const shown = h("div");
  let statusFilter = null;
  const deliveries = pagedTable("Deliveries", [
    ["Event", (d) => d.eventType], ["Status", (d) => d.status], ["Attempts", (d) => String(d.attempts)],
    ["Last attempt", (d) => when(d.lastAttemptAt)], ["Response", (d) => plain(d.responseStatus ?? d.lastError)],
    ["Action", (d) => h("button", { type: "button", onclick: async () => {
      const { redeliverWebhookDelivery } = await gql(`mutation Redeliver($input: RedeliverWebhookDeliveryInput!) {
        redeliverWebhookDelivery(input: $input) { delivery { id status } ${ERRORS} } }`, { input: { deliveryId: d.id } });
      if (redeliverWebhookDelivery.errors.length) status(redeliverWebhookDelivery.errors.map((e) => e.message).join(" "), "error");
      else { status("Queued for redelivery."); deliveries.reload(); }
    } }, "Redeliver")],
  ], async (first, after) => (await gql(`query Deliveries($id: ID!, $first: Int, $after: String, $status: WebhookDeliveryStatus) {
    webhookDeliveries(webhookId: $id, first: $first, after: $after, status: $status) {
      edges { node { id eventType status attempts lastAttemptAt responseStatus lastError } } pageInfo { hasNextPage endCursor } } }`,
  { id, first, after, status: statusFilter })).webhookDeliveries);
  const filter = form("", field("Delivery status", "status", { value: "", choices: [["", "All"], ["PENDING", "Pending"], ["DELIVERED", "Delivered"], ["FAILED", "Failed"]] }),
    (data) => { statusFilter = text(data, "status"); deliveries.reload(); return []; }, "Filter");
  const edit = form("Edit", [
    field("URL", "url", { type: "url", value: webhook.url, required: true }),
    field("Description", "description", { value: webhook.description }),
    field("Active", "active", { type: "checkbox", value: webhook.active }),
    checkboxes("Events", "events", EVENTS, webhook.events),
  ], async (data) => {
    const input = { id, url: text(data, "url") ?? "", description: text(data, "description"),
      active: data.get("active") === "on", events: chosen(data, "events") ?? [] };
    const { updateWebhook } = await gql(`mutation Update($input: UpdateWebhookInput!) {
      updateWebhook(input: $input) { webhook { id } ${ERRORS} } }`, { input });
    if (!updateWebhook.errors.length) status("Webhook saved.");
    return updateWebhook.errors;
  });
  const rotate = h("button", { type: "button", onclick: async () => {
    const { rotateWebhookSecret } = await gql(`mutation Rotate($input: RotateWebhookSecretInput!) {
      rotateWebhookSecret(input: $input) { secret ${ERRORS} } }`, { input: { id } });
    if (!rotateWebhookSecret.errors.length) clear(shown).append(secretNotice(rotateWebhookSecret.secret));
  } }, "Rotate signing secret");
  const remove = h("button", { type: "button", class: "danger", onclick: async () => {
    const { deleteWebhook } = await gql(`mutation Delete($input: DeleteWebhookInput!) {
      deleteWebhook(input: $input) { webhook { id } ${ERRORS} } }`, { input: { id } });
    if (!deleteWebhook.errors.length) { flash("Webhook deleted."); window.location.hash = "#/webhooks"; }
  } }, "Delete endpoint");
  page(main, webhook.url, link("#/webhooks", "← Webhooks"),
    webhook.disabledReason ? h("p", { class: "alert" }, `Disabled: ${webhook.disabledReason}`) : null,
    shown, filter, deliveries, edit, h("div", { class: "actions" }, rotate, remove));
}
