// The console: sign in, then the shell (inbox, conversation, wall), kept live by one WebSocket.
import { h, icon, clear, append, channelIcon, channelLabel, ago, displayName, initials, debounce, shownChannel, customerChannel } from "./dom.js";
import { api, setCsrf, whenSignedOut, missing, ApiError } from "./api.js";
import { Live } from "./live.js";
import { state, toast, navigate, setHook, modal, toggleDrawer } from "./state.js";
import * as conversation from "./conversation.js";
import { showWall, stopWall, refreshWall } from "./wall.js";
import { showAdmin } from "./admin.js";
import { showReports } from "./reports.js";
import { showCampaigns } from "./campaigns.js";
import { showAttention, attentionCount, setOnChange as onAttentionChange } from "./attention.js";
import { loadLabels, labelChip } from "./labels.js";
import { viewBar, loadViews, inboxQuery, currentView, selectBox, selectAll, snoozeText, describeWake } from "./views.js";
import { showMentions, onMention, onUnreadChange, refreshMentionCount } from "./mentions.js";
import { applyTheme, themeButton } from "./theme.js";
import { t, applyLanguage } from "./i18n.js";
import { languageButton } from "./language.js";

const app = document.getElementById("app");
let els = {};
let offers = new Map(); // conversation id -> offer
let offerTimer = null;

// -- sign in ----------------------------------------------------------------------------------------------------

function showSignIn(message) {
  if (state.live) state.live.stop();
  state.live = null;
  document.title = t("signin.page_title");
  const error = h("div", { class: "form-error", id: "signin-error", role: "alert" }, message || "");
  const email = h("input", { type: "email", id: "email", name: "email", autocomplete: "username", required: true,
    placeholder: t("signin.email_placeholder") });
  const password = h("input", { type: "password", id: "password", name: "password", autocomplete: "current-password",
    required: true, placeholder: t("signin.password") });
  const button = h("button", { class: "btn btn-primary btn-block", type: "submit", id: "signin-btn" }, t("signin.submit"));
  const form = h("form", { class: "signin-card", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    button.disabled = true;
    button.textContent = t("signin.busy");
    try {
      const who = await api.post("/console/session", { email: email.value, password: password.value });
      start(who);
    } catch (err) {
      error.textContent = err.message;
      error.classList.toggle("locked", err.status === 429);
      password.value = "";
      password.focus();
    } finally {
      button.disabled = false;
      button.textContent = t("signin.submit");
    }
  } },
    h("div", { class: "brand big" }, h("span", { class: "logo" }, icon("hub")), "hub"),
    h("h1", {}, t("signin.title")),
    h("p", { class: "muted" }, t("signin.tagline")),
    h("label", { class: "field" }, h("span", {}, t("signin.email")), email),
    h("label", { class: "field" }, h("span", {}, t("signin.password")), password),
    error, button,
    h("p", { class: "fine" }, t("signin.trouble")));
  clear(app).append(h("div", { class: "signin" }, form,
    h("div", { class: "signin-foot" }, h("span", {}, t("signin.channels")), languageButton(() => showSignIn()))));
  email.focus();
}

async function signOut() {
  try {
    await api.del("/console/session");
  } catch { /* already gone */ }
  setCsrf("");
  state.me = null;
  showSignIn(t("signin.signed_out"));
}

// -- the shell --------------------------------------------------------------------------------------------------

let lastWho = null;

