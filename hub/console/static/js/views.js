// The inbox's views (built-in and saved filters, with counts), the filter builder, selecting several conversations
// for a bulk action, and the snooze chooser the conversation header uses too.
import { h, icon, clear, append, displayName } from "./dom.js";
import { api } from "./api.js";
import { state, toast, modal, refreshInbox } from "./state.js";

const STORED = "hub.view";
state.view = (localStorage.getItem(STORED) || "all").replace(/^filter$/, "all");
state.filters = null;
state.views = [];
state.selecting = false;
state.selected = new Set();

let els = null;

export function currentView() {
  if (state.view === "filter") return { id: "filter", name: "Filtered", kind: "filter", filters: state.filters || {} };
  return state.views.find((v) => v.id === state.view) || { id: "all", name: "All open", kind: "builtin", filters: {} };
}

export function inboxQuery() {
  if (state.view === "filter") return `?${new URLSearchParams(state.filters || {})}`;
  return state.view && state.view !== "all" ? `?view=${encodeURIComponent(state.view)}` : "";
}

// The bar above the inbox: the view picker, the filter builder, and "Select" for bulk actions.
export function viewBar() {
  const select = h("select", { id: "view-select", "aria-label": "View", onchange: (e) => chooseView(e.target.value) });
  const filterBtn = h("button", { class: "icon-btn", id: "filter-btn", type: "button", title: "Filter and save a view",
    "aria-label": "Filter and save a view", onclick: () => filterForm() }, icon("filter"));
  const selectBtn = h("button", { class: "icon-btn", id: "select-btn", type: "button", title: "Select conversations",
    "aria-label": "Select conversations", "aria-pressed": "false", onclick: () => setSelecting(!state.selecting) }, icon("checks"));
  const bulk = h("div", { class: "bulk-bar hidden", id: "bulk-bar", role: "toolbar", "aria-label": "Bulk actions" });
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

function renderPicker() {
  if (!els) return;
  const option = (v) => h("option", { value: v.id, selected: v.id === state.view },
    `${v.name}${v.count === undefined ? "" : ` (${v.count})`}`);
  const builtin = state.views.filter((v) => v.kind === "builtin");
  const saved = state.views.filter((v) => v.kind !== "builtin");
  const adhoc = state.view === "filter" ? h("option", { value: "filter", selected: true }, "Filtered") : null;
  append(clear(els.select), [adhoc, ...builtin.map(option),
    saved.length ? h("optgroup", { label: "Saved views" }, saved.map(option)) : null]);
}

// -- the filter builder: apply at once, or save as a view (yours, or shared by admins and supervisors) ----------------

function filterForm() {
  const current = currentView().filters || {};
  const pick = (id, label, options, value) => h("label", { class: "field" }, h("span", {}, label),
    h("select", { id }, h("option", { value: "" }, "Any"), options.map(([v, t]) => h("option", { value: v, selected: String(value ?? "") === String(v) }, t))));
  const channels = [...new Set(state.channels.map((c) => c.name).filter((n) => n !== "hub"))];
  const fields = h("div", { class: "form-grid" },
    pick("f-status", "Status", [["open", "Waiting"], ["assigned", "Assigned"], ["snoozed", "Snoozed"], ["resolved", "Resolved"]], current.status),
    pick("f-channel", "Channel", channels.map((c) => [c, c]), current.channel),
    pick("f-queue", "Queue", state.queues.map((q) => [q.name, q.title]), current.queue),
    pick("f-label", "Label", (state.labels || []).map((l) => [l.name, l.title]), current.label),
    pick("f-agent", "Agent", [...state.agents.values()].map((a) => [a.id, a.name]), current.agent_id),
    h("label", { class: "field" }, h("span", {}, "Customer waiting longer than (minutes)"),
      h("input", { type: "number", id: "f-waiting", min: 1, value: current.waiting_seconds ? Math.round(current.waiting_seconds / 60) : "" })),
    h("label", { class: "field" }, h("span", {}, "Save as (name; leave empty to just apply)"),
      h("input", { type: "text", id: "f-name", maxlength: 80, placeholder: "e.g. Refunds waiting 30 min" })),
    ["admin", "supervisor"].includes(state.me.role)
      ? h("label", { class: "check" }, h("input", { type: "checkbox", id: "f-shared" }), "Share with the team") : null);
  const error = h("div", { class: "form-error", role: "alert" });
  const dlg = modal("Filter the inbox", [fields, error], "Apply", async () => {
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
      toast(`View “${name}” saved.`, "ok");
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
    } }, `Delete “${currentView().name}”`));
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
    "aria-label": `Select the conversation with ${name}`, checked: state.selected.has(conversationId),
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
  const assign = h("select", { id: "bulk-assign", "aria-label": "Assign the selected", disabled: none, onchange: (e) => {
    const [kind, value] = e.target.value.split(":");
    if (kind) bulk("assign", kind === "queue" ? { queue: value } : { agent_id: Number(value) });
  } }, h("option", { value: "" }, "Assign…"),
  h("option", { value: `agent:${state.me.id}` }, "To me"),
  [...state.agents.values()].filter((a) => a.id !== state.me.id).map((a) => h("option", { value: `agent:${a.id}` }, a.name)),
  state.queues.map((q) => h("option", { value: `queue:${q.name}` }, `Queue: ${q.title}`)));
  const label = h("select", { id: "bulk-label", "aria-label": "Label the selected", disabled: none || !(state.labels || []).length,
    onchange: (e) => {
      const [action, name] = e.target.value.split(":");
      if (action) bulk(action, { label: name });
    } }, h("option", { value: "" }, "Label…"),
  (state.labels || []).map((l) => h("option", { value: `label:${l.name}` }, `Add ${l.title}`)),
  (state.labels || []).map((l) => h("option", { value: `unlabel:${l.name}` }, `Remove ${l.title}`)));
  const snooze = h("select", { id: "bulk-snooze", "aria-label": "Snooze the selected", disabled: none, onchange: (e) => {
    const choice = snoozeChoices()[Number(e.target.value)];
    if (choice) bulk("snooze", choice.until ? { until: choice.until } : {});
  } }, h("option", { value: "" }, "Snooze…"), snoozeChoices().map((c, i) => h("option", { value: i }, c.label)));
  clear(els.bulk).append(
    h("span", { class: "bulk-count", id: "bulk-count" }, `${n} selected`),
    assign, label, snooze,
    h("button", { class: "btn btn-small", id: "bulk-resolve", type: "button", disabled: none, onclick: () => bulk("resolve", {}) },
      icon("resolve"), "Resolve"),
    h("button", { class: "icon-btn", type: "button", "aria-label": "Stop selecting", title: "Stop selecting",
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
  const verb = { assign: "Assigned", label: "Labeled", unlabel: "Label removed from", resolve: "Resolved", snooze: "Snoozed" }[action];
  if (!failed.length) toast(`${verb} ${result.done} conversation${result.done === 1 ? "" : "s"}.`, "ok");
  else toast(`${verb} ${result.done}; ${failed.length} not: ${failed.map((r) => `#${r.id} ${r.error}`).join("; ")}`, "error", 10000);
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
    { label: "Until the customer replies", until: null },
    { label: "1 hour", until: new Date(now.getTime() + 3600e3).toISOString() },
    { label: "4 hours", until: new Date(now.getTime() + 4 * 3600e3).toISOString() },
    { label: "Tomorrow 9:00", until: at(1, 9).toISOString() },
    { label: "Next Monday 9:00", until: at(monday, 9).toISOString() },
  ];
}

// Ask how long; RUN(until or null) snoozes. The customer's message always wakes it early.
export function chooseSnooze(run) {
  const choices = snoozeChoices();
  const custom = h("input", { type: "datetime-local", id: "snooze-custom", "aria-label": "Until a date and time" });
  const list = h("div", { class: "snooze-choices", role: "radiogroup", "aria-label": "Snooze until" },
    choices.map((c, i) => h("label", { class: "check" },
      h("input", { type: "radio", name: "snooze", value: String(i), checked: i === 0 }), c.label)),
    h("label", { class: "check" }, h("input", { type: "radio", name: "snooze", value: "custom" }), "Until…", custom));
  custom.addEventListener("focus", () => { list.querySelector('input[value="custom"]').checked = true; });
  const error = h("div", { class: "form-error", role: "alert" });
  modal("Snooze", [list, h("p", { class: "muted" }, "It leaves your inbox and frees your capacity. It comes back to you as an offer at that time, or as soon as the customer writes."), error],
    "Snooze", async () => {
      const chosen = list.querySelector("input[name=snooze]:checked").value;
      let until = null;
      if (chosen === "custom") {
        if (!custom.value) {
          error.textContent = "Pick a date and time.";
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
  if (!snooze.until) return "Snoozed until the customer replies";
  const when = new Date(Date.parse(snooze.until.replace(/(\.\d{3})\d+/, "$1")));
  return `Snoozed until ${when.toLocaleString([], { weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })}`;
}

export function describeWake(d) {
  const who = d.conversation ? `#${d.conversation.id}` : "";
  return d.reason === "message" ? `The customer wrote: snoozed conversation ${who} is back`
    : `Snoozed conversation ${who} is back`;
}

export { displayName };
