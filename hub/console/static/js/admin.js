// Admin screens: agents (add, edit, disable, reset password), API tokens (create - the secret shown once - revoke),
// and routing (queues, rules, agent skills). Only admins get here; the server refuses everyone else anyway.
import { h, icon, clear, initials, since, fullTime, channelIcon } from "./dom.js";
import { api, ApiError } from "./api.js";
import { state, toast, modal } from "./state.js";
import { automationScreen } from "./automation.js";
import { labelsScreen } from "./labels.js";
import { showAttributesAdmin } from "./profile.js";
import { macrosScreen } from "./macros.js";
import { t } from "./i18n.js";

let section = "agents";

const SECTIONS = () => [
  ["agents", t("wall.agents"), "users"],
  ["tokens", t("admin.tokens"), "keyboard"],
  ["routing", t("admin.routing"), "transfer"],
  ["automation", t("admin.automation"), "event"],
  ["labels", t("side.labels"), "tag"],
  ["attributes", t("profile.attributes"), "note"],
  ["macros", t("macros.title"), "checks"],
];

export function showAdmin(main, side, which) {
  section = SECTIONS().some(([id]) => id === which) ? which : "agents";
  clear(side);
  side.classList.add("hidden");
  const body = h("div", { class: "admin-body", id: "admin-body" }, h("div", { class: "loading" }, t("common.loading")));
  const health = h("div", { id: "admin-health" });
  clear(main).append(h("div", { class: "admin" },
    h("header", { class: "admin-head" },
      h("div", {}, h("h1", {}, t("admin.title")),
        h("p", { class: "muted" }, t("admin.subtitle"))),
      h("nav", { class: "admin-tabs", "aria-label": t("admin.title") }, SECTIONS().map(([id, label, ic]) =>
        h("a", { href: `#/admin/${id}`, class: `admin-tab ${id === section ? "active" : ""}`, "data-admin": id },
          icon(ic), label)))),
    health, body));
  showHealth(health);
  const load = { agents: agentsScreen, tokens: tokensScreen, routing: routingScreen, automation: automationScreen,
    attributes: showAttributesAdmin, macros: macrosScreen, labels: labelsScreen }[section];
  load(body).catch((err) => {
    clear(body).append(h("div", { class: "notice bad" }, icon("alert"), err.message));
  });
}

// What keeps a channel from working (a mailbox refusing the login, an SMTP server out of reach), from /readyz.
async function showHealth(el) {
  let ready;
  try {
    ready = await (await fetch("/readyz", { credentials: "same-origin" })).json();
  } catch (err) {
    return;
  }
  const problems = Object.entries(ready.problems || {}).flatMap(([channel, list]) => list.map((p) => `${channel}: ${p}`));
  if (!problems.length) return;
  el.append(h("div", { class: "notice bad", id: "channel-problems" }, icon("alert"),
    h("div", {}, h("strong", {}, t("admin.degraded")), h("ul", {}, problems.map((p) => h("li", {}, p))))));
}

function roleName(role) {
  return { admin: t("role.admin"), supervisor: t("role.supervisor"), agent: t("role.agent") }[role] || role;
}

