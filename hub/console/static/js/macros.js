// Macros: a named sequence of actions (reply with a team canned response, label, assign, resolve) applied to the
// open conversation in one click from its header. Admins build them under Admin › Macros; the hub runs each action
// through the same path as its single-action button and says which one stopped, if one does.
import { h, icon, clear } from "./dom.js";
import { api } from "./api.js";
import { state, toast } from "./state.js";
import { t } from "./i18n.js";

const ACTION_LABEL = () => ({ reply: t("keys.reply"), label: t("labels.add"), assign: t("macros.assign"), resolve: t("conv.resolve") });

async function loadMacros() {
  try {
    return (await api.get("/api/v1/macros")).items;
  } catch {
    return [];
  }
}

function describe(a, canned) {
  if (a.type === "reply") {
    const c = canned.find((x) => x.id === a.canned_response_id);
    return t("macros.reply_with", { canned: c ? "/" + c.shortcut : "#" + a.canned_response_id });
  }
  if (a.type === "label") return t("macros.label_with", { name: a.label });
  if (a.type === "assign") {
    const agent = a.agent_id && state.agents.get(a.agent_id);
    return a.agent_id ? t("macros.assign_to", { name: agent ? agent.name : "#" + a.agent_id }) : t("keys.claim");
  }
  return ACTION_LABEL()[a.type] || a.type;
}

// The header's Macros button: a menu of macros; choosing one applies it to CONVERSATION_ID.
export function macroButton(conversationId, onApplied) {
  const menu = h("div", { class: "macro-menu hidden", id: "macro-menu", role: "menu" });
  const button = h("button", { class: "btn", id: "macro-btn", type: "button", "aria-haspopup": "menu", "aria-expanded": "false",
    "aria-label": t("macros.title"), title: t("macros.apply"), onclick: async (e) => {
      e.stopPropagation();
      if (!menu.classList.contains("hidden")) return close();
      const [macros, canned] = await Promise.all([loadMacros(), api.get("/api/v1/canned-responses").then((r) => r.items).catch(() => [])]);
      clear(menu).append(...(macros.length ? macros.map((m) => h("button", { class: "macro-item", type: "button", role: "menuitem",
        "data-macro": m.name, onclick: () => apply(m) },
      h("strong", {}, m.name), h("small", { class: "muted" }, m.actions.map((a) => describe(a, canned)).join(" → "))))
        : [h("div", { class: "muted macro-none" }, state.me.role === "admin" ? t("macros.none_admin") : t("macros.none"))]));
      menu.classList.remove("hidden");
      button.setAttribute("aria-expanded", "true");
      document.addEventListener("click", close, { once: true });
    } }, icon("checks"), h("span", { class: "label" }, t("macros.title")));
  const close = () => {
    menu.classList.add("hidden");
    button.setAttribute("aria-expanded", "false");
  };
  const apply = async (m) => {
    close();
    try {
      const done = await api.post(`/api/v1/macros/${m.id}/apply`, { conversation_id: conversationId });
      toast(t("macros.done", { name: m.name }), "ok");
      onApplied(done.conversation);
    } catch (err) {
      toast(err.message, "error", 10000);
      onApplied(null);
    }
  };
  return h("span", { class: "macro-wrap" }, button, menu);
}

// Admin › Macros.
export async function macrosScreen(body) {
  const [macros, canned] = await Promise.all([loadMacros(), api.get("/api/v1/canned-responses").then((r) => r.items)]);
  const team = canned.filter((c) => c.scope === "team");
  const agents = [...state.agents.values()].filter((a) => !a.disabled);
  const list = h("ul", { class: "canned-manage", id: "macro-list" }, macros.map((m) => h("li", { "data-macro": m.name },
    h("div", {}, h("strong", {}, m.name), h("div", { class: "muted" }, m.actions.map((a) => describe(a, canned)).join(" → "))),
    h("button", { class: "icon-btn", type: "button", "aria-label": t("macros.delete", { name: m.name }), title: t("common.delete"), onclick: async () => {
      try {
        await api.del(`/api/v1/macros/${m.id}`);
        macrosScreen(body);
      } catch (err) {
        toast(err.message, "error");
      }
    } }, icon("x")))));
  const steps = h("ol", { class: "macro-steps", id: "macro-steps" });
  const addStep = (type = "reply") => {
    const param = h("span", { class: "macro-param" });
    const kind = h("select", { class: "macro-type", "aria-label": t("macros.action"), onchange: () => fill() },
      Object.entries(ACTION_LABEL()).map(([v, l]) => h("option", { value: v, selected: v === type }, l)));
    const fill = () => {
      clear(param);
      if (kind.value === "reply") {
        param.append(h("select", { class: "macro-canned", "aria-label": t("macros.canned") },
          team.length ? team.map((c) => h("option", { value: c.id }, `/${c.shortcut} · ${c.title}`))
            : h("option", { value: "" }, t("macros.no_team_canned"))));
      } else if (kind.value === "label") {
        param.append(h("input", { type: "text", class: "macro-label", "aria-label": t("reports.label"), placeholder: "billing", maxlength: 60 }));
      } else if (kind.value === "assign") {
        param.append(h("select", { class: "macro-agent", "aria-label": t("transfer.agent") }, h("option", { value: "" }, t("macros.whoever")),
          agents.map((a) => h("option", { value: a.id }, a.name))));
      }
    };
    fill();
    const li = h("li", {}, kind, param, h("button", { class: "icon-btn", type: "button", "aria-label": t("macros.remove_step"),
      onclick: () => li.remove() }, icon("x")));
    steps.append(li);
  };
  addStep("reply");
  addStep("resolve");
  const name = h("input", { type: "text", id: "macro-name", placeholder: t("macros.name_placeholder"), maxlength: 80 });
  const error = h("div", { class: "form-error", role: "alert" });
  clear(body).append(h("div", { class: "admin-page" },
    h("h2", {}, t("macros.title")),
    h("p", { class: "muted" }, t("macros.explain")),
    macros.length ? list : h("p", { class: "muted" }, t("common.none_yet")),
    h("form", { id: "macro-form", onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      const actions = [...steps.children].map((li) => {
        const type = li.querySelector(".macro-type").value;
        const a = { type };
        if (type === "reply") a.canned_response_id = Number(li.querySelector(".macro-canned").value) || undefined;
        if (type === "label") a.label = li.querySelector(".macro-label").value.trim() || undefined;
        if (type === "assign" && li.querySelector(".macro-agent").value) a.agent_id = Number(li.querySelector(".macro-agent").value);
        return a;
      });
      try {
        await api.post("/api/v1/macros", { name: name.value.trim(), actions });
      } catch (err) {
        error.textContent = err.message;
        return;
      }
      toast(t("common.added", { name: name.value.trim() }), "ok");
      macrosScreen(body);
    } },
      h("h3", { class: "canned-add" }, t("macros.add_one")),
      h("label", { class: "field" }, h("span", {}, t("labels.name")), name),
      h("div", { class: "field" }, h("span", {}, t("macros.steps")), steps,
        h("button", { class: "btn btn-ghost", type: "button", id: "macro-add-step", onclick: () => addStep("label") }, t("macros.add_step"))),
      error, h("button", { class: "btn btn-primary", type: "submit", id: "macro-save" }, t("macros.add")))));
}
