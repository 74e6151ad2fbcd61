// One message of the timeline, whatever its channel and kind. Customer text goes in as text nodes; an email's
// (already sanitized) HTML is shown only inside a sandboxed frame that may run no script.
import { h, icon, channelIcon, channelLabel, clockTime, fullTime, duration, shownChannel } from "./dom.js";
import { state } from "./state.js";
import { t, formatNumber } from "./i18n.js";

const EMAIL_FRAME_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:";
const EMAIL_FRAME_STYLE =
  "html,body{margin:0;padding:0;background:transparent}body{font:14px/1.55 -apple-system,BlinkMacSystemFont," +
  "'Segoe UI',Roboto,sans-serif;color:#1f2430;overflow-wrap:anywhere}img{max-width:100%;height:auto}" +
  "blockquote{margin:0 0 0 .6em;padding-left:.8em;border-left:3px solid #d8dce5;color:#5b6272}a{color:#3b5bdb}" +
  "table{max-width:100%}pre{white-space:pre-wrap}";

const CALL_OUTCOMES = () => ({
  answered: t("callout.answered"), completed: t("callout.completed"), no_answer: t("callout.no_answer"),
  "no-answer": t("callout.no_answer"), busy: t("callout.busy"), failed: t("callout.failed"),
  agent_missed: t("callout.agent_missed"), dialing: t("call.dialing"), canceled: t("callout.canceled"),
  ringing: t("callout.ringing"), menu: t("callout.menu"), queued: t("callout.queued"), abandoned: t("callout.abandoned"),
  missed: t("callout.missed"), voicemail: t("callout.voicemail"), no_agent: t("callout.no_agent"),
  after_hours: t("callout.after_hours"), ringing_agent: t("callout.ringing_agent"), talking: t("callout.talking"),
});
// The agent leg of a bridge still ringing or being screened (not yet connected or missed).
const AGENT_LEG_LIVE = ["queued", "initiated", "ringing", "in-progress"];

export function statusTick(msg) {
  if (msg.direction !== "out" || msg.kind === "note" || msg.kind === "event") return null;
  const s = msg.status;
  const map = {
    queued: ["clock", t("tick.queued")], sending: ["clock", t("tick.sending")], sent: ["check", t("tick.sent")],
    delivered: ["checks", t("tick.delivered")], read: ["checks", t("tick.read")],
    failed: ["alert", t("tick.failed")], undelivered: ["alert", t("tick.undelivered")],
  };
  const [name, label] = map[s] || ["clock", s];
  const title = msg.status_reason ? `${label}: ${msg.status_reason}` : label;
  return h("span", { class: `tick tick-${s}`, title, "data-status": s, role: "img", "aria-label": title }, icon(name),
    s === "failed" || s === "undelivered" ? h("span", { class: "tick-text" }, label) : null);
}