function capitalized(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// -- shared bits ---------------------------------------------------------------------------------------------------

// Show an API error next to the field it names (422 details), else above the buttons.
function showErrors(form, general, err) {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  general.textContent = "";
  const details = err instanceof ApiError && err.body && err.body.error && err.body.error.details;
  let placed = false;
  if (Array.isArray(details)) {
    for (const d of details) {
      const slot = form.querySelector(`[data-error-for="${String(d.field).split(".")[0]}"]`);
      if (slot) {
        slot.textContent = d.message;
        placed = true;
      }
    }
  }
  if (!placed) general.textContent = err.message;
}

function field(label, input, name, hint) {
  return h("label", { class: "field" }, h("span", {}, label), input,
    hint ? h("small", { class: "hint" }, hint) : null,
    h("small", { class: "field-error", "data-error-for": name, role: "alert" }));
}

function queueTitle(name) {
  const q = state.queues.find((x) => x.name === name);
  return q ? q.title : name;
}

// -- agents --------------------------------------------------------------------------------------------------------

async function agentsScreen(body) {
  const list = (await api.get("/api/v1/agents")).items;
  for (const a of list) state.agents.set(a.id, { ...state.agents.get(a.id), ...a });
  const enabled = list.filter((a) => !a.disabled).length;
  clear(body).append(h("section", { class: "panel" },
    h("div", { class: "panel-head" },
      h("div", {}, h("h2", {}, icon("users"), t("wall.agents")),
        h("p", { class: "muted" }, t("admin.active_disabled", { active: enabled, disabled: list.length - enabled }))),
      h("button", { class: "btn btn-primary", id: "add-agent", onclick: () => agentForm(null, body) }, t("admin.add_agent"))),
    h("table", { class: "agents-table admin-table", id: "agents-admin" },
      h("thead", {}, h("tr", {}, [t("transfer.agent"), t("admin.role"), t("wall.queues"), t("admin.phone_client"), t("views.status"), ""].map((title) => h("th", {}, title)))),
      h("tbody", {}, list.map((a) => h("tr", { "data-agent": a.id, class: a.disabled ? "disabled" : "" },
        h("td", {}, h("div", { class: "agent-cell" }, h("span", { class: "avatar small" }, initials(a.name)),
          h("div", {}, h("strong", {}, a.name), h("div", { class: "muted" }, a.email)))),
        h("td", {}, h("span", { class: `pill role-${a.role}` }, roleName(a.role))),
        h("td", {}, (a.queues || []).length ? a.queues.map((q) => h("span", { class: "chip" }, queueTitle(q)))
          : h("span", { class: "muted" }, t("admin.none"))),
        h("td", { class: "muted" }, [a.phone, a.voice_client].filter(Boolean).join(" · ") || "—"),
        h("td", {}, a.disabled ? h("span", { class: "pill status-disabled" }, t("webhooks.disabled"))
          : h("span", {}, h("span", { class: `presence-dot p-${a.presence || "offline"}` }),
            { available: t("presence.available"), away: t("presence.away"), offline: t("presence.offline") }[a.presence || "offline"] || a.presence)),
        h("td", { class: "row-actions" },
          h("button", { class: "btn btn-small", "data-edit": a.id, onclick: () => agentForm(a, body) }, t("common.edit")))))))));
}

function agentForm(agent, body) {
  const editing = Boolean(agent);
  const a = agent || { name: "", email: "", role: "agent", queues: [], phone: "", voice_client: "" };
  const name = h("input", { type: "text", id: "agent-name", value: a.name, required: true, autocomplete: "off" });
  const email = h("input", { type: "email", id: "agent-email", value: a.email, required: true, autocomplete: "off" });
  const password = h("input", { type: "password", id: "agent-password", autocomplete: "new-password",
    placeholder: editing ? t("admin.keep_password") : t("admin.password_min") });
  const role = h("select", { id: "agent-role" }, ["agent", "supervisor", "admin"].map((r) =>
    h("option", { value: r, selected: r === a.role }, capitalized(roleName(r)))));
  const queues = h("div", { class: "checks", id: "agent-queues" }, state.queues.map((q) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", value: q.name, checked: a.queues.includes(q.name) }),
      q.title)));
  const phone = h("input", { type: "tel", id: "agent-phone", value: a.phone || "", placeholder: "+14155550100" });
  const client = h("input", { type: "text", id: "agent-voice-client", value: a.voice_client || "",
    placeholder: t("admin.client_placeholder") });
  const general = h("div", { class: "form-error", role: "alert", id: "agent-error" });
  const self = editing && state.me.id === a.id;
  const toggle = editing && !self ? h("button", {
    class: `btn ${a.disabled ? "" : "btn-danger"}`, type: "button", id: "agent-toggle",
    onclick: async () => {
      try {
        await api.patch(`/api/v1/agents/${a.id}`, { disabled: !a.disabled });
      } catch (err) {
        general.textContent = err.message;
        return;
      }
      dlg.close();
      toast(a.disabled ? t("admin.enabled_toast", { name: a.name }) : t("admin.disabled_toast", { name: a.name }), "ok");
      agentsScreen(body);
    },
  }, a.disabled ? t("admin.enable") : t("admin.disable")) : null;
  const content = h("div", { class: "form-grid" },
    field(t("labels.name"), name, "name"), field(t("signin.email"), email, "email"),
    field(editing ? t("admin.reset_password") : t("signin.password"), password, "password",
      editing ? t("admin.reset_hint") : null),
    field(t("admin.role"), role, "role", t("admin.role_hint")),
    h("div", { class: "field span-2" }, h("span", {}, t("wall.queues")), queues,
      h("small", { class: "field-error", "data-error-for": "queues" })),
    field(t("channel.voice"), phone, "phone", t("admin.phone_hint")),
    field(t("admin.voice_client"), client, "voice_client"),
    general, toggle ? h("div", { class: "danger-zone span-2" }, h("span", { class: "muted" },
      a.disabled ? t("admin.is_disabled") : t("admin.disable_hint")), toggle) : null);
  const dlg = modal(editing ? t("admin.edit_agent", { name: a.name }) : t("admin.add_agent"), content, editing ? t("admin.save_changes") : t("admin.add_agent"), async () => {
    const chosen = [...queues.querySelectorAll("input:checked")].map((i) => i.value);
    const payload = { name: name.value.trim(), email: email.value.trim(), role: role.value, queues: chosen,
      phone: phone.value.trim() || null, voice_client: client.value.trim() || null };
    if (password.value) payload.password = password.value;
    try {
      if (editing) await api.patch(`/api/v1/agents/${a.id}`, payload);
      else await api.post("/api/v1/agents", payload);
    } catch (err) {
      showErrors(content, general, err);
      return false;
    }
    toast(editing ? t("admin.agent_updated") : t("admin.can_sign_in", { name: payload.name }), "ok");
    agentsScreen(body);
    return true;
  });
  dlg.classList.add("wide");
}