function start(who) {
  lastWho = who;
  if (state.live) state.live.stop();
  setCsrf(who.csrf_token);
  state.me = who.agent;
  state.channels = who.channels;
  state.queues = who.queues;
  state.maxAttachmentBytes = who.max_attachment_bytes || 0;
  document.title = "hub";
  const supervisor = ["admin", "supervisor"].includes(state.me.role);
  els.status = h("span", { class: "live-status", id: "live-status", title: t("live.connecting") }, h("span", { class: "dot" }), h("span", { class: "label" }, t("live.connecting")));
  els.presence = h("div", { class: "presence", role: "radiogroup", "aria-label": t("presence.label") },
    ["available", "away", "offline"].map((p) => h("button", {
      class: `seg p-${p}`, role: "radio", "data-presence": p, "aria-checked": "false",
      onclick: () => setPresence(p),
      title: presenceName(p), "aria-label": presenceName(p),
    }, h("span", { class: `presence-dot p-${p}` }), h("span", { class: "label" }, presenceName(p)))));
  const phone = window.matchMedia("(max-width: 639px)").matches;
  els.search = h("input", { type: "search", id: "search", placeholder: phone ? t("search.short") : t("search.placeholder"),
    autocomplete: "off", "aria-label": t("search.label") });
  els.results = h("div", { class: "search-results hidden", id: "search-results" });
  els.search.addEventListener("input", debounce(search, 200));
  els.search.addEventListener("keydown", searchKeys);
  els.search.addEventListener("blur", () => setTimeout(() => els.results.classList.add("hidden"), 150));
  els.list = h("nav", { class: "inbox", id: "inbox", "aria-label": t("inbox.label") });
  els.main = h("main", { class: "main", id: "main" });
  els.side = h("aside", { class: "side", id: "side" });
  els.offers = h("section", { class: "offers", id: "offers", "aria-live": "assertive", "aria-label": t("offers.label") });
  clear(app).append(h("div", { class: "shell" },
    h("header", { class: "topbar" },
      h("a", { class: "brand", href: "#/", "aria-label": t("nav.home") }, h("span", { class: "logo" }, icon("hub")), h("span", { class: "label" }, "hub")),
      // A tab shows a short name (icons only below 1200 px); its full name is the tooltip and what screen readers say.
      h("nav", { class: "tabs" },
        h("a", { href: "#/", class: "nav-link", "data-nav": "inbox", title: t("nav.inbox") }, icon("inbox"), h("span", { class: "label" }, t("tab.inbox"))),
        supervisor ? h("a", { href: "#/wall", class: "nav-link", "data-nav": "wall", id: "nav-wall", title: t("nav.wall") }, icon("wall"), h("span", { class: "label" }, t("tab.wall"))) : null,
        h("a", { href: "#/mentions", class: "nav-link", "data-nav": "mentions", id: "nav-mentions", title: t("nav.mentions") }, icon("at"),
          h("span", { class: "label" }, t("nav.mentions")), h("span", { class: "badge count hidden", id: "mentions-badge" }, "0")),
        h("a", { href: "#/reports", class: "nav-link", "data-nav": "reports", id: "nav-reports", title: t("nav.reports") }, icon("checks"), h("span", { class: "label" }, t("nav.reports"))),
        supervisor ? h("a", { href: "#/attention", class: "nav-link", "data-nav": "attention", id: "nav-attention", title: t("nav.attention") }, icon("event"),
          h("span", { class: "label" }, t("tab.attention")), h("span", { class: "badge count hidden", id: "attention-badge" }, "0")) : null,
        state.me.role === "admin" ? h("a", { href: "#/admin/agents", class: "nav-link", "data-nav": "admin", id: "nav-admin", title: t("nav.admin") }, icon("users"), h("span", { class: "label" }, t("tab.admin"))) : null),
      h("div", { class: "search" }, icon("search"), els.search, els.results),
      h("div", { class: "top-right" },
        els.status, els.presence,
        h("div", { class: "me", title: `${state.me.email} · ${roleName(state.me.role)}` },
          h("span", { class: "avatar small" }, initials(state.me.name)), h("span", { class: "me-name" }, state.me.name)),
        languageButton(() => start(lastWho)),
        themeButton(),
        h("button", { class: "icon-btn", id: "signout", title: t("nav.sign_out"), "aria-label": t("nav.sign_out"), onclick: signOut }, icon("logout")))),
    h("div", { class: "body" }, h("div", { class: "left" }, els.offers, viewBar(), els.list), els.main, els.side,
      h("div", { class: "drawer-scrim", onclick: () => toggleDrawer(false) }))));
  setHook("refreshInbox", debounce(loadInbox, 150));
  state.live = new Live({
    onEvent, onSync: resync, onStatus: showStatus,
    onSessionEnded: () => showSignIn(t("signin.session_ended")),
  });
  state.live.start();
  loadAgents();
  loadLabels().then(() => refreshSoon());
  onUnreadChange(showMentionCount);
  refreshMentionCount();
  route();
  clearInterval(offerTimer);
  offerTimer = setInterval(tickOffers, 250);
  if (supervisor) {
    onAttentionChange(showAttentionCount);
    refreshAttentionCount();
    clearInterval(attentionTimer);
    attentionTimer = setInterval(refreshAttentionCount, 15000);
  }
}

let attentionTimer = null;

function showMentionCount(n) {
  const badge = document.getElementById("mentions-badge");
  if (!badge) return;
  badge.textContent = String(n);
  badge.classList.toggle("hidden", !n);
  badge.title = t("mentions.unread", { count: n });
}

function showAttentionCount(n) {
  const badge = document.getElementById("attention-badge");
  if (!badge) return;
  badge.textContent = String(n);
  badge.classList.toggle("hidden", !n);
  badge.title = t("attention.unplaced", { count: n });
}

function roleName(role) {
  return { admin: t("role.admin"), supervisor: t("role.supervisor"), agent: t("role.agent") }[role] || role;
}

