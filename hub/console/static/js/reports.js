// Reports: the contact center's figures over a range, against the period before, as cards, an SVG chart, a
// breakdown table (CSV export of each) and an hour-of-week heatmap. Agents see their own figures; supervisors and
// admins every slice.
import { h, icon, clear, duration, channelLabel } from "./dom.js";
import { api } from "./api.js";
import { state } from "./state.js";
import { staffingPanel } from "./staffing.js";
import { segmentsPanel } from "./segments.js";
import { t, formatNumber, formatDate, formatDateTime } from "./i18n.js";

const SVG_NS = "http://www.w3.org/2000/svg";
// Built when drawn, so they are in the language chosen at that moment.
const RANGES = () => [["7", t("reports.last_7")], ["30", t("reports.last_30")], ["90", t("reports.last_90")],
  ["365", t("reports.last_365")]];
const CARDS = () => [
  ["conversations_opened", t("inbox.label"), "count"], ["conversations_resolved", t("reports.resolved"), "count"],
  ["first_response_time", t("reports.first_response"), "time"], ["reply_time", t("reports.reply_time"), "time"],
  ["resolution_time", t("reports.resolution_time"), "time"], ["wait_time", t("reports.wait_time"), "time"],
  ["sla_attainment", t("reports.sla_attainment"), "ratio"], ["abandon_rate", t("reports.abandoned"), "ratio"],
  ["first_contact_resolution", t("reports.fcr"), "ratio"], ["messages_in", t("reports.messages_in"), "count"],
  ["messages_out", t("reports.messages_out"), "count"], ["after_hours", t("reports.after_hours"), "count"],
  ["csat_score", t("reports.csat_score"), "ratio"], ["csat_responses", t("reports.csat_responses"), "count"],
];
const COLUMNS = () => [
  ["conversations_opened", t("reports.opened"), "count"], ["conversations_resolved", t("reports.resolved"), "count"],
  ["first_response_time", t("reports.first_response"), "time"], ["reply_time", t("reports.reply"), "time"],
  ["resolution_time", t("reports.resolution"), "time"], ["sla_attainment", t("reports.within_sla"), "ratio"],
  ["abandoned", t("reports.abandoned"), "count"], ["transfers", t("reports.transfers"), "count"],
  ["offers_rejected", t("reports.rejected"), "count"], ["offers_timed_out", t("reports.timed_out"), "count"],
  ["csat_score", t("reports.csat"), "ratio"],
];
// Monday to Sunday in the console's language (1 January 2024 was a Monday).
const DAYS = () => [...Array(7).keys()].map((i) => formatDate(new Date(2024, 0, 1 + i), { weekday: "short" }));
const view = { days: "7", group: "day", by: "queue", filter: "" };

function tz() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