// -- API tokens ----------------------------------------------------------------------------------------------------

async function tokensScreen(body) {
  const [tokens, agents] = await Promise.all([api.get("/api/v1/tokens"), api.get("/api/v1/agents")]);
  const live = tokens.items.filter((tok) => !tok.revoked_at);
  clear(body).append(h("section", { class: "panel" },
    h("div", { class: "panel-head" },
      h("div", {}, h("h2", {}, icon("keyboard"), t("admin.tokens")),
        h("p", { class: "muted" }, t("admin.tokens_explain"))),
      h("button", { class: "btn btn-primary", id: "create-token", onclick: () => tokenForm(agents.items, body) },
        t("admin.create_token"))),
    tokens.items.length ? h("table", { class: "admin-table", id: "tokens-admin" },
      h("thead", {}, h("tr", {}, [t("reports.label"), t("admin.acts_as"), t("admin.created"), t("views.status"), ""].map((title) => h("th", {}, title)))),
      h("tbody", {}, tokens.items.map((tok) => h("tr", { "data-token": tok.id, class: tok.revoked_at ? "disabled" : "" },
        h("td", {}, h("strong", {}, tok.label || t("admin.untitled")), h("div", { class: "muted mono" }, `#${tok.id}`)),
        h("td", {}, tok.role === "admin" ? h("span", { class: "pill role-admin" }, t("admin.admin"))
          : h("span", {}, h("span", { class: "pill" }, t("transfer.agent")), " ", tok.agent_name || `#${tok.agent_id}`)),
        h("td", { title: fullTime(tok.created_at) }, since(tok.created_at)),
        h("td", {}, tok.revoked_at ? h("span", { class: "pill status-disabled", title: fullTime(tok.revoked_at) }, t("admin.revoked"))
          : h("span", { class: "pill status-resolved" }, t("webhooks.active"))),
        h("td", { class: "row-actions" }, tok.revoked_at ? null : h("button", {
          class: "btn btn-small btn-danger-ghost", "data-revoke": tok.id, onclick: () => revoke(tok, body),
        }, t("admin.revoke")))))))
      : h("p", { class: "empty-panel muted" }, t("admin.no_tokens")),
    h("p", { class: "fine muted" }, t("admin.tokens_active", { count: live.length }))));
}

function tokenForm(agents, body) {
  const label = h("input", { type: "text", id: "token-label", placeholder: t("admin.token_label_placeholder") });
  const role = h("select", { id: "token-role" }, h("option", { value: "admin" }, t("admin.access_admin")),
    h("option", { value: "agent" }, t("admin.access_agent")));
  const agent = h("select", { id: "token-agent", disabled: true }, agents.filter((a) => !a.disabled).map((a) =>
    h("option", { value: a.id }, `${a.name} · ${a.email}`)));
  role.addEventListener("change", () => { agent.disabled = role.value !== "agent"; });
  const general = h("div", { class: "form-error", role: "alert" });
  const content = h("div", {}, field(t("reports.label"), label, "label"), field(t("admin.access"), role, "role"),
    field(t("transfer.agent"), agent, "agent_id"), general);
  modal(t("admin.create_token_title"), content, t("admin.create_token"), async () => {
    const payload = { role: role.value, label: label.value.trim() };
    if (role.value === "agent") payload.agent_id = Number(agent.value);
    let made;
    try {
      made = await api.post("/api/v1/tokens", payload);
    } catch (err) {
      showErrors(content, general, err);
      return false;
    }
    tokensScreen(body);
    showSecret(made);
    return true;
  });
}