function presenceName(p) {
  return { available: t("presence.available"), away: t("presence.away"), offline: t("presence.offline") }[p] || p;
}

function refreshAttentionCount() {
  attentionCount().then(showAttentionCount).catch(() => {});
}

function showStatus(status) {
  const labels = { live: t("live.live"), connecting: t("live.connecting"), reconnecting: t("live.reconnecting") };
  els.status.className = `live-status s-${status}`;
  els.status.lastChild.textContent = labels[status] || status;
  els.status.title = status === "live" ? t("live.live_title") : t("live.trying");
}

async function resync() {
  await Promise.all([loadInbox(), loadOffers(), loadPresence(), conversation.resync(), refreshMentionCount(), location.hash === "#/wall" ? refreshWall() : null]);
}

async function loadAgents() {
  try {
    const list = await api.get("/api/v1/agents");
    for (const a of list.items) state.agents.set(a.id, a);
  } catch (err) {
    if (missing(err)) state.routing = false;
  }
}

// -- presence ---------------------------------------------------------------------------------------------------

function showPresence(p) {
  state.presence = p;
  for (const b of els.presence.querySelectorAll(".seg")) {
    const on = b.dataset.presence === p;
    b.classList.toggle("active", on);
    b.setAttribute("aria-checked", String(on));
  }
}

async function loadPresence() {
  try {
    const list = await api.get("/api/v1/agents");
    for (const a of list.items) state.agents.set(a.id, a);
    const me = list.items.find((a) => a.id === state.me.id);
    showPresence(me ? me.presence : "offline");
    state.routing = true;
  } catch (err) {
    if (missing(err)) {
      state.routing = false;
      els.presence.classList.add("disabled");
      els.presence.title = t("presence.no_routing");
      for (const b of els.presence.querySelectorAll("button")) b.disabled = true;
    }
  }
}

async function setPresence(p) {
  primeAttention();
  const before = state.presence;
  showPresence(p);
  try {
    await api.post("/api/v1/agents/me/presence", { presence: p });
  } catch (err) {
    showPresence(before);
    toast(missing(err) ? t("presence.needs_routing") : err.message, "error");
  }
}

// -- inbox ------------------------------------------------------------------------------------------------------

async function loadInbox() {
  const asked = state.view;
  try {
    const data = await api.get(`/api/v1/inbox${inboxQuery()}`);
    if (asked !== state.view) return;  // another view was chosen meanwhile
    state.inbox = data.items;
  } catch (err) {
    if (err instanceof ApiError && err.status === 0) return;
    if (err instanceof ApiError && err.status === 404 && state.view !== "all") {
      state.view = "all";  // a saved view deleted elsewhere
      return loadInbox();
    }
    throw err;
  }
  renderInbox();
  viewsSoon();
}

const viewsSoon = debounce(() => loadViews(), 300);

function inboxItem(item) {
  const c = item.conversation;
  const last = item.last_message;
  const current = conversation.currentConversation();
  const active = current && current.id === c.id;
  // Past the queue's first-response target with no agent reply (the server says when it is due).
  const late = item.first_reply_due !== null && item.first_reply_due !== undefined &&
    item.first_reply_due * 1000 <= (state.live ? state.live.now() : Date.now());
  const preview = last ? (last.kind === "call" ? t("inbox.call") : last.kind === "voicemail" ? t("inbox.voicemail") : [last.subject, last.text].filter(Boolean).join(" — ")) : "";
  const labels = [...(item.labels || []), ...((item.customer && item.customer.labels) || []).filter((l) => !(item.labels || []).includes(l))];
  const link = h("a", {
    class: `conv-item ${active ? "active" : ""} ${state.unread.has(c.id) ? "unread" : ""} ${late ? "late" : ""}`,
    title: late ? t("inbox.late") : null,
    href: `#/c/${c.id}`, "data-conv": c.id,
  },
    h("div", { class: "avatar" }, initials(displayName(item.customer)),
      channelIcon((last ? shownChannel(last.channel, last.identity, last.meta) : customerChannel(c.channel, item.customer))[0])),
    h("div", { class: "conv-item-body" },
      h("div", { class: "conv-item-top" },
        h("strong", {}, displayName(item.customer)),
        h("time", {}, ago(last ? last.created_at : c.updated_at))),
      h("div", { class: "conv-item-preview" },
        last && last.direction === "out" ? h("span", { class: "muted" }, t("inbox.you")) : null, preview || t("inbox.no_messages")),
      item.snooze ? h("div", { class: "conv-item-snooze" }, icon("snooze"), snoozeText(item.snooze)) : null,
      labels.length ? h("div", { class: "conv-item-labels" }, labels.map((l) => labelChip(l))) : null));
  if (!state.selecting) return link;
  return h("div", { class: "conv-row" }, selectBox(c.id, displayName(item.customer)), link);
}

