// The conversation view: the customer's whole timeline across channels, the reply box, and the customer sidebar.
import { h, icon, clear, append, channelIcon, channelLabel, ago, since, fullTime, parseTime, displayName, initials, debounce, duration, statusName } from "./dom.js";
import { api, missing } from "./api.js";
import { renderMessage, statusTick, talkClock } from "./timeline.js";
import { state, toast, navigate, refreshInbox, modal, toggleDrawer } from "./state.js";
import { attachPicker, manage as manageCanned } from "./canned.js";
import { labelEditor } from "./labels.js";
import { chooseSnooze, snoozeText } from "./views.js";
import { customerCard, detailsCard } from "./profile.js";
import { macroButton } from "./macros.js";
import { t, formatNumber } from "./i18n.js";
import { attachMentionPicker, readMentionsIn } from "./mentions.js";

let view = null; // {conv, customer, messages: Map, next, els...}

export function currentConversation() {
  return view && view.conv;
}

export function agentName(id) {
  if (id === null || id === undefined) return "";
  if (state.me && id === state.me.id) return t("conv.you");
  const a = state.agents.get(id);
  return a ? a.name : t("conv.agent_number", { id });
}

// The channels a reply can go out on: a phone call carries no text (the Call button places calls).
function channelsFor(customer) {
  const kinds = new Set((customer.identities || []).map((i) => i.kind));
  return state.channels.filter((c) => c.name !== "hub" && !c.voice && c.identity_kinds.some((k) => kinds.has(k)));
}

function identityFor(channel, customer) {
  const ident = (customer.identities || []).find((i) => channel.identity_kinds.includes(i.kind));
  return ident ? ident.value : "";
}

export async function openConversation(id, main, side, focusMessage = null) {
  const token = {};
  view = { token, id, messages: new Map(), next: null, files: [] };
  clear(main).append(h("div", { class: "loading" }, t("conv.loading")));
  clear(side);
  let conv;
  try {
    conv = await api.get(`/api/v1/conversations/${id}`);
  } catch (err) {
    if (view.token !== token) return;
    clear(main).append(h("div", { class: "empty-state" }, icon("inbox", "big"),
      h("h2", {}, err.status === 404 ? t("conv.not_available") : t("conv.could_not_open")),
      h("p", {}, err.status === 404
        ? t("conv.not_yours")
        : err.message)));
    return;
  }
  if (view.token !== token) return;
  view.conv = conv;
  view.customer = conv.customer;
  state.unread.delete(conv.id);
  readMentionsIn(conv.id);
  renderShell(main, side);
  await Promise.all([loadTimeline(false), loadCustomer()]);
  if (focusMessage) await showMessage(focusMessage);
}

// Scroll to one message (a search result), loading earlier pages of the timeline until it is there.
async function showMessage(messageId) {
  const v = view;
  for (let pages = 0; v === view && !v.messages.has(messageId) && v.next && pages < 50; pages++) await loadTimeline(true);
  if (v !== view) return;
  const el = v.timelineEl.querySelector(`[data-mid="${Number(messageId)}"]`);
  if (!el) {
    toast(t("conv.message_gone"), "info");
    return;
  }
  el.scrollIntoView({ block: "center" });
  el.classList.add("found");
  setTimeout(() => el.classList.remove("found"), 4000);
}

function renderShell(main, side) {
  const { conv, customer } = view;
  const options = channelsFor(customer);
  const lastUsed = conv.last_inbound_channel || conv.channel;
  // After a call, the reply goes by text to the same number (a provider channel sharing its identity kind).
  const last = state.channels.find((c) => c.name === lastUsed);
  const sameKind = last && options.find((c) => c.name !== "api" && c.identity_kinds.some((k) => last.identity_kinds.includes(k)));
  view.channel = (options.find((c) => c.name === lastUsed) || sameKind || options[0] || { name: "" }).name;
  view.mode = "reply";

  view.timelineEl = h("div", { class: "timeline", id: "timeline", role: "log", "aria-live": "polite" });
  view.typingEl = h("div", { class: "typing-line hidden", id: "typing-line", role: "status" });
  view.headerEl = h("header", { class: "conv-header" });
  view.replyEl = h("div", { class: "reply" });
  clear(main).append(view.headerEl, view.timelineEl, view.typingEl, view.replyEl);
  renderHeader();
  renderReply(options);
  view.sideEl = side;
}