function showSecret(made) {
  const value = h("input", { type: "text", id: "token-secret", value: made.token, readonly: true, class: "mono",
    onfocus: (e) => e.target.select() });
  const copy = h("button", { class: "btn", type: "button", id: "copy-token", onclick: async () => {
    try {
      await navigator.clipboard.writeText(made.token);
    } catch {
      value.select();
      document.execCommand("copy");
    }
    copy.replaceChildren(icon("check"), t("admin.copied"));
  } }, t("admin.copy"));
  modal(t("admin.new_token"), [
    h("div", { class: "notice warn" }, icon("alert"),
      t("admin.copy_now")),
    h("div", { class: "secret-row" }, value, copy),
    h("p", { class: "muted" }, `“${made.label || t("admin.untitled")}” · ${made.role === "admin" ? t("admin.admin_access") : t("admin.acts_as_name", { name: made.agent_name })}`),
  ], t("webhooks.done"), () => true, { cancel: false });
}

function revoke(tok, body) {
  modal(t("admin.revoke_title"), [h("p", {}, t("admin.revoke_before"), h("strong", {}, tok.label || t("admin.token_n", { id: tok.id })),
    t("admin.revoke_after"))], t("admin.revoke"), async () => {
    try {
      await api.del(`/api/v1/tokens/${tok.id}`);
    } catch (err) {
      toast(err.message, "error");
      return false;
    }
    toast(t("admin.token_revoked"), "ok");
    tokensScreen(body);
    return true;
  }).querySelector("#modal-ok").classList.add("btn-danger");
}

// -- queues, routing rules and agent skills (the routing admin API) ------------------------------------------------

const STRATEGIES = ["longest_idle", "least_occupied", "round_robin", "skills"];
const CLASSES = ["voice", "chat", "email"];
const CLASS_LABEL = () => ({ voice: t("routing.calls"), chat: t("routing.chats"), email: t("routing.emails") });
// The channels a rule may name (the routing engine's words), with what an admin calls them.
const RULE_CHANNELS = () => [["sms", t("channel.sms")], ["whatsapp", t("channel.whatsapp")], ["voice", t("routing.phone_calls")],
  ["email", t("channel.email")], ["telegram", t("channel.telegram")], ["webchat", t("channel.webchat")], ["api", t("routing.api")]];

// The routing API may list queues and agent profiles as objects keyed by name / id, or as arrays.
function asList(value, key) {
  if (Array.isArray(value)) return value;
  return Object.entries(value || {}).map(([k, v]) => ({ [key]: key === "id" ? Number(k) : k, ...v }));
}

function kv(map) {
  return Object.entries(map || {}).map(([k, v]) => `${k} ${v}`).join(", ");
}

// Skills as rows (name, level 0-100), not "key=value" text. read() returns the map or throws a sentence.
function skillsEditor(id, map, known, levelLabel) {
  const rows = h("div", { class: "skill-rows", id, style: "display:grid;gap:6px" });
  const list = h("datalist", { id: `${id}-known` }, [...known].sort().map((k) => h("option", { value: k })));
  const add = (name = "", level = "") => {
    const row = h("div", { class: "skill-row", style: "display:flex;gap:6px;align-items:center" },
      h("input", { type: "text", class: "skill-name", value: name, placeholder: t("skills.placeholder"), list: `${id}-known`,
        "aria-label": t("skills.skill"), maxlength: 64, style: "flex:1" }),
      h("input", { type: "number", class: "skill-level", value: level, placeholder: "0-100", inputmode: "numeric",
        "aria-label": levelLabel, style: "width:7em" }),
      h("button", { class: "icon-btn", type: "button", title: t("skills.remove"), "aria-label": t("skills.remove"),
        onclick: () => { row.remove(); rows.dispatchEvent(new Event("input", { bubbles: true })); } }, icon("x")));
    rows.append(row);
    return row;
  };
  for (const [k, v] of Object.entries(map || {})) add(k, String(v));
  const more = h("button", { class: "btn btn-small", type: "button", id: `${id}-add`, style: "justify-self:start",
    onclick: () => add().querySelector("input").focus() }, t("skills.add"));
  const read = () => {
    const out = {};
    for (const row of rows.querySelectorAll(".skill-row")) {
      const name = row.querySelector(".skill-name").value.trim();
      const raw = row.querySelector(".skill-level").value.trim();
      if (!name && !raw) continue;
      if (!name) throw new Error(t("skills.no_name", { level: raw }));
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(t("skills.bad_name", { name }));
      if (!/^\d+$/.test(raw) || Number(raw) > 100) throw new Error(t("skills.bad_level", { name, level: levelLabel.toLowerCase() }));
      if (name in out) throw new Error(t("skills.twice", { name }));
      out[name] = Number(raw);
    }
    return out;
  };
  return { el: h("div", { style: "display:grid;gap:6px" }, rows, list, more), read };
}