function renderInbox() {
  if (state.view !== "all") return renderView();
  const mine = state.inbox.filter((i) => i.conversation.agent_id === state.me.id);
  const sections = [h("h2", {}, t("inbox.mine"), h("span", { class: "count" }, String(mine.length)))];
  sections.push(mine.length ? h("div", { class: "list", "data-section": "mine" }, mine.map(inboxItem))
    : h("p", { class: "empty" }, state.presence === "available" ? t("inbox.nothing_mine_available") : t("inbox.nothing_mine")));
  const myQueues = state.me.role === "admin" ? state.queues.map((q) => q.name) : state.me.queues;
  for (const name of myQueues) {
    const q = state.queues.find((x) => x.name === name) || { name, title: name };
    const waiting = state.inbox.filter((i) => i.conversation.queue === name && !i.conversation.agent_id);
    sections.push(h("h2", { "data-queue": name }, q.title, h("span", { class: `count ${waiting.length ? "hot" : ""}` }, String(waiting.length))));
    sections.push(waiting.length ? h("div", { class: "list" }, waiting.map(inboxItem)) : h("p", { class: "empty" }, t("inbox.no_one_waiting")));
  }
  const others = state.inbox.filter((i) => i.conversation.agent_id && i.conversation.agent_id !== state.me.id);
  if (others.length) {
    sections.push(h("details", { class: "others" }, h("summary", {}, t("inbox.with_teammates", { count: others.length })),
      h("div", { class: "list" }, others.map(inboxItem))));
  }
  clear(els.list).append(...sections);
  const waitingTotal = state.inbox.filter((i) => !i.conversation.agent_id).length;
  document.title = `${waitingTotal ? `(${waitingTotal}) ` : ""}hub`;
}

// One view (Mine, a queue, Snoozed, a saved filter…): a flat list under its name and count.
const EMPTY = {
  mine: () => t("inbox.nothing_mine"), unassigned: () => t("inbox.nobody_waiting"), snoozed: () => t("inbox.nothing_snoozed"),
  resolved: () => t("inbox.nothing_resolved"), mentions: () => t("inbox.no_mentions"),
};

function renderView() {
  const v = currentView();
  const ids = state.inbox.map((i) => i.conversation.id);
  const head = h("h2", { "data-view": v.id }, v.name, h("span", { class: "count" }, String(state.inbox.length)));
  const pick = state.selecting && ids.length ? h("button", { class: "btn btn-ghost btn-small", id: "select-all", type: "button",
    onclick: () => selectAll(ids) }, ids.every((id) => state.selected.has(id)) ? t("inbox.select_none") : t("inbox.select_all")) : null;
  append(clear(els.list), [head, pick, state.inbox.length ? h("div", { class: "list", "data-section": v.id }, state.inbox.map(inboxItem))
    : h("p", { class: "empty" }, EMPTY[v.id] ? EMPTY[v.id]() : t("inbox.nothing_matches"))]);
}

// -- routing between views --------------------------------------------------------------------------------------