function renderHeader() {
  const { conv, customer } = view;
  const assigned = conv.agent_id ? agentName(conv.agent_id) : null;
  const queue = state.queues.find((q) => q.name === conv.queue);
  const mine = conv.agent_id === state.me.id;
  clear(view.headerEl).append(
    h("div", { class: "conv-title" },
      h("a", { class: "icon-btn back-btn", href: "#/", "aria-label": t("conv.back"), title: t("conv.back") },
        icon("back")),
      h("div", { class: "avatar" }, initials(displayName(customer))),
      h("div", {},
        h("h1", {}, displayName(customer)),
        h("div", { class: "conv-sub" },
          h("span", { class: `pill status-${conv.status}` }, statusName(conv.status)),
          h("span", {}, queue ? queue.title : conv.queue || t("conv.no_queue")),
          assigned ? h("span", {}, `· ${assigned}`) : null,
          conv.status === "snoozed" ? h("span", { class: "snooze-note", id: "snooze-note" }, `· ${snoozeText(conv.snooze)}`) : null,
          h("span", { class: "muted" }, `· #${conv.id} · ${t("conv.opened", { when: since(conv.created_at) })}`)),
        labelEditor(`/api/v1/conversations/${conv.id}/labels`, conv.labels || [], (names) => {
          if (view && view.conv && view.conv.id === conv.id) view.conv.labels = names;
          refreshInbox();
        }, "conv-labels"))),
    h("div", { class: "conv-actions" },
      callState(),
      conv.status === "open" && !mine && state.routing ? h("button", { class: "btn btn-primary", id: "claim-btn", "aria-label": t("keys.claim"),
        onclick: claim, title: t("conv.claim_title") }, icon("users"), h("span", { class: "label" }, t("keys.claim"))) : null,
      conv.status === "resolved" ? h("button", { class: "btn", id: "reopen-btn", "aria-label": t("conv.reopen"), onclick: () => reopen(),
        title: t("conv.reopen_title") }, icon("inbox"), h("span", { class: "label" }, t("conv.reopen"))) : null,
      ["open", "assigned"].includes(conv.status) ? h("button", { class: "btn", id: "snooze-btn", "aria-label": t("keys.snooze"),
        onclick: snooze, title: t("conv.snooze_title") }, icon("snooze"), h("span", { class: "label" }, t("keys.snooze"))) : null,
      conv.status === "snoozed" ? h("button", { class: "btn", id: "unsnooze-btn", "aria-label": t("conv.unsnooze"), onclick: unsnooze,
        title: t("conv.unsnooze_title") }, icon("snooze"), h("span", { class: "label" }, t("conv.unsnooze"))) : null,
      canCall() ? h("button", { class: "btn", id: "call-btn", onclick: placeCall, title: t("conv.call_title", { number: phoneOf(customer) }),
        disabled: callLive() }, icon("voice"), t("inbox.call")) : null,
      conv.status === "resolved" ? null : macroButton(conv.id, macroApplied),
      h("button", { class: "btn", id: "transfer-btn", "aria-label": t("keys.transfer"), onclick: openTransfer, title: t("conv.transfer_title"),
        disabled: conv.status === "resolved" || !state.routing },
        icon("transfer"), h("span", { class: "label" }, t("keys.transfer"))),
      conv.status === "resolved" ? null : h("button", { class: `btn ${conv.status === "open" && !mine ? "" : "btn-primary"}`,
        id: "resolve-btn", "aria-label": t("conv.resolve"), onclick: resolve, title: t("conv.resolve_title") }, icon("resolve"), h("span", { class: "label" }, t("conv.resolve"))),
      h("button", { class: "icon-btn drawer-btn", id: "drawer-btn", "aria-label": t("conv.details"),
        title: t("conv.details"), "aria-expanded": "false", onclick: () => toggleDrawer() }, icon("users"))));
}

// A macro ran (CONV: the conversation after it) or stopped part way (null): show what is true now.
function macroApplied(conv) {
  const v = view;
  if (!v || !v.conv) return;
  if (conv && conv.id === v.conv.id) {
    v.conv = { ...v.conv, ...conv };
    renderHeader();
  } else {
    reloadConversation();
  }
  loadTimeline(false);
  loadCustomer();
  refreshInbox();
}

// -- click-to-call ----------------------------------------------------------------------------------------------

function phoneOf(customer) {
  const ident = (customer.identities || []).find((i) => i.kind === "phone");
  return ident ? ident.value : null;
}

function canCall() {
  return state.channels.some((c) => c.voice) && Boolean(phoneOf(view.customer));
}

async function placeCall() {
  const v = view;
  v.calling = { status: "queued", meta: { outcome: null } };
  renderHeader();
  try {
    const msg = await api.post(`/api/v1/conversations/${v.conv.id}/call`, {});
    if (view !== v) return;
    v.calling = msg;
    addMessage(msg);
    toast(t("conv.calling"), "info", 6000);
  } catch (err) {
    if (view !== v) return;
    v.calling = null;
    toast(err.status === 404 || err.status === 405 ? t("conv.no_calling") : err.message, "error", 8000);
  }
  renderHeader();
}

function callDone(c) {
  const meta = c.meta || {};
  return ["delivered", "failed", "undelivered"].includes(c.status) || ["answered", "no_answer", "failed", "agent_missed"].includes(meta.outcome);
}

// One call at a time from here; once it is over the Call button works again.
function callLive() {
  return Boolean(view.calling) && !callDone(view.calling);
}

// The call the agent placed from here, as the status events tell it.
function callState() {
  const c = view.calling;
  if (!c) return null;
  const meta = c.meta || {};
  const done = callDone(c);
  const failed = c.status === "failed" || ["no_answer", "failed", "agent_missed"].includes(meta.outcome);
  // "answered" comes with the talk time once the call is over; while the customer is on the line it is "talking".
  const answered = !failed && (meta.outcome === "answered" || c.status === "delivered");
  const talk = meta.talk_seconds !== undefined && meta.talk_seconds !== null ? ` · ${t("call.talk_time", { time: duration(meta.talk_seconds) })}` : "";
  const label = failed
    ? (meta.outcome === "agent_missed" ? t("call.agent_missed") : meta.outcome === "no_answer"
      ? t("call.no_answer") : c.status_reason ? t("call.failed", { reason: c.status_reason }) : t("call.not_connected"))
    : answered ? `${t("call.ended")}${talk}`
      : meta.outcome === "talking" ? h("span", {}, t("call.talking"), talkClock(meta.talk_started_at))
        : meta.outcome === "dialing" ? t("call.dialing") : t("call.ringing");
  return h("span", { class: `call-state ${done ? (answered ? "ok" : "bad") : "live"}`, id: "call-state",
    role: "status", title: c.status_reason || "" }, icon("voice"), label,
    done ? h("button", { class: "call-state-close", "aria-label": t("conv.dismiss"), title: t("conv.dismiss"), onclick: () => {
      view.calling = null;
      renderHeader();
    } }, "×") : null);
}

