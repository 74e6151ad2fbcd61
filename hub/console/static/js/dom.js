// DOM building without HTML parsing: every piece of text goes in as a text node, so customer data stays inert.

import { t, formatDate, formatTime, formatDateTime } from "./i18n.js";

const SVG_NS = "http://www.w3.org/2000/svg";

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// Feather-style line icons (MIT), drawn as paths.
const ICONS = {
  theme: ["M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z", "M12 3v18", "M12 3a9 9 0 0 1 0 18z"],
  more: ["M5 12h.01", "M12 12h.01", "M19 12h.01"],
  sms: ["M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"],
  voice: ["M22 16.92v3a2 2 0 0 1-2.18 2 19.79 19.79 0 0 1-8.63-3.07 19.5 19.5 0 0 1-6-6 19.79 19.79 0 0 1-3.07-8.67A2 2 0 0 1 4.11 2h3a2 2 0 0 1 2 1.72 12.84 12.84 0 0 0 .7 2.81 2 2 0 0 1-.45 2.11L8.09 9.91a16 16 0 0 0 6 6l1.27-1.27a2 2 0 0 1 2.11-.45 12.84 12.84 0 0 0 2.81.7A2 2 0 0 1 22 16.92z"],
  email: ["M4 4h16c1.1 0 2 .9 2 2v12c0 1.1-.9 2-2 2H4c-1.1 0-2-.9-2-2V6c0-1.1.9-2 2-2z", "M22 6l-10 7L2 6"],
  telegram: ["M22 2L11 13", "M22 2l-7 20-4-9-9-4 20-7z"],
  webchat: ["M21 11.5a8.38 8.38 0 0 1-.9 3.8 8.5 8.5 0 0 1-7.6 4.7 8.38 8.38 0 0 1-3.8-.9L3 21l1.9-5.7a8.38 8.38 0 0 1-.9-3.8 8.5 8.5 0 0 1 4.7-7.6 8.38 8.38 0 0 1 3.8-.9h.5a8.48 8.48 0 0 1 8 8v.5z"],
  whatsapp: ["M21 11.5a8.38 8.38 0 0 1-.9 3.8 8.5 8.5 0 0 1-7.6 4.7 8.38 8.38 0 0 1-3.8-.9L3 21l1.9-5.7a8.38 8.38 0 0 1-.9-3.8 8.5 8.5 0 0 1 4.7-7.6 8.38 8.38 0 0 1 3.8-.9h.5a8.48 8.48 0 0 1 8 8v.5z"],
  api: ["M16 18l6-6-6-6", "M8 6l-6 6 6 6"],
  hub: ["M12 2l9 5v10l-9 5-9-5V7z", "M12 22V12", "M21 7l-9 5-9-5"],
  note: ["M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z", "M14 2v6h6", "M16 13H8", "M16 17H8"],
  voicemail: ["M5.5 16a4.5 4.5 0 1 1 0-9 4.5 4.5 0 0 1 0 9z", "M18.5 16a4.5 4.5 0 1 1 0-9 4.5 4.5 0 0 1 0 9z", "M5.5 16h13"],
  search: ["M11 19a8 8 0 1 0 0-16 8 8 0 0 0 0 16z", "M21 21l-4.35-4.35"],
  check: ["M20 6L9 17l-5-5"],
  checks: ["M17 6L7 16.5 2.5 12", "M22 6L12 16.5l-1.2-1.2"],
  clock: ["M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z", "M12 6v6l4 2"],
  tag: ["M20.59 13.41l-7.17 7.17a2 2 0 0 1-2.83 0L2 12V2h10l8.59 8.59a2 2 0 0 1 0 2.82z", "M7 7h.01"],
  snooze: ["M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z", "M9 9h6l-6 6h6"],
  filter: ["M22 3H2l8 9.46V19l4 2v-8.54L22 3z"],
  alert: ["M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z", "M12 8v4", "M12 16h.01"],
  x: ["M18 6L6 18", "M6 6l12 12"],
  logout: ["M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4", "M16 17l5-5-5-5", "M21 12H9"],
  inbox: ["M22 12h-6l-2 3h-4l-2-3H2", "M5.45 5.11L2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6l-3.45-6.89A2 2 0 0 0 16.76 4H7.24a2 2 0 0 0-1.79 1.11z"],
  wall: ["M3 3h7v7H3z", "M14 3h7v7h-7z", "M14 14h7v7h-7z", "M3 14h7v7H3z"],
  users: ["M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2", "M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8z", "M23 21v-2a4 4 0 0 0-3-3.87", "M16 3.13a4 4 0 0 1 0 7.75"],
  transfer: ["M5 12h14", "M12 5l7 7-7 7"],
  back: ["M19 12H5", "M12 19l-7-7 7-7"],
  resolve: ["M22 11.08V12a10 10 0 1 1-5.93-9.14", "M22 4L12 14.01l-3-3"],
  paperclip: ["M21.44 11.05l-9.19 9.19a6 6 0 0 1-8.49-8.49l9.19-9.19a4 4 0 0 1 5.66 5.66l-9.2 9.19a2 2 0 0 1-2.83-2.83l8.49-8.48"],
  merge: ["M18 21a3 3 0 1 0 0-6 3 3 0 0 0 0 6z", "M6 9a3 3 0 1 0 0-6 3 3 0 0 0 0 6z", "M6 21V9a9 9 0 0 0 9 9"],
  pencil: ["M12 20h9", "M16.5 3.5a2.12 2.12 0 0 1 3 3L7 19l-4 1 1-4z"],
  at: ["M12 16a4 4 0 1 0 0-8 4 4 0 0 0 0 8z", "M16 8v5a3 3 0 0 0 6 0v-1a10 10 0 1 0-3.92 7.94"],
  bell: ["M18 8A6 6 0 0 0 6 8c0 7-3 9-3 9h18s-3-2-3-9", "M13.73 21a2 2 0 0 1-3.46 0"],
  event: ["M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z", "M12 16v-4", "M12 8h.01"],
  globe: ["M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z", "M2 12h20", "M12 2a15.3 15.3 0 0 1 4 10 15.3 15.3 0 0 1-4 10 15.3 15.3 0 0 1-4-10 15.3 15.3 0 0 1 4-10z"],
  keyboard: ["M20 5H4a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2V7a2 2 0 0 0-2-2z", "M6 9h.01M10 9h.01M14 9h.01M18 9h.01M8 13h8M6 17h12"],
};

