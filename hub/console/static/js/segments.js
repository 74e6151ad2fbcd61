// Segments, on the Reports page (admins and supervisors): the RFM groups' sizes, the saved segments with their size,
// trend (drawn as SVG by the hub) and customers a page at a time, a CSV export, and a form to save a new one.
import { h, icon, clear, channelLabel, ago } from "./dom.js";
import { api } from "./api.js";
import { state, toast } from "./state.js";
import { t, formatNumber } from "./i18n.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const GROUP_TITLES = () => ({ champions: t("rfm.champions"), loyal: t("rfm.loyal"), at_risk: t("rfm.at_risk"), lost: t("rfm.lost"),
  other: t("rfm.other") });
const open = { id: null, after: 0, pages: [] };

function sparkline(trend) {
  const el = document.createElementNS(SVG_NS, "svg");
  el.setAttribute("viewBox", "0 0 240 48");
  el.setAttribute("class", "segment-trend");
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", t("segments.size_over", { count: trend.length }));
  const top = Math.max(1, ...trend.map((t) => t.size));
  const step = 240 / Math.max(1, trend.length - 1);
  const line = document.createElementNS(SVG_NS, "polyline");
  line.setAttribute("points", (trend.length === 1 ? [trend[0], trend[0]] : trend)
    .map((t, i) => `${(i * (trend.length === 1 ? 240 : step)).toFixed(1)},${(44 - 40 * t.size / top).toFixed(1)}`).join(" "));
  el.append(line);
  return el;
}

function criteriaText(c) {
  const parts = [];
  const range = (r, days = false) => [r.min !== undefined ? `≥ ${r.min}` : null, r.max !== undefined ? `≤ ${r.max}` : null]
    .filter(Boolean).map((x) => (days ? t("segments.days_ago", { n: x }) : x)).join(t("segments.and"));
  if (c.rfm_group) parts.push(t("segments.rfm_group", { name: GROUP_TITLES()[c.rfm_group] || c.rfm_group }));
  if (c.last_contact_days) parts.push(t("segments.last_contact_is", { range: range(c.last_contact_days, true) }));
  if (c.contacts) parts.push(t("segments.contacts_is", { range: range(c.contacts) }));
  if (c.orders) parts.push(t("segments.orders_is", { range: range(c.orders) }));
  if (c.order_value) parts.push(t("segments.value_is", { range: range(c.order_value) }));
  if (c.csat) parts.push(t("segments.csat_is", { range: range(c.csat) }));
  if (c.channels && c.channels.length) parts.push(t("segments.used", { channels: c.channels.map(channelLabel).join(t("segments.or")) }));
  if (c.labels && c.labels.length) parts.push(t("segments.labelled", { labels: c.labels.join(t("segments.or")) }));
  for (const a of c.attributes || []) parts.push(`${a.name} ${a.op.replace("_", " ")}${a.value !== undefined ? ` ${a.value}` : ""}`);
  if (c.open_conversation !== undefined) parts.push(c.open_conversation ? t("segments.has_open") : t("segments.no_open"));
  return parts.join("; ") || t("segments.everyone");
}

function customersTable(items) {
  return h("table", { class: "report-table", id: "segment-customers" },
    h("thead", {}, h("tr", {}, [t("segments.customer"), t("segments.contacts"), t("segments.last_contact"), t("segments.orders"), t("segments.value"), t("reports.csat"),
      "R", "F", "M", t("segments.group")].map((title) => h("th", {}, title)))),
    h("tbody", {}, items.length ? items.map((c) => h("tr", { "data-customer": c.customer_id },
      h("td", {}, c.name || (c.identities[0] || `#${c.customer_id}`)), h("td", {}, c.contacts),
      h("td", {}, c.last_contact_at ? ago(c.last_contact_at) : "—"), h("td", {}, c.orders),
      h("td", {}, formatNumber(c.order_value, { maximumFractionDigits: 2 })),
      h("td", {}, c.csat_average === null ? "—" : String(c.csat_average)),
      h("td", {}, c.recency_score), h("td", {}, c.frequency_score), h("td", {}, c.monetary_score),
      h("td", {}, GROUP_TITLES()[c.rfm_group] || c.rfm_group)))
      : h("tr", {}, h("td", { colspan: 10, class: "muted" }, t("segments.no_customers")))));
}

async function detail(box, id, after = 0) {
  let seg, page;
  try {
    [seg, page] = await Promise.all([api.get(`/api/v1/segments/${id}`),
      api.get(`/api/v1/segments/${id}/customers?limit=25&after=${after}`)]);
  } catch (err) {
    clear(box).append(h("div", { class: "notice" }, icon("alert"), err.message));
    return;
  }
  open.id = id;
  clear(box).append(h("div", { class: "segment-detail", id: "segment-detail", "data-segment": id },
    h("header", { class: "panel-head" },
      h("div", {}, h("h2", {}, seg.name), h("p", { class: "muted" }, criteriaText(seg.criteria))),
      h("div", { class: "segment-size" }, h("strong", { id: "segment-size" }, t("segments.customers", { count: seg.size })),
        sparkline(seg.trend), h("small", { class: "muted" }, seg.trend.length ? t("segments.since", { day: seg.trend[0].day }) : t("segments.since_today"))),
      h("a", { class: "btn btn-small", href: `/api/v1/segments/${id}/customers?format=csv`, download: "" }, t("reports.export_csv"))),
    customersTable(page.items),
    h("div", { class: "report-controls" },
      after ? h("button", { class: "btn btn-small", onclick: () => detail(box, id, open.pages.pop() || 0) }, t("segments.previous")) : null,
      page.next ? h("button", { class: "btn btn-small", id: "segment-next",
        onclick: () => { open.pages.push(after); detail(box, id, page.next); } }, t("segments.next")) : null)));
}