function knownSkills(queues, profiles) {
  const names = new Set();
  for (const x of [...queues, ...profiles]) for (const k of Object.keys(x.skills || {})) names.add(k);
  return names;
}

// Turns the API's refusal into a sentence naming the rule and what is wrong with it.
function ruleError(err, rules) {
  const details = err instanceof ApiError && err.body && err.body.error && err.body.error.details;
  if (Array.isArray(details) && details.length) {
    return details.map((d) => {
      const m = /^rules\.(\d+)\.?(.*)$/.exec(String(d.field || ""));
      if (!m) return d.message;
      const r = rules[Number(m[1])] || {};
      return `${t("routing.rule_n", { n: Number(m[1]) + 1 })}${r.name ? ` (${r.name})` : ""}${m[2] ? `, ${m[2].replace(/_/g, " ")}` : ""}: ${d.message}`;
    }).join(" ");
  }
  // The engine's own wording names the rule by its place in the list: say it as a person would.
  const m = /routing\.rules\[(\d+)\](?: \(([^)]*)\))?\.?([\w.]*): (.*)$/.exec(err.message || "");
  if (m) return `${t("routing.rule_n", { n: Number(m[1]) + 1 })}${m[2] ? ` (${m[2]})` : ""}${m[3] ? `, ${m[3].replace(/_/g, " ")}` : ""}: ${m[4]}`;
  return err.message;
}

// A form with unsaved changes says so, and closing it asks first.
function guardUnsaved(dlg, content) {
  const start = snapshot(content);
  const dirty = () => snapshot(content) !== start;
  const flag = h("span", { class: "chip", id: "unsaved-flag", style: "display:none" }, t("routing.unsaved"));
  const head = dlg.querySelector("header h2");
  if (head) head.after(flag);
  content.addEventListener("input", () => shown(flag, dirty()));
  content.addEventListener("change", () => shown(flag, dirty()));
  const ask = (e) => {
    if (dirty() && !window.confirm(t("routing.discard"))) {
      e.preventDefault();
      e.stopPropagation();
    }
  };
  dlg.addEventListener("cancel", ask);
  for (const b of dlg.querySelectorAll("footer .btn:not(.btn-primary), header .icon-btn")) b.addEventListener("click", ask, true);
}

function shown(el, yes) {
  el.style.display = yes ? "" : "none";
}

function snapshot(root) {
  return JSON.stringify(Array.from(root.querySelectorAll("input, select, textarea"),
    (el) => (el.type === "checkbox" ? el.checked : el.value)));
}