function isoDate(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

function params(extra = {}, filtered = true) {
  const end = new Date();
  end.setDate(end.getDate() + 1);
  const start = new Date(end);
  start.setDate(start.getDate() - Number(view.days));
  const p = new URLSearchParams({ from: isoDate(start), to: isoDate(end), tz: tz(), ...extra });
  if (view.filter && filtered) {
    const [dim, value] = view.filter.split(":");
    p.set(dim, value);
  }
  return p;
}

function show(value, unit) {
  if (value === null || value === undefined) return "—";
  if (unit === "time") return duration(value);
  if (unit === "ratio") return formatNumber(value, { style: "percent", maximumFractionDigits: 0 });
  return formatNumber(Number(value));
}

function delta(now, before, unit) {
  if (now === null || before === null || before === undefined || before === 0) return null;
  const change = (now - before) / before;
  if (!Number.isFinite(change) || Math.abs(change) < 0.005) return h("span", { class: "delta" }, `±${formatNumber(0, { style: "percent" })}`);
  // Shorter times are better; more of a count or a ratio is better (except abandoned ones).
  const better = unit === "time" ? change < 0 : change > 0;
  return h("span", { class: `delta ${better ? "up" : "down"}`, title: t("reports.was", { value: show(before, unit) }) },
    `${change > 0 ? "▲" : "▼"} ${formatNumber(Math.abs(Math.round(change * 100)) / 100, { style: "percent" })}`);
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function label(start, group) {
  const d = new Date(start);
  if (group === "hour") return formatDateTime(d, { weekday: "short", hour: "2-digit" });
  if (group === "month") return formatDate(d, { month: "short", year: "2-digit" });
  return formatDate(d, { month: "short", day: "numeric" });
}

function chart(buckets, group) {
  // Opened as bars, resolved as a line, on one scale: drawn by the hub, no chart library.
  const W = 760, H = 220, L = 40, B = 28, T = 10;
  const opened = buckets.map((b) => b.figures.conversations_opened || 0);
  const resolved = buckets.map((b) => b.figures.conversations_resolved || 0);
  const top = Math.max(1, ...opened, ...resolved);
  const step = (W - L) / Math.max(1, buckets.length);
  const y = (v) => T + (H - T - B) * (1 - v / top);
  const el = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "report-chart", role: "img",
    "aria-label": t("reports.chart_label") });
  for (const f of [0, 0.5, 1]) {
    el.append(svg("line", { x1: L, x2: W, y1: y(top * f), y2: y(top * f), class: "grid" }),
      svg("text", { x: L - 6, y: y(top * f) + 4, class: "axis", "text-anchor": "end" }, formatNumber(Math.round(top * f))));
  }
  buckets.forEach((b, i) => {
    const x = L + i * step;
    el.append(svg("rect", { x: x + step * 0.15, y: y(opened[i]), width: step * 0.7, height: H - B - y(opened[i]),
      class: "bar-opened" }, svg("title", {}, t("reports.bar_title", { when: label(b.start, group), opened: opened[i], resolved: resolved[i] }))));
    const every = Math.ceil(buckets.length / 12);
    if (i % every === 0) el.append(svg("text", { x: x + step / 2, y: H - 8, class: "axis", "text-anchor": "middle" }, label(b.start, group)));
  });
  const points = resolved.map((v, i) => `${L + i * step + step / 2},${y(v)}`).join(" ");
  el.append(svg("polyline", { points, class: "line-resolved" }));
  return h("figure", { class: "panel chart-panel" },
    h("figcaption", {}, h("strong", {}, t("inbox.label")), h("span", { class: "legend" },
      h("i", { class: "key opened" }), t("reports.legend_opened"), h("i", { class: "key resolved" }), t("reports.legend_resolved"))), el);
}

function heatmap(cells) {
  const top = Math.max(1, ...cells.flat());
  const days = DAYS();
  return h("section", { class: "panel" },
    h("h2", {}, t("reports.heatmap")),
    h("table", { class: "heatmap", id: "report-heatmap" },
      h("thead", {}, h("tr", {}, h("th", {}), [...Array(24).keys()].map((hr) => h("th", {}, hr % 3 === 0 ? String(hr) : "")))),
      h("tbody", {}, cells.map((row, d) => h("tr", {}, h("th", {}, days[d]),
        row.map((n, hr) => h("td", { title: `${days[d]} ${hr}:00 — ${formatNumber(n)}`,
          style: { background: n ? `rgba(67, 83, 214, ${(0.08 + 0.92 * n / top).toFixed(2)})` : "" } })))))));
}

const BY_NAMES = () => ({ queue: t("transfer.queue"), channel: t("reports.channel"), agent: t("transfer.agent"),
  label: t("reports.label") });

function csvLink(path, p) {
  const q = new URLSearchParams(p);
  q.set("format", "csv");
  return h("a", { class: "btn btn-small", href: `${path}?${q}`, download: "" }, t("reports.export_csv"));
}

function breakdown(data) {
  const name = (v) => (data.by === "channel" ? channelLabel(v) : v);
  // Conversations open in a queue or on a channel; an agent answers them.
  const columns = data.by === "agent" ? [["answered", t("reports.answered"), "count"], ...COLUMNS().slice(1)] : COLUMNS();
  return h("table", { class: "report-table", id: "report-breakdown" },
    h("thead", {}, h("tr", {}, h("th", {}, BY_NAMES()[data.by] || data.by), columns.map(([, title]) => h("th", {}, title)))),
    h("tbody", {}, data.rows.length ? data.rows.map((r) => h("tr", {},
      h("td", {}, ["agent", "queue", "label"].includes(data.by) ? r.label : name(r.value)),
      columns.map(([k, , unit]) => h("td", {}, show(r.figures[k], unit)))))
      : h("tr", {}, h("td", { colspan: columns.length + 1, class: "muted" }, t("reports.nothing")))));
}