function trackCall(msg) {
  if (view && view.calling && view.calling.id === msg.id) {
    view.calling = { ...view.calling, ...msg };
    renderHeader();
  }
}

// -- reply ------------------------------------------------------------------------------------------------------

function renderReply(options) {
  const select = h("select", { id: "reply-channel", "aria-label": t("reply.channel"), onchange: (e) => {
    view.channel = e.target.value;
    renderFiles();
    renderWindow();
  } }, options.map((c) => h("option", { value: c.name, selected: c.name === view.channel },
    `${channelLabel(c.name)}${identityFor(c, view.customer) ? " · " + identityFor(c, view.customer) : ""}`)));
  const text = h("textarea", {
    id: "reply-text", rows: 3, placeholder: t("reply.placeholder_canned"),
    oninput: () => {
      autosize(text);
      agentTyping(text.value.trim() !== "");
    },
    onblur: () => agentTyping(false),
    onkeydown: (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        send();
      } else if (e.key === "Escape") {
        text.blur();
      }
    },
  });
  const tabs = ["reply", "note"].map((mode) => h("button", {
    class: `tab ${view.mode === mode ? "active" : ""}`, "data-mode": mode, type: "button",
    onclick: () => setMode(mode),
  }, mode === "reply" ? t("keys.reply") : t("keys.note")));
  view.sendBtn = h("button", { class: "btn btn-primary", id: "send-btn", onclick: send }, t("keys.send"));
  view.textEl = text;
  view.channelEl = h("label", { class: "channel-pick" }, h("span", { class: "muted" }, t("reply.via")), select);
  // Reply all (email): offered when the customer's last email also went to others; they are copied (Cc).
  const others = emailOthers();
  view.replyAllEl = others.length ? h("label", { class: "reply-all", title: t("reply.also_to", { emails: others.join(", ") }) },
    h("input", { type: "checkbox", id: "reply-all" }), t("reply.all")) : null;
  const picker = h("input", { type: "file", id: "reply-files", multiple: true, hidden: true,
    onchange: (e) => { addFiles([...e.target.files]); e.target.value = ""; } });
  view.attachBtn = h("button", { class: "icon-btn", id: "attach-btn", type: "button", "aria-label": t("reply.attach"),
    onclick: () => picker.click() }, icon("paperclip"));
  view.chipsEl = h("div", { class: "file-chips", id: "file-chips" });
  const canned = attachPicker(text, () => view && view.conv && view.conv.id);
  const mentionPicker = attachMentionPicker(text, () => view && view.mode === "note");
  const cannedBtn = h("button", { class: "icon-btn", id: "canned-btn", type: "button", "aria-label": t("reply.canned"),
    title: t("reply.canned_title"), onclick: () => canned.openAll() }, icon("note"));
  const cannedManage = h("button", { class: "icon-btn", id: "canned-manage", type: "button",
    "aria-label": t("reply.manage_canned"), title: t("reply.manage_canned"), onclick: () => manageCanned() }, icon("keyboard"));
  view.fileNote = h("span", { class: "hint file-note" });
  view.windowEl = h("div", { class: "session-window hidden", id: "session-window", role: "status" });
  view.templateBtn = h("button", { class: "btn btn-small", id: "template-btn", type: "button", onclick: () => openTemplates() },
    icon("note"), t("template.send"));
  clear(view.replyEl).append(
    h("div", { class: "reply-tabs" }, tabs, h("span", { class: "spacer" }), view.replyAllEl, view.channelEl),
    view.windowEl, text, canned.el, mentionPicker, view.chipsEl,
    h("div", { class: "reply-foot" },
      h("div", { class: "reply-tools" }, view.attachBtn, picker, cannedBtn, cannedManage, view.templateBtn, view.fileNote),
      h("span", { class: "hint" }, t("reply.hint")),
      view.sendBtn));
  // Files can also be dropped on the reply box or pasted (a screenshot) into it.
  view.replyEl.ondragover = (e) => {
    if (![...(e.dataTransfer.types || [])].includes("Files")) return;
    e.preventDefault();
    view.replyEl.classList.add("dropping");
  };
  view.replyEl.ondragleave = () => view.replyEl.classList.remove("dropping");
  view.replyEl.ondrop = (e) => {
    view.replyEl.classList.remove("dropping");
    if (!e.dataTransfer.files.length) return;
    e.preventDefault();
    addFiles([...e.dataTransfer.files]);
  };
  text.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData ? e.clipboardData.files : [])];
    if (!files.length) return;
    e.preventDefault();
    addFiles(files.map((f, i) => (f.name && f.name !== "image.png") ? f
      : new File([f], `pasted-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-")}${i ? "-" + i : ""}.${(f.type.split("/")[1] || "png")}`, { type: f.type })));
  });
  renderFiles();
  renderWindow();
  if (!options.length) view.channelEl.replaceChildren(h("span", { class: "muted" }, t("reply.no_channel")));
}

// -- WhatsApp's session window and approved templates -----------------------------------------------------------

// The customer's window on the chosen channel (WhatsApp's 24 hours), as the hub computed it; null: no window there.
function chosenWindow() {
  const ch = chosenChannel();
  if (!ch || !ch.capabilities || !ch.capabilities.session_window_hours) return null;
  return (view.conv.session_windows || []).find((w) => w.channel === ch.name)
    || { channel: ch.name, hours: ch.capabilities.session_window_hours, open: false, closes_at: null };
}

