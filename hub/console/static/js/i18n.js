// The console's words: one catalogue per language (locales/<code>.js); t(key, vars) looks a key up in the chosen
// language, falling back to English. The language is the agent's choice (kept in this browser) or the browser's.
// Dates, times and numbers go through Intl with the same locale, so a screen never mixes two languages.
import en from "./locales/en.js";
import es from "./locales/es.js";

// To add a language: a locales/<code>.js with every key of en.js (tests/console/test_i18n.py checks), and a line here.
export const LANGUAGES = { en: { name: "English", strings: en }, es: { name: "Español", strings: es } };

const KEY = "hub-language";
let lang = "en";
let plurals = new Intl.PluralRules("en");
let numbers = new Intl.NumberFormat("en");

// The first of the browser's languages the console speaks (es-MX -> es), else English.
export function browserLanguage(preferred = navigator.languages || [navigator.language]) {
  for (const tag of preferred) {
    const code = String(tag || "").toLowerCase().split("-")[0];
    if (code in LANGUAGES) return code;
  }
  return "en";
}

export function savedLanguage() {
  try {
    const saved = localStorage.getItem(KEY);
    return saved in LANGUAGES ? saved : "";
  } catch (err) {
    return ""; // storage refused (a private window's policy): follow the browser
  }
}

export function language() {
  return lang;
}

// Sets the language for what is drawn from now on (callers redraw): CODE, or "" for the browser's. KEEP remembers
// the choice in this browser ("" forgets it).
export function setLanguage(code, { keep = false } = {}) {
  lang = code in LANGUAGES ? code : browserLanguage();
  plurals = new Intl.PluralRules(lang);
  numbers = new Intl.NumberFormat(lang);
  document.documentElement.lang = lang;
  if (keep) {
    try {
      if (code) localStorage.setItem(KEY, lang);
      else localStorage.removeItem(KEY);
    } catch (err) {
      // not kept past this page; still applied now
    }
  }
}

export function applyLanguage() {
  setLanguage(savedLanguage() || browserLanguage());
}

function lookup(key) {
  const own = LANGUAGES[lang].strings[key];
  return own === undefined ? en[key] : own;
}

// A string from the catalogue with {name} placeholders filled; an entry with plural forms ({one, other, ...}) is
// chosen by vars.count with the language's plural rules. Numbers are formatted for the language.
export function t(key, vars = {}) {
  let text = lookup(key);
  if (text === undefined) return key; // a missing key shows itself rather than nothing (the test catches it first)
  if (typeof text === "object") text = text[plurals.select(Number(vars.count) || 0)] ?? text.other;
  return text.replace(/\{(\w+)\}/g, (whole, name) => {
    const value = vars[name];
    if (value === undefined || value === null) return whole;
    return typeof value === "number" ? numbers.format(value) : String(value);
  });
}

export function formatNumber(n, options) {
  return options ? new Intl.NumberFormat(lang, options).format(n) : numbers.format(n);
}

export function formatDate(d, options) {
  return d.toLocaleDateString(lang, options);
}

export function formatTime(d, options) {
  return d.toLocaleTimeString(lang, options);
}

export function formatDateTime(d, options) {
  return d.toLocaleString(lang, options);
}