// Trends take a channel or queue filter (it slices their keywords); a segment's is left out.
function trendParams() {
  const p = params({}, false);
  const [dim, value] = (view.filter || "").split(":");
  if (dim === "channel" || dim === "queue") p.set(dim, value);
  return p;
}

// The keywords of customers' messages that rose or fell most, by whole weeks (counts: previous weeks → these).
function keywordList(id, title, items, minCount) {
  return h("div", { id }, h("h3", {}, title),
    items.length ? h("ul", { class: "topic-list" }, items.map((k) => h("li", { "data-word": k.word },
      h("span", { class: "chip keyword" }, k.word), h("span", {}, `${formatNumber(k.previous)} → ${formatNumber(k.now)}`))))
      : h("p", { class: "muted" }, t("reports.keywords_none", { n: minCount })));
}

// Channel trends: each channel's volume and first response against the period before, the topics (labels)
// and the keywords rising and falling most between the two.
function trends(data) {
  const change = (c, unit) => c.change === null || c.change === undefined ? h("span", { class: "muted" }, "—")
    : delta(c.now, c.previous, unit);
  const topic = (x) => h("li", { "data-label": x.label }, h("span", { class: "chip" }, x.title),
    h("span", {}, `${x.previous} → ${x.now}`));
  return h("section", { class: "panel", id: "report-trends" },
    h("header", { class: "panel-head" }, h("h2", {}, t("reports.trends")),
      h("span", { class: "muted" }, t("reports.trends_explain")), csvLink("/api/v1/reports/trends", trendParams())),
    h("table", { class: "report-table", id: "report-channel-trends" },
      h("thead", {}, h("tr", {}, [t("reports.channel"), t("reports.conversations"), t("reports.before"),
        t("reports.change"), t("reports.first_response"), t("reports.before"), t("reports.change")].map((x) => h("th", {}, x)))),
      h("tbody", {}, data.channels.length ? data.channels.map((c) => h("tr", { "data-channel": c.channel },
        h("td", {}, channelLabel(c.channel)), h("td", {}, show(c.volume.now, "count")),
        h("td", {}, show(c.volume.previous, "count")), h("td", {}, change(c.volume, "count")),
        h("td", {}, show(c.first_response.now, "time")), h("td", {}, show(c.first_response.previous, "time")),
        h("td", {}, change(c.first_response, "time"))))
        : h("tr", {}, h("td", { colspan: 7, class: "muted" }, t("reports.trends_nothing"))))),
    h("div", { class: "topic-trends" },
      h("div", { id: "topics-rising" }, h("h3", {}, t("reports.topics_rising")),
        data.topics.rising.length ? h("ul", { class: "topic-list" }, data.topics.rising.map(topic)) : h("p", { class: "muted" }, t("reports.topics_none"))),
      h("div", { id: "topics-falling" }, h("h3", {}, t("reports.topics_falling")),
        data.topics.falling.length ? h("ul", { class: "topic-list" }, data.topics.falling.map(topic)) : h("p", { class: "muted" }, t("reports.topics_none")))),
    h("p", { class: "muted", id: "keywords-explain" }, t("reports.keywords_explain", { from: data.keywords.weeks_from,
      weeks: data.keywords.weeks })),
    h("div", { class: "topic-trends", id: "keyword-trends" },
      keywordList("keywords-rising", t("reports.keywords_rising"), data.keywords.rising, data.keywords.min_count),
      keywordList("keywords-falling", t("reports.keywords_falling"), data.keywords.falling, data.keywords.min_count)));
}

function select(id, value, options, onchange, label) {
  return h("select", { id, "aria-label": label, onchange: (e) => onchange(e.target.value) },
    options.map(([v, text]) => h("option", { value: v, selected: v === value ? "selected" : null }, text)));
}

let refresher = null;

