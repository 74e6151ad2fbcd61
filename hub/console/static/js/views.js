// The inbox's views (built-in and saved filters, with counts), the filter builder, selecting several conversations
// for a bulk action, and the snooze chooser the conversation header uses too.
import { h, icon, clear, append, displayName, statusName } from "./dom.js";
import { api } from "./api.js";
import { state, toast, modal, refreshInbox } from "./state.js";
import { t, formatDateTime } from "./i18n.js";

const STORED = "hub.view";
state.view = (localStorage.getItem(STORED) || "all").replace(/^filter$/, "all");
state.filters = null;
state.views = [];
state.selecting = false;
state.selected = new Set();

let els = null;

export function currentView() {
  if (state.view === "filter") return { id: "filter", name: t("views.filtered"), kind: "filter", filters: state.filters || {} };
  const found = state.views.find((v) => v.id === state.view);
  return found ? { ...found, name: viewName(found) } : { id: "all", name: t("views.all"), kind: "builtin", filters: {} };
}

export function inboxQuery() {
  if (state.view === "filter") return `?${new URLSearchParams(state.filters || {})}`;
  return state.view && state.view !== "all" ? `?view=${encodeURIComponent(state.view)}` : "";
}

// The bar above the inbox: the view picker, the filter builder, and "Select" for bulk actions.
export function viewBar() {
  const select = h("select", { id: "view-select", "aria-label": t("views.view"), onchange: (e) => chooseView(e.target.value) });
  const filterBtn = h("button", { class: "icon-btn", id: "filter-btn", type: "button", title: t("views.filter_title"),
    "aria-label": t("views.filter_title"), onclick: () => filterForm() }, icon("filter"));
  const selectBtn = h("button", { class: "icon-btn", id: "select-btn", type: "button", title: t("views.select_title"),
    "aria-label": t("views.select_title"), "aria-pressed": "false", onclick: () => setSelecting(!state.selecting) }, icon("checks"));
  const bulk = h("div", { class: "bulk-bar hidden", id: "bulk-bar", role: "toolbar", "aria-label": t("views.bulk") });
  els = { select, bulk, selectBtn };
  return h("div", { class: "view-wrap" }, h("div", { class: "view-bar" }, select, filterBtn, selectBtn), bulk);
}

function chooseView(id) {
  state.view = id;
  localStorage.setItem(STORED, id);
  if (id !== "filter") state.filters = null;
  state.selected.clear();
  renderBulk();
  refreshInbox();
}

export async function loadViews() {
  try {
    state.views = (await api.get("/api/v1/views")).items;
  } catch {
    return;
  }
  if (state.view !== "filter" && !state.views.some((v) => v.id === state.view)) state.view = "all";
  renderPicker();
}

// The hub names its built-in views in English; the console names them in its language (a queue's view keeps the
// queue's title, a saved view its name).
function viewName(v) {
  const names = { all: () => t("views.all"), mine: () => t("views.mine"), unassigned: () => t("views.unassigned"),
    snoozed: () => t("status.snoozed"), resolved: () => t("status.resolved"), mentions: () => t("nav.mentions") };
  return v.kind === "builtin" && names[v.id] ? names[v.id]() : v.name;
}

function renderPicker() {
  if (!els) return;
  const option = (v) => h("option", { value: v.id, selected: v.id === state.view },
    `${viewName(v)}${v.count === undefined ? "" : ` (${v.count})`}`);
  const builtin = state.views.filter((v) => v.kind === "builtin");
  const saved = state.views.filter((v) => v.kind !== "builtin");
  const adhoc = state.view === "filter" ? h("option", { value: "filter", selected: true }, t("views.filtered")) : null;
  append(clear(els.select), [adhoc, ...builtin.map(option),
    saved.length ? h("optgroup", { label: t("views.saved") }, saved.map(option)) : null]);
}

// -- the filter builder: apply at once, or save as a view (yours, or shared by admins and supervisors) ----------------