// Says when the window closes, or that it has: then free-form is off and only a template can go.
function renderWindow() {
  const v = view;
  if (!v || !v.windowEl) return;
  clearTimeout(v.windowTimer);
  const ch = chosenChannel();
  const w = v.mode === "reply" ? chosenWindow() : null;
  // style, not the hidden attribute: .btn's display: inline-flex wins over [hidden]
  v.templateBtn.style.display = v.mode === "reply" && ch && ch.capabilities && ch.capabilities.templates ? "" : "none";
  const closed = Boolean(w) && !w.open;
  v.windowEl.classList.toggle("hidden", !w);
  v.windowEl.classList.toggle("closed", closed);
  v.textEl.disabled = closed;
  v.sendBtn.disabled = closed;
  v.attachBtn.disabled = closed;
  v.replyEl.classList.toggle("window-closed", closed);
  if (!closed && v.textEl.placeholder === t("window.closed_placeholder")) {
    v.textEl.placeholder = v.mode === "note" ? t("reply.note_placeholder") : t("reply.placeholder");
  }
  if (!w) return;
  const channel = channelLabel(w.channel);
  if (closed) {
    v.textEl.placeholder = t("window.closed_placeholder");
    clear(v.windowEl).append(icon("snooze"), h("span", {}, w.closes_at
      ? t("window.closed", { channel, hours: w.hours, when: fullTime(w.closes_at) })
      : t("window.never", { channel })));
    return;
  }
  const left = parseTime(w.closes_at).getTime() - Date.now();
  clear(v.windowEl).append(icon("snooze"), h("span", {}, t("window.open", { channel, when: fullTime(w.closes_at),
    left: duration(Math.max(0, left) / 1000) })));
  // Closes while the agent looks: shown then (a timer longer than ~24 days would overflow; windows are hours).
  if (left > 0 && left < 2 ** 31 - 1) v.windowTimer = setTimeout(() => {
    if (view !== v) return;
    v.conv.session_windows = (v.conv.session_windows || []).map((x) => (x.channel === w.channel ? { ...x, open: false } : x));
    renderWindow();
  }, left);
}

// The agent's picker: the approved templates with their body, a field per variable (its sample as placeholder) and
// the text the customer would read, filled in by the hub with the same checks as sending it.
async function openTemplates() {
  const v = view;
  const error = h("div", { class: "form-error", role: "alert", id: "template-error" });
  let items;
  try {
    items = (await api.get("/api/v1/templates")).items.filter((x) => x.sendable);
  } catch (err) {
    toast(t("template.failed", { reason: err.message }), "error", 8000);
    return;
  }
  if (view !== v) return;
  const pick = h("select", { id: "template-pick" }, h("option", { value: "" }, t("template.choose")),
    items.map((x) => h("option", { value: x.sid }, x.language ? `${x.name} (${x.language})` : x.name)));
  const bodyEl = h("p", { class: "template-body", id: "template-body" });
  const fields = h("div", { class: "template-fields", id: "template-fields" });
  const previewEl = h("p", { class: "template-preview", id: "template-preview", "aria-live": "polite" });
  const chosen = () => items.find((x) => x.sid === pick.value) || null;
  const choice = () => {
    const tpl = chosen();
    return tpl && { sid: tpl.sid, variables: Object.fromEntries(tpl.slots.map((n) => [n, fields.querySelector(`[data-slot="${n}"]`).value])) };
  };
  let asked = 0;
  const preview = debounce(async () => {
    const c = choice();
    const mine = ++asked;
    if (!c) return;
    try {
      const r = await api.post(`/api/v1/conversations/${v.conv.id}/template-preview`, { template: c, channel: v.channel || undefined });
      if (mine !== asked) return;
      previewEl.classList.remove("bad");
      previewEl.textContent = r.text;
    } catch (err) {
      if (mine !== asked) return;
      previewEl.classList.add("bad");
      previewEl.textContent = err.message;
    }
  }, 300);
  pick.addEventListener("change", () => {
    const tpl = chosen();
    bodyEl.textContent = tpl ? tpl.body : "";
    previewEl.textContent = "";
    error.textContent = "";
    clear(fields).append(...(tpl ? tpl.slots : []).map((n) => h("label", { class: "field" },
      h("span", {}, t("template.variable", { n })),
      h("input", { "data-slot": n, id: `template-var-${n}`, maxlength: 500, placeholder: tpl.variables[n] || "", oninput: preview }))));
    preview();
  });
  modal(t("template.title"), [
    h("p", { class: "muted" }, items.length ? t("template.help") : t("template.none")),
    h("label", { class: "field" }, h("span", {}, t("template.template")), pick),
    bodyEl, fields,
    h("div", { class: "field" }, h("span", {}, t("template.preview")), previewEl), error,
  ], t("template.send_it"), async () => {
    const c = choice();
    if (!c) {
      error.textContent = t("template.choose_first");
      return false;
    }
    try {
      const msg = await api.post(`/api/v1/conversations/${v.conv.id}/messages`, { template: c, channel: v.channel || undefined });
      if (view === v) addMessage(msg);
    } catch (err) {
      error.textContent = err.message;
      return false;
    }
    toast(t("template.sent"), "ok");
    return true;
  });
}

// -- attachments ------------------------------------------------------------------------------------------------

export function formatSize(bytes) {
  if (bytes < 1024) return `${formatNumber(bytes)} B`;
  if (bytes < 1024 * 1024) return `${formatNumber(Math.max(1, Math.round(bytes / 1024)))} KB`;
  const digits = bytes < 10 * 1024 * 1024 ? 1 : 0;
  return `${formatNumber(bytes / (1024 * 1024), { minimumFractionDigits: digits, maximumFractionDigits: digits })} MB`;
}

function chosenChannel() {
  return state.channels.find((c) => c.name === view.channel);
}

