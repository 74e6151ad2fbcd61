// The supervisor's live wall: each queue's waiting work and service level, each agent's presence and load.
import { h, icon, clear, duration, initials, channelIcon, displayName, parseTime } from "./dom.js";
import { api, missing } from "./api.js";
import { state } from "./state.js";
import { t, formatNumber } from "./i18n.js";

let root = null;
let data = { queues: null, agents: null, holding: null, csat: null, at: 0 };
// The window the counted figures cover: the viewer's today, or the last hour. Live figures are always "now".
const WINDOWS = {
  today: { label: () => t("wall.today"), title: () => t("wall.today_title"), since: () => { const d = new Date(); d.setHours(0, 0, 0, 0); return d; } },
  hour: { label: () => t("wall.hour"), title: () => t("wall.hour_title"), since: () => new Date(Date.now() - 3600 * 1000) },
};
let windowName = "today";

// An ISO time with the viewer's own UTC offset, so "today" is their day, not the server's.
function localIso(d) {
  const off = -d.getTimezoneOffset();
  const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:` +
    `${pad(d.getSeconds())}${off >= 0 ? "+" : "-"}${pad(off / 60)}:${pad(off % 60)}`;
}
let ticker = null;
let poller = null;

export async function showWall(main, side) {
  root = main;
  clear(side);
  side.classList.add("hidden");
  clear(main).append(h("div", { class: "loading" }, t("wall.loading")));
  await refreshWall();
  clearInterval(ticker);
  clearInterval(poller);
  // Longest-wait clocks tick every second between pushes; a slow poll backs up the routing.stats events.
  ticker = setInterval(() => root && root.isConnected && renderWall(), 1000);
  poller = setInterval(() => root && root.isConnected ? refreshWall() : stopWall(), 10000);
}

export function stopWall() {
  clearInterval(ticker);
  clearInterval(poller);
  root = null;
}

export async function refreshWall() {
  if (!root) return;
  const since = encodeURIComponent(localIso(WINDOWS[windowName].since()));
  const [wall, agents] = await Promise.all([
    api.get(`/api/v1/wall?since=${since}`).catch((e) => (missing(e) ? null : Promise.reject(e))),
    api.get("/api/v1/agents").then((r) => r.items).catch((e) => (missing(e) ? null : Promise.reject(e))),
  ]).catch(() => [data.queues && { queues: data.queues, agents: data.holding }, data.agents]);
  const queues = wall ? wall.queues.map((q) => ({ ...q, ...q.now, ...q.window })) : null;
  const holding = wall ? new Map(wall.agents.map((a) => [a.id, a.holding])) : null;
  data = { queues, agents, holding: wall ? wall.agents : null, holdingBy: holding, csat: wall ? wall.csat : data.csat,
    at: Date.now() };
  if (agents) for (const a of agents) state.agents.set(a.id, a);
  renderWall();
}

function fallbackQueues() {
  // Without the routing endpoints, count what the inbox shows: open, unassigned conversations per queue.
  return state.queues.map((q) => {
    const waiting = state.inbox.filter((i) => i.conversation.queue === q.name && !i.conversation.agent_id);
    const oldest = waiting.reduce((m, i) => Math.min(m, parseTime(i.conversation.created_at).getTime()), Infinity);
    return { name: q.name, title: q.title, waiting: waiting.length,
      longest_wait: waiting.length ? (Date.now() - oldest) / 1000 : 0 };
  });
}

function pct(x) {
  return x === null || x === undefined ? "—" : formatNumber(Math.round(x * 100) / 100, { style: "percent" });
}

function grade(x) {
  return x === null || x === undefined ? "" : x >= 0.9 ? "good" : x >= 0.75 ? "warn" : "bad";
}

function queueCard(q) {
  const win = { label: WINDOWS[windowName].label(), title: WINDOWS[windowName].title() };
  const drift = (Date.now() - data.at) / 1000;
  const wait = q.waiting ? (q.longest_wait || 0) + (data.queues ? drift : 0) : 0;
  const sla = q.sla_attainment;
  const slaClass = grade(sla);
  const waitClass = q.sla_wait && wait > q.sla_wait ? "bad" : wait > (q.sla_wait || 60) * 0.7 ? "warn" : "";
  return h("article", { class: "queue-card", "data-queue": q.name },
    h("header", {}, h("h3", {}, q.title || q.name), h("span", { class: "muted" }, q.name)),
    h("div", { class: "kpis" },
      h("div", { class: "kpi" }, h("strong", { class: q.waiting ? "hot" : "" }, String(q.waiting ?? 0)), h("span", {}, t("wall.waiting_now"))),
      h("div", { class: `kpi ${waitClass}` }, h("strong", {}, q.waiting ? duration(wait) : "—"), h("span", {}, t("wall.longest_wait"))),
      h("div", { class: `kpi ${slaClass}`, title: sla === null || sla === undefined
        ? t("wall.none_answered", { when: win.label }) : t("wall.answered_within", { time: duration(q.sla_wait || 0), when: win.label }) },
      h("strong", {}, pct(sla)), h("span", {}, t("wall.within_sla", { when: win.label }))),
      q.first_response ? h("div", { class: `kpi ${grade(q.first_response_attainment)}`,
        title: q.first_response_hours === "business"
          ? t("wall.first_reply_title_business", { time: duration(q.first_response), when: win.label })
          : t("wall.first_reply_title", { time: duration(q.first_response), when: win.label }) },
      h("strong", {}, pct(q.first_response_attainment)), h("span", {}, t("wall.first_reply", { when: win.label }))) : null),
    sla !== undefined && sla !== null
      ? h("div", { class: "bar" }, h("span", { class: slaClass, style: { width: `${Math.round(sla * 100)}%` } })) : null,
    data.queues ? h("dl", { class: "queue-stats" },
      h("div", {}, h("dt", {}, t("wall.available_now")), h("dd", {}, String(q.available_agents ?? 0))),
      h("div", {}, h("dt", {}, t("wall.busy_now")), h("dd", {}, String(q.busy_agents ?? 0))),
      h("div", { class: "window-head" }, h("dt", {}, win.title)),
      h("div", {}, h("dt", {}, t("reports.answered")), h("dd", {}, String(q.answered ?? 0))),
      h("div", {}, h("dt", {}, t("reports.abandoned")), h("dd", {}, String(q.abandoned ?? 0))),
      h("div", {}, h("dt", {}, t("wall.rejected_missed")), h("dd", {}, `${q.rejected ?? 0} · ${q.timed_out ?? 0}`)),
      q.first_response ? h("div", {}, h("dt", {}, t("wall.first_replies_late")),
        h("dd", {}, `${q.responded ?? 0} · ${q.first_response_breached ?? 0}`)) : null)
      : null);
}

// The window's satisfaction: answers, the share satisfied (4 or 5, as in Reports) and each low rating as it arrives,
// newest first, with the conversation to open. Customer-written comments go through h() (text, never HTML).
function lowRatings(csat) {
  const win = WINDOWS[windowName];
  return h("section", { class: "panel", id: "wall-low-csat" },
    h("h2", {}, icon("alert"), t("wall.low_ratings", { when: win.label() })),
    csat.low.length ? h("ul", { class: "low-csat" }, csat.low.map((r) => h("li", { "data-conversation": r.conversation_id },
      h("span", { class: "chip bad", title: t("wall.score_title", { score: r.score }) }, `${r.score}/5`),
      h("a", { class: "link", href: `#/c/${r.conversation_id}` }, r.customer || t("wall.conversation", { id: r.conversation_id })),
      h("span", { class: "muted" }, [r.queue, r.agent].filter(Boolean).join(" · ")),
      r.comment ? h("q", {}, r.comment) : null,
      h("time", { class: "muted", datetime: r.answered_at }, parseTime(r.answered_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })))))
      : h("p", { class: "muted" }, t("wall.no_low_ratings", { score: csat.low_score, when: win.label() })));
}