function filterForm() {
  const current = currentView().filters || {};
  const pick = (id, label, options, value) => h("label", { class: "field" }, h("span", {}, label),
    h("select", { id }, h("option", { value: "" }, t("views.any")), options.map(([v, text]) => h("option", { value: v, selected: String(value ?? "") === String(v) }, text))));
  const channels = [...new Set(state.channels.map((c) => c.name).filter((n) => n !== "hub"))];
  const fields = h("div", { class: "form-grid" },
    pick("f-status", t("views.status"), ["open", "assigned", "snoozed", "resolved"].map((s) => [s, statusName(s)]), current.status),
    pick("f-channel", t("reports.channel"), channels.map((c) => [c, c]), current.channel),
    pick("f-queue", t("transfer.queue"), state.queues.map((q) => [q.name, q.title]), current.queue),
    pick("f-label", t("reports.label"), (state.labels || []).map((l) => [l.name, l.title]), current.label),
    pick("f-agent", t("transfer.agent"), [...state.agents.values()].map((a) => [a.id, a.name]), current.agent_id),
    h("label", { class: "field" }, h("span", {}, t("views.waiting_longer")),
      h("input", { type: "number", id: "f-waiting", min: 1, value: current.waiting_seconds ? Math.round(current.waiting_seconds / 60) : "" })),
    h("label", { class: "field" }, h("span", {}, t("views.save_as")),
      h("input", { type: "text", id: "f-name", maxlength: 80, placeholder: "e.g. Refunds waiting 30 min" })),
    ["admin", "supervisor"].includes(state.me.role)
      ? h("label", { class: "check" }, h("input", { type: "checkbox", id: "f-shared" }), t("views.share")) : null);
  const error = h("div", { class: "form-error", role: "alert" });
  const dlg = modal(t("views.filter_inbox"), [fields, error], t("views.apply"), async () => {
    const val = (id) => dlg.querySelector(`#${id}`).value;
    const filters = {};
    if (val("f-status")) filters.status = val("f-status");
    if (val("f-channel")) filters.channel = val("f-channel");
    if (val("f-queue")) filters.queue = val("f-queue");
    if (val("f-label")) filters.label = val("f-label");
    if (val("f-agent")) filters.agent_id = Number(val("f-agent"));
    if (val("f-waiting")) filters.waiting_seconds = Math.round(Number(val("f-waiting")) * 60);
    const name = val("f-name").trim();
    const shared = Boolean(dlg.querySelector("#f-shared") && dlg.querySelector("#f-shared").checked);
    if (!name) {
      // Applied, not saved: the inbox asks with these filters until another view is chosen.
      state.filters = filters;
      renderPicker();
      chooseView("filter");
      return true;
    }
    try {
      const made = await api.post("/api/v1/views", { name, filters, shared });
      await loadViews();
      chooseView(made.id);
      toast(t("views.saved_toast", { name }), "ok");
    } catch (err) {
      error.textContent = err.message;
      return false;
    }
    return true;
  });
  const del = currentView().kind === "personal" || (currentView().kind === "shared" && ["admin", "supervisor"].includes(state.me.role));
  if (del) {
    dlg.querySelector("footer").prepend(h("button", { class: "btn btn-danger-ghost", type: "button", id: "view-delete", onclick: async () => {
      try {
        await api.del(`/api/v1/views/${state.view.split(":")[1]}`);
      } catch (err) {
        toast(err.message, "error");
        return;
      }
      dlg.close();
      chooseView("all");
      loadViews();
    } }, t("views.delete", { name: currentView().name })));
  }
}

// -- selecting several conversations, and the bulk actions on them -------------------------------------------------

export function setSelecting(on) {
  state.selecting = on;
  if (!on) state.selected.clear();
  if (els) els.selectBtn.setAttribute("aria-pressed", String(on));
  document.body.classList.toggle("selecting", on);
  renderBulk();
  refreshInbox();
}

export function selectBox(conversationId, name) {
  return h("input", { type: "checkbox", class: "conv-check", "data-select": conversationId,
    "aria-label": t("views.select_one", { name }), checked: state.selected.has(conversationId),
    onchange: (e) => {
      if (e.target.checked) state.selected.add(conversationId);
      else state.selected.delete(conversationId);
      renderBulk();
    } });
}

export function selectAll(ids) {
  const all = ids.every((id) => state.selected.has(id));
  for (const id of ids) (all ? state.selected.delete(id) : state.selected.add(id));
  renderBulk();
  refreshInbox();
}

function renderBulk() {
  if (!els) return;
  els.bulk.classList.toggle("hidden", !state.selecting);
  if (!state.selecting) return;
  const n = state.selected.size;
  const none = n === 0;
  const assign = h("select", { id: "bulk-assign", "aria-label": t("views.assign_selected"), disabled: none, onchange: (e) => {
    const [kind, value] = e.target.value.split(":");
    if (kind) bulk("assign", kind === "queue" ? { queue: value } : { agent_id: Number(value) });
  } }, h("option", { value: "" }, t("views.assign")),
  h("option", { value: `agent:${state.me.id}` }, t("views.to_me")),
  [...state.agents.values()].filter((a) => a.id !== state.me.id).map((a) => h("option", { value: `agent:${a.id}` }, a.name)),
  state.queues.map((q) => h("option", { value: `queue:${q.name}` }, t("reports.queue_filter", { name: q.title }))));
  const label = h("select", { id: "bulk-label", "aria-label": t("views.label_selected"), disabled: none || !(state.labels || []).length,
    onchange: (e) => {
      const [action, name] = e.target.value.split(":");
      if (action) bulk(action, { label: name });
    } }, h("option", { value: "" }, t("views.label")),
  (state.labels || []).map((l) => h("option", { value: `label:${l.name}` }, t("views.add_label", { name: l.title }))),
  (state.labels || []).map((l) => h("option", { value: `unlabel:${l.name}` }, t("views.remove_label", { name: l.title }))));
  const snooze = h("select", { id: "bulk-snooze", "aria-label": t("views.snooze_selected"), disabled: none, onchange: (e) => {
    const choice = snoozeChoices()[Number(e.target.value)];
    if (choice) bulk("snooze", choice.until ? { until: choice.until } : {});
  } }, h("option", { value: "" }, t("views.snooze")), snoozeChoices().map((c, i) => h("option", { value: i }, c.label)));
  clear(els.bulk).append(
    h("span", { class: "bulk-count", id: "bulk-count" }, t("views.selected", { count: n })),
    assign, label, snooze,
    h("button", { class: "btn btn-small", id: "bulk-resolve", type: "button", disabled: none, onclick: () => bulk("resolve", {}) },
      icon("resolve"), t("conv.resolve")),
    h("button", { class: "icon-btn", type: "button", "aria-label": t("views.stop_selecting"), title: t("views.stop_selecting"),
      onclick: () => setSelecting(false) }, icon("x")));
}