function route() {
  const hash = location.hash || "#/";
  const admin = hash.match(/^#\/admin(?:\/(\w+))?$/);
  const current = hash === "#/wall" ? "wall" : hash === "#/attention" ? "attention" : hash === "#/reports" ? "reports"
    : hash === "#/mentions" ? "mentions" : hash === "#/campaigns" ? "reports"
    : admin ? "admin" : "inbox";
  for (const a of document.querySelectorAll(".nav-link")) a.classList.toggle("active", a.dataset.nav === current);
  els.side.classList.remove("hidden");
  const m = hash.match(/^#\/c\/(\d+)(?:\/m\/(\d+))?$/);
  // On a phone one column shows at a time: the inbox, or what was opened from it.
  document.body.classList.toggle("showing-main", hash !== "#/" && hash !== "#" && hash !== "");
  toggleDrawer(false);
  if (hash !== "#/wall") stopWall();
  if (m) {
    conversation.openConversation(Number(m[1]), els.main, els.side, m[2] ? Number(m[2]) : null).then(renderInbox);
  } else if (hash === "#/wall" && ["admin", "supervisor"].includes(state.me.role)) {
    showWall(els.main, els.side);
  } else if (hash === "#/attention" && ["admin", "supervisor"].includes(state.me.role)) {
    showAttention(els.main, els.side).catch((e) => toast(e.message, "error"));
  } else if (hash === "#/reports") {
    showReports(els.main, els.side);
  } else if (hash === "#/campaigns" && ["admin", "supervisor"].includes(state.me.role)) {
    showCampaigns(els.main, els.side);
  } else if (hash === "#/mentions") {
    showMentions(els.main, els.side);
  } else if (admin && state.me.role === "admin") {
    showAdmin(els.main, els.side, admin[1]);
  } else {
    if (admin) navigate("#/");
    clear(els.side);
    els.side.classList.add("hidden");
    clear(els.main).append(h("div", { class: "empty-state" }, icon("inbox", "big"),
      h("h2", {}, t("home.welcome", { name: state.me.name.split(" ")[0] })),
      h("p", {}, t("home.pick")),
      h("p", { class: "muted" }, t("home.press"), h("kbd", {}, "?"), t("home.for_shortcuts"))));
  }
  loadInbox();
}

window.addEventListener("hashchange", () => state.me && route());

// -- live events ------------------------------------------------------------------------------------------------

function onEvent(event) {
  const d = event.data || {};
  switch (event.type) {
    case "message.created": {
      const msg = d.message;
      const shown = conversation.onMessageCreated(d);
      if (msg && msg.direction === "in" && !shown) state.unread.add(msg.conversation_id);
      // A survey answer moves the wall's satisfaction figure and may be a low rating: shown as it arrives.
      if (msg && msg.meta && msg.meta.csat && location.hash === "#/wall") wallSoon();
      state.unread.size && !shown && msg && msg.direction === "in" && document.hidden && notify(
        t("notify.new_message", { name: displayName(d.customer) }), msg.text || channelLabel(msg.channel));
      refreshSoon();
      break;
    }
    case "message.status":
      conversation.onMessageStatus(d);
      break;
    case "typing":
      conversation.onTyping(d);
      break;
    case "message.updated":
      conversation.onMessageUpdated(d);
      break;
    case "agent.created":
    case "agent.updated":
      if (d.agent) state.agents.set(d.agent.id, { ...state.agents.get(d.agent.id), ...d.agent });
      break;
    case "conversation.opened":
    case "conversation.reopened":
    case "conversation.resolved":
      if (event.type === "conversation.resolved" && d.conversation) removeOffer(d.conversation.id);
      conversation.onConversationChanged(d.conversation);
      refreshSoon();
      break;
    case "conversation.snoozed":
      if (d.conversation) conversation.onRoutingChanged(d.conversation.id);
      refreshSoon();
      break;
    case "conversation.woke":
      if (d.agent === state.me.id) {
        const c = d.conversation;
        toast(describeWake(d), "info", 10000, c ? { label: t("notify.open"), run: () => navigate(`#/c/${c.id}`) } : null);
        if (document.hidden) notify(t("notify.snooze_back"), describeWake(d));
        chime();
      }
      refreshSoon();
      break;
    case "labels.changed":
      if (d.label || d.deleted) loadLabels().then(() => refreshSoon());
      else refreshSoon();
      if (d.conversation_id) conversation.onLabelsChanged(d.conversation_id, d.labels);
      break;
    case "customer.merged":
      conversation.resync();
      refreshSoon();
      break;
    case "customer.updated":
      conversation.onCustomerUpdated(d);
      refreshSoon();
      break;
    case "mention.created":
      onMention(d);
      break;
    case "routing.offered":
      if (d.agent === state.me.id) loadOffers(true);
      refreshSoon();
      break;
    case "routing.assigned":
    case "routing.rejected":
    case "routing.offer_timed_out":
    case "routing.transferred":
    case "routing.resolved":
    case "routing.queued":
      // Whatever moved it (taken, rejected, timed out, transferred, claimed by a teammate), it is no longer an offer
      // to this agent; the server's list says whether another one is.
      if (offers.has(d.conversation)) {
        removeOffer(d.conversation);
        loadOffers();
      }
      if (event.type === "routing.assigned" && d.agent === state.me.id) state.unread.add(d.conversation);
      conversation.onRoutingChanged(d.conversation);
      refreshSoon();
      break;
    case "routing.sla_breached":
    case "routing.first_response":
      refreshSoon();  // the inbox marks or unmarks the conversation as late
      break;
    case "routing.presence":
      if (d.agent === state.me.id) {
        showPresence(d.presence);
        if (d.presence !== "available" && offers.size) {
          offersVersion += 1;
          offers.clear();  // the hub hands them back to their queues; the tray empties at once
          renderOffers();
        }
        if (d.reason === "missed_offers") toast(t("presence.set_away"), "info", 8000);
      }
      if (state.agents.has(d.agent)) state.agents.get(d.agent).presence = d.presence;
      if (location.hash === "#/wall") wallSoon();
      break;
    default:
      break;
  }
  if (event.type.startsWith("routing.") && location.hash === "#/wall") wallSoon();
}

const refreshSoon = debounce(() => loadInbox(), 200);
const wallSoon = debounce(() => refreshWall(), 400);

// -- offers -----------------------------------------------------------------------------------------------------

// Offers change under a request in flight (an answer, an event): a list fetched before the latest change is stale
// and dropped, so an answered or withdrawn offer never comes back from an older answer.
let offersVersion = 0;

async function loadOffers(fresh = false) {
  const asked = ++offersVersion;
  let items;
  try {
    items = (await api.get("/api/v1/offers")).items;
  } catch (err) {
    if (missing(err)) state.routing = false;
    return;
  }
  if (asked !== offersVersion) return;
  const known = new Set(offers.keys());
  offers = new Map(items.map((o) => [o.conversation_id, o]));
  const added = items.filter((o) => !known.has(o.conversation_id));
  renderOffers();
  if (fresh && added.length) {
    chime();
    const o = added[0];
    const title = o.channel === "voice" ? t("offers.call_from", { name: displayName(o.customer) })
      : t("offers.channel_from", { channel: customerChannel(o.channel, o.customer)[1], name: displayName(o.customer) });
    if (document.hidden) notify(title, o.preview || t("offers.new_offered"));
  }
}

function removeOffer(conversationId) {
  offersVersion += 1;
  if (offers.delete(conversationId)) renderOffers();
}

// The tray shows the newest few; the rest wait behind "+N more" so it never grows past the column.
const TRAY_SHOWN = 3;
let trayOpen = false;

function newestFirst() {
  return [...offers.values()].sort((a, b) => b.deadline - a.deadline || b.conversation_id - a.conversation_id);
}

function offerCard(o, top) {
  const total = Math.max(1, o.deadline * 1000 - (o.shown_at || (o.shown_at = state.live.now())));
  o.total = o.total || total;
  const call = o.channel === "voice";
  const who = displayName(o.customer);
  const [kindIcon, kindLabel] = customerChannel(o.channel, o.customer);
  const number = ((o.customer && o.customer.identities) || []).map((i) => i.value).find((v) => v !== who);
  const earlier = o.earlier_conversations || 0;
  const history = earlier ? t("offers.earlier", { count: earlier }) : t("offers.first_contact");
  return h("div", {
    class: `offer ${call ? "offer-call" : ""} ${top ? "top" : ""}`, "data-offer": o.conversation_id,
    "data-channel": o.channel, role: "group",
    "aria-label": call ? t("offers.call_from", { name: who }) : t("offers.new_from", { channel: kindLabel, name: who }),
  },
    h("div", { class: "offer-head" },
      call ? h("span", { class: "ring", title: t("offers.incoming_call") }, icon("voice")) : channelIcon(kindIcon),
      h("strong", { class: "offer-name" }, who),
      h("span", { class: "offer-countdown" }, "")),
    h("div", { class: "offer-line" },
      h("span", { class: "offer-kind" }, call ? t("offers.incoming_call") : kindLabel),
      ` · ${queueTitle(o.queue)}`,
      call ? ` · ${history}` : ""),
    call ? (number ? h("p", { class: "offer-preview" }, number) : null)
      : o.preview ? h("p", { class: "offer-preview" }, `“${o.preview}”`) : null,
    h("div", { class: "offer-bar" }, h("span", {})),
    h("div", { class: "offer-actions" },
      h("button", { class: "btn", onclick: () => answerOffer(o, "reject"), title: top ? `${t("offers.reject")} (x)` : t("offers.reject") },
        t("offers.reject"), top ? h("kbd", {}, "x") : null),
      h("button", { class: `btn ${call ? "btn-call" : "btn-primary"}`, onclick: () => answerOffer(o, "accept"),
        title: top ? `${t("offers.accept")} (a)` : t("offers.accept") }, call ? icon("voice") : null, call ? t("offers.answer") : t("offers.accept"),
      top ? h("kbd", {}, "a") : null)));
}

function renderOffers() {
  const all = newestFirst();
  const shown = trayOpen ? all : all.slice(0, TRAY_SHOWN);
  const more = all.length - shown.length;
  const cards = shown.map((o, i) => offerCard(o, i === 0));
  clear(els.offers).append(...cards);
  if (more > 0 || (trayOpen && all.length > TRAY_SHOWN)) {
    els.offers.append(h("button", {
      class: "offers-more", id: "offers-more", type: "button", "aria-expanded": String(trayOpen),
      onclick: () => { trayOpen = !trayOpen; renderOffers(); },
    }, trayOpen ? t("offers.show_fewer") : t("offers.more", { count: more })));
  }
  if (all.length <= TRAY_SHOWN) trayOpen = false;
  els.offers.classList.toggle("has-offers", all.length > 0);
  document.body.classList.toggle("ringing", all.some((o) => o.channel === "voice"));
  tickOffers();
}

function queueTitle(name) {
  const q = state.queues.find((x) => x.name === name);
  return q ? q.title : name;
}

function tickOffers() {
  if (!state.live) return;
  const now = state.live.now();
  for (const o of offers.values()) {
    const el = els.offers.querySelector(`[data-offer="${Number(o.conversation_id)}"]`);
    if (!el) continue;
    const left = Math.max(0, o.deadline * 1000 - now);
    el.querySelector(".offer-countdown").textContent = t("offers.seconds", { count: Math.ceil(left / 1000) });
    el.querySelector(".offer-bar span").style.width = `${Math.min(100, (left / o.total) * 100)}%`;
    el.classList.toggle("urgent", left < 8000);
    if (left <= 0) setTimeout(() => removeOffer(o.conversation_id), 800);
  }
}

async function answerOffer(o, action) {
  removeOffer(o.conversation_id);
  try {
    await api.post(`/api/v1/conversations/${o.conversation_id}/${action}`, {});
    if (action === "accept") navigate(`#/c/${o.conversation_id}`);
    if (action === "accept" && o.channel === "voice") toast(t("offers.phone_ringing"), "info", 6000);
    loadOffers();  // the answer may have made room for, or taken, other offers
  } catch (err) {
    // A call the hub cannot ring this agent for: the offer stays (reject it, or let it time out), with the reason.
    const cannotRing = err.status === 409 && /phone call/.test(err.message);
    toast(err.status === 409 && !cannotRing ? t("offers.gone") : err.message, "error",
      cannotRing ? 10000 : 4000);
    if (cannotRing) loadOffers();
  }
  loadInbox();
}

// Sound and desktop notifications: browsers allow them only after a user gesture, so prime on the first one.
let audio = null;

function primeAttention() {
  if (!audio && window.AudioContext) audio = new AudioContext();
  if (window.Notification && Notification.permission === "default") Notification.requestPermission().catch(() => {});
}

function chime() {
  if (!audio) return;
  const t = audio.currentTime;
  for (const [i, freq] of [660, 880].entries()) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, t + i * 0.16);
    gain.gain.exponentialRampToValueAtTime(0.18, t + i * 0.16 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + i * 0.16 + 0.3);
    osc.connect(gain).connect(audio.destination);
    osc.start(t + i * 0.16);
    osc.stop(t + i * 0.16 + 0.32);
  }
}

