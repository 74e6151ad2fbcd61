// The supervisor's live wall: each queue's waiting work and service level, each agent's presence and load.
import { h, icon, clear, duration, initials, channelIcon, displayName, parseTime } from "./dom.js";
import { api, missing } from "./api.js";
import { state } from "./state.js";

let root = null;
let data = { queues: null, agents: null, at: 0 };
let ticker = null;
let poller = null;

export async function showWall(main, side) {
  root = main;
  clear(side);
  side.classList.add("hidden");
  clear(main).append(h("div", { class: "loading" }, "Loading the wall…"));
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
  const [queues, agents] = await Promise.all([
    api.get("/api/v1/queues").then((r) => r.items).catch((e) => (missing(e) ? null : Promise.reject(e))),
    api.get("/api/v1/agents").then((r) => r.items).catch((e) => (missing(e) ? null : Promise.reject(e))),
  ]).catch(() => [data.queues, data.agents]);
  data = { queues, agents, at: Date.now() };
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
  return x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`;
}

function grade(x) {
  return x === null || x === undefined ? "" : x >= 0.9 ? "good" : x >= 0.75 ? "warn" : "bad";
}

function queueCard(q) {
  const drift = (Date.now() - data.at) / 1000;
  const wait = q.waiting ? (q.longest_wait || 0) + (data.queues ? drift : 0) : 0;
  const sla = q.sla_attainment;
  const slaClass = grade(sla);
  const waitClass = q.sla_wait && wait > q.sla_wait ? "bad" : wait > (q.sla_wait || 60) * 0.7 ? "warn" : "";
  return h("article", { class: "queue-card", "data-queue": q.name },
    h("header", {}, h("h3", {}, q.title || q.name), h("span", { class: "muted" }, q.name)),
    h("div", { class: "kpis" },
      h("div", { class: "kpi" }, h("strong", { class: q.waiting ? "hot" : "" }, String(q.waiting ?? 0)), h("span", {}, "waiting")),
      h("div", { class: `kpi ${waitClass}` }, h("strong", {}, q.waiting ? duration(wait) : "—"), h("span", {}, "longest wait")),
      h("div", { class: `kpi ${slaClass}` }, h("strong", {}, pct(sla)), h("span", {}, "within SLA")),
      q.first_response ? h("div", { class: `kpi ${grade(q.first_response_attainment)}`,
        title: `Conversations answered by an agent within ${duration(q.first_response)} of the customer's first message` },
      h("strong", {}, pct(q.first_response_attainment)), h("span", {}, "first reply in time")) : null),
    sla !== undefined && sla !== null
      ? h("div", { class: "bar" }, h("span", { class: slaClass, style: { width: `${Math.round(sla * 100)}%` } })) : null,
    data.queues ? h("dl", { class: "queue-stats" },
      h("div", {}, h("dt", {}, "Agents available"), h("dd", {}, String(q.available_agents ?? 0))),
      h("div", {}, h("dt", {}, "Agents busy"), h("dd", {}, String(q.busy_agents ?? 0))),
      h("div", {}, h("dt", {}, "Offers accepted"), h("dd", {}, String(q.offers_accepted ?? 0))),
      h("div", {}, h("dt", {}, "Rejected · timed out"), h("dd", {}, `${q.offers_rejected ?? 0} · ${q.offers_timed_out ?? 0}`)),
      q.first_response ? h("div", {}, h("dt", {}, "First replies · late"),
        h("dd", {}, `${q.responded ?? 0} · ${q.first_response_breached ?? 0}`)) : null)
      : null);
}

function agentRow(a) {
  const work = state.inbox.filter((i) => i.conversation.agent_id === a.id);
  const load = Object.entries(a.load || {}).filter(([, n]) => n > 0);
  return h("tr", { "data-agent": a.id },
    h("td", {}, h("div", { class: "agent-cell" }, h("span", { class: "avatar small" }, initials(a.name)),
      h("div", {}, h("strong", {}, a.name), h("div", { class: "muted" }, a.role)))),
    h("td", {}, h("span", { class: `presence-dot p-${a.presence || "offline"}` }), a.presence || "offline"),
    h("td", {}, (a.queues || []).map((q) => h("span", { class: "chip" }, q))),
    h("td", {}, load.length ? load.map(([ch, n]) => h("span", { class: "chip load" }, channelIcon(ch === "chat" ? "webchat" : ch),
      `${n}/${(a.capacity || {})[ch] ?? "–"}`)) : h("span", { class: "muted" }, "idle")),
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
      h("div", {}, h("h1", {}, "Live wall"), h("p", { class: "muted" }, "Queues and agents, updated as it happens")),
      h("div", { class: "wall-totals" },
        h("div", {}, h("strong", {}, String(waiting)), h("span", {}, "waiting")),
        online !== null ? h("div", {}, h("strong", {}, String(online)), h("span", {}, "agents available")) : null)),
    data.queues ? null : h("div", { class: "notice" }, icon("alert"),
      "Routing statistics are not available on this hub; waiting counts come from open conversations."),
    h("section", { class: "queue-grid" }, queues.map(queueCard)),
    h("section", { class: "panel" },
      h("h2", {}, icon("users"), "Agents"),
      agents ? h("table", { class: "agents-table" },
        h("thead", {}, h("tr", {}, ["Agent", "Presence", "Queues", "Load", "Working on"].map((t) => h("th", {}, t)))),
        h("tbody", {}, agents.filter((a) => !a.disabled).map(agentRow)))
        : h("p", { class: "muted" }, "Agent presence needs the routing engine."))));
}