function attachmentsOf(msg) {
  const items = (msg.attachments || []).filter((a) => !(msg.kind === "voicemail" && /^audio\//.test(a.content_type)));
  if (!items.length) return null;
  return h("div", { class: "attachments" }, items.map((a) => {
    const url = `/api/v1/attachments/${Number(a.id)}`;
    if (a.status === "stored" && /^image\/(png|jpe?g|gif|webp)$/.test(a.content_type)) {
      return h("a", { class: "att-image", href: url, target: "_blank", rel: "noopener" },
        h("img", { src: url, alt: a.filename, loading: "lazy" }));
    }
    if (a.status === "stored" && /^audio\//.test(a.content_type)) {
      return h("audio", { controls: true, preload: "none", src: url });
    }
    return h("a", { class: "att-file", href: a.status === "stored" ? url : null, download: a.status === "stored" ? a.filename : null,
      title: a.error || a.filename },
      icon("paperclip"), h("span", {}, a.filename),
      h("small", {}, a.status === "stored" ? `${formatNumber(Math.max(1, Math.round((a.size || 0) / 1024)))} KB` : a.status));
  }));
}

function emailBody(html) {
  const frame = h("iframe", {
    class: "email-frame",
    // No allow-scripts: nothing in the mail can run. allow-same-origin only lets us measure its height.
    sandbox: "allow-same-origin allow-popups allow-popups-to-escape-sandbox",
    referrerpolicy: "no-referrer",
    title: t("email.content"),
  });
  const doc = `<!doctype html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${EMAIL_FRAME_CSP}">` +
    `<base target="_blank"><style>${EMAIL_FRAME_STYLE}</style>${html}`;
  frame.srcdoc = doc;
  frame.addEventListener("load", () => {
    try {
      const height = frame.contentDocument.documentElement.scrollHeight;
      frame.style.height = `${Math.min(Math.max(height, 40), 1600)}px`;
    } catch {
      frame.style.height = "320px";
    }
  });
  return frame;
}

// A running talk time ("0:12") from the hub's talk_started_at (epoch seconds), kept current by one timer for every
// such clock on the page; the timer stops once none is shown.
let talkTimer = null;

export function talkClock(startedAt) {
  const since = Number(startedAt) > 0 ? Number(startedAt) * 1000 : Date.now();
  if (!talkTimer) talkTimer = setInterval(tickTalkClocks, 1000);
  return h("span", { class: "talk-clock", "data-talk-since": String(since) }, talkTime(since));
}

function talkTime(since) {
  return duration(Math.floor(Math.max(0, Date.now() - since) / 1000));
}

function tickTalkClocks() {
  const clocks = document.querySelectorAll("[data-talk-since]");
  for (const el of clocks) el.textContent = talkTime(Number(el.dataset.talkSince));
  if (!clocks.length) {
    clearInterval(talkTimer);
    talkTimer = null;
  }
}

function meta(msg, ...keys) {
  const m = msg.meta || {};
  for (const k of keys) if (m[k] !== undefined && m[k] !== null && m[k] !== "") return m[k];
  return null;
}

// A call, in words built from what the hub learned about it (the server's summary text stays as the tooltip).
function callCard(msg, ctx) {
  const m = msg.meta || {};
  const inbound = msg.direction === "in";
  const raw = meta(msg, "outcome", "call_status", "CallStatus");
  let label = CALL_OUTCOMES()[raw] || raw || "";
  if (raw === "talking") label = h("span", {}, t("call.talking"), talkClock(m.talk_started_at));
  const agent = inbound ? m.agent_id : msg.agent_id;
  const who = agent !== undefined && agent !== null ? ctx.agentName(agent) : "";
  const me = Boolean(state.me) && agent === state.me.id;
  if (inbound && raw === "answered" && who) label = me ? t("callout.answered_by_you") : t("callout.answered_by", { name: who });
  else if (inbound && raw === "queued" && who && AGENT_LEG_LIVE.includes(m.agent_call_status || "queued") &&
           m.agent_call_sid && !m.bridge_error) {
    label = m.screen_result === "accepted" ? t("callout.connecting", { name: who })
      : me ? t("call.ringing") : t("callout.ringing_whose", { name: who });
  } else if (inbound && raw === "queued" && m.queue) {
    const q = state.queues.find((x) => x.name === m.queue);
    label = t("callout.waiting_in", { queue: q ? q.title : m.queue });
  }
  const details = [
    m.talk_seconds !== undefined && m.talk_seconds !== null ? t("call.talk_time", { time: duration(m.talk_seconds) }) : null,
    inbound && m.queue_seconds !== undefined && m.queue_seconds !== null ? t("callout.waited", { time: duration(m.queue_seconds) }) : null,
    inbound ? m.from : m.to,
  ].filter(Boolean);
  const problem = m.bridge_error ? t("callout.could_not_ring", { name: who || t("callout.the_agent"), reason: m.bridge_error })
    : msg.status === "failed" && msg.status_reason ? msg.status_reason : null;
  return h("div", { class: "call-card", title: msg.text || "" },
    h("span", { class: "call-icon" }, icon("voice")),
    h("div", {},
      h("strong", {}, inbound ? t("offers.incoming_call") : t("callout.outgoing")),
      h("div", { class: "call-outcome" }, label),
      details.length ? h("div", { class: "muted" }, details.join(" · ")) : null,
      problem ? h("div", { class: "call-problem" }, problem) : null));
}

// meta.transcript is the transcription's state (pending, completed, failed); the transcript itself is the text.
// The state shows only while it matters: pending, or failed (then the recording is the message).
function voicemailCard(msg) {
  const audio = (msg.attachments || []).find((a) => /^audio\//.test(a.content_type));
  const progress = meta(msg, "transcript");
  const secs = meta(msg, "recording_seconds", "duration", "RecordingDuration");
  const pending = progress === "pending";
  const failed = progress === "failed";
  const transcript = pending || failed ? null : msg.text;
  return h("div", { class: "voicemail-card", "data-transcript": progress || "" },
    h("div", { class: "vm-head" }, icon("voicemail"), h("strong", {}, t("inbox.voicemail")),
      secs !== null ? h("span", { class: "muted" }, duration(secs)) : null),
    audio && audio.status === "stored"
      ? h("audio", { controls: true, preload: "metadata", src: `/api/v1/attachments/${Number(audio.id)}`,
        "aria-label": t("vm.recording") })
      : h("div", { class: "muted vm-recording" }, audio ? (audio.status === "failed"
        ? (audio.error ? t("vm.not_fetched_why", { reason: audio.error }) : t("vm.not_fetched")) : t("vm.fetching"))
        : t("vm.none")),
    transcript ? h("blockquote", { class: "transcript" }, transcript) : null,
    pending ? h("div", { class: "vm-state" }, icon("clock"), t("vm.transcribing")) : null,
    failed ? h("div", { class: "vm-state bad" }, icon("alert"), t("vm.no_transcript")) : null);
}

function body(msg, ctx) {
  if (msg.kind === "call") return callCard(msg, ctx);
  if (msg.kind === "voicemail") return voicemailCard(msg);
  const mail = (msg.meta && msg.meta.email) || {};
  if (msg.channel === "email" || msg.html || meta(msg, "subject")) {
    const subject = meta(msg, "subject") || mail.subject;
    const trimmed = () => (msg.html ? emailBody(msg.html) : h("div", { class: "text" }, msg.text));
    const card = h("div", { class: "email-card" }, subject ? h("div", { class: "email-subject" }, subject) : null,
      emailHeads(msg, mail));
    let shown = trimmed();
    card.append(shown);
    // The hub shows the new part of an email; the quoted history and signature stay one click away.
    if (mail.full_html || mail.full_text) {
      const full = () => (mail.full_html ? emailBody(mail.full_html) : h("div", { class: "text" }, mail.full_text));
      const toggle = h("button", { class: "email-quoted", type: "button", "aria-expanded": "false" },
        icon("more"), h("span", {}, t("email.show_quoted")));
      toggle.addEventListener("click", () => {
        const open = toggle.getAttribute("aria-expanded") !== "true";
        const next = open ? full() : trimmed();
        shown.replaceWith(next);
        shown = next;
        toggle.setAttribute("aria-expanded", String(open));
        toggle.lastChild.textContent = open ? t("email.hide_quoted") : t("email.show_quoted");
      });
      card.append(toggle);
    }
    return card;
  }
  return h("div", { class: "text" }, msg.text);
}

// Who else it went to, and what the hub noticed about it: written by a machine, a list post, a reused Message-ID.
function emailHeads(msg, mail) {
  const m = msg.meta || {};
  const to = (mail.to || []).join(", ");
  const cc = (mail.cc || []).join(", ");
  const marks = [
    m.automatic ? h("span", { class: "mark mark-automatic", title: m.automatic }, t("email.automatic")) : null,
    mail.list_id ? h("span", { class: "mark", title: mail.list_id }, t("email.list")) : null,
    m.reused_external_id ? h("span", { class: "mark mark-warn", title: t("email.reused_title") }, t("email.reused")) : null,
    mail.broken ? h("span", { class: "mark mark-warn", title: mail.broken.join(", ") }, t("email.damaged")) : null,
  ].filter(Boolean);
  if (!to && !cc && !marks.length) return null;
  return h("div", { class: "email-heads" },
    to ? h("span", { class: "email-to" }, t("email.to", { to })) : null,
    cc ? h("span", { class: "email-cc" }, t("email.cc", { cc })) : null, marks);
}

// A business event (POST /api/v1/events) as a compact card: what, how much, the items and a few payload fields.
const EVENT_TITLES = () => ({ "order.placed": t("event.order_placed"), "payment.failed": t("event.payment_failed") });

function businessEvent(msg, ev) {
  const items = Array.isArray(ev.items) ? ev.items : [];
  const fields = Object.entries(ev.payload && typeof ev.payload === "object" ? ev.payload : {}).slice(0, 4);
  const text = (v) => {
    const s = typeof v === "string" ? v : JSON.stringify(v);
    return s.length > 80 ? `${s.slice(0, 79)}…` : s;
  };
  const money = typeof ev.amount === "number"
    ? `${formatNumber(ev.amount, { minimumFractionDigits: 2, maximumFractionDigits: 2 })} ${ev.currency || ""}` : null;
  return h("div", { class: `tl-business${ev.type === "payment.failed" ? " failed" : ""}`, "data-mid": msg.id,
    "data-event-type": ev.type },
  h("div", { class: "be-head" }, icon("event"), h("strong", { class: "be-title" }, EVENT_TITLES()[ev.type] || ev.type),
    money ? h("span", { class: "be-amount" }, money) : null,
    h("time", { title: fullTime(msg.created_at) }, clockTime(msg.created_at))),
  items.length ? h("ul", { class: "be-items" }, items.slice(0, 3).map((i) =>
    h("li", {}, `${i.quantity || 1} × ${i.name}`)), items.length > 3 ? h("li", { class: "muted" }, t("event.more", { count: items.length - 3 })) : null) : null,
  fields.length ? h("dl", { class: "be-fields" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, text(v))])) : null,
  ev.external_id ? h("small", { class: "muted be-ref" }, ev.external_id) : null);
}

// A note's text with "@Full Name" of each teammate marked (as text nodes: nothing in it is parsed as HTML).
function withMentions(text, names) {
  if (!names.length || !text.includes("@")) return text;
  const escaped = names.filter(Boolean).sort((a, b) => b.length - a.length).map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const parts = String(text).split(new RegExp(`(@(?:${escaped.join("|")}))(?![\\p{L}\\p{N}_-])`, "iu"));
  return parts.map((p, i) => (i % 2 ? h("span", { class: "mention-tag" }, p) : p));
}

export function renderMessage(msg, ctx) {
  const ev = msg.kind === "event" && msg.meta ? msg.meta.business_event : null;
  if (ev && typeof ev === "object") return businessEvent(msg, ev);
  if (msg.kind === "event") {
    return h("div", { class: "tl-event", "data-mid": msg.id }, icon("event"), h("span", {}, msg.text),
      h("time", { title: fullTime(msg.created_at) }, clockTime(msg.created_at)));
  }
  if (msg.kind === "note") {
    const author = ctx.agentName(msg.agent_id);
    const transfer = meta(msg, "transfer");
    return h("div", { class: "tl-note", "data-mid": msg.id },
      h("div", { class: "note-head" }, icon("note"),
        h("strong", {}, transfer ? t("note.transfer", { to: transfer }) : t("keys.note")),
        author ? h("span", {}, ` · ${author}`) : null,
        h("time", { title: fullTime(msg.created_at) }, clockTime(msg.created_at))),
      h("div", { class: "text" }, withMentions(msg.text, ctx.agentNames || [])));
  }
  const out = msg.direction === "out";
  const who = out ? ctx.agentName(msg.agent_id) || t("transfer.agent") : ctx.customerName;
  // A web-chat visitor id means nothing to a person (the title keeps it); phones and addresses do.
  const via = msg.identity && !String(msg.identity).startsWith("webchat:") ? String(msg.identity).split(":").slice(1).join(":") : "";
  const [shownIcon, shownLabel] = shownChannel(msg.channel, msg.identity, msg.meta);
  const automatic = msg.meta && msg.meta.automatic ? " automatic" : "";
  return h("div", { class: `tl-msg ${out ? "out" : "in"} kind-${msg.kind}${automatic}`, "data-mid": msg.id },
    h("div", { class: "bubble" }, body(msg, ctx), attachmentsOf(msg)),
    h("div", { class: "msg-meta" },
      channelIcon(shownIcon),
      h("span", { class: "who" }, who),
      h("span", { class: "via", title: msg.identity || "" }, `${shownLabel}${via ? " · " + via : ""}`),
      h("time", { title: fullTime(msg.created_at) }, clockTime(msg.created_at)),
      statusTick(msg), csatMark(msg), templateMark(msg)));
}

// An approved WhatsApp template (an agent's or a campaign's): the bubble shows the text the customer reads.
function templateMark(msg) {
  const tpl = meta(msg, "template");
  if (!tpl) return null;
  return h("span", { class: "template-mark", title: t("template.mark_title", { name: tpl.name || tpl.sid }) }, t("template.mark"));
}

// A satisfaction survey (sent) or its answer (received): the score at a glance; an answer that did not count says why.
function csatMark(msg) {
  const c = meta(msg, "csat");
  if (!c) return null;
  if (c.question) return h("span", { class: "csat-mark", title: t("csat.survey_title") }, t("csat.survey"));
  const low = c.score <= 2 ? " csat-low" : "";
  return h("span", { class: `csat-mark${low}${c.ignored ? " csat-ignored" : ""}`,
    title: c.ignored ? t("csat.not_counted", { reason: c.ignored }) : t("csat.score") }, `★ ${c.score}/5`);
}