async function routingScreen(body) {
  let routing;
  try {
    routing = await api.get("/api/v1/routing");
  } catch (err) {
    if (err.status === 404 || err.status === 405) {
      clear(body).append(h("div", { class: "notice" }, icon("alert"),
        t("routing.no_api")));
      return;
    }
    throw err;
  }
  const queues = asList(routing.queues, "name");
  const rules = (routing.rules || []).map((r) => ({ ...r }));
  const profiles = asList(routing.agents, "id");
  state.routingQueues = queues;
  state.routingProfiles = profiles;
  const agents = (await api.get("/api/v1/agents")).items.filter((a) => !a.disabled);
  clear(body).append(
    h("section", { class: "panel", id: "queues-admin" },
      h("div", { class: "panel-head" },
        h("div", {}, h("h2", {}, icon("inbox"), t("wall.queues")), h("p", { class: "muted" }, t("routing.queues_explain"))),
        h("button", { class: "btn btn-primary", id: "add-queue", onclick: () => queueForm(null, body) }, t("routing.add_queue"))),
      h("div", { class: "queue-grid" }, queues.map((q) => h("article", { class: "queue-card admin-queue", "data-queue": q.name },
        h("header", {}, h("h3", {}, q.title || q.name), h("span", { class: "muted mono" }, q.name)),
        h("dl", { class: "queue-stats" },
          h("div", {}, h("dt", {}, t("routing.strategy")), h("dd", {}, String(q.strategy || "longest_idle").replace("_", " "))),
          h("div", {}, h("dt", {}, t("routing.offer_timeout")), h("dd", {}, `${q.offer_timeout ?? 30}s`)),
          h("div", {}, h("dt", {}, t("routing.sla_target")), h("dd", {}, `${q.sla_wait ?? 60}s`)),
          h("div", {}, h("dt", {}, t("skills.title")), h("dd", {}, kv(q.skills) || "—")),
          h("div", {}, h("dt", {}, t("routing.survey")), h("dd", {}, q.csat ? t("routing.survey_after", { seconds: q.csat_delay ?? 0 }) : t("routing.off")))),
        h("div", { class: "card-actions" },
          h("button", { class: "btn btn-small", "data-edit-queue": q.name, onclick: () => queueForm(q, body) }, t("common.edit")),
          h("button", { class: "btn btn-small btn-danger-ghost", onclick: () => deleteQueue(q, body) }, t("common.delete"))))))),
    rulesPanel(rules, queues, body),
    h("section", { class: "panel", id: "skills-admin" },
      h("div", { class: "panel-head" }, h("div", {}, h("h2", {}, icon("users"), t("routing.skills_title")),
        h("p", { class: "muted" }, t("routing.skills_explain")))),
      h("table", { class: "admin-table" },
        h("thead", {}, h("tr", {}, [t("transfer.agent"), t("skills.title"), t("routing.capacity"), t("routing.wrapup"), ""].map((title) => h("th", {}, title)))),
        h("tbody", {}, agents.map((a) => {
          const p = profiles.find((x) => x.id === a.id || x.agent_id === a.id || x.email === a.email) || {};
          return h("tr", { "data-profile": a.id },
            h("td", {}, h("div", { class: "agent-cell" }, h("span", { class: "avatar small" }, initials(a.name)), h("strong", {}, a.name))),
            h("td", {}, Object.keys(p.skills || {}).length ? Object.entries(p.skills).map(([k, v]) => h("span", { class: "chip" }, `${k} · ${v}`))
              : h("span", { class: "muted" }, "—")),
            h("td", {}, Object.entries(p.capacity || a.capacity || {}).map(([k, v]) => {
              // What routing uses can be less than what is set (no phone to ring: no calls).
              const used = (p.effective_capacity || {})[k];
              const less = used !== undefined && used < v;
              return h("span", { class: `chip load ${less ? "limited" : ""}`,
                title: less ? t("routing.less_title", { set: v, used }) : null },
              channelIcon(k === "chat" ? "webchat" : k), less ? t("routing.used_of", { used, set: v }) : String(v));
            })),
            h("td", {}, `${p.wrapup ?? 0}s`),
            h("td", { class: "row-actions" }, h("button", { class: "btn btn-small", onclick: () => profileForm(a, p, body) }, t("common.edit"))));
        })))));
}

function queueForm(q, body) {
  const editing = Boolean(q);
  const v = q || { name: "", title: "", strategy: "longest_idle", offer_timeout: 30, sla_wait: 60, skills: {} };
  const name = h("input", { type: "text", id: "queue-name", value: v.name, disabled: editing, placeholder: "billing" });
  const title = h("input", { type: "text", id: "queue-title", value: v.title || "", placeholder: "Billing" });
  const strategy = h("select", { id: "queue-strategy" }, STRATEGIES.map((s) => h("option", { value: s, selected: s === v.strategy }, s.replace("_", " "))));
  const timeout = h("input", { type: "number", id: "queue-timeout", min: 1, value: v.offer_timeout ?? 30 });
  const sla = h("input", { type: "number", id: "queue-sla", min: 0, value: v.sla_wait ?? 60 });
  const csat = h("input", { type: "checkbox", id: "queue-csat", checked: Boolean(v.csat) });
  const csatDelay = h("input", { type: "number", id: "queue-csat-delay", min: 0, value: v.csat_delay ?? 0 });
  const skills = skillsEditor("queue-skills", v.skills, knownSkills(state.routingQueues || [], state.routingProfiles || []),
    t("skills.minimum"));
  const general = h("div", { class: "form-error", role: "alert", id: "queue-error" });
  const content = h("div", { class: "form-grid" }, field(t("labels.name"), name, "name"), field(t("labels.title"), title, "title"),
    field(t("routing.strategy"), strategy, "strategy"), field(t("routing.offer_timeout_s"), timeout, "offer_timeout"),
    field(t("routing.sla_s"), sla, "sla_wait"),
    h("label", { class: "field" }, h("span", {}, t("csat.survey_title")),
      h("span", {}, csat, t("routing.ask_after")), h("small", { class: "field-error", "data-error-for": "csat" })),
    field(t("routing.survey_delay"), csatDelay, "csat_delay"),
    h("div", { class: "field span-2" }, h("span", {}, t("routing.required_skills")), skills.el,
      h("small", { class: "hint" }, t("routing.required_hint")),
      h("small", { class: "field-error", "data-error-for": "skills" })), general);
  const dlg = modal(editing ? t("routing.edit_queue", { name: v.title || v.name }) : t("routing.add_queue"), content, t("routing.save_queue"), async () => {
    let payload;
    if (!editing && !/^[a-z0-9][a-z0-9_-]*$/.test(name.value.trim())) {
      general.textContent = t("routing.bad_queue_name");
      return false;
    }
    if (!(Number(timeout.value) > 0)) {
      general.textContent = t("routing.bad_timeout");
      return false;
    }
    try {
      payload = { ...(q || {}), title: title.value.trim(), strategy: strategy.value, offer_timeout: Number(timeout.value),
        sla_wait: Number(sla.value), skills: skills.read(), csat: csat.checked, csat_delay: Number(csatDelay.value) };
    } catch (err) {
      general.textContent = err.message;
      return false;
    }
    delete payload.name;
    delete payload.source;
    const queueName = name.value.trim();
    if (!queueName) {
      general.textContent = t("routing.queue_needs_name");
      return false;
    }
    try {
      await api.put(`/api/v1/routing/queues/${encodeURIComponent(queueName)}`, payload);
    } catch (err) {
      showErrors(content, general, err);
      return false;
    }
    toast(t("routing.queue_saved"), "ok");
    routingScreen(body);
    return true;
  });
  dlg.classList.add("wide");
  guardUnsaved(dlg, content);
}