function addFiles(files) {
  if (!view || !files.length) return;
  for (const f of files) {
    if (!view.files.some((x) => x.name === f.name && x.size === f.size)) view.files.push(f);
  }
  renderFiles();
  view.textEl.focus();
}

// Why the files cannot go now, or null: too big in total, a note, or a channel that carries no media.
function filesProblem() {
  if (!view.files.length) return null;
  const total = view.files.reduce((n, f) => n + f.size, 0);
  const limit = state.maxAttachmentBytes;
  if (limit && total > limit) return t("files.too_big", { total: formatSize(total), limit: formatSize(limit) });
  if (view.mode === "note") return t("files.note");
  const ch = chosenChannel();
  if (ch && !ch.media) return t("files.channel_cannot", { channel: channelLabel(ch.name) });
  return null;
}

function renderFiles() {
  if (!view.chipsEl) return;
  for (const url of view.previews || []) URL.revokeObjectURL(url);
  view.previews = [];
  const preview = (f) => {
    if (!/^image\/(png|jpe?g|gif|webp)$/.test(f.type)) return icon("paperclip");
    const url = URL.createObjectURL(f);
    view.previews.push(url);
    return h("img", { class: "file-thumb", src: url, alt: "" });
  };
  clear(view.chipsEl).append(...view.files.map((f, i) => h("span", { class: "file-chip", "data-file": f.name, title: f.name },
    preview(f), h("span", { class: "file-name" }, f.name),
    h("small", {}, formatSize(f.size)),
    h("button", { class: "chip-x", type: "button", "aria-label": t("files.remove", { name: f.name }), onclick: () => {
      view.files.splice(i, 1);
      renderFiles();
    } }, icon("x")))));
  const problem = filesProblem();
  const limit = state.maxAttachmentBytes;
  view.fileNote.textContent = problem || (view.files.length
    ? `${t("files.count", { count: view.files.length })} · ${formatSize(view.files.reduce((n, f) => n + f.size, 0))}${limit ? ` ${t("files.of", { limit: formatSize(limit) })}` : ""}`
    : limit ? t("files.up_to", { limit: formatSize(limit) }) : "");
  view.fileNote.classList.toggle("bad", Boolean(problem));
  const ch = chosenChannel();
  view.attachBtn.title = ch && !ch.media ? t("files.channel_no_files", { channel: channelLabel(ch.name) })
    : limit ? t("files.attach_up_to", { limit: formatSize(limit) }) : t("files.attach");
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(new Error(t("files.unreadable", { name: file.name })));
    reader.readAsDataURL(file);
  });
}

// Who else the customer's latest email went to (To and Cc), besides us and the customer (the hub lists them).
function emailOthers() {
  const known = [...(view.conv.messages || []), ...view.messages.values()];
  const last = known.filter((m) => m.direction === "in" && m.channel === "email" && !(m.meta && m.meta.automatic))
    .sort((a, b) => a.id - b.id).pop();
  const mail = (last && last.meta && last.meta.email) || {};
  return mail.others || [];
}

export function setMode(mode) {
  if (!view || !view.replyEl) return;
  view.mode = mode;
  view.replyEl.classList.toggle("note-mode", mode === "note");
  for (const b of view.replyEl.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.mode === mode);
  view.channelEl.style.visibility = mode === "note" ? "hidden" : "visible";
  view.textEl.placeholder = mode === "note" ? t("reply.note_placeholder") : t("reply.placeholder");
  view.sendBtn.textContent = mode === "note" ? t("reply.add_note") : t("keys.send");
  renderFiles();
  renderWindow();
  view.textEl.focus();
}

export function focusReply() {
  if (view && view.textEl) setMode("reply");
}

function autosize(el) {
  el.style.height = "auto";
  el.style.height = `${Math.min(el.scrollHeight, 240)}px`;
}

async function send() {
  const text = view.textEl.value.trim();
  if (!text && !view.files.length) return;
  if (view.sendBtn.disabled) return; // Ctrl+Enter while the window is closed: only a template can go
  const problem = filesProblem();
  if (problem) {
    toast(problem, "error", 6000);
    return;
  }
  const note = view.mode === "note";
  view.sendBtn.disabled = true;
  try {
    const body = note ? { text, note: true } : { text, channel: view.channel || undefined };
    const all = view.replyEl.querySelector("#reply-all");
    if (!note && all && all.checked && (view.channel || "email") === "email") body.reply_all = true;
    if (!note && view.files.length) {
      body.attachments = await Promise.all(view.files.map(async (f) => ({
        filename: f.name, content_type: f.type || "application/octet-stream", data_base64: await readBase64(f),
      })));
    }
    const msg = await api.post(`/api/v1/conversations/${view.conv.id}/messages`, body);
    if (note && msg.not_mentioned && msg.not_mentioned.length) {
      toast(t("reply.not_mentioned", { names: msg.not_mentioned.join(", ") }), "info", 8000);
    }
    agentTyping(false);
    view.textEl.value = "";
    autosize(view.textEl);
    if (!note) view.files = [];
    renderFiles();
    addMessage(msg);
    if (note) setMode("reply");
  } catch (err) {
    toast(err.message, "error");
  } finally {
    view.sendBtn.disabled = false;
    renderWindow();
  }
}

// Resolve is one key (e) and asks nothing: the toast's Undo reopens it (and gives it back to this agent).
async function resolve() {
  if (!view || view.conv.status === "resolved") return;
  const v = view;
  const id = v.conv.id;
  try {
    v.conv = { ...v.conv, ...(await api.post(`/api/v1/conversations/${id}/resolve`, {})) };
    if (view === v) renderHeader();
    toast(t("conv.resolved", { id }), "ok", 10000, { label: t("common.undo"), run: () => reopen(id) });
    refreshInbox();
    if (view === v) loadCustomer();
  } catch (err) {
    toast(err.message, "error");
  }
}

