// The customer panel's profile: the name (editable; an anonymous visitor shows the hub's "Visitor 4821"), and the
// custom attributes admins define (text, number, date, list), edited in place and checked by the hub, which says
// why a value does not fit.
import { h, icon, clear, displayName, initials } from "./dom.js";
import { api } from "./api.js";
import { state, toast } from "./state.js";
import { t, formatDate } from "./i18n.js";

let definitions = null;
let loadedAt = 0;

async function loadDefinitions(fresh = false) {
  if (definitions && !fresh && Date.now() - loadedAt < 60000) return definitions;
  try {
    definitions = (await api.get("/api/v1/customer-attributes")).items;
    loadedAt = Date.now();
  } catch {
    definitions = definitions || [];
  }
  return definitions;
}

export function forgetDefinitions() {
  definitions = null;
}

// The card at the top of the panel: avatar, name (a pencil edits it), and "customer since".
export function customerCard(customer, onSaved) {
  const name = h("h2", { id: "customer-name" }, displayName(customer));
  const card = h("section", { class: "side-card customer-card" },
    h("div", { class: "avatar big" }, initials(displayName(customer))),
    h("div", { class: "name-row" }, name,
      h("button", { class: "icon-btn", id: "edit-name", type: "button", "aria-label": t("profile.edit_name"), title: t("profile.edit_name"),
        onclick: () => editName() }, icon("pencil"))),
    !customer.name && customer.display_name && customer.display_name !== displayName({ ...customer, display_name: "" })
      ? h("div", { class: "muted" }, t("profile.no_name")) : null,
    h("div", { class: "muted" }, t("profile.since", { date: formatDate(new Date(Date.parse(customer.created_at.replace(/(\.\d{3})\d+/, "$1")))) })));

  const editName = () => {
    const input = h("input", { type: "text", id: "customer-name-input", value: customer.name, maxlength: 255,
      placeholder: displayName(customer), "aria-label": t("profile.name") });
    const error = h("div", { class: "field-error", role: "alert" });
    const save = async () => {
      try {
        onSaved(await api.patch(`/api/v1/customers/${customer.id}`, { name: input.value.trim() }));
        toast(t("profile.name_saved"), "ok");
      } catch (err) {
        error.textContent = err.message;
      }
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); save(); }
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); card.replaceWith(customerCard(customer, onSaved)); }
    });
    name.replaceWith(h("form", { class: "name-edit", onsubmit: (e) => { e.preventDefault(); save(); } }, input,
      h("button", { class: "btn btn-primary", type: "submit", id: "save-name" }, t("common.save")), error));
    card.querySelector("#edit-name").remove();
    input.focus();
    input.select();
  };
  return card;
}

function inputFor(d, value) {
  const id = `attr-${d.key}`;
  if (d.type === "list") {
    return h("select", { id, name: d.key },
      h("option", { value: "" }, "—"),
      d.options.map((o) => h("option", { value: o, selected: o === value }, o)));
  }
  return h("input", { id, name: d.key, value: value || "", type: d.type === "number" ? "text" : d.type === "date" ? "date" : "text",
    inputmode: d.type === "number" ? "decimal" : null, maxlength: d.type === "text" ? 1000 : null, autocomplete: "off" });
}

// "Details": every defined attribute with this customer's value; Save sends what changed.
export async function detailsCard(customer, onSaved) {
  const defs = await loadDefinitions();
  const values = customer.attributes || {};
  const section = h("section", { class: "side-card details-card", id: "customer-details" }, h("h3", {}, t("profile.details")));
  if (!defs.length) {
    // Only an admin can change that, so only an admin is told how.
    if (state.me.role !== "admin") return h("div", { class: "hidden" });
    section.append(h("p", { class: "muted" }, t("profile.none_admin"),
      h("a", { href: "#/admin/attributes" }, t("profile.admin_link")), "."));
    return section;
  }
  const error = h("div", { class: "form-error", role: "alert", id: "details-error" });
  const inputs = defs.map((d) => [d, inputFor(d, values[d.key])]);
  const save = h("button", { class: "btn btn-primary", type: "submit", id: "save-details" }, t("profile.save_details"));
  section.append(h("form", { class: "details-form", onsubmit: async (e) => {
    e.preventDefault();
    const changed = {};
    for (const [d, input] of inputs) {
      const now = input.value.trim();
      if (now !== (values[d.key] || "")) changed[d.key] = now === "" ? null : now;
    }
    if (!Object.keys(changed).length) return;
    error.textContent = "";
    save.disabled = true;
    try {
      onSaved(await api.patch(`/api/v1/customers/${customer.id}`, { attributes: changed }));
      toast(t("profile.details_saved"), "ok");
    } catch (err) {
      error.textContent = err.message;
    } finally {
      save.disabled = false;
    }
  } }, inputs.map(([d, input]) => h("label", { class: "field attr-field", "data-attr": d.key },
    h("span", {}, d.label), input)), error, save));
  return section;
}

// Admin › Customer attributes: define, relabel, reorder (position) and remove them.
export async function showAttributesAdmin(main) {
  const defs = await loadDefinitions(true);
  const key = h("input", { type: "text", id: "attr-key", placeholder: "plan", pattern: "[a-z][a-z0-9_]*", autocomplete: "off" });
  const label = h("input", { type: "text", id: "attr-label", placeholder: "Plan" });
  const type = h("select", { id: "attr-type" }, ["text", "number", "date", "list"].map((kind) => h("option", { value: kind }, kind)));
  const options = h("input", { type: "text", id: "attr-options", placeholder: t("profile.options_placeholder") });
  const error = h("div", { class: "form-error", role: "alert" });
  const rows = h("ul", { class: "canned-manage", id: "attr-list" }, defs.map((d) => h("li", { "data-attr": d.key },
    h("div", {}, h("strong", {}, d.label), " ", h("span", { class: "pill" }, d.type), " ", h("code", {}, d.key),
      d.options.length ? h("div", { class: "muted" }, d.options.join(" · ")) : null),
    h("button", { class: "icon-btn", type: "button", "aria-label": t("files.remove", { name: d.label }), title: t("profile.remove_title"),
      onclick: async () => {
        if (!confirm(t("profile.remove_confirm", { name: d.label }))) return;
        try {
          await api.del(`/api/v1/customer-attributes/${d.key}`);
          showAttributesAdmin(main);
        } catch (err) {
          toast(err.message, "error");
        }
      } }, icon("x")))));
  clear(main).append(h("div", { class: "admin-page" },
    h("h2", {}, t("profile.attributes")),
    h("p", { class: "muted" }, t("profile.attributes_explain")),
    defs.length ? rows : h("p", { class: "muted" }, t("common.none_yet")),
    h("form", { class: "form-grid", id: "attr-form", onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      try {
        await api.post("/api/v1/customer-attributes", { key: key.value.trim(), label: label.value.trim(), type: type.value,
          options: type.value === "list" ? options.value.split(",").map((o) => o.trim()).filter(Boolean) : [],
          position: defs.length });
      } catch (err) {
        error.textContent = err.message;
        return;
      }
      toast(t("common.added", { name: label.value.trim() }), "ok");
      showAttributesAdmin(main);
    } },
      h("label", { class: "field" }, h("span", {}, t("profile.key")), key),
      h("label", { class: "field" }, h("span", {}, t("reports.label")), label),
      h("label", { class: "field" }, h("span", {}, t("profile.type")), type),
      h("label", { class: "field" }, h("span", {}, t("profile.options")), options),
      error, h("button", { class: "btn btn-primary", type: "submit", id: "attr-add" }, t("profile.add_attribute")))));
}