function agentRow(a) {
  const work = state.inbox.filter((i) => i.conversation.agent_id === a.id);
  // What the agent holds as the store says (right after a restart too); routing's own count otherwise.
  const held = data.holdingBy ? data.holdingBy.get(a.id) || {} : a.load || {};
  const load = Object.entries(held).filter(([, n]) => n > 0);
  return h("tr", { "data-agent": a.id },
    h("td", {}, h("div", { class: "agent-cell" }, h("span", { class: "avatar small" }, initials(a.name)),
      h("div", {}, h("strong", {}, a.name), h("div", { class: "muted" }, { admin: t("role.admin"), supervisor: t("role.supervisor"), agent: t("role.agent") }[a.role] || a.role)))),
    h("td", {}, h("span", { class: `presence-dot p-${a.presence || "offline"}` }),
      { available: t("presence.available"), away: t("presence.away"), offline: t("presence.offline") }[a.presence || "offline"] || a.presence),
    h("td", {}, (a.queues || []).map((q) => h("span", { class: "chip" }, q))),
    h("td", {}, load.length ? load.map(([ch, n]) => h("span", { class: "chip load" }, channelIcon(ch === "chat" ? "webchat" : ch),
      `${n}/${(a.capacity || {})[ch] ?? "–"}`)) : h("span", { class: "muted" }, t("wall.idle"))),
    h("td", {}, work.length ? work.slice(0, 4).map((i) => h("a", { class: "chip link", href: `#/c/${i.conversation.id}` },
      channelIcon(i.conversation.channel), displayName(i.customer))) : h("span", { class: "muted" }, "—")));
}

