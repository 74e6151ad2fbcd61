// "Needs attention" (supervisors and admins): every event the hub could not place, of every channel, with who sent
// it and why; replay it, attach it to a customer, or dismiss it with a note. Every action is kept with the event.
import { h, icon, clear, ago, channelLabel, debounce } from "./dom.js";
import { api } from "./api.js";
import { toast } from "./state.js";
import { t } from "./i18n.js";

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
  clear(main).append(h("div", { class: "loading" }, t("common.loading")));
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
  const channel = h("select", { id: "attention-channel", "aria-label": t("reports.channel"), onchange: (e) => {
    filters.channel = e.target.value;
    refresh();
  } }, options(items.map((i) => i.channel), filters.channel, t("attention.every_channel")));
  const reason = h("select", { id: "attention-reason", "aria-label": t("attention.reason"), onchange: (e) => {
    filters.reason = e.target.value;
    refresh();
  } }, options(items.map((i) => i.reason), filters.reason, t("attention.every_reason")));
  const rows = items.map((i) => h("tr", { "data-event": i.id, class: "clickable", tabindex: "0",
    onclick: () => showEvent(i.id), onkeydown: (e) => e.key === "Enter" && showEvent(i.id) },
    h("td", { title: i.received_at }, ago(i.received_at)),
    h("td", {}, channelLabel(i.channel)),
    h("td", {}, h("span", { class: `badge reason-${i.reason}` }, i.reason)),
    h("td", { class: "attention-sender" }, i.sender || h("span", { class: "muted" }, "unknown")),
    h("td", { class: "attention-summary" }, i.summary || h("span", { class: "muted" }, "(nothing readable)")),
    h("td", { class: "attention-why muted" }, i.error)));
  clear(root).append(h("section", { class: "admin-page", id: "attention" },
    h("header", { class: "admin-head" }, h("h1", {}, t("nav.attention")),
      h("p", { class: "muted" }, t("attention.explain")),
      h("div", { class: "filters" }, channel, reason),
      h("p", { class: "muted", id: "attention-count" }, (filters.channel || filters.reason ? t("attention.waiting_filtered", { count: total }) : t("attention.waiting", { count: total }))
        + (items.length < total ? t("attention.newest_shown", { count: items.length }) : ""))),
    items.length
      ? h("table", { class: "admin-table", id: "attention-table" },
        h("thead", {}, h("tr", {}, [t("attention.when"), t("reports.channel"), t("attention.reason"), t("attention.from"), t("attention.subject"), t("attention.why")].map((title) => h("th", {}, title)))),
        h("tbody", {}, rows))
      : h("div", { class: "empty-state", id: "attention-empty" }, icon("inbox", "big"), h("h2", {}, t("attention.nothing")))));
}

async function showEvent(id) {
  const e = await api.get(`/api/v1/attention/${id}`);
  for (const tr of root.querySelectorAll("tr[data-event]")) tr.classList.toggle("selected", Number(tr.dataset.event) === id);
  const note = h("textarea", { id: "attention-note", rows: 2, placeholder: t("attention.note") });
  // Pick a customer by name, phone or email (search suggests them by id), or type a new one's identity.
  const found = h("datalist", { id: "attention-customers" });
  const who = h("input", { id: "attention-customer", list: "attention-customers", autocomplete: "off",
    placeholder: t("attention.find_customer"), oninput: debounce(async () => {
      const q = who.value.trim();
      if (q.length < 2 || /^\d+$/.test(q) || /^\w+:/.test(q)) return;
      const r = await api.get(`/api/v1/search?q=${encodeURIComponent(q)}&limit=8`).catch(() => null);
      if (!r) return;
      clear(found).append(...r.customers.map((c) => h("option", { value: String(c.id) },
        `${c.name || t("attention.no_name")} · ${c.identities.map((i) => i.value).join(", ")}`)));
    }, 200) });
  const name = h("input", { id: "attention-name", placeholder: t("attention.new_name") });
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
    h("h2", {}, t("attention.event", { id: e.id }), " ", h("span", { class: `badge status-${e.status}`, id: "attention-status" }, e.status)),
    h("dl", {},
      h("dt", {}, t("attention.from")), h("dd", {}, e.sender || t("attention.unknown")),
      h("dt", {}, t("attention.about")), h("dd", {}, e.summary || t("attention.unreadable")),
      h("dt", {}, t("attention.why")), h("dd", { id: "attention-error" }, e.error),
      h("dt", {}, t("attention.received")), h("dd", {}, `${e.received_at} · ${channelLabel(e.channel)}`),
      e.message_id ? [h("dt", {}, t("attention.stored_as")), h("dd", {}, t("attention.message", { id: e.message_id }))] : null),
    h("h3", {}, t("attention.raw"), h("a", { href: `/api/v1/attention/${id}/raw`, download: "", id: "attention-download" }, t("attention.download", { name: e.raw.filename }))),
    // textContent: what a stranger sent is shown as text, never as markup.
    h("pre", { class: "raw", id: "attention-raw" }, e.raw.text),
    open ? h("div", { class: "attention-actions" },
      note,
      h("div", { class: "row" },
        h("button", { class: "btn", id: "attention-replay", onclick: () => act("replay", { note: note.value || null }) }, t("attention.replay")),
        h("button", { class: "btn", id: "attention-dismiss", onclick: () => {
          if (!note.value.trim()) return toast(t("attention.say_why"), "error");
          act("dismiss", { note: note.value });
        } }, t("conv.dismiss"))),
      h("div", { class: "row" }, who, found, name,
        h("button", { class: "btn btn-primary", id: "attention-attach", onclick: () => {
          const v = who.value.trim();
          const target = /^\d+$/.test(v) ? { customer_id: Number(v) } : { identity: v, name: name.value || null };
          act("attach", { ...target, note: note.value || null });
        } }, t("attention.attach")))) : null,
    h("h3", {}, t("attention.actions")),
    h("ul", { class: "attention-log", id: "attention-log" }, e.actions.length
      ? e.actions.map((a) => h("li", {}, `${a.created_at} · ${a.action} by ${a.actor}: ${a.outcome}`, a.note ? ` (${a.note})` : ""))
      : h("li", { class: "muted" }, t("attention.none_yet")))));
}