function notify(title, body) {
  if (!window.Notification || Notification.permission !== "granted") return;
  const n = new Notification(title, { body: String(body).slice(0, 140), tag: "hub" });
  n.onclick = () => { window.focus(); n.close(); };
}

document.addEventListener("pointerdown", primeAttention, { once: true });

// -- search -----------------------------------------------------------------------------------------------------

async function search() {
  const q = els.search.value.trim();
  if (q.length < 2) {
    els.results.classList.add("hidden");
    return;
  }
  let found;
  try {
    found = await api.get(`/api/v1/search?q=${encodeURIComponent(q)}&limit=8`);
  } catch (err) {
    found = { customers: [], messages: [], terms: [] };
  }
  if (els.search.value.trim() !== q) return;
  const rows = [];
  if (found.customers.length) {
    rows.push(h("div", { class: "results-head" }, t("search.customers")));
    rows.push(...found.customers.map((c) => h("button", {
      class: "result", type: "button", "data-customer": c.id, onmousedown: (e) => { e.preventDefault(); openCustomer(c); },
    }, h("span", { class: "avatar small" }, initials(displayName(c))),
      h("span", { class: "result-body" }, h("strong", {}, displayName(c)),
        h("small", { class: "muted" }, (c.identities || []).map((x) => x.value).join(" · "))))));
  }
  if (found.messages.length) {
    rows.push(h("div", { class: "results-head" }, t("search.messages")));
    rows.push(...found.messages.map((r) => h("button", {
      class: "result result-message", type: "button", "data-message": r.message.id,
      onmousedown: (e) => { e.preventDefault(); openMessage(r); },
    }, channelIcon(r.message.channel),
      h("span", { class: "result-body" },
        h("span", { class: "result-top" }, h("strong", {}, displayName(r.customer)),
          h("small", { class: "muted" }, `${r.message.direction === "out" ? t("search.reply") : r.message.kind === "note" ? t("search.note") : t("search.message")} · ${ago(r.message.created_at)}`)),
        h("small", { class: "snippet" }, highlight(r.snippet, found.terms))))));
  }
  if (!rows.length) rows.push(h("div", { class: "muted no-results" }, t("search.nothing", { query: q })));
  rows.find((el) => el.classList.contains("result"))?.classList.add("active");
  clear(els.results).append(...rows);
  els.results.classList.remove("hidden");
}