async function bulk(action, extra) {
  const ids = [...state.selected];
  let result;
  try {
    result = await api.post("/api/v1/conversations/bulk", { conversation_ids: ids, action, ...extra });
  } catch (err) {
    toast(err.message, "error");
    renderBulk();
    return;
  }
  const failed = result.results.filter((r) => !r.ok);
  const done = {
    assign: () => t("bulk.assigned", { count: result.done }), label: () => t("bulk.labeled", { count: result.done }),
    unlabel: () => t("bulk.unlabeled", { count: result.done }), resolve: () => t("bulk.resolved", { count: result.done }),
    snooze: () => t("bulk.snoozed", { count: result.done }),
  }[action]();
  if (!failed.length) toast(done, "ok");
  else toast(t("bulk.some_failed", { done, count: failed.length, errors: failed.map((r) => `#${r.id} ${r.error}`).join("; ") }), "error", 10000);
  // Labeling leaves them where they were, often for a next action; the others move them off this list.
  if (!["label", "unlabel"].includes(action)) state.selected = new Set(failed.map((r) => r.id));
  renderBulk();
  refreshInbox();
}

// -- snooze -------------------------------------------------------------------------------------------------------

function at(days, hour) {
  const d = new Date();
  d.setDate(d.getDate() + days);
  d.setHours(hour, 0, 0, 0);
  return d;
}

export function snoozeChoices() {
  const now = new Date();
  const monday = (8 - now.getDay()) % 7 || 7;
  return [
    { label: t("snooze.until_reply"), until: null },
    { label: t("snooze.hours", { count: 1 }), until: new Date(now.getTime() + 3600e3).toISOString() },
    { label: t("snooze.hours", { count: 4 }), until: new Date(now.getTime() + 4 * 3600e3).toISOString() },
    { label: t("snooze.tomorrow"), until: at(1, 9).toISOString() },
    { label: t("snooze.monday"), until: at(monday, 9).toISOString() },
  ];
}

// Ask how long; RUN(until or null) snoozes. The customer's message always wakes it early.
export function chooseSnooze(run) {
  const choices = snoozeChoices();
  const custom = h("input", { type: "datetime-local", id: "snooze-custom", "aria-label": t("snooze.until_date") });
  const list = h("div", { class: "snooze-choices", role: "radiogroup", "aria-label": t("snooze.until") },
    choices.map((c, i) => h("label", { class: "check" },
      h("input", { type: "radio", name: "snooze", value: String(i), checked: i === 0 }), c.label)),
    h("label", { class: "check" }, h("input", { type: "radio", name: "snooze", value: "custom" }), t("snooze.until_custom"), custom));
  custom.addEventListener("focus", () => { list.querySelector('input[value="custom"]').checked = true; });
  const error = h("div", { class: "form-error", role: "alert" });
  modal(t("keys.snooze"), [list, h("p", { class: "muted" }, t("snooze.explain")), error],
    t("keys.snooze"), async () => {
      const chosen = list.querySelector("input[name=snooze]:checked").value;
      let until = null;
      if (chosen === "custom") {
        if (!custom.value) {
          error.textContent = t("snooze.pick");
          return false;
        }
        until = new Date(custom.value).toISOString();
      } else {
        until = choices[Number(chosen)].until;
      }
      try {
        await run(until);
      } catch (err) {
        error.textContent = err.message;
        return false;
      }
      return true;
    });
}

export function snoozeText(snooze) {
  if (!snooze) return "";
  if (!snooze.until) return t("snooze.until_reply_text");
  const when = new Date(Date.parse(snooze.until.replace(/(\.\d{3})\d+/, "$1")));
  return t("snooze.until_text", { when: formatDateTime(when, { weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) });
}

export function describeWake(d) {
  const who = d.conversation ? `#${d.conversation.id}` : "";
  return d.reason === "message" ? t("snooze.woke_message", { id: who }) : t("snooze.woke", { id: who });
}

export { displayName };