function number(id, label, placeholder) {
  return h("label", {}, label, h("input", { type: "number", id, min: 0, step: "any", placeholder }));
}

function form(onSaved) {
  const value = (id) => document.getElementById(id).value.trim();
  const criteria = () => {
    const c = {};
    const n = (id) => (value(id) === "" ? undefined : Number(value(id)));
    if (n("seg-days") !== undefined) c.last_contact_days = { max: n("seg-days") };
    if (n("seg-contacts") !== undefined) c.contacts = { min: n("seg-contacts") };
    if (n("seg-value") !== undefined) c.order_value = { min: n("seg-value") };
    if (n("seg-csat") !== undefined) c.csat = { max: n("seg-csat") };
    if (value("seg-channel")) c.channels = [value("seg-channel")];
    if (value("seg-label")) c.labels = [value("seg-label")];
    if (value("seg-attr")) {
      const [name, ...rest] = value("seg-attr").split("=");
      c.attributes = [rest.length ? { name: name.trim(), op: "is", value: rest.join("=").trim() } : { name: name.trim(), op: "present" }];
    }
    if (value("seg-open")) c.open_conversation = value("seg-open") === "yes";
    if (value("seg-group")) c.rfm_group = value("seg-group");
    return c;
  };
  const out = h("span", { class: "muted", id: "segment-preview" });
  const preview = async () => {
    try {
      const r = await api.post("/api/v1/segments/preview", criteria());
      out.textContent = t("segments.customers", { count: r.size });
    } catch (err) {
      out.textContent = err.message;
    }
  };
  const save = async (e) => {
    e.preventDefault();
    try {
      const seg = await api.post("/api/v1/segments", { name: value("seg-name"), criteria: criteria() });
      toast(t("segments.saved", { name: seg.name }));
      onSaved(seg.id);
    } catch (err) {
      out.textContent = err.message;
    }
  };
  return h("form", { class: "segment-form", id: "segment-form", onsubmit: save },
    h("label", {}, t("labels.name"), h("input", { id: "seg-name", required: true, maxlength: 120, placeholder: t("segments.name_placeholder") })),
    number("seg-days", t("segments.f_days"), t("segments.any")), number("seg-contacts", t("segments.f_contacts"), t("segments.any")),
    number("seg-value", t("segments.f_value"), t("segments.any")), number("seg-csat", t("segments.f_csat"), t("segments.any")),
    h("label", {}, t("reports.channel"), h("select", { id: "seg-channel" }, h("option", { value: "" }, t("segments.any")),
      state.channels.map((c) => h("option", { value: c.name }, channelLabel(c.name))))),
    h("label", {}, t("reports.label"), h("input", { id: "seg-label", maxlength: 64, placeholder: t("segments.any") })),
    h("label", {}, t("segments.f_attr"), h("input", { id: "seg-attr", maxlength: 200, placeholder: "plan=gold" })),
    h("label", {}, t("segments.f_open"), h("select", { id: "seg-open" },
      [["", t("segments.either")], ["yes", t("segments.yes")], ["no", t("segments.no")]].map(([v, text]) => h("option", { value: v }, text)))),
    h("label", {}, t("segments.f_group"), h("select", { id: "seg-group" }, h("option", { value: "" }, t("segments.any")),
      Object.entries(GROUP_TITLES()).map(([v, text]) => h("option", { value: v }, text)))),
    h("button", { type: "button", class: "btn btn-small", onclick: preview }, t("segments.preview")),
    h("button", { type: "submit", class: "btn btn-small btn-primary", id: "segment-save" }, t("segments.save")), out);
}

export async function segmentsPanel() {
  const panel = h("section", { class: "panel", id: "segments" }, h("h2", {}, t("segments.title")), h("div", { class: "loading" }, t("segments.loading")));
  let rfm, list;
  try {
    [rfm, list] = await Promise.all([api.get("/api/v1/segments/rfm"), api.get("/api/v1/segments")]);
  } catch (err) {
    clear(panel).append(h("h2", {}, t("segments.title")), h("div", { class: "notice" }, icon("alert"), err.message));
    return panel;
  }
  const box = h("div", {});
  const reload = async (id) => {
    const fresh = await segmentsPanel();
    panel.replaceWith(fresh);
    if (id) detail(fresh.querySelector(".segment-box"), id);
  };
  box.className = "segment-box";
  clear(panel).append(
    h("header", { class: "panel-head" }, h("div", {}, h("h2", {}, t("segments.title")),
      h("p", { class: "muted" }, t("segments.rfm_explain", { count: rfm.customers })))),
    h("div", { class: "rfm-groups", id: "rfm-groups" }, rfm.groups.map((g) => h("div", { class: "rfm-group", "data-group": g.group, title: g.rule },
      h("span", { class: "muted" }, GROUP_TITLES()[g.group] || g.group), h("strong", {}, formatNumber(g.size))))),
    h("table", { class: "report-table", id: "segment-list" },
      h("thead", {}, h("tr", {}, h("th", {}, t("segments.segment")), h("th", {}, t("segments.criteria")), h("th", {}, t("segments.size")), h("th", {}))),
      h("tbody", {}, list.items.map((s) => h("tr", { "data-segment": s.id },
        h("td", {}, s.name), h("td", { class: "muted" }, criteriaText(s.criteria)),
        h("td", {}, s.size === null ? "—" : formatNumber(s.size)),
        h("td", {}, h("button", { class: "btn btn-small", onclick: () => detail(box, s.id) }, t("notify.open"))))))),
    form((id) => reload(id)), box);
  return panel;
}
