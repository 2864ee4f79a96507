// Small DOM helpers. Text always goes in as text nodes: nothing from the database is ever
// parsed as markup.
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function status(message, kind = "ok") {
  const box = document.getElementById("status");
  box.className = kind;
  box.textContent = message;
}

let flashed = null;

// A message for the next page: shown once the hash change has rendered it.
export function flash(message) {
  flashed = message;
}

export function showFlash() {
  if (flashed) status(flashed);
  flashed = null;
}

export function errorBox(error) {
  return h("p", { class: "alert", role: "alert" }, error.message || String(error));
}

export function money(value) {
  return value ? `${value.amount} ${value.currency}` : "—";
}

export function when(value) {
  return value ? new Date(value).toLocaleString() : "—";
}

export function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)} %`;
}

export function plain(value) {
  return value === null || value === undefined || value === "" ? "—" : String(value);
}

export function fullName(member) {
  const name = [member.firstName, member.lastName].filter(Boolean).join(" ");
  return name || member.externalId || member.id;
}

let fieldCounter = 0;

// A labelled input with its error slot. `name` is the input's field path, dotted
// ("effect.value"): the payload's errors land in the slot whose path matches.
export function field(label, name, options = {}) {
  const id = `f${++fieldCounter}`;
  const { type = "text", value, choices, help, required, multiple } = options;
  let input;
  if (choices) {
    input = h("select", { id, name, required, multiple });
    for (const [optionValue, optionLabel] of choices) {
      const selected = multiple ? (value || []).includes(optionValue) : optionValue === value;
      input.append(h("option", { value: optionValue, selected }, optionLabel));
    }
  } else if (type === "textarea") {
    input = h("textarea", { id, name, required, rows: 3 });
    input.defaultValue = value ?? "";
  } else if (type === "checkbox") {
    input = h("input", { id, name, type, checked: Boolean(value) });
  } else {
    input = h("input", { id, name, type, required, step: options.step, min: options.min });
    if (type !== "file") input.defaultValue = value ?? "";
  }
  const error = h("p", { class: "field-error", id: `${id}-error`, "data-field": name });
  const helpText = help ? h("p", { class: "help", id: `${id}-help` }, help) : null;
  input.setAttribute("aria-describedby", [helpText && `${id}-help`, `${id}-error`].filter(Boolean).join(" "));
  const wrapper = h("div", { class: `field ${type === "checkbox" ? "check" : ""}` });
  if (type === "checkbox") append(wrapper, [input, h("label", { for: id }, label)]);
  else append(wrapper, [h("label", { for: id }, label), input]);
  return append(wrapper, [helpText, error]);
}

// A group of checkboxes named `name`, read back as a list.
export function checkboxes(legend, name, choices, selected = []) {
  const set = h("fieldset", { class: "checks" }, h("legend", {}, legend));
  for (const [value, label] of choices) {
    const id = `f${++fieldCounter}`;
    set.append(
      h("span", { class: "check" },
        h("input", { type: "checkbox", id, name, value, checked: selected.includes(value) }),
        h("label", { for: id }, label)),
    );
  }
  set.append(h("p", { class: "field-error", "data-field": name }));
  return set;
}

// A form whose submit handler returns the payload's errors (or throws); each error shows
// next to its field, or at the top when no field matches.
export function form(title, children, onSubmit, submitLabel = "Save") {
  const general = h("p", { class: "form-error", role: "alert" });
  const button = h("button", { type: "submit" }, submitLabel);
  const node = h("form", { novalidate: true }, title ? h("h3", {}, title) : null, general, children,
    h("div", { class: "actions" }, button));
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    resetErrors(node);
    button.disabled = true;
    try {
      const errors = (await onSubmit(new FormData(node), node)) || [];
      showErrors(node, errors);
    } catch (error) {
      general.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
  return node;
}

export function resetErrors(node) {
  node.querySelectorAll(".field-error, .form-error").forEach((slot) => (slot.textContent = ""));
  node.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
}

export function showErrors(node, errors) {
  for (const error of errors) {
    const path = (error.field || []).filter((part) => part !== "input");
    let slot = null;
    for (let length = path.length; length > 0 && !slot; length--) {
      const name = path.slice(0, length).filter((part) => !/^\d+$/.test(part)).join(".");
      slot = node.querySelector(`.field-error[data-field="${CSS.escape(name)}"]`);
    }
    slot = slot || node.querySelector(".form-error");
    append(slot, [slot.textContent ? " " : "", `${error.message} (${error.code})`]);
    const input = slot.closest(".field")?.querySelector("input, select, textarea");
    input?.setAttribute("aria-invalid", "true");
  }
  if (errors.length) node.querySelector("[aria-invalid], .form-error")?.focus?.();
}

// Form values: "" is left out (the API's default), numbers and lists parsed.
export function text(data, name) {
  const value = (data.get(name) ?? "").toString().trim();
  return value === "" ? null : value;
}

export function int(data, name) {
  const value = text(data, name);
  return value === null ? null : Number.parseInt(value, 10);
}

export function list(data, name) {
  const value = text(data, name);
  return value === null ? null : value.split(",").map((part) => part.trim()).filter(Boolean);
}

export function chosen(data, name) {
  const values = data.getAll(name).map(String);
  return values.length ? values : null;
}

export function isoFromLocal(value) {
  return value ? new Date(value).toISOString() : null;
}

export function localFromIso(value) {
  if (!value) return "";
  const date = new Date(value);
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

export function table(caption, columns, rows) {
  const head = h("tr", {}, columns.map(([label]) => h("th", { scope: "col" }, label)));
  const body = rows.map((row) =>
    h("tr", {}, columns.map(([label, cell]) => h("td", { "data-label": label }, cell(row)))),
  );
  const empty = rows.length ? null : h("tr", {}, h("td", { colspan: columns.length }, "Nothing yet."));
  return h("div", { class: "table-wrap" },
    h("table", {}, h("caption", {}, caption), h("thead", {}, head), h("tbody", {}, body, empty)));
}

// One page of a connection at a time, with Previous/Next; never the whole list.
export function pagedTable(caption, columns, fetchPage, pageSize = 25) {
  const container = h("section", { class: "paged" });
  const cursors = [null];
  let index = 0;

  async function load() {
    let connection;
    try {
      connection = await fetchPage(pageSize, cursors[index]);
    } catch (error) {
      clear(container).append(errorBox(error));
      return;
    }
    const rows = connection.edges.map((edge) => edge.node);
    cursors[index + 1] = connection.pageInfo.endCursor;
    const previous = h("button", { type: "button", disabled: index === 0,
      onclick: () => { index -= 1; load(); } }, "Previous page");
    const next = h("button", { type: "button", disabled: !connection.pageInfo.hasNextPage,
      onclick: () => { index += 1; load(); } }, "Next page");
    clear(container).append(table(caption, columns, rows),
      h("nav", { class: "pager", "aria-label": `${caption} pages` }, previous, next));
  }

  load();
  container.reload = () => { cursors.length = 1; index = 0; return load(); };
  return container;
}

export function link(href, label) {
  return h("a", { href }, label);
}

export function page(main, title, ...children) {
  append(clear(main), [h("h1", {}, title), ...children]);
  document.title = `${title} · Loyalty console`;
  return main;
}

export const CHANNELS = [["IN_STORE", "In store"], ["ONLINE", "Online"], ["MOBILE_APP", "Mobile app"]];