function deleteQueue(q, body) {
  modal(t("routing.delete_queue"), [h("p", {}, t("routing.delete_before"), h("strong", {}, q.title || q.name),
    t("routing.delete_after"))], t("common.delete"), async () => {
    try {
      await api.del(`/api/v1/routing/queues/${encodeURIComponent(q.name)}`);
    } catch (err) {
      toast(err.message, "error", 8000);
      return false;
    }
    toast(t("routing.queue_deleted"), "ok");
    routingScreen(body);
    return true;
  });
}

// Which channels a rule applies to, as checkboxes (none ticked: any channel).
function channelPicker(r, i, touched) {
  const chosen = new Set([].concat(r.channel || r.channels || []));
  const summary = () => (chosen.size ? RULE_CHANNELS().filter(([c]) => chosen.has(c)).map(([, l]) => l).join(", ") : t("routing.any_channel"));
  const label = h("span", {}, summary());
  // Its name says which rule, and includes what it shows (so speech input can say what is seen).
  const named = (el) => { el.setAttribute("aria-label", t("routing.channels_of", { n: i + 1, summary: summary() })); return el; };
  return h("details", { class: "rule-channel", style: "position:relative" },
    named(h("summary", { class: "btn btn-small" }, label)),
    h("fieldset", { style: "position:absolute;z-index:5;background:var(--panel, #fff);border:1px solid var(--line, #ddd);"
      + "border-radius:8px;padding:8px 12px;display:grid;gap:4px;min-width:12em" },
    h("legend", { class: "muted" }, t("routing.only_for")),
    RULE_CHANNELS().map(([c, l]) => h("label", { style: "display:flex;gap:6px;align-items:center" },
      h("input", { type: "checkbox", value: c, checked: chosen.has(c), "data-channel": c, onchange: (e) => {
        if (e.target.checked) chosen.add(c); else chosen.delete(c);
        delete r.channels;
        if (chosen.size) r.channel = [...chosen]; else delete r.channel;
        label.textContent = summary();
        named(label.parentElement);
        touched();
      } }), l))));
}

