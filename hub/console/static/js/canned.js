// Canned responses in the composer: typing "/" then a few letters (or the composer's button) opens a picker of the
// agent's personal responses and the team's; the chosen one comes back from the hub with its variables filled for
// this conversation. The same button's "Manage" lists, adds, edits and deletes them (an agent their own; admins and
// supervisors the team's too).
import { h, icon, clear } from "./dom.js";
import { api } from "./api.js";
import { state, toast, modal } from "./state.js";
import { t } from "./i18n.js";

let items = [];
let loadedAt = 0;

async function load(fresh = false) {
  if (!fresh && Date.now() - loadedAt < 30000) return items;
  try {
    items = (await api.get("/api/v1/canned-responses")).items;
    loadedAt = Date.now();
  } catch {
    /* the picker says "none" */
  }
  return items;
}

function matches(q) {
  const s = q.toLowerCase();
  return items.filter((c) => !s || c.shortcut.includes(s) || c.title.toLowerCase().includes(s) ||
    c.body.toLowerCase().includes(s)).sort((a, b) => Number(!a.shortcut.startsWith(s)) - Number(!b.shortcut.startsWith(s)));
}

// The "/word" being typed at the caret, if any: at the start of the text or after a space or a new line.
function slashAt(text, caret) {
  const m = /(^|\s)\/([a-z0-9_-]*)$/i.exec(text.slice(0, caret));
  return m ? { start: caret - m[2].length - 1, query: m[2] } : null;
}

// Returns the picker's element (for the composer to place) and openAll() for its button.
export function attachPicker(textarea, conversationId) {
  const list = h("div", { class: "canned-picker hidden", id: "canned-picker", role: "listbox", "aria-label": t("reply.canned") });
  let open = null; // {start, query, at}

  const close = () => {
    open = null;
    list.classList.add("hidden");
    textarea.removeAttribute("aria-activedescendant");
  };

  const show = async (slash) => {
    await load();
    open = { ...slash, at: 0 };
    render();
  };

  const render = () => {
    if (!open) return;
    const found = matches(open.query).slice(0, 8);
    open.found = found;
    open.at = Math.min(open.at, Math.max(0, found.length - 1));
    clear(list).append(...(found.length ? found.map((c, i) => h("button", {
      class: `canned-item ${i === open.at ? "active" : ""}`, type: "button", role: "option", id: `canned-${c.id}`,
      "aria-selected": String(i === open.at), "data-shortcut": c.shortcut,
      onmousedown: (e) => { e.preventDefault(); choose(c); },
    }, h("span", { class: "canned-top" }, h("strong", {}, `/${c.shortcut}`), h("span", {}, c.title),
      c.scope === "team" ? h("span", { class: "pill" }, t("canned.team")) : null),
    h("small", { class: "muted" }, c.body.slice(0, 90)))) : [h("div", { class: "muted canned-none" },
      items.length ? t("canned.no_match", { query: open.query }) : t("canned.none"))]));
    list.classList.remove("hidden");
    if (found[open.at]) textarea.setAttribute("aria-activedescendant", `canned-${found[open.at].id}`);
  };

  const choose = async (c) => {
    const at = open ? open.start : textarea.selectionStart;
    const end = textarea.selectionStart;
    close();
    let filled;
    try {
      filled = await api.post(`/api/v1/canned-responses/${c.id}/render`, { conversation_id: conversationId() });
    } catch (err) {
      toast(err.message, "error");
      return;
    }
    const before = textarea.value.slice(0, at);
    textarea.value = before + filled.text + textarea.value.slice(end);
    const caret = before.length + filled.text.length;
    textarea.setSelectionRange(caret, caret);
    textarea.focus();
    textarea.dispatchEvent(new Event("input"));
    if (filled.missing.length) toast(t("canned.fill_in", { missing: filled.missing.join(", ") }), "info", 8000);
  };

  textarea.addEventListener("input", () => {
    const slash = slashAt(textarea.value, textarea.selectionStart);
    if (!slash) close();
    else if (!open) show(slash);
    else {
      open.query = slash.query;
      open.start = slash.start;
      render();
    }
  });
  textarea.addEventListener("blur", () => setTimeout(close, 150));
  // Capture: the picker answers its keys before the composer's own (Enter, Escape).
  textarea.addEventListener("keydown", (e) => {
    if (!open) return;
    const found = open.found || [];
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      open.at = (open.at + (e.key === "ArrowDown" ? 1 : -1) + found.length) % Math.max(1, found.length);
      render();
    } else if ((e.key === "Enter" || e.key === "Tab") && !e.ctrlKey && !e.metaKey && found[open.at]) {
      choose(found[open.at]);
    } else if (e.key === "Escape") {
      close();
    } else {
      return;
    }
    e.preventDefault();
    e.stopImmediatePropagation();
  }, true);

  return {
    el: list,
    // The composer's button: the picker for everything, as if "/" had been typed at the caret.
    openAll: async () => {
      textarea.focus();
      await load(true);
      open = { start: textarea.selectionStart, query: "", at: 0 };
      render();
    },
  };
}