export function resolveCurrent() {
  return resolve();
}

// Snooze: out of the inbox until a time or the customer's next message; it comes back to this agent as an offer.
function snooze() {
  if (!view || !view.conv || !["open", "assigned"].includes(view.conv.status)) return;
  const v = view;
  chooseSnooze(async (until) => {
    const conv = await api.post(`/api/v1/conversations/${v.conv.id}/snooze`, until ? { until } : {});
    if (view === v) {
      v.conv = { ...v.conv, ...conv };
      renderHeader();
    }
    toast(`${snoozeText(conv.snooze)}.`, "ok", 6000, { label: t("common.undo"), run: () => unsnooze(conv.id) });
    refreshInbox();
  });
}

export function snoozeCurrent() {
  return snooze();
}

async function unsnooze(id = view && view.conv && view.conv.id) {
  if (!id) return;
  try {
    await api.del(`/api/v1/conversations/${id}/snooze`);
    toast(t("conv.back_now", { id }), "ok");
    if (view && view.conv && view.conv.id === id) reloadConversation();
    refreshInbox();
  } catch (err) {
    toast(err.message, "error");
  }
}

export function onLabelsChanged(conversationId, labels) {
  if (view && view.conv && view.conv.id === conversationId && Array.isArray(labels)) {
    view.conv.labels = labels;
    renderHeader();
  }
}

async function reopen(id = view && view.conv && view.conv.id) {
  if (!id) return;
  try {
    const conv = await api.post(`/api/v1/conversations/${id}/reopen`, {});
    toast(conv.claim_refused ? t("conv.reopened_waits", { reason: conv.claim_refused }) : t("conv.reopened_yours", { id }),
      conv.claim_refused ? "info" : "ok", conv.claim_refused ? 8000 : 4000);
    if (view && view.conv && view.conv.id === id) {
      view.conv = { ...view.conv, ...conv };
      renderHeader();
      loadCustomer();
    }
    refreshInbox();
  } catch (err) {
    toast(err.message, "error", 8000);
  }
}

// t("keys.claim"): through routing, so the hub may say no (at capacity, not Available) and says why.
async function claim() {
  if (!view || !view.conv || view.conv.status !== "open") return;
  const v = view;
  try {
    const conv = await api.post(`/api/v1/conversations/${v.conv.id}/claim`, {});
    if (view !== v) return;
    v.conv = { ...v.conv, ...conv };
    renderHeader();
    toast(conv.agent_id === state.me.id ? t("conv.assigned_to_you") : t("conv.after_wrapup"), "ok");
    refreshInbox();
  } catch (err) {
    toast(missing(err) ? t("conv.claim_needs_routing") : err.message, "error", 8000);
  }
}

export function claimCurrent() {
  return claim();
}

export function openTransfer() {
  if (!view || !view.conv || view.conv.status === "resolved" || !state.routing) return;
  const queueSel = h("select", { id: "transfer-queue" }, h("option", { value: "" }, t("transfer.choose_queue")),
    state.queues.map((q) => h("option", { value: q.name }, q.title)));
  const agentSel = h("select", { id: "transfer-agent" }, h("option", { value: "" }, "…or an agent"),
    [...state.agents.values()].filter((a) => a.id !== state.me.id && !a.disabled).map((a) =>
      h("option", { value: a.id }, `${a.name}${a.presence ? " · " + a.presence : ""}`)));
  queueSel.addEventListener("change", () => { if (queueSel.value) agentSel.value = ""; });
  agentSel.addEventListener("change", () => { if (agentSel.value) queueSel.value = ""; });
  const note = h("textarea", { id: "transfer-note", rows: 3, placeholder: t("transfer.note_placeholder") });
  const error = h("div", { class: "form-error", role: "alert" });
  modal(t("transfer.title"), [
    h("label", { class: "field" }, h("span", {}, t("transfer.queue")), queueSel),
    h("label", { class: "field" }, h("span", {}, t("transfer.agent")), agentSel),
    h("label", { class: "field" }, h("span", {}, t("search.note")), note), error,
  ], t("keys.transfer"), async () => {
    const body = { note: note.value.trim() || undefined };
    if (queueSel.value) body.queue = queueSel.value;
    else if (agentSel.value) body.agent_id = Number(agentSel.value);
    else {
      error.textContent = t("transfer.choose");
      return false;
    }
    try {
      await api.post(`/api/v1/conversations/${view.conv.id}/transfer`, body);
    } catch (err) {
      error.textContent = missing(err) ? t("transfer.needs_routing") : err.message;
      return false;
    }
    toast(t("transfer.done"), "ok");
    refreshInbox();
    reloadConversation();
    return true;
  });
}

async function reloadConversation() {
  if (!view || !view.conv) return;
  try {
    const conv = await api.get(`/api/v1/conversations/${view.conv.id}`);
    view.conv = conv;
    renderHeader();
    renderWindow();
  } catch (err) {
    if (err.status === 404) navigate("#/");
  }
}

// -- timeline ---------------------------------------------------------------------------------------------------

async function loadTimeline(older) {
  const v = view;
  const cursor = older && v.next ? `&cursor=${encodeURIComponent(v.next)}` : "";
  const page = await api.get(`/api/v1/customers/${v.customer.id}/timeline?order=desc&limit=100${cursor}`);
  if (view !== v) return;
  v.next = page.next;
  const items = page.items.slice().reverse();
  if (!older) v.messages.clear();
  for (const m of items) v.messages.set(m.id, m);
  renderTimeline(!older);
}