export function icon(name, cls = "") {
  const el = document.createElementNS(SVG_NS, "svg");
  el.setAttribute("viewBox", "0 0 24 24");
  el.setAttribute("class", `icon ${cls}`.trim());
  el.setAttribute("aria-hidden", "true");
  for (const d of ICONS[name] || ICONS.event) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    el.append(path);
  }
  return el;
}

const CHANNEL_LABELS = {
  sms: () => t("channel.sms"), voice: () => t("channel.voice"), email: () => t("channel.email"), telegram: () => t("channel.telegram"),
  webchat: () => t("channel.webchat"), whatsapp: () => t("channel.whatsapp"), api: () => t("channel.api"), hub: () => t("channel.hub"),
};

// The channel a customer used, as agents should see it: a message that came in through the API names the
// integration that sent it (meta.integration or meta.source), else what its identity says (a telegram: identity
// is Telegram); never "API". Returns [icon channel, label].
const KIND_CHANNEL = { phone: "sms", email: "email", telegram: "telegram", webchat: "webchat", whatsapp: "whatsapp" };

export function shownChannel(channel, identity, meta) {
  if (channel !== "api") return [channel, channelLabel(channel)];
  const named = meta && (meta.integration || meta.source);
  const kind = identity ? String(identity).split(":")[0] : "";
  const like = KIND_CHANNEL[kind];
  const label = typeof named === "string" && named.trim() ? named.trim().slice(0, 40)
    : kind === "phone" ? t("channel.voice") : like ? channelLabel(like) : t("channel.api");
  return [like || "api", label];
}

// A customer's channel from their identities (a conversation that came through the API).
export function customerChannel(channel, customer) {
  const first = customer && (customer.identities || [])[0];
  return shownChannel(channel, first ? first.id : "", null);
}

export function channelLabel(name) {
  return CHANNEL_LABELS[name] ? CHANNEL_LABELS[name]() : name;
}

// A conversation's status as agents read it ("open" is waiting for an agent).
export function statusName(status) {
  return { open: t("status.open"), assigned: t("status.assigned"), snoozed: t("status.snoozed"),
    resolved: t("status.resolved") }[status] || status;
}

export function channelIcon(name) {
  return h("span", { class: `chan chan-${ICONS[name] ? name : "other"}`, title: channelLabel(name) }, icon(name));
}

// Server times look like 2026-11-23T13:22:45.274881Z; Date wants at most milliseconds.
export function parseTime(s) {
  return s ? new Date(String(s).replace(/(\.\d{3})\d+/, "$1")) : null;
}

export function ago(s, now = Date.now()) {
  const when = parseTime(s);
  if (!when) return "";
  const secs = Math.max(0, Math.round((now - when.getTime()) / 1000));
  if (secs < 45) return t("time.now");
  if (secs < 3600) return t("time.minutes", { n: Math.round(secs / 60) });
  if (secs < 86400) return t("time.hours", { n: Math.floor(secs / 3600) });
  if (secs < 7 * 86400) return t("time.days", { n: Math.floor(secs / 86400) });
  return formatDate(when, { month: "short", day: "numeric" });
}

// "just now", "5m ago", or a date: for sentences, where ago() alone would read "now ago".
export function since(s, now = Date.now()) {
  const when = parseTime(s);
  if (!when) return "";
  const secs = (now - when.getTime()) / 1000;
  if (secs < 45) return t("time.just_now");
  return secs < 7 * 86400 ? t("time.ago", { when: ago(s, now) }) : ago(s, now);
}

export function clockTime(s) {
  const when = parseTime(s);
  return when ? formatTime(when, { hour: "2-digit", minute: "2-digit" }) : "";
}

export function fullTime(s) {
  const when = parseTime(s);
  return when ? formatDateTime(when) : "";
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  const m = Math.floor(s / 60);
  if (m >= 60) return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

export function initials(name) {
  if (/^\+?[\d\s()-]+$/.test(String(name || ""))) return "#"; // a customer known by their number only
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  return ((parts[0] || "?")[0] + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}

export function displayName(customer) {
  if (!customer) return t("customer.unknown");
  if (customer.display_name) return customer.display_name; // the hub's: a visitor with no name is "Visitor 4821"
  if (customer.name) return customer.name;
  const ident = customer.identity || (customer.identities && customer.identities[0] && customer.identities[0].id);
  return ident ? String(ident).split(":").slice(1).join(":") : t("customer.number", { id: customer.id });
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
