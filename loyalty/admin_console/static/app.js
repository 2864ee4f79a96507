// The console's shell: sign-in, navigation and a hash router with one module per page.
import { gql, session, currentProgram } from "./api.js";
import { h, clear, field, form, page, showFlash, status } from "./ui.js";
import * as dashboard from "./pages/dashboard.js";
import * as members from "./pages/members.js";
import * as program from "./pages/program.js";
import * as rewards from "./pages/rewards.js";
import * as rules from "./pages/rules.js";
import * as segments from "./pages/segments.js";
import * as webhooks from "./pages/webhooks.js";
import * as keys from "./pages/keys.js";

const SECTIONS = [
  ["#/", "Dashboard"],
  ["#/members", "Members"],
  ["#/program", "Program & tiers"],
  ["#/rewards", "Rewards"],
  ["#/rules", "Earning rules"],
  ["#/segments", "Segments"],
  ["#/webhooks", "Webhooks"],
  ["#/keys", "API keys"],
];

const ROUTES = [
  [/^#?\/?$/, dashboard.render],
  [/^#\/members$/, members.renderList],
  [/^#\/members\/([^/]+)$/, members.renderMember],
  [/^#\/program$/, program.render],
  [/^#\/rewards$/, rewards.renderList],
  [/^#\/rewards\/([^/]+)$/, rewards.renderReward],
  [/^#\/rules$/, rules.renderList],
  [/^#\/rules\/([^/]+)$/, rules.renderRule],
  [/^#\/segments$/, segments.renderList],
  [/^#\/segments\/([^/]+)$/, segments.renderSegment],
  [/^#\/webhooks$/, webhooks.renderList],
  [/^#\/webhooks\/([^/]+)$/, webhooks.renderWebhook],
  [/^#\/keys$/, keys.render],
];

function renderNav() {
  const nav = clear(document.getElementById("nav"));
  if (!session.key()) return;
  const here = window.location.hash || "#/";
  const items = SECTIONS.map(([href, label]) => {
    const current = href === "#/" ? here === "#/" || here === "" : here.startsWith(href);
    return h("li", {}, h("a", { href, "aria-current": current ? "page" : null }, label));
  });
  nav.append(h("ul", {}, items), h("button", { type: "button", class: "link",
    onclick: () => { session.signOut(); route(); } }, "Sign out"));
}

function renderSignIn(main) {
  const signIn = form("", [
    field("Admin API key", "key", { type: "password", required: true,
      help: "Create one with: loyalty apikey create --role admin --name NAME. It is kept for this browser tab only." }),
  ], async (data) => {
    const key = (data.get("key") || "").toString().trim();
    if (!key) return [{ field: ["key"], message: "Paste an admin API key.", code: "INVALID" }];
    try {
      await gql("{ program { name } members(first: 0) { pageInfo { hasNextPage } } }", {}, key);
    } catch (error) {
      return [{ field: ["key"], message: error.code === "FORBIDDEN" ? "This key is not an admin key." : error.message, code: error.code || "INVALID" }];
    }
    session.signIn(key);
    await currentProgram(true);
    route();
    return [];
  }, "Sign in");
  page(main, "Sign in", h("p", {}, "The console speaks the public GraphQL API with an admin API key."), signIn);
  signIn.querySelector("input").focus();
}

async function route() {
  const main = document.getElementById("main");
  status("");
  renderNav();
  if (!session.key()) {
    renderSignIn(main);
    return;
  }
  const hash = window.location.hash || "#/";
  for (const [pattern, render] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      clear(main).append(h("p", { class: "loading" }, "Loading…"));
      try {
        await render(main, ...match.slice(1).map(decodeURIComponent));
        showFlash();
      } catch (error) {
        if (error.code === "UNAUTHENTICATED") {
          session.signOut();
          route();
          return;
        }
        page(main, "Something went wrong", h("p", { class: "alert", role: "alert" }, error.message));
      }
      return;
    }
  }
  page(main, "Not found", h("p", {}, "No page here."), h("a", { href: "#/" }, "Dashboard"));
}

window.addEventListener("hashchange", () => {
  route().then(() => document.getElementById("main").focus({ preventScroll: true }));
});
route();