function renderTimeline(scrollToEnd) {
  const v = view;
  const el = v.timelineEl;
  const before = el.scrollHeight - el.scrollTop;
  const msgs = [...v.messages.values()].sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id - b.id));
  const nodes = [];
  if (v.next) nodes.push(h("button", { class: "btn btn-ghost load-more", onclick: () => loadTimeline(true) }, t("conv.load_earlier")));
  let lastConv = null;
  const agentNames = [...state.agents.values()].map((a) => a.name);
  for (const m of msgs) {
    if (m.conversation_id !== lastConv) {
      const current = m.conversation_id === v.conv.id;
      nodes.push(h("div", { class: `tl-divider ${current ? "current" : ""}` },
        h("span", {}, `${current ? t("conv.this_conversation", { id: m.conversation_id }) : t("conv.conversation", { id: m.conversation_id })} · ${fullTime(m.created_at)}`)));
      lastConv = m.conversation_id;
    }
    nodes.push(renderMessage(m, { agentName, customerName: displayName(v.customer), agentNames }));
  }
  if (!msgs.length) nodes.push(h("div", { class: "muted center" }, t("conv.no_messages")));
  clear(el).append(...nodes);
  if (scrollToEnd) el.scrollTop = el.scrollHeight;
  else el.scrollTop = el.scrollHeight - before;
}

// Delivery moves forward only; a status event can beat the reply's own HTTP answer, so remember it until then.
const STATUS_RANK = { queued: 0, sending: 1, sent: 2, delivered: 3, read: 4, failed: 5, undelivered: 5 };
const earlyStatus = new Map();

function newer(a, b) {
  return (STATUS_RANK[a.status] ?? -1) >= (STATUS_RANK[b.status] ?? -1) ? a : b;
}

function addMessage(msg) {
  const v = view;
  if (!v || !v.customer || msg.customer_id !== v.customer.id) return false;
  const el = v.timelineEl;
  const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < 120;
  let merged = { ...(v.messages.get(msg.id) || {}), ...msg };
  for (const known of [v.messages.get(msg.id), earlyStatus.get(msg.id)]) {
    if (known) merged = { ...merged, ...(newer(known, merged) === known ? { status: known.status, status_reason: known.status_reason } : {}) };
  }
  earlyStatus.delete(msg.id);
  v.messages.set(msg.id, merged);
  renderTimeline(false);
  if (atEnd || msg.direction === "out") el.scrollTop = el.scrollHeight;
  if (msg.kind === "note") loadCustomer();
  return true;
}

// -- typing, both ways (where the reply channel carries it: web chat) --------------------------------------------

const TYPING_EVERY_MS = 3000; // the visitor's indicator is refreshed this often while the agent keeps typing
const TYPING_SHOWN_MS = 6000; // a typing mark with no refresh is gone after this long

function agentTyping(typing) {
  const v = view;
  if (!v || !v.conv || v.mode !== "reply" || !/^webchat/.test(v.channel || "")) return;
  const now = Date.now();
  if (typing && v.typingSent && now - v.typingSent < TYPING_EVERY_MS) return;
  if (!typing && !v.typingSent) return;
  v.typingSent = typing ? now : 0;
  api.post("/api/v1/webchat/typing", { conversation_id: v.conv.id, typing }).catch(() => {});
}

// Who else is typing here: the customer (web chat), or a teammate answering the same conversation.
export function onTyping(data) {
  const v = view;
  if (!v || !v.conv || data.conversation_id !== v.conv.id) return;
  if (data.who === "agent" && data.agent_id === state.me.id) return;
  const who = data.who === "customer" ? displayName(v.customer) : (data.agent_name || "A teammate");
  v.typingWho = v.typingWho || new Map();
  clearTimeout((v.typingWho.get(who) || {}).timer);
  if (data.typing) {
    v.typingWho.set(who, { agent: data.who === "agent", timer: setTimeout(() => onTyping({ ...data, typing: false }), TYPING_SHOWN_MS) });
  } else {
    v.typingWho.delete(who);
  }
  const entries = [...v.typingWho.entries()];
  v.typingEl.classList.toggle("hidden", !entries.length);
  clear(v.typingEl).append(...entries.map(([name, t]) => h("span", { class: `typing ${t.agent ? "teammate" : ""}` },
    h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")),
    t.agent ? `${name} is typing a reply…` : `${name} is typing…`)));
}

// -- live updates -----------------------------------------------------------------------------------------------

export function onMessageCreated(data) {
  const msg = data.message;
  if (!msg || !view || !view.customer) return false;
  const shown = addMessage(msg);
  trackCall(msg);
  if (shown && msg.direction === "in") onTyping({ conversation_id: msg.conversation_id, who: "customer", typing: false });
  // The customer wrote: their session window on that channel (WhatsApp's) is open again, until when the hub says.
  if (shown && msg.direction === "in" && (view.conv.session_windows || []).some((w) => w.channel === msg.channel)) reloadConversation();
  if (shown && data.conversation && view.conv && data.conversation.id === view.conv.id) {
    view.conv = { ...view.conv, ...data.conversation };
    renderHeader();
  }
  return shown && msg.conversation_id === view.conv.id;
}

export function onMessageUpdated(data) {
  const msg = data.message;
  if (!msg || !view || !view.customer || msg.customer_id !== view.customer.id) return;
  addMessage(msg);
  trackCall(msg);
}

export function onMessageStatus(data) {
  const update = { status: data.status, status_reason: data.reason };
  if (!view || !view.messages.has(data.message_id)) {
    earlyStatus.set(data.message_id, update);
    if (earlyStatus.size > 200) earlyStatus.delete(earlyStatus.keys().next().value);
    return;
  }
  const before = view.messages.get(data.message_id);
  trackCall({ id: data.message_id, ...update });
  if (newer(before, update) === before && before.status !== update.status) return;
  const msg = { ...before, ...update };
  view.messages.set(msg.id, msg);
  const node = view.timelineEl.querySelector(`[data-mid="${Number(msg.id)}"] .tick`);
  const tick = statusTick(msg);
  if (node && tick) node.replaceWith(tick);
}

