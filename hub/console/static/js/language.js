// The language picker: a top-bar button (and one on the sign-in page) opening a small dialog. The choice is kept in
// this browser and applied at once by redrawing, without a reload.
import { h, icon } from "./dom.js";
import { modal } from "./state.js";
import { t, LANGUAGES, language, savedLanguage, setLanguage, browserLanguage } from "./i18n.js";

export function languageButton(redraw) {
  return h("button", {
    class: "icon-btn", id: "language-btn", type: "button", title: t("language.button", { name: LANGUAGES[language()].name }),
    "aria-label": t("language.button", { name: LANGUAGES[language()].name }), onclick: () => chooseLanguage(redraw),
  }, icon("globe"));
}

function chooseLanguage(redraw) {
  const select = h("select", { id: "language-select", name: "language" },
    h("option", { value: "", selected: !savedLanguage() }, t("language.browser", { name: LANGUAGES[browserLanguage()].name })),
    Object.entries(LANGUAGES).map(([code, l]) => h("option", { value: code, lang: code, selected: savedLanguage() === code }, l.name)));
  modal(t("language.title"), [h("label", { class: "field" }, h("span", {}, t("language.label")), select),
    h("p", { class: "muted" }, t("language.kept"))],
  t("common.save"), () => {
    setLanguage(select.value, { keep: true });
    redraw();
    return true;
  });
}
