// What the whole console shares: who is signed in, what the hub offers, and a few page-wide affordances.
import { h, icon } from "./dom.js";
import { t } from "./i18n.js";

export const state = {
  me: null,
  channels: [],
  queues: [],
  agents: new Map(),
  inbox: [],
  unread: new Set(),
  presence: "offline",
  routing: true, // false when this hub answers 404 for the routing endpoints
  live: null,
};

const hooks = { refreshInbox: () => {} };

export function setHook(name, fn) {
  hooks[name] = fn;
}

export function refreshInbox() {
  hooks.refreshInbox();
}

export function navigate(hash) {
  if (location.hash !== hash) location.hash = hash;
}

// ACTION, optional: {label, run} adds a button (e.g. Undo) that runs once and closes the toast.
export function toast(message, kind = "info", ms = 4000, action = null) {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", "aria-live": "polite" });
    document.body.append(box);
  }
  const el = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    icon(kind === "error" ? "alert" : kind === "ok" ? "check" : "bell"),
    h("span", {}, String(message).charAt(0).toUpperCase() + String(message).slice(1)));
  if (action) {
    el.append(h("button", { class: "toast-action", type: "button", onclick: () => {
      el.remove();
      action.run();
    } }, action.label));
  }
  box.append(el);
  setTimeout(() => el.classList.add("leaving"), ms);
  setTimeout(() => el.remove(), ms + 300);
  return el;
}

// A small dialog: confirm() returns true to close, false to keep it open (e.g. to show an error).
export function modal(title, content, confirmLabel, confirm, { cancel = true } = {}) {
  const ok = h("button", { class: "btn btn-primary", type: "submit", id: "modal-ok" }, confirmLabel);
  const dlg = h("dialog", { class: "modal" },
    h("form", { method: "dialog", onsubmit: async (e) => {
      e.preventDefault();
      ok.disabled = true;
      const close = await confirm();
      ok.disabled = false;
      if (close !== false) dlg.close();
    } },
      h("header", {}, h("h2", {}, title),
        h("button", { class: "icon-btn", type: "button", "aria-label": t("common.close"), onclick: () => dlg.close() }, icon("x"))),
      h("div", { class: "modal-body" }, content),
      h("footer", {}, cancel ? h("button", { class: "btn", type: "button", onclick: () => dlg.close() }, t("common.cancel")) : null, ok)));
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  const first = dlg.querySelector("select, textarea, input");
  if (first) first.focus();
  return dlg;
}

// Narrow screens: the customer panel is a drawer over the conversation, opened from its header.
export function toggleDrawer(open) {
  const now = open === undefined ? !document.body.classList.contains("drawer-open") : open;
  document.body.classList.toggle("drawer-open", now);
  const button = document.getElementById("drawer-btn");
  if (button) button.setAttribute("aria-expanded", String(now));
}