function rulesPanel(rules, queues, body) {
  const error = h("div", { class: "form-error", role: "alert", id: "rules-error" });
  const saved = JSON.stringify(rules);
  const unsaved = h("span", { class: "chip", id: "rules-unsaved", style: "display:none" }, t("routing.unsaved"));
  const touched = () => {
    const dirty = JSON.stringify(rules) !== saved;
    shown(unsaved, dirty);
    window.onbeforeunload = dirty ? (e) => { e.preventDefault(); return ""; } : null;
  };
  const list = h("ol", { class: "rules", id: "rules-admin" });
  const draw = () => clear(list).append(...(rules.length ? rules.map((r, i) => h("li", { class: "rule", "data-rule": i },
    h("span", { class: "rule-n" }, String(i + 1)),
    h("input", { type: "text", class: "rule-name", value: r.name || "", placeholder: t("routing.name_placeholder"), "aria-label": t("routing.rule_name"),
      oninput: (e) => { r.name = e.target.value; touched(); } }),
    h("span", { class: "muted" }, t("routing.when")),
    h("input", { type: "text", class: "rule-keywords", value: (r.keywords || []).join(", "), placeholder: t("routing.keywords_placeholder"),
      "aria-label": t("routing.keywords"), oninput: (e) => { r.keywords = e.target.value.split(",").map((s) => s.trim()).filter(Boolean); touched(); } }),
    channelPicker(r, i, touched),
    h("span", { class: "muted" }, "→"),
    h("select", { class: "rule-queue", "aria-label": t("transfer.queue"), onchange: (e) => { r.queue = e.target.value; touched(); } },
      queues.map((q) => h("option", { value: q.name, selected: q.name === r.queue }, q.title || q.name))),
    h("div", { class: "rule-actions" },
      h("button", { class: "icon-btn", type: "button", title: t("routing.move_up"), disabled: i === 0, onclick: () => { rules.splice(i - 1, 0, ...rules.splice(i, 1)); draw(); touched(); } }, "↑"),
      h("button", { class: "icon-btn", type: "button", title: t("routing.move_down"), disabled: i === rules.length - 1, onclick: () => { rules.splice(i + 1, 0, ...rules.splice(i, 1)); draw(); touched(); } }, "↓"),
      h("button", { class: "icon-btn", type: "button", title: t("routing.remove"), onclick: () => { rules.splice(i, 1); draw(); touched(); } }, icon("x")))))
    : [h("li", { class: "muted empty-panel" }, t("routing.no_rules"))]));
  draw();
  return h("section", { class: "panel" },
    h("div", { class: "panel-head" },
      h("div", {}, h("h2", {}, icon("transfer"), t("routing.rules_title"), " ", unsaved),
        h("p", { class: "muted" }, t("routing.rules_explain"))),
      h("div", { class: "btn-row" },
        h("button", { class: "btn", id: "add-rule", onclick: () => {
          rules.push({ name: `rule-${rules.length + 1}`, queue: (queues[0] || {}).name, keywords: [] });
          draw();
          touched();
        } }, t("routing.add_rule")),
        h("button", { class: "btn btn-primary", id: "save-rules", onclick: async () => {
          error.textContent = "";
          try {
            await api.put("/api/v1/routing/rules", { rules });
          } catch (err) {
            error.textContent = ruleError(err, rules);
            return;
          }
          window.onbeforeunload = null;
          toast(t("routing.rules_saved"), "ok");
          routingScreen(body);
        } }, t("routing.save_rules")))),
    list, error);
}

function profileForm(agent, p, body) {
  const skills = skillsEditor("profile-skills", p.skills,
    knownSkills(state.routingQueues || [], state.routingProfiles || []), t("skills.proficiency"));
  const caps = CLASSES.map((c) => h("input", { type: "number", min: 0, max: 1000, "data-class": c,
    value: (p.capacity || agent.capacity || {})[c] ?? "" }));
  const wrapup = h("input", { type: "number", min: 0, id: "profile-wrapup", value: p.wrapup ?? 0 });
  const general = h("div", { class: "form-error", role: "alert" });
  const content = h("div", { class: "form-grid" },
    h("div", { class: "field span-2" }, h("span", {}, t("skills.title")), skills.el,
      h("small", { class: "hint" }, t("skills.proficiency_hint")),
      h("small", { class: "field-error", "data-error-for": "skills" })),
    ...CLASSES.map((c, i) => field(t("routing.at_once", { kind: CLASS_LABEL()[c] }), caps[i], "capacity",
      i === 0 ? t("routing.empty_default") : null)),
    field(t("routing.wrapup_s"), wrapup, "wrapup"), general);
  const dlg = modal(t("routing.for_agent", { name: agent.name }), content, t("common.save"), async () => {
    let payload;
    try {
      const capacity = {};
      CLASSES.forEach((c, i) => {
        const raw = caps[i].value.trim();
        if (raw === "") return;
        if (!/^\d+$/.test(raw) || Number(raw) > 1000) throw new Error(t("routing.bad_capacity", { kind: CLASS_LABEL()[c] }));
        capacity[c] = Number(raw);
      });
      if (!/^\d*$/.test(wrapup.value.trim())) throw new Error(t("routing.bad_wrapup"));
      payload = { skills: skills.read(), capacity, wrapup: Number(wrapup.value || 0) };
      if (p.exclusive) payload.exclusive = p.exclusive;
    } catch (err) {
      general.textContent = err.message;
      return false;
    }
    try {
      await api.put(`/api/v1/routing/agents/${agent.id}`, payload);
    } catch (err) {
      showErrors(content, general, err);
      return false;
    }
    toast(t("routing.profile_saved"), "ok");
    routingScreen(body);
    return true;
  });
  dlg.classList.add("wide");
  guardUnsaved(dlg, content);
}