export function onConversationChanged(conv) {
  if (!view || !view.conv || !conv) return;
  if (conv.id === view.conv.id) {
    view.conv = { ...view.conv, ...conv };
    renderHeader();
  }
  if (view.customer && conv.customer_id === view.customer.id) loadCustomer();
}

export function onRoutingChanged(conversationId) {
  if (view && view.conv && view.conv.id === conversationId) reloadConversation();
}

export async function resync() {
  if (!view || !view.conv) return;
  await reloadConversation();
  if (view && view.customer) await Promise.all([loadTimeline(false), loadCustomer()]);
}

// -- sidebar ----------------------------------------------------------------------------------------------------

async function loadCustomer() {
  const v = view;
  if (!v || !v.customer) return;
  let customer;
  try {
    customer = await api.get(`/api/v1/customers/${v.customer.id}`);
  } catch (err) {
    if (err.status === 404 && view === v) navigate("#/");
    return;
  }
  if (view !== v) return;
  v.customer = customer;
  renderSide();
}

// The profile was edited here (or elsewhere): keep what only the full customer read carries (conversations).
function profileSaved(updated) {
  const v = view;
  if (!v || !v.customer || updated.id !== v.customer.id) return;
  v.customer = { ...v.customer, ...updated };
  renderHeader();
  renderSide();
}

export function onCustomerUpdated(data) {
  if (view && view.customer && data && data.customer_id === view.customer.id) loadCustomer();
}

function renderSide() {
  const v = view;
  const c = v.customer;
  const notes = [...v.messages.values()].filter((m) => m.kind === "note").slice(-5).reverse();
  const past = (c.conversations || []);
  const details = h("div", { class: "details-slot" });
  detailsCard(c, profileSaved).then((card) => { if (view === v) details.replaceWith(card); });
  append(clear(v.sideEl), [
    h("button", { class: "icon-btn drawer-close", id: "drawer-close", type: "button", "aria-label": t("conv.close_details"),
      title: t("conv.close_esc"), onclick: () => toggleDrawer(false) }, icon("x")),
    customerCard(c, profileSaved),
    details,
    // Shown once an admin has defined labels (or the customer has one).
    !(state.labels || []).length && !(c.labels || []).length ? null : h("section", { class: "side-card", id: "customer-labels-card" },
      h("h3", {}, t("side.labels")),
      labelEditor(`/api/v1/customers/${c.id}/labels`, c.labels || [], (names) => {
        if (view === v) v.customer.labels = names;
        refreshInbox();
      }, "customer-labels")),
    h("section", { class: "side-card" },
      h("h3", {}, t("side.identities")),
      h("ul", { class: "identities" }, (c.identities || []).map((i) => h("li", {},
        channelIcon(i.kind === "phone" ? "voice" : i.kind), h("span", { class: "ident-value", title: i.id }, i.value),
        h("span", { class: "muted" }, i.kind))))),
    h("section", { class: "side-card" },
      h("h3", {}, t("inbox.label")),
      past.length ? h("ul", { class: "past" }, past.map((p) => h("li", {},
        h("a", { href: `#/c/${p.id}`, class: p.id === v.conv.id ? "current" : "" },
          channelIcon(p.channel), h("span", {}, `#${p.id}`),
          h("span", { class: `pill status-${p.status}` }, statusName(p.status)),
          h("span", { class: "muted" }, ago(p.updated_at)))))) : h("p", { class: "muted" }, t("side.none_yet"))),
    h("section", { class: "side-card" },
      h("h3", {}, t("side.notes")),
      notes.length ? h("ul", { class: "side-notes" }, notes.map((n) => h("li", {},
        h("div", {}, n.text), h("small", { class: "muted" }, `${agentName(n.agent_id) || t("transfer.agent")} · ${since(n.created_at)}`))))
        : h("p", { class: "muted" }, t("side.no_notes"))),
    state.me.role === "admin" ? mergeCard(c) : null,
  ]);
}

function mergeCard(c) {
  const results = h("ul", { class: "merge-results" });
  const input = h("input", { type: "search", placeholder: t("merge.find"), id: "merge-search" });
  const search = debounce(async () => {
    const q = input.value.trim();
    clear(results);
    if (q.length < 2) return;
    const found = await api.get(`/api/v1/customers?q=${encodeURIComponent(q)}&limit=8`).catch(() => ({ items: [] }));
    results.append(...found.items.filter((x) => x.id !== c.id).map((x) => h("li", {},
      h("button", { class: "btn btn-ghost", onclick: () => confirmMerge(c, x) },
        icon("merge"), h("span", {}, displayName(x)),
        h("small", { class: "muted" }, (x.identities || []).map((i) => i.value).join(", "))))));
  }, 250);
  input.addEventListener("input", search);
  return h("section", { class: "side-card" }, h("h3", {}, t("merge.title")), input, results);
}

function confirmMerge(survivor, other) {
  modal(t("merge.confirm_title"), [
    h("p", {}, t("merge.explain", { from: displayName(other), into: displayName(survivor) })),
  ], t("merge.merge"), async () => {
    try {
      await api.post(`/api/v1/customers/${survivor.id}/merge`, { customer_id: other.id });
    } catch (err) {
      toast(err.message, "error");
      return false;
    }
    toast(t("merge.done"), "ok");
    resync();
    return true;
  });
}
