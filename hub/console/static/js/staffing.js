// Reports › Staffing: next week's agents per hour (Erlang C over the forecast volume, and Erlang A with the measured
// patience), and last week's agents needed against those available, for supervisors and admins.
// The assumptions are the supervisor's to set (handle time, target, goal, chats at once), and the model's error on
// past weeks is shown beside it so the forecast can be judged.
import { h, clear } from "./dom.js";
import { api } from "./api.js";
import { t, formatNumber, formatDate } from "./i18n.js";

// Monday to Sunday in the console's language (1 January 2024 was a Monday).
const DAYS = () => [...Array(7).keys()].map((i) => formatDate(new Date(2024, 0, 1 + i), { weekday: "short" }));
const FIELDS = [
  ["handle_seconds", () => t("staffing.handle"), 300, 1, 86400],
  ["target_seconds", () => t("staffing.target"), 60, 0, 86400],
  ["goal", () => t("staffing.goal"), 0.8, 0.01, 0.999],
  ["concurrency", () => t("staffing.concurrency"), 1, 1, 20],
];
const chosen = Object.fromEntries(FIELDS.map(([k, , v]) => [k, v]));

function query(filter) {
  // This week (it began on Monday) and the next: the grid shows the next, which a supervisor can still staff.
  const q = new URLSearchParams({ weeks: "2", tz: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" });
  for (const [k] of FIELDS) q.set(k, String(chosen[k]));
  if (filter) {
    const [dim, value] = filter.split(":");
    q.set(dim, value);
  }
  return q;
}

function grid(all) {
  // The API answers hour by hour from this Monday 00:00 in the viewer's zone; next week is the second 168.
  const hours = all.slice(168, 336);
  const days = DAYS();
  const cells = days.map((_, d) => hours.slice(d * 24, d * 24 + 24));
  const top = Math.max(1, ...hours.map((x) => x.agents));
  return h("table", { class: "heatmap staffing-grid", id: "staffing-grid" },
    h("thead", {}, h("tr", {}, h("th", {}), [...Array(24).keys()].map((hr) => h("th", {}, hr % 3 === 0 ? String(hr) : "")))),
    h("tbody", {}, cells.map((row, d) => h("tr", {}, h("th", {}, days[d]),
      row.map((x, hr) => h("td", {
        title: `${days[d]} ${hr}:00 — ${t("staffing.cell", { contacts: formatNumber(x.contacts, { minimumFractionDigits: 1, maximumFractionDigits: 1 }), agents: x.agents })}` +
          (x.agents_erlang_a === null || x.agents_erlang_a === undefined ? "" : ` · ${t("staffing.cell_a", { agents: x.agents_erlang_a })}`),
        "data-agents-a": x.agents_erlang_a ?? "",
        "data-agents": x.agents,
        style: { background: x.agents ? `rgba(67, 83, 214, ${(0.1 + 0.9 * x.agents / top).toFixed(2)})` : "",
          color: x.agents / top > 0.45 ? "#fff" : "" },
      }, x.agents ? String(x.agents) : ""))))));
}

// Last week as it happened: the agents its volume needed against those who were available (presence history).
// A cell reads "available / needed"; short hours are marked. Needed is Erlang A when abandonment was measured.
function lastWeek(hours) {
  const days = DAYS();
  const cells = days.map((_, d) => hours.slice(d * 24, d * 24 + 24));
  const needed = (x) => x.agents_erlang_a ?? x.agents;
  const short = hours.filter((x) => x.available !== null && x.available < needed(x)).length;
  return h("div", { id: "staffing-last-week" },
    h("h3", {}, t("staffing.last_week")),
    h("p", { class: "muted", id: "staffing-short" }, short ? t("staffing.short", { count: short }) : t("staffing.never_short")),
    h("table", { class: "heatmap staffing-grid staffing-compare" },
      h("thead", {}, h("tr", {}, h("th", {}), [...Array(24).keys()].map((hr) => h("th", {}, hr % 3 === 0 ? String(hr) : "")))),
      h("tbody", {}, cells.map((row, d) => h("tr", {}, h("th", {}, days[d]),
        row.map((x, hr) => {
          const want = needed(x);
          const have = x.available === null ? null : Math.round(x.available * 10) / 10;
          const low = have !== null && have < want;
          return h("td", {
            class: low ? "short" : "",
            title: `${days[d]} ${hr}:00 — ${t("staffing.compare_cell", { contacts: x.contacts, needed: want, available: have ?? "—" })}`,
            "data-needed": want, "data-available": have ?? "",
          }, want || have ? `${have ?? "—"}/${want}` : "");
        }))))));
}

export function staffingPanel(filter) {
  const body = h("div", { id: "staffing-body" }, h("div", { class: "loading" }, t("staffing.forecasting")));
  const load = async () => {
    let data;
    try {
      data = await api.get(`/api/v1/reports/staffing?${query(filter)}`);
    } catch (err) {
      clear(body).append(h("div", { class: "notice" }, err.message));
      return;
    }
    const wape = data.model.held_out_wape;
    const peak = Math.max(0, ...data.hours.slice(168).map((x) => x.agents));
    const a = data.assumptions;
    const peakA = a.patience_seconds === null ? null : Math.max(0, ...data.hours.slice(168).map((x) => x.agents_erlang_a || 0));
    clear(body).append(
      h("p", { class: "muted", id: "staffing-summary" },
        `${t("staffing.from", { contacts: data.history.contacts, weeks: data.history.weeks, peak })} `,
        wape === null ? t("staffing.little_history")
          : t("staffing.error", { share: formatNumber(Math.round(wape * 100) / 100, { style: "percent" }) })),
      h("p", { class: "muted", id: "staffing-abandonment" }, a.patience_seconds === null ? t("staffing.no_abandonment")
        : t("staffing.abandonment", { seconds: Math.round(a.patience_seconds), peak_a: peakA, peak,
          how: a.patience_measured ? t("staffing.measured", { abandoned: a.abandoned, answered: a.answered })
            : t("staffing.given") })),
      grid(data.hours),
      lastWeek(data.last_week));
  };
  const inputs = FIELDS.map(([k, label, , min, max]) => h("label", { class: "field inline" }, h("span", {}, label()),
    h("input", { type: "number", id: `staffing-${k}`, value: String(chosen[k]), min: String(min), max: String(max),
      step: k === "goal" ? "0.05" : "1",
      onchange: (e) => { const v = Number(e.target.value); if (v >= min && v <= max) { chosen[k] = v; load(); } } })));
  const csv = h("a", { class: "btn btn-small", download: "",
    onclick: (e) => { const q = query(filter); q.set("format", "csv"); e.currentTarget.href = `/api/v1/reports/staffing?${q}`; } },
    t("reports.export_csv"));
  load();
  return h("section", { class: "panel", id: "staffing" },
    h("header", { class: "panel-head" },
      h("div", {}, h("h2", {}, t("staffing.title")),
        h("p", { class: "muted" }, t("staffing.explain"))),
      csv),
    h("div", { class: "staffing-controls" }, inputs),
    body);
}
