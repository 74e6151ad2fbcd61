// Labels: admin-defined (name, title, color), shown as colored chips on conversations, customers and inbox rows,
// put on and taken off by agents; the admin screen defines them.
import { h, icon, clear, append } from "./dom.js";
import { api } from "./api.js";
import { state, toast, modal } from "./state.js";
import { t } from "./i18n.js";

export async function loadLabels() {
  try {
    state.labels = (await api.get("/api/v1/labels")).items;
  } catch {
    state.labels = state.labels || [];
  }
  return state.labels;
}

function definition(name) {
  return (state.labels || []).find((l) => l.name === name) || { name, title: name, color: "#64748b" };
}

// White or near-black text, whichever reads better on the label's color (WCAG relative luminance).
function inkOn(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
    .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  const lum = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return lum > 0.32 ? "#111827" : "#ffffff";
}

export function labelChip(name, onRemove = null) {
  const d = definition(name);
  const color = /^#[0-9a-f]{6}$/i.test(d.color) ? d.color : "#64748b";
  return h("span", { class: "label-chip", "data-label": d.name, title: d.name,
    style: { background: color, color: inkOn(color) } }, d.title,
  onRemove ? h("button", { type: "button", class: "label-x", "aria-label": t("labels.remove", { name: d.title }),
    onclick: (e) => { e.preventDefault(); e.stopPropagation(); onRemove(d.name); } }, "×") : null);
}

// The labels of one conversation or customer, with an add menu; PATH is its /labels base in the API.
export function labelEditor(path, current, onChange, id) {
  const box = h("div", { class: "label-editor", id });
  let names = [...current];
  const set = async (name, on) => {
    try {
      names = (await (on ? api.put(`${path}/${encodeURIComponent(name)}`) : api.del(`${path}/${encodeURIComponent(name)}`))).labels;
      render();
      if (onChange) onChange(names);
    } catch (err) {
      toast(err.message, "error");
    }
  };
  const render = () => {
    const free = (state.labels || []).filter((l) => !names.includes(l.name));
    const picker = h("select", { class: "label-add", "aria-label": t("labels.add_one"), onchange: (e) => {
      if (e.target.value) set(e.target.value, true);
    } }, h("option", { value: "" }, free.length ? t("labels.plus") : (state.labels || []).length ? t("labels.all_added") : t("labels.none_defined")),
    free.map((l) => h("option", { value: l.name }, l.title)));
    picker.disabled = !free.length;
    // Until an admin defines labels there is nothing to pick: no empty control in every header.
    append(clear(box), [...names.map((n) => labelChip(n, (x) => set(x, false))), (state.labels || []).length ? picker : null]);
    box.classList.toggle("hidden", !names.length && !(state.labels || []).length);
  };
  render();
  return box;
}

// -- admin: define labels -------------------------------------------------------------------------------------------

export async function labelsScreen(body) {
  await loadLabels();
  clear(body).append(h("section", { class: "panel" },
    h("div", { class: "panel-head" },
      h("div", {}, h("h2", {}, icon("tag"), t("side.labels")),
        h("p", { class: "muted" }, t("labels.explain"))),
      h("button", { class: "btn btn-primary", id: "label-new", onclick: () => editLabel(null, body) }, t("labels.new"))),
    state.labels.length ? h("table", { class: "admin-table", id: "labels-table" },
      h("thead", {}, h("tr", {}, [t("reports.label"), t("labels.name"), t("labels.color"), ""].map((title) => h("th", {}, title)))),
      h("tbody", {}, state.labels.map((l) => h("tr", { "data-label-row": l.name },
        h("td", {}, labelChip(l.name)), h("td", { class: "mono" }, l.name), h("td", { class: "mono" }, l.color),
        h("td", { class: "row-actions" },
          h("button", { class: "btn btn-small", onclick: () => editLabel(l, body) }, t("common.edit")), " ",
          h("button", { class: "btn btn-small btn-danger-ghost", onclick: () => deleteLabel(l, body) }, t("common.delete")))))))
      : h("p", { class: "empty-panel muted" }, t("labels.none_yet"))));
}

function editLabel(l, body) {
  const name = h("input", { type: "text", id: "label-name", value: l ? l.name : "", disabled: Boolean(l),
    placeholder: "e.g. refund", maxlength: 64 });
  const title = h("input", { type: "text", id: "label-title", value: l ? l.title : "", placeholder: "e.g. Refund", maxlength: 80 });
  const color = h("input", { type: "color", id: "label-color", value: l ? l.color : "#4353d6" });
  const error = h("div", { class: "form-error", role: "alert" });
  modal(l ? t("labels.edit") : t("labels.new"), [
    h("label", { class: "field" }, h("span", {}, t("labels.title")), title),
    h("label", { class: "field" }, h("span", {}, t("labels.name_help")), name),
    h("label", { class: "field" }, h("span", {}, t("labels.color")), color), error],
  l ? t("common.save") : t("labels.add"), async () => {
    try {
      if (l) await api.patch(`/api/v1/labels/${l.name}`, { title: title.value.trim(), color: color.value });
      else await api.post("/api/v1/labels", { name: name.value.trim(), title: title.value.trim(), color: color.value });
    } catch (err) {
      error.textContent = err.message;
      return false;
    }
    toast(l ? t("labels.saved") : t("labels.added"), "ok");
    labelsScreen(body);
    return true;
  });
  if (!l) title.addEventListener("input", () => {
    if (!name.dataset.touched) name.value = title.value.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64);
  });
  name.addEventListener("input", () => { name.dataset.touched = "1"; });
}

function deleteLabel(l, body) {
  modal(t("labels.delete"), [h("p", {}, t("labels.delete_before"), labelChip(l.name), t("labels.delete_after"))], t("common.delete"), async () => {
    try {
      await api.del(`/api/v1/labels/${l.name}`);
    } catch (err) {
      toast(err.message, "error", 8000);
      return true;
    }
    labelsScreen(body);
    return true;
  });
}
