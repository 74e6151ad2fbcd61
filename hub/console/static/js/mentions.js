// @mentions: in an internal note, "@" and a few letters lists teammates (arrows and Enter or Tab choose, Esc closes);
// the hub tells each one mentioned, live and in their Mentions list (#/mentions), kept until they open it.
import { h, icon, clear, since, displayName } from "./dom.js";
import { api } from "./api.js";
import { state, toast, navigate } from "./state.js";
import { t } from "./i18n.js";

let unread = 0;
const listeners = new Set();

function setUnread(n) {
  unread = n;
  for (const fn of listeners) fn(n);
}

export function onUnreadChange(fn) {
  listeners.add(fn);
  fn(unread);
}

export async function refreshMentionCount() {
  try {
    setUnread((await api.get("/api/v1/mentions?unread=true&limit=1")).unread);
  } catch { /* the badge keeps its count */ }
}

// A mention.created event for this agent: count it and say so, with a way to open it.
export function onMention(data) {
  const m = data && data.mention;
  if (!m || m.agent_id !== state.me.id) return;
  setUnread(unread + 1);
  // Already reading that conversation: the note is on screen, so it is read.
  if (new RegExp(`^#/c/${Number(m.conversation_id)}(/|$)`).test(location.hash)) readMentionsIn(m.conversation_id);
  toast(t("mentions.toast", { name: m.by_agent_name || t("mentions.teammate"), text: m.text.slice(0, 80) }), "info", 10000,
    { label: t("notify.open"), run: () => openMention(m) });
  if (location.hash === "#/mentions") showMentions(document.getElementById("main"), document.getElementById("side"));
}

// Opening a conversation reads the mentions in it (asked only while some are unread).
export async function readMentionsIn(conversationId) {
  if (!unread) return;
  try {
    setUnread((await api.post("/api/v1/mentions/read", { conversation_id: conversationId })).unread);
  } catch { /* the list still has them */ }
}

async function openMention(m) {
  if (!m.read_at) {
    try {
      setUnread((await api.post(`/api/v1/mentions/${m.id}/read`, {})).unread);
    } catch { /* opening it matters more */ }
  }
  navigate(`#/c/${m.conversation_id}/m/${m.message_id}`);
}

// The Mentions list: newest first, unread ones marked.
export async function showMentions(main, side) {
  clear(side);
  side.classList.add("hidden");
  clear(main).append(h("div", { class: "loading" }, t("mentions.loading")));
  let page;
  try {
    page = await api.get("/api/v1/mentions?limit=100");
  } catch (err) {
    clear(main).append(h("div", { class: "notice bad" }, icon("alert"), err.message));
    return;
  }
  setUnread(page.unread);
  clear(main).append(h("div", { class: "mentions-page" },
    h("header", { class: "mentions-head" }, h("h1", {}, t("nav.mentions")),
      page.unread ? h("button", { class: "btn", id: "mentions-read-all", type: "button", onclick: async () => {
        setUnread((await api.post("/api/v1/mentions/read", {})).unread);
        showMentions(main, side);
      } }, t("mentions.read_all")) : null),
    page.items.length ? h("ul", { class: "mentions", id: "mentions" }, page.items.map((m) => h("li", {},
      h("button", { class: `mention ${m.read_at ? "" : "unread"}`, type: "button", "data-mention": m.id,
        onclick: () => openMention(m) },
      h("span", { class: "mention-top" }, h("strong", {}, m.by_agent_name || t("mentions.teammate")),
        h("span", { class: "muted" }, ` ${t("mentions.on", { name: displayName({ display_name: m.customer_name, id: m.customer_id }) })} · #${m.conversation_id}`),
        h("time", { class: "muted" }, since(m.created_at))),
      h("span", { class: "mention-text" }, m.text)))))
      : h("div", { class: "empty-state" }, icon("bell", "big"), h("h2", {}, t("mentions.none")),
        h("p", {}, t("mentions.none_explain")))));
}

// The note composer's "@" picker. IS_NOTE says whether the composer is in note mode (replies mention nobody).
export function attachMentionPicker(textarea, isNote) {
  const list = h("div", { class: "canned-picker mention-picker hidden", id: "mention-picker", role: "listbox", "aria-label": t("mentions.picker") });
  let open = null; // {start, query, at, found}

  const close = () => {
    open = null;
    list.classList.add("hidden");
  };
  const atCaret = () => {
    const m = /(^|\s)@([\p{L}\p{N}._-]*(?: [\p{L}\p{N}._-]*)?)$/u.exec(textarea.value.slice(0, textarea.selectionStart));
    return m ? { start: textarea.selectionStart - m[2].length - 1, query: m[2] } : null;
  };
  const render = () => {
    const q = open.query.toLowerCase();
    open.found = [...state.agents.values()].filter((a) => !a.disabled && a.id !== state.me.id &&
      (a.name.toLowerCase().startsWith(q) || a.name.toLowerCase().split(/\s+/).some((w) => w.startsWith(q)) ||
        (a.email || "").toLowerCase().startsWith(q))).slice(0, 6);
    if (!open.found.length) return close();
    open.at = Math.min(open.at, open.found.length - 1);
    clear(list).append(...open.found.map((a, i) => h("button", { class: `canned-item ${i === open.at ? "active" : ""}`,
      type: "button", role: "option", "aria-selected": String(i === open.at), "data-agent": a.id,
      onmousedown: (e) => { e.preventDefault(); choose(a); } },
    h("span", { class: "canned-top" }, h("strong", {}, a.name), a.presence ? h("span", { class: "muted" }, a.presence) : null))));
    list.classList.remove("hidden");
  };
  const choose = (a) => {
    const before = textarea.value.slice(0, open.start);
    const after = textarea.value.slice(textarea.selectionStart);
    const text = `@${a.name} `;
    textarea.value = before + text + after;
    const caret = before.length + text.length;
    textarea.setSelectionRange(caret, caret);
    close();
    textarea.focus();
    textarea.dispatchEvent(new Event("input"));
  };
  textarea.addEventListener("input", () => {
    const found = isNote() ? atCaret() : null;
    if (!found) return close();
    open = { ...found, at: open ? open.at : 0 };
    render();
  });
  textarea.addEventListener("blur", () => setTimeout(close, 150));
  textarea.addEventListener("keydown", (e) => {
    if (!open || !open.found) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      open.at = (open.at + (e.key === "ArrowDown" ? 1 : -1) + open.found.length) % open.found.length;
      render();
    } else if ((e.key === "Enter" || e.key === "Tab") && !e.ctrlKey && !e.metaKey) {
      choose(open.found[open.at]);
    } else if (e.key === "Escape") {
      close();
    } else {
      return;
    }
    e.preventDefault();
    e.stopImmediatePropagation();
  }, true);
  return list;
}
