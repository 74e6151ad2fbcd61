// "Needs attention" (supervisors and admins): every event the hub could not place, of every channel, with who sent
// it and why; replay it, attach it to a customer, or dismiss it with a note. Every action is kept with the event.
import { h, icon, clear, ago, channelLabel, debounce } from "./dom.js";
import { api } from "./api.js";
import { toast } from "./state.js";

let root = null;
let side = null;
let filters = { channel: "", reason: "" };
let items = [];
let total = 0;
let onChange = () => {};

// Where the header's badge learns the count; called after every action and every few seconds.
export function setOnChange(fn) {
  onChange = fn;
}

// The page's query: the badge counts exactly what the page lists, with its filters (over all its pages).
function query(limit) {
  const q = new URLSearchParams({ limit: String(limit) });
  if (filters.channel) q.set("channel", filters.channel);
  if (filters.reason) q.set("reason", filters.reason);
  return q;
}

export async function attentionCount() {
  const page = await api.get(`/api/v1/attention?${query(1)}`);
  return page.count;
}

export async function showAttention(main, aside) {
  root = main;
  side = aside;
  clear(side);
  side.classList.add("hidden");
  clear(main).append(h("div", { class: "loading" }, "Loading…"));
  await refresh();
}

async function refresh(selected) {
  const page = await api.get(`/api/v1/attention?${query(200)}`);
  items = page.items;
  total = page.count;
  onChange(page.count);
  render();
  if (selected) await showEvent(selected);
}

function options(values, current, all) {
  return [h("option", { value: "" }, all),
    ...[...new Set([...values, current].filter(Boolean))].sort().map((v) => h("option", { value: v, selected: v === current }, v))];
}