export async function manage() {
  await load(true);
  const manager = ["admin", "supervisor"].includes(state.me.role);
  const rows = h("ul", { class: "canned-manage" });
  let editing = null; // the response the form below changes, or null to add one
  const paint = () => clear(rows).append(...items.map((c) => h("li", { "data-shortcut": c.shortcut },
    h("div", {}, h("strong", {}, `/${c.shortcut}`), " ", c.title, c.scope === "team" ? h("span", { class: "pill" }, t("canned.team")) : null,
      h("div", { class: "muted" }, c.body)),
    c.scope === "personal" || manager ? h("span", { class: "row-actions" }, h("button", { class: "icon-btn", type: "button",
      "aria-label": t("canned.edit", { shortcut: c.shortcut }), title: t("common.edit"), onclick: () => edit(c) }, icon("pencil")),
    h("button", { class: "icon-btn", type: "button", "aria-label": t("canned.delete", { shortcut: c.shortcut }),
      title: t("common.delete"), onclick: async () => {
        try {
          await api.del(`/api/v1/canned-responses/${c.id}`);
          await load(true);
          paint();
        } catch (err) {
          toast(err.message, "error");
        }
      } }, icon("x"))) : null)));
  paint();
  const shortcut = h("input", { type: "text", id: "canned-shortcut", placeholder: "refund", autocomplete: "off" });
  const title = h("input", { type: "text", id: "canned-title", placeholder: t("canned.title_placeholder") });
  const body = h("textarea", { id: "canned-body", rows: 4,
    placeholder: t("canned.body_placeholder") });
  const scope = manager ? h("select", { id: "canned-scope" }, h("option", { value: "personal" }, t("canned.only_me")),
    h("option", { value: "team" }, t("canned.whole_team"))) : null;
  const error = h("div", { class: "form-error", role: "alert" });
  const heading = h("h3", { class: "canned-add", id: "canned-form-title" }, t("canned.add_one"));
  const edit = (c) => {
    editing = c;
    shortcut.value = c.shortcut;
    title.value = c.title;
    body.value = c.body;
    if (scope) {
      scope.value = c.scope;
      scope.disabled = true; // who a response is for stays; add a new one for the other
    }
    heading.textContent = t("canned.edit", { shortcut: c.shortcut });
    dlg.querySelector("#modal-ok").textContent = t("common.save");
    error.textContent = "";
    title.focus();
  };
  const dlg = modal(t("reply.canned"), [
    rows,
    heading,
    h("label", { class: "field" }, h("span", {}, t("canned.shortcut")), shortcut),
    h("label", { class: "field" }, h("span", {}, t("labels.title")), title),
    h("label", { class: "field" }, h("span", {}, t("canned.text")), body,
      h("small", { class: "muted" }, t("canned.variables"))),
    scope ? h("label", { class: "field" }, h("span", {}, t("canned.who")), scope) : null,
    error,
  ], t("canned.add"), async () => {
    const fields = { shortcut: shortcut.value.trim().replace(/^\//, ""), title: title.value.trim(), body: body.value };
    try {
      if (editing) await api.patch(`/api/v1/canned-responses/${editing.id}`, fields);
      else await api.post("/api/v1/canned-responses", { ...fields, scope: scope ? scope.value : "personal" });
    } catch (err) {
      error.textContent = err.message;
      return false;
    }
    await load(true);
    toast(editing ? t("canned.saved", { shortcut: fields.shortcut }) : t("canned.added", { shortcut: fields.shortcut }), "ok");
    return true;
  });
}