// Marks the query's words in a snippet, as text nodes and <mark> elements: nothing from the message is parsed.
function highlight(text, terms) {
  if (!terms || !terms.length) return text;
  const escaped = terms.map((term) => term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(${escaped.join("|")})`, "giu");
  const out = [];
  let at = 0;
  for (const m of text.matchAll(re)) {
    out.push(text.slice(at, m.index), h("mark", {}, m[0]));
    at = m.index + m[0].length;
  }
  out.push(text.slice(at));
  return out;
}

function openMessage(r) {
  els.results.classList.add("hidden");
  els.search.value = "";
  els.search.blur();
  navigate(`#/c/${r.conversation.id}/m/${r.message.id}`);
}

function searchKeys(e) {
  const items = [...els.results.querySelectorAll(".result")];
  const at = items.findIndex((x) => x.classList.contains("active"));
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    if (!items.length) return;
    const next = (at + (e.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
    items.forEach((x, i) => x.classList.toggle("active", i === next));
  } else if (e.key === "Enter" && at >= 0) {
    e.preventDefault();
    items[at].dispatchEvent(new MouseEvent("mousedown"));
  } else if (e.key === "Escape") {
    els.search.value = "";
    els.results.classList.add("hidden");
    els.search.blur();
  }
}

async function openCustomer(c) {
  els.results.classList.add("hidden");
  els.search.value = "";
  els.search.blur();
  try {
    const full = await api.get(`/api/v1/customers/${c.id}`);
    const latest = (full.conversations || [])[0];
    if (latest) navigate(`#/c/${latest.id}`);
    else toast(t("search.no_conversations"));
  } catch (err) {
    toast(err.message, "error");
  }
}

// -- keyboard ---------------------------------------------------------------------------------------------------

const SHORTCUTS = () => [
  ["/", t("keys.search")], ["j / k", t("keys.next_prev")], ["r", t("keys.reply")], ["n", t("keys.note")],
  ["Ctrl+Enter", t("keys.send")], ["e", t("keys.resolve")], ["z", t("keys.snooze")], ["m", t("keys.claim")], ["t", t("keys.transfer")],
  ["a / x", t("keys.offer")], ["g i", t("nav.inbox")], ["g w", t("nav.wall")], ["g a", t("nav.admin")], ["?", t("keys.help")],
];
let pendingG = false;

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && document.body.classList.contains("drawer-open")) {
    toggleDrawer(false);
    return;
  }
  if (!state.me || e.ctrlKey || e.metaKey || e.altKey) return;
  const target = e.target;
  if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement || document.querySelector("dialog[open]")) return;
  const key = e.key;
  if (pendingG) {
    pendingG = false;
    if (key === "i") navigate("#/");
    if (key === "w") navigate("#/wall");
    if (key === "a" && state.me.role === "admin") navigate("#/admin/agents");
    return;
  }
  const first = newestFirst()[0];
  const actions = {
    "/": () => els.search.focus(),
    j: () => step(1), k: () => step(-1),
    r: () => conversation.focusReply(), n: () => conversation.setMode("note"),
    e: () => conversation.resolveCurrent(), z: () => conversation.snoozeCurrent(), t: () => conversation.openTransfer(), m: () => conversation.claimCurrent(),
    a: () => first && answerOffer(first, "accept"), x: () => first && answerOffer(first, "reject"),
    g: () => { pendingG = true; },
    "?": showShortcuts,
  };
  if (actions[key]) {
    e.preventDefault();
    actions[key]();
  }
});

function step(delta) {
  const links = [...els.list.querySelectorAll(".conv-item")];
  if (!links.length) return;
  const at = links.findIndex((a) => a.classList.contains("active"));
  const next = links[Math.max(0, Math.min(links.length - 1, at < 0 ? 0 : at + delta))];
  navigate(next.getAttribute("href"));
  next.scrollIntoView({ block: "nearest" });
}

function showShortcuts() {
  modal(t("keys.title"), [h("dl", { class: "shortcuts" },
    SHORTCUTS().map(([k, what]) => h("div", {}, h("dt", {}, k.split(" ").map((p) => p === "/" && k !== "/" ? " / " : h("kbd", {}, p))), h("dd", {}, what))))],
  t("keys.got_it"), () => true);
}

// -- boot -------------------------------------------------------------------------------------------------------

whenSignedOut(() => {
  if (state.me) {
    state.me = null;
    showSignIn(t("signin.session_ended"));
  }
});

applyTheme(); // before anything is drawn, so a dark console never flashes light
applyLanguage();
(async () => {
  try {
    start(await api.get("/console/session"));
  } catch {
    showSignIn();
  }
})();