function render() {
  if (!root || !root.isConnected) return;
  const channel = h("select", { id: "attention-channel", "aria-label": "Channel", onchange: (e) => {
    filters.channel = e.target.value;
    refresh();
  } }, options(items.map((i) => i.channel), filters.channel, "Every channel"));
  const reason = h("select", { id: "attention-reason", "aria-label": "Reason", onchange: (e) => {
    filters.reason = e.target.value;
    refresh();
  } }, options(items.map((i) => i.reason), filters.reason, "Every reason"));
  const rows = items.map((i) => h("tr", { "data-event": i.id, class: "clickable", tabindex: "0",
    onclick: () => showEvent(i.id), onkeydown: (e) => e.key === "Enter" && showEvent(i.id) },
    h("td", { title: i.received_at }, ago(i.received_at)),
    h("td", {}, channelLabel(i.channel)),
    h("td", {}, h("span", { class: `badge reason-${i.reason}` }, i.reason)),
    h("td", { class: "attention-sender" }, i.sender || h("span", { class: "muted" }, "unknown")),
    h("td", { class: "attention-summary" }, i.summary || h("span", { class: "muted" }, "(nothing readable)")),
    h("td", { class: "attention-why muted" }, i.error)));
  clear(root).append(h("section", { class: "admin-page", id: "attention" },
    h("header", { class: "admin-head" }, h("h1", {}, "Needs attention"),
      h("p", { class: "muted" }, "What the hub kept but could not place. Replay it after a fix, attach it to a customer, "
        + "or dismiss it with a note."),
      h("div", { class: "filters" }, channel, reason),
      h("p", { class: "muted", id: "attention-count" }, `${total} waiting`
        + (filters.channel || filters.reason ? " with these filters" : "")
        + (items.length < total ? `; the newest ${items.length} shown` : ""))),
    items.length
      ? h("table", { class: "admin-table", id: "attention-table" },
        h("thead", {}, h("tr", {}, ["When", "Channel", "Reason", "From", "Subject or first line", "Why"].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows))
      : h("div", { class: "empty-state", id: "attention-empty" }, icon("inbox", "big"), h("h2", {}, "Nothing needs attention"))));
}

async function showEvent(id) {
  const e = await api.get(`/api/v1/attention/${id}`);
  for (const tr of root.querySelectorAll("tr[data-event]")) tr.classList.toggle("selected", Number(tr.dataset.event) === id);
  const note = h("textarea", { id: "attention-note", rows: 2, placeholder: "A note (why; kept with the event)" });
  // Pick a customer by name, phone or email (search suggests them by id), or type a new one's identity.
  const found = h("datalist", { id: "attention-customers" });
  const who = h("input", { id: "attention-customer", list: "attention-customers", autocomplete: "off",
    placeholder: "Find a customer, or email:ann@example.com", oninput: debounce(async () => {
      const q = who.value.trim();
      if (q.length < 2 || /^\d+$/.test(q) || /^\w+:/.test(q)) return;
      const r = await api.get(`/api/v1/search?q=${encodeURIComponent(q)}&limit=8`).catch(() => null);
      if (!r) return;
      clear(found).append(...r.customers.map((c) => h("option", { value: String(c.id) },
        `${c.name || "(no name)"} · ${c.identities.map((i) => i.value).join(", ")}`)));
    }, 200) });
  const name = h("input", { id: "attention-name", placeholder: "Name (for a new customer)" });
  const open = ["failed", "rejected"].includes(e.status);
  const act = async (action, body) => {
    try {
      const r = await api.post(`/api/v1/attention/${id}/${action}`, body);
      toast(`${action}: ${r.outcome}`);
      await refresh(id);
    } catch (err) {
      toast(err.message, "error");
    }
  };
  side.classList.remove("hidden");
  clear(side).append(h("div", { class: "attention-detail", id: "attention-detail", "data-event": id },
    h("h2", {}, `Event ${e.id}`, " ", h("span", { class: `badge status-${e.status}`, id: "attention-status" }, e.status)),
    h("dl", {},
      h("dt", {}, "From"), h("dd", {}, e.sender || "unknown"),
      h("dt", {}, "About"), h("dd", {}, e.summary || "(nothing readable)"),
      h("dt", {}, "Why"), h("dd", { id: "attention-error" }, e.error),
      h("dt", {}, "Received"), h("dd", {}, `${e.received_at} · ${channelLabel(e.channel)}`),
      e.message_id ? [h("dt", {}, "Stored as"), h("dd", {}, `message ${e.message_id}`)] : null),
    h("h3", {}, "Raw ", h("a", { href: `/api/v1/attention/${id}/raw`, download: "", id: "attention-download" }, `download ${e.raw.filename}`)),
    // textContent: what a stranger sent is shown as text, never as markup.
    h("pre", { class: "raw", id: "attention-raw" }, e.raw.text),
    open ? h("div", { class: "attention-actions" },
      note,
      h("div", { class: "row" },
        h("button", { class: "btn", id: "attention-replay", onclick: () => act("replay", { note: note.value || null }) }, "Replay"),
        h("button", { class: "btn", id: "attention-dismiss", onclick: () => {
          if (!note.value.trim()) return toast("Say why in the note first", "error");
          act("dismiss", { note: note.value });
        } }, "Dismiss")),
      h("div", { class: "row" }, who, found, name,
        h("button", { class: "btn btn-primary", id: "attention-attach", onclick: () => {
          const v = who.value.trim();
          const target = /^\d+$/.test(v) ? { customer_id: Number(v) } : { identity: v, name: name.value || null };
          act("attach", { ...target, note: note.value || null });
        } }, "Attach to customer"))) : null,
    h("h3", {}, "Actions"),
    h("ul", { class: "attention-log", id: "attention-log" }, e.actions.length
      ? e.actions.map((a) => h("li", {}, `${a.created_at} · ${a.action} by ${a.actor}: ${a.outcome}`, a.note ? ` (${a.note})` : ""))
      : h("li", { class: "muted" }, "none yet"))));
}
