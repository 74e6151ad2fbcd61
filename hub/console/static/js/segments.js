// Segments, on the Reports page (admins and supervisors): the RFM groups' sizes, the saved segments with their size,
// trend (drawn as SVG by the hub) and customers a page at a time, a CSV export, and a form to save a new one.
import { h, icon, clear, channelLabel, ago } from "./dom.js";
import { api } from "./api.js";
import { state, toast } from "./state.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const GROUP_TITLES = { champions: "Champions", loyal: "Loyal", at_risk: "At risk", lost: "Lost", other: "Other" };
const open = { id: null, after: 0, pages: [] };

function sparkline(trend) {
  const el = document.createElementNS(SVG_NS, "svg");
  el.setAttribute("viewBox", "0 0 240 48");
  el.setAttribute("class", "segment-trend");
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", `Size over ${trend.length} day(s)`);
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
  const range = (r, unit = "") => [r.min !== undefined ? `≥ ${r.min}${unit}` : null, r.max !== undefined ? `≤ ${r.max}${unit}` : null].filter(Boolean).join(" and ");
  if (c.rfm_group) parts.push(`RFM group ${GROUP_TITLES[c.rfm_group] || c.rfm_group}`);
  if (c.last_contact_days) parts.push(`last contact ${range(c.last_contact_days, " days ago")}`);
  if (c.contacts) parts.push(`contacts ${range(c.contacts)}`);
  if (c.orders) parts.push(`orders ${range(c.orders)}`);
  if (c.order_value) parts.push(`order value ${range(c.order_value)}`);
  if (c.csat) parts.push(`satisfaction ${range(c.csat)}`);
  if (c.channels && c.channels.length) parts.push(`used ${c.channels.map(channelLabel).join(" or ")}`);
  if (c.labels && c.labels.length) parts.push(`labelled ${c.labels.join(" or ")}`);
  for (const a of c.attributes || []) parts.push(`${a.name} ${a.op.replace("_", " ")}${a.value !== undefined ? ` ${a.value}` : ""}`);
  if (c.open_conversation !== undefined) parts.push(c.open_conversation ? "has an open conversation" : "no open conversation");
  return parts.join("; ") || "everyone";
}