export async function showReports(main, side, quiet = false) {
  clearTimeout(refresher);
  clear(side);
  side.classList.add("hidden");
  const previousSegments = quiet ? main.querySelector("#segments") : null;
  const previousStaffing = quiet ? main.querySelector("#staffing") : null;
  if (!quiet) clear(main).append(h("div", { class: "loading" }, t("reports.loading")));
  const admin = ["admin", "supervisor"].includes(state.me.role);
  const by = admin ? view.by : "agent";
  const p = params();
  // Hours only for ranges the API reads by the hour; a year by day is 365 bars, so it is shown by week.
  const days = Number(view.days);
  const group = view.group === "hour" && days > 35 ? "day" : view.group === "day" && days > 90 ? "week" : view.group;
  let summary, series, table, heat, segments, trend;
  try {
    [summary, series, table, heat, segments, trend] = await Promise.all([
      api.get(`/api/v1/reports/summary?${p}`),
      api.get(`/api/v1/reports/timeseries?${params({ group })}`),
      api.get(`/api/v1/reports/breakdown?${params({ by }, false)}`),
      api.get(`/api/v1/reports/heatmap?${p}`),
      // Saved segments slice every report too (their customers now); only supervisors and admins list them.
      admin ? api.get("/api/v1/segments").then((r) => r.items).catch(() => []) : Promise.resolve([]),
      admin ? api.get(`/api/v1/reports/trends?${trendParams()}`) : Promise.resolve(null),
    ]);
  } catch (err) {
    clear(main).append(h("div", { class: "notice" }, icon("alert"), err.message));
    return;
  }
  const rerender = () => showReports(main, side);
  const filters = [["", t("reports.everything")], ...state.queues.map((q) => [`queue:${q.name}`, t("reports.queue_filter", { name: q.title || q.name })]),
    ...state.channels.map((c) => [`channel:${c.name}`, t("reports.channel_filter", { name: channelLabel(c.name) })]),
    ...segments.map((g) => [`segment:${g.id}`, t("reports.segment_filter", { name: g.name })])];
  clear(main).append(h("div", { class: "reports", id: "reports" },
    h("header", { class: "wall-head" },
      h("div", {}, h("h1", {}, t("nav.reports")), h("p", { class: "muted" },
        admin ? (view.filter.startsWith("segment:") ? t("reports.subtitle_segment") : t("reports.subtitle_all"))
          : t("reports.subtitle_own"),
        summary.catching_up ? h("span", { class: "catching-up" }, ` · ${t("reports.updating")}`) : null)),
      h("div", { class: "report-controls" },
        select("report-range", view.days, RANGES(), (v) => { view.days = v; rerender(); }, t("reports.period")),
        select("report-group", view.group, [["hour", t("reports.by_hour")], ["day", t("reports.by_day")], ["week", t("reports.by_week")],
          ["month", t("reports.by_month")]], (v) => { view.group = v; rerender(); }, t("reports.group_by")),
        admin ? select("report-filter", view.filter, filters, (v) => { view.filter = v; rerender(); }, t("reports.show")) : null,
        csvLink("/api/v1/reports/summary", p),
        admin ? h("a", { class: "btn btn-small", href: "#/campaigns", id: "reports-campaigns" }, t("nav.campaigns")) : null)),
    h("section", { class: "report-cards" }, CARDS().map(([k, title, unit]) => h("div", { class: "kpi-card", "data-figure": k },
      h("span", { class: "muted" }, title), h("strong", {}, show(summary.figures[k], unit)),
      delta(summary.figures[k], summary.previous[k], unit)))),
    chart(series.buckets, series.group),
    h("section", { class: "panel" },
      h("header", { class: "panel-head" }, h("h2", {}, t("reports.breakdown")),
        admin ? select("report-by", view.by, [["queue", t("reports.by_queue")], ["channel", t("reports.by_channel")],
          ["agent", t("reports.by_agent")], ["label", t("reports.by_label")]],
          (v) => { view.by = v; view.filter = ""; rerender(); }, t("reports.break_down")) : null,
        csvLink("/api/v1/reports/breakdown", params({ by }, false))),
      breakdown(table)),
    trend ? trends(trend) : null,
    heatmap(heat.cells)));
  // Staffing and segments are the supervisors'; they do not move with the range, so a quiet refresh leaves them
  // be (and the staffing inputs keep their focus). Staffing follows the filter: a change of it is not quiet.
  const reports = main.querySelector("#reports");
  if (admin) reports.append(previousStaffing || staffingPanel(view.filter));
  if (admin && !quiet) reports.append(await segmentsPanel());
  else if (admin && previousSegments) reports.append(previousSegments);
  // Figures move as work happens: refresh while the page is open (not while a menu is in use); within seconds
  // while the hub is still folding the latest events into them (they trail what happens by about a second).
  refresher = setTimeout(() => {
    if (location.hash === "#/reports" && main.querySelector("#reports") && document.activeElement.tagName !== "SELECT") {
      showReports(main, side, true);
    }
  }, summary.catching_up ? 2000 : 30000);
}
