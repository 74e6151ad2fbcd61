// The console's colour scheme: the system's, unless the agent chose light or dark here (kept in this browser).
// The CSS picks every colour with light-dark(), so choosing is only setting data-theme on <html>.
import { h, icon } from "./dom.js";
import { t } from "./i18n.js";

const KEY = "hub-theme";
const NEXT = { system: "light", light: "dark", dark: "system" };
const NAMES = () => ({ system: t("theme.system"), light: t("theme.light"), dark: t("theme.dark") });
const SHORT = () => ({ system: t("theme.short_system"), light: t("theme.short_light"), dark: t("theme.short_dark") });

export function currentTheme() {
  try {
    const saved = localStorage.getItem(KEY);
    return saved in NEXT ? saved : "system";
  } catch (err) {
    return "system"; // storage refused (a private window's policy): follow the system
  }
}

export function applyTheme(theme = currentTheme()) {
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
}

function choose(theme) {
  try {
    if (theme === "system") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, theme);
  } catch (err) {
    // not kept past this page; still applied now
  }
  applyTheme(theme);
}

// A top-bar button that steps system → light → dark → system, saying which is on.
export function themeButton() {
  const button = h("button", { class: "icon-btn", id: "theme-btn", type: "button" }, icon("theme"));
  const show = () => {
    const theme = currentTheme();
    button.title = t("theme.title", { name: NAMES()[theme], next: SHORT()[NEXT[theme]] });
    button.setAttribute("aria-label", NAMES()[theme]);
    button.dataset.theme = theme;
  };
  button.addEventListener("click", () => { choose(NEXT[currentTheme()]); show(); });
  show();
  return button;
}