function customersTable(items) {
  return h("table", { class: "report-table", id: "segment-customers" },
    h("thead", {}, h("tr", {}, ["Customer", "Contacts", "Last contact", "Orders", "Value", "CSAT", "R", "F", "M", "Group"].map((t) => h("th", {}, t)))),
    h("tbody", {}, items.length ? items.map((c) => h("tr", { "data-customer": c.customer_id },
      h("td", {}, c.name || (c.identities[0] || `#${c.customer_id}`)), h("td", {}, c.contacts),
      h("td", {}, c.last_contact_at ? ago(c.last_contact_at) : "—"), h("td", {}, c.orders),
      h("td", {}, c.order_value.toLocaleString([], { maximumFractionDigits: 2 })),
      h("td", {}, c.csat_average === null ? "—" : String(c.csat_average)),
      h("td", {}, c.recency_score), h("td", {}, c.frequency_score), h("td", {}, c.monetary_score),
      h("td", {}, GROUP_TITLES[c.rfm_group] || c.rfm_group)))
      : h("tr", {}, h("td", { colspan: 10, class: "muted" }, "No customers in this segment."))));
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
      h("div", { class: "segment-size" }, h("strong", { id: "segment-size" }, `${seg.size.toLocaleString()} customers`),
        sparkline(seg.trend), h("small", { class: "muted" }, `since ${seg.trend.length ? seg.trend[0].day : "today"}`)),
      h("a", { class: "btn btn-small", href: `/api/v1/segments/${id}/customers?format=csv`, download: "" }, "Export CSV")),
    customersTable(page.items),
    h("div", { class: "report-controls" },
      after ? h("button", { class: "btn btn-small", onclick: () => detail(box, id, open.pages.pop() || 0) }, "Previous") : null,
      page.next ? h("button", { class: "btn btn-small", id: "segment-next",
        onclick: () => { open.pages.push(after); detail(box, id, page.next); } }, "Next page") : null)));
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
      out.textContent = `${r.size.toLocaleString()} customers`;
    } catch (err) {
      out.textContent = err.message;
    }
  };
  const save = async (e) => {
    e.preventDefault();
    try {
      const seg = await api.post("/api/v1/segments", { name: value("seg-name"), criteria: criteria() });
      toast(`Segment “${seg.name}” saved`);
      onSaved(seg.id);
    } catch (err) {
      out.textContent = err.message;
    }
  };
  return h("form", { class: "segment-form", id: "segment-form", onsubmit: save },
    h("label", {}, "Name", h("input", { id: "seg-name", required: true, maxlength: 120, placeholder: "Big spenders" })),
    number("seg-days", "Last contact within (days)", "any"), number("seg-contacts", "Contacts at least", "any"),
    number("seg-value", "Order value at least", "any"), number("seg-csat", "Satisfaction at most (1-5)", "any"),
    h("label", {}, "Channel", h("select", { id: "seg-channel" }, h("option", { value: "" }, "any"),
      state.channels.map((c) => h("option", { value: c.name }, channelLabel(c.name))))),
    h("label", {}, "Label", h("input", { id: "seg-label", maxlength: 64, placeholder: "any" })),
    h("label", {}, "Attribute (name or name=value)", h("input", { id: "seg-attr", maxlength: 200, placeholder: "plan=gold" })),
    h("label", {}, "Open conversation", h("select", { id: "seg-open" }, [["", "either"], ["yes", "yes"], ["no", "no"]].map(([v, t]) => h("option", { value: v }, t)))),
    h("label", {}, "RFM group", h("select", { id: "seg-group" }, h("option", { value: "" }, "any"),
      Object.entries(GROUP_TITLES).map(([v, t]) => h("option", { value: v }, t)))),
    h("button", { type: "button", class: "btn btn-small", onclick: preview }, "Preview"),
    h("button", { type: "submit", class: "btn btn-small btn-primary", id: "segment-save" }, "Save segment"), out);
}

export async function segmentsPanel() {
  const panel = h("section", { class: "panel", id: "segments" }, h("h2", {}, "Segments"), h("div", { class: "loading" }, "Loading segments…"));
  let rfm, list;
  try {
    [rfm, list] = await Promise.all([api.get("/api/v1/segments/rfm"), api.get("/api/v1/segments")]);
  } catch (err) {
    clear(panel).append(h("h2", {}, "Segments"), h("div", { class: "notice" }, icon("alert"), err.message));
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
    h("header", { class: "panel-head" }, h("div", {}, h("h2", {}, "Segments"),
      h("p", { class: "muted" }, `RFM groups of ${rfm.customers.toLocaleString()} customers (recency, frequency, order value; see docs/reports.md)`))),
    h("div", { class: "rfm-groups", id: "rfm-groups" }, rfm.groups.map((g) => h("div", { class: "rfm-group", "data-group": g.group, title: g.rule },
      h("span", { class: "muted" }, GROUP_TITLES[g.group] || g.group), h("strong", {}, g.size.toLocaleString())))),
    h("table", { class: "report-table", id: "segment-list" },
      h("thead", {}, h("tr", {}, h("th", {}, "Segment"), h("th", {}, "Criteria"), h("th", {}, "Size"), h("th", {}))),
      h("tbody", {}, list.items.map((s) => h("tr", { "data-segment": s.id },
        h("td", {}, s.name), h("td", { class: "muted" }, criteriaText(s.criteria)),
        h("td", {}, s.size === null ? "—" : s.size.toLocaleString()),
        h("td", {}, h("button", { class: "btn btn-small", onclick: () => detail(box, s.id) }, "Open")))))),
    form((id) => reload(id)), box);
  return panel;
}