function renderWall() {
  if (!root || !root.isConnected) return;
  const queues = data.queues || fallbackQueues();
  const agents = data.agents;
  const online = agents ? agents.filter((a) => a.presence === "available").length : null;
  const waiting = queues.reduce((n, q) => n + (q.waiting || 0), 0);
  clear(root).append(h("div", { class: "wall" },
    h("header", { class: "wall-head" },
      h("div", {}, h("h1", {}, t("nav.wall")), h("p", { class: "muted" }, t("wall.subtitle"))),
      data.queues ? h("div", { class: "seg-group", role: "radiogroup", "aria-label": t("wall.figures_for") },
        Object.entries(WINDOWS).map(([name, w]) => h("button", {
          class: `seg ${name === windowName ? "active" : ""}`, role: "radio", "aria-checked": String(name === windowName),
          "data-window": name, onclick: () => { windowName = name; refreshWall(); },
        }, w.title()))) : null,
      h("div", { class: "wall-totals" },
        h("div", {}, h("strong", {}, String(waiting)), h("span", {}, t("wall.waiting_now"))),
        online !== null ? h("div", {}, h("strong", {}, String(online)), h("span", {}, t("wall.agents_available"))) : null,
        data.csat ? h("div", { id: "wall-csat", title: t("wall.csat_title", { count: data.csat.responses, average: data.csat.average ?? "—" }) },
          h("strong", { class: grade(data.csat.score) }, pct(data.csat.score)),
          h("span", {}, t("wall.satisfied", { when: WINDOWS[windowName].label() }))) : null)),
    data.queues ? null : h("div", { class: "notice" }, icon("alert"),
      t("wall.no_routing")),
    h("section", { class: "queue-grid" }, queues.map(queueCard)),
    data.csat ? lowRatings(data.csat) : null,
    h("section", { class: "panel" },
      h("h2", {}, icon("users"), t("wall.agents")),
      agents ? h("table", { class: "agents-table" },
        h("thead", {}, h("tr", {}, [t("transfer.agent"), t("presence.label"), t("wall.queues"), t("wall.load"), t("wall.working_on")].map((title) => h("th", {}, title)))),
        h("tbody", {}, agents.filter((a) => !a.disabled).map(agentRow)))
        : h("p", { class: "muted" }, t("wall.presence_needs_routing")))));
}
