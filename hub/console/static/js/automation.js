// Admin screens for automation: rules (a structured when / if / then editor with a dry run, each rule's runs and
// last run) and outbound webhooks (subscriptions, their delivery log, resend). The server checks everything again.
import { h, icon, clear, since, fullTime, statusName } from "./dom.js";
import { api, ApiError } from "./api.js";
import { state, toast, modal } from "./state.js";
import { loadLabels } from "./labels.js";
import { t, formatDate } from "./i18n.js";

// Built when drawn, so they are in the console's language at that moment.
const EVENTS = () => [
  ["message.received", t("rules.ev_received")],
  ["message.sent", t("rules.ev_sent")],
  ["conversation.opened", t("rules.ev_opened")],
  ["conversation.reopened", t("rules.ev_reopened")],
  ["conversation.resolved", t("rules.ev_resolved")],
  ["conversation.assigned", t("rules.ev_assigned")],
  ["sla.breached", t("rules.ev_sla")],
  ["business_event.received", t("rules.ev_business")],
  ["csat.received", t("rules.ev_csat")],
  ["csat.low", t("rules.ev_csat_low")],
];
// fields that name what they read: a customer attribute, a key of the business event's payload
const NAMED = { customer_attribute: () => t("rules.attribute"), event_field: () => t("rules.payload_key") };
// field -> [label, operators, kind of value]
const FIELDS = () => ({
  text: [t("rules.f_text"), ["contains", "not_contains", "matches"], "text"],
  channel: [t("reports.channel"), ["is", "is_not"], "text"],
  queue: [t("transfer.queue"), ["is", "is_not"], "queue"],
  label: [t("reports.label"), ["contains", "not_contains"], "label"],
  business_hours: [t("rules.f_hours"), ["is"], "hours"],
  customer_attribute: [t("rules.f_attribute"), ["is", "is_not", "contains", "present", "absent", "gt", "lt"], "text"],
  priority: [t("rules.f_priority"), ["is", "is_not", "gt", "lt"], "number"],
  agent: [t("transfer.agent"), ["is", "is_not", "present", "absent"], "agent"],
  status: [t("views.status"), ["is", "is_not"], "status"],
  event_type: [t("rules.f_event_type"), ["is", "is_not"], "text"],
  event_amount: [t("rules.f_event_amount"), ["gt", "lt", "present", "absent"], "number"],
  event_field: [t("rules.f_event_field"), ["is", "is_not", "contains", "present", "absent", "gt", "lt"], "text"],
  csat_score: [t("rules.f_csat"), ["is", "is_not", "gt", "lt"], "number"],
});
const OPS = () => ({ is: t("rules.op_is"), is_not: t("rules.op_is_not"), contains: t("rules.op_contains"),
  not_contains: t("rules.op_not_contains"), matches: t("rules.op_matches"), present: t("rules.op_present"),
  absent: t("rules.op_absent"), gt: t("rules.op_gt"), lt: t("rules.op_lt") });
// action -> [label, kind of value]
const ACTIONS = () => ({
  add_label: [t("labels.add"), "label"], remove_label: [t("rules.a_remove_label"), "label"],
  set_priority: [t("rules.a_priority"), "number"], move_to_queue: [t("rules.a_queue"), "queue"],
  assign_agent: [t("rules.a_agent"), "agent"], send_reply: [t("rules.a_reply"), "long"],
  add_note: [t("rules.a_note"), "long"], resolve: [t("conv.resolve"), "none"],
  send_webhook: [t("rules.a_webhook"), "webhook"], set_attribute: [t("rules.a_attribute"), "text"],
});
const eventLabel = (e) => (EVENTS().find(([id]) => id === e) || [e, e])[1];

function errorText(err) {
  const details = err instanceof ApiError && err.body && err.body.error && err.body.error.details;
  if (Array.isArray(details)) return details.map((d) => `${d.field}: ${d.message}`).join(" · ");
  return err.message;
}

// -- rules ---------------------------------------------------------------------------------------------------------

export async function automationScreen(body) {
  const [rules] = await Promise.all([api.get("/api/v1/automation/rules").then((r) => r.items), loadLabels()]);
  clear(body).append(h("section", { class: "panel" },
    h("div", { class: "panel-head" },
      h("div", {}, h("h2", {}, icon("event"), t("rules.title")),
        h("p", { class: "muted" }, t("rules.explain"))),
      h("button", { class: "btn btn-primary", id: "add-rule", onclick: () => ruleForm(null, body) }, t("rules.new"))),
    rules.length ? h("table", { class: "admin-table", id: "rules-admin" },
      h("thead", {}, h("tr", {}, ["#", t("rules.rule"), t("rules.when"), t("rules.runs"), t("rules.last_run"), ""].map((title) => h("th", {}, title)))),
      h("tbody", {}, rules.map((r) => h("tr", { "data-rule": r.id, class: r.enabled ? "" : "disabled" },
        h("td", { class: "muted" }, String(r.position)),
        h("td", {}, h("strong", {}, r.name), h("div", { class: "muted" },
          `${t("rules.conditions", { count: r.conditions.length })} · `
          + r.actions.map((a) => (ACTIONS()[a.type] || [a.type])[0].toLowerCase()).join(", ")),
          // What it could not do the last time it ran (the hub clears it when the rule is saved again).
          r.problem ? h("div", { class: "form-error rule-problem", title: r.problem_at ? fullTime(r.problem_at) : "" },
            icon("alert"), ` ${t("automation.problem", { problem: r.problem })}`) : null),
        h("td", {}, eventLabel(r.event)),
        h("td", { class: "rule-runs" }, String(r.runs)),
        h("td", { title: r.last_run_at ? fullTime(r.last_run_at) : "" }, r.last_run_at ? since(r.last_run_at) : t("rules.never")),
        h("td", { class: "row-actions" },
          h("button", { class: "btn btn-small", "data-edit-rule": r.id, onclick: () => ruleForm(r, body) }, t("common.edit")))))))
      : h("p", { class: "empty-panel muted" }, t("rules.none"))));
  await hoursPanel(body);
  await webhooksPanel(body);
}

function valueInput(kind, value, webhooks) {
  if (kind === "none") return h("span", { class: "muted" }, "");
  if (kind === "queue") return h("select", { class: "rule-value" }, state.queues.map((q) =>
    h("option", { value: q.name, selected: q.name === value }, q.title)));
  // The labels admins defined (Admin → Labels); a rule's older label not among them stays selectable.
  if (kind === "label" && (state.labels || []).length) {
    const known = state.labels.some((l) => l.name === value) || !value ? [] : [{ name: value, title: value }];
    return h("select", { class: "rule-value" }, [...state.labels, ...known].map((l) =>
      h("option", { value: l.name, selected: l.name === value }, l.title)));
  }
  if (kind === "hours") return h("select", { class: "rule-value" }, ["open", "closed"].map((v) =>
    h("option", { value: v, selected: v === value }, v === "open" ? t("rules.open") : t("rules.closed"))));
  if (kind === "status") return h("select", { class: "rule-value" }, ["open", "assigned", "resolved"].map((v) =>
    h("option", { value: v, selected: v === value }, statusName(v))));
  if (kind === "agent") return h("select", { class: "rule-value", "data-number": "1" },
    [...state.agents.values()].map((a) => h("option", { value: a.id, selected: a.id === value }, a.name)));
  if (kind === "webhook") return h("select", { class: "rule-value", "data-number": "1" }, webhooks.map((w) =>
    h("option", { value: w.id, selected: w.id === value }, `#${w.id} ${w.description || w.url}`)));
  if (kind === "number") return h("input", { type: "number", class: "rule-value", "data-number": "1", value: value ?? 0 });
  if (kind === "long") return h("textarea", { class: "rule-value", rows: 2, value: value ?? "" });
  return h("input", { type: "text", class: "rule-value", value: value ?? "" });
}

function readValue(row) {
  const el = row.querySelector(".rule-value");
  if (!el || el.tagName === "SPAN") return undefined;
  return el.dataset.number ? Number(el.value) : el.value;
}

function conditionRow(c, webhooks) {
  const fields = FIELDS();
  const ops = OPS();
  const fieldSel = h("select", { class: "cond-field" }, Object.entries(fields).map(([id, [label]]) =>
    h("option", { value: id, selected: id === c.field }, label)));
  const opSel = h("select", { class: "cond-op" });
  const name = h("input", { type: "text", class: "cond-name", placeholder: t("rules.attribute"), value: c.name || "" });
  const slot = h("span", { class: "cond-slot" });
  const row = h("div", { class: "rule-row condition" }, fieldSel, name, opSel, slot,
    h("button", { class: "icon-btn", type: "button", "aria-label": t("rules.remove_condition"), onclick: () => row.remove() },
      icon("x")));
  const refresh = (keepOp, keepValue) => {
    const [, allowed, kind] = fields[fieldSel.value];
    opSel.replaceChildren(...allowed.map((o) => h("option", { value: o, selected: o === keepOp }, ops[o])));
    name.hidden = !NAMED[fieldSel.value];
    name.placeholder = NAMED[fieldSel.value] ? NAMED[fieldSel.value]() : "";
    const noValue = ["present", "absent"].includes(opSel.value);
    slot.replaceChildren(noValue ? h("span") : valueInput(kind, keepValue, webhooks));
  };
  fieldSel.addEventListener("change", () => refresh(null, null));
  opSel.addEventListener("change", () => refresh(opSel.value, readValue(row)));
  refresh(c.op, c.value);
  return row;
}

function actionRow(a, webhooks) {
  const actions = ACTIONS();
  const typeSel = h("select", { class: "act-type" }, Object.entries(actions).map(([id, [label]]) =>
    h("option", { value: id, selected: id === a.type }, label)));
  const name = h("input", { type: "text", class: "act-name", placeholder: t("rules.attribute"), value: a.name || "" });
  const slot = h("span", { class: "act-slot" });
  const row = h("div", { class: "rule-row action" }, typeSel, name, slot,
    h("button", { class: "icon-btn", type: "button", "aria-label": t("rules.remove_action"), onclick: () => row.remove() },
      icon("x")));
  const refresh = (keep) => {
    name.hidden = typeSel.value !== "set_attribute";
    slot.replaceChildren(valueInput(actions[typeSel.value][1], keep, webhooks));
  };
  typeSel.addEventListener("change", () => refresh(null));
  refresh(a.value);
  return row;
}

async function ruleForm(rule, body) {
  const editing = Boolean(rule);
  const r = rule || { name: "", event: "message.received", enabled: true, conditions: [],
    actions: [{ type: "add_label", value: "" }] };
  const webhooks = (await api.get("/api/v1/webhooks")).items;
  const name = h("input", { type: "text", id: "rule-name", value: r.name, placeholder: t("rules.name_placeholder") });
  const event = h("select", { id: "rule-event" }, EVENTS().map(([id, label]) =>
    h("option", { value: id, selected: id === r.event }, label)));
  const enabled = h("input", { type: "checkbox", id: "rule-enabled", checked: r.enabled });
  const conditions = h("div", { id: "rule-conditions" }, r.conditions.map((c) => conditionRow(c, webhooks)));
  const actions = h("div", { id: "rule-actions" }, r.actions.map((a) => actionRow(a, webhooks)));
  const general = h("div", { class: "form-error", role: "alert", id: "rule-error" });
  const preview = h("div", { id: "rule-dry-run", class: "muted" });
  const collect = () => ({
    name: name.value.trim(), event: event.value, enabled: enabled.checked,
    ...(editing ? { position: r.position } : {}),
    conditions: [...conditions.children].map((row) => {
      const c = { field: row.querySelector(".cond-field").value, op: row.querySelector(".cond-op").value };
      const v = readValue(row);
      if (v !== undefined) c.value = v;
      if (NAMED[c.field]) c.name = row.querySelector(".cond-name").value.trim();
      return c;
    }),
    actions: [...actions.children].map((row) => {
      const a = { type: row.querySelector(".act-type").value };
      const v = readValue(row);
      if (v !== undefined) a.value = v;
      if (a.type === "set_attribute") a.name = row.querySelector(".act-name").value.trim();
      return a;
    }),
  });
  const dryRun = async () => {
    general.textContent = "";
    try {
      const got = await api.post("/api/v1/automation/rules/dry-run", collect());
      preview.replaceChildren(h("strong", {}, t("rules.dry_matched", { count: got.matches.length, examined: got.examined })),
        h("ul", {}, got.matches.slice(0, 10).map((m) => h("li", { class: "dry-match" },
          h("a", { href: `#/c/${m.conversation_id}` }, t("conv.conversation", { id: m.conversation_id })), " ",
          m.text ? `“${m.text.slice(0, 80)}”` : "", " ", since(m.at)))));
    } catch (err) {
      general.textContent = errorText(err);
    }
  };
  const content = h("div", { class: "rule-editor" },
    h("label", { class: "field" }, h("span", {}, t("labels.name")), name),
    h("label", { class: "field" }, h("span", {}, t("rules.when")), event),
    h("div", { class: "field" }, h("span", {}, t("rules.if_all")), conditions,
      h("button", { class: "btn btn-small", type: "button", id: "add-condition",
        onclick: () => conditions.append(conditionRow({ field: "text", op: "contains", value: "" }, webhooks)) },
      t("rules.add_condition"))),
    h("div", { class: "field" }, h("span", {}, t("rules.then")), actions,
      h("button", { class: "btn btn-small", type: "button", id: "add-action",
        onclick: () => actions.append(actionRow({ type: "add_label", value: "" }, webhooks)) }, t("rules.add_action"))),
    h("label", { class: "check" }, enabled, t("rules.enabled")),
    h("div", {}, h("button", { class: "btn", type: "button", id: "rule-dry-run-btn", onclick: dryRun }, t("rules.dry_run")),
      preview),
    general,
    editing ? h("div", { class: "danger-zone" }, h("span", { class: "muted" }, t("rules.ran", { count: r.runs })),
      h("button", { class: "btn btn-danger", type: "button", id: "rule-delete", onclick: async () => {
        try {
          await api.del(`/api/v1/automation/rules/${r.id}`);
        } catch (err) {
          general.textContent = errorText(err);
          return;
        }
        dlg.close();
        toast(t("rules.deleted", { name: r.name }), "ok");
        automationScreen(body);
      } }, t("rules.delete"))) : null);
  const dlg = modal(editing ? t("rules.edit", { name: r.name }) : t("rules.new"), content, editing ? t("rules.save") : t("rules.create"),
    async () => {
      try {
        if (editing) await api.put(`/api/v1/automation/rules/${r.id}`, collect());
        else await api.post("/api/v1/automation/rules", collect());
      } catch (err) {
        general.textContent = errorText(err);
        return false;
      }
      toast(editing ? t("rules.saved") : t("rules.created"), "ok");
      automationScreen(body);
      return true;
    });
  dlg.classList.add("wide");
}

// -- business hours ------------------------------------------------------------------------------------------------

// Monday to Sunday in the console's language (1 January 2024 was a Monday).
const DAYS = () => ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].map((id, i) => {
  const name = formatDate(new Date(2024, 0, 1 + i), { weekday: "long" });
  return [id, name.charAt(0).toUpperCase() + name.slice(1)];
});

async function hoursPanel(body) {
  const items = (await api.get("/api/v1/business-hours")).items;
  const names = ["default", ...state.queues.map((q) => q.name)];
  body.append(h("section", { class: "panel", id: "hours-panel" },
    h("div", { class: "panel-head" },
      h("div", {}, h("h2", {}, icon("clock"), t("rules.f_hours")),
        h("p", { class: "muted" }, t("hours.explain")))),
    h("table", { class: "admin-table", id: "hours-admin" },
      h("thead", {}, h("tr", {}, [t("hours.for"), t("hours.hours"), t("hours.now"), ""].map((title) => h("th", {}, title)))),
      h("tbody", {}, names.map((n) => {
        const hrs = items[n];
        return h("tr", { "data-hours": n },
          h("td", {}, h("strong", {}, n === "default" ? t("hours.default") : (state.queues.find((q) => q.name === n) || {}).title || n)),
          h("td", { class: "muted" }, hrs ? `${hrs.timezone} · ${t("hours.days_a_week", { count: Object.keys(hrs.weekly).length })}`
            + (hrs.holidays.length ? ` · ${t("hours.holidays_n", { count: hrs.holidays.length })}` : "") : t("hours.not_set")),
          h("td", {}, hrs ? h("span", { class: `pill ${hrs.open ? "status-resolved" : "status-disabled"}` },
            hrs.open ? t("hours.open") : t("hours.closed")) : h("span", { class: "muted" }, n === "default" ? t("hours.always_open") : t("hours.default_lower"))),
          h("td", { class: "row-actions" },
            h("button", { class: "btn btn-small", "data-edit-hours": n, onclick: () => hoursForm(n, hrs, body) }, t("common.edit"))));
      })))));
}

function hoursForm(name, hrs, body) {
  const current = hrs || { timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC", weekly: {},
    holidays: [], auto_reply: "" };
  const zone = h("input", { type: "text", id: "hours-timezone", value: current.timezone });
  const days = DAYS().map(([id, label]) => h("label", { class: "field" }, h("span", {}, label),
    h("input", { type: "text", "data-day": id, value: (current.weekly[id] || []).join(", "),
      placeholder: t("hours.day_placeholder") })));
  const holidays = h("input", { type: "text", id: "hours-holidays", value: current.holidays.join(", "),
    placeholder: "2026-12-25, 2027-01-01" });
  const reply = h("textarea", { id: "hours-auto-reply", rows: 2, value: current.auto_reply,
    placeholder: t("hours.reply_placeholder") });
  const general = h("div", { class: "form-error", role: "alert", id: "hours-error" });
  const split = (v) => v.split(",").map((x) => x.trim()).filter(Boolean);
  const content = h("div", { class: "form-grid" }, h("label", { class: "field" }, h("span", {}, t("hours.timezone")), zone),
    ...days, h("label", { class: "field" }, h("span", {}, t("hours.holidays")), holidays),
    h("label", { class: "field span-2" }, h("span", {}, t("hours.reply")), reply), general,
    hrs ? h("div", { class: "danger-zone span-2" }, h("span", { class: "muted" }, t("hours.remove_explain")),
      h("button", { class: "btn btn-danger", type: "button", id: "hours-delete", onclick: async () => {
        await api.del(`/api/v1/business-hours/${name}`);
        dlg.close();
        automationScreen(body);
      } }, t("hours.remove"))) : null);
  const dlg = modal(t("hours.title", { name }), content, t("hours.save"), async () => {
    const weekly = {};
    for (const input of content.querySelectorAll("[data-day]")) {
      const intervals = split(input.value);
      if (intervals.length) weekly[input.dataset.day] = intervals;
    }
    try {
      await api.put(`/api/v1/business-hours/${name}`, { timezone: zone.value.trim(), weekly,
        holidays: split(holidays.value), auto_reply: reply.value });
    } catch (err) {
      general.textContent = errorText(err);
      return false;
    }
    toast(t("hours.saved"), "ok");
    automationScreen(body);
    return true;
  });
  dlg.classList.add("wide");
}

// -- webhooks ------------------------------------------------------------------------------------------------------

async function webhooksPanel(body) {
  const subs = (await api.get("/api/v1/webhooks")).items;
  body.append(h("section", { class: "panel", id: "webhooks-panel" },
    h("div", { class: "panel-head" },
      h("div", {}, h("h2", {}, icon("api"), t("webhooks.title")),
        h("p", { class: "muted" }, t("webhooks.explain"))),
      h("button", { class: "btn btn-primary", id: "add-webhook", onclick: () => webhookForm(body) }, t("webhooks.add"))),
    subs.length ? h("table", { class: "admin-table", id: "webhooks-admin" },
      h("thead", {}, h("tr", {}, ["URL", t("webhooks.events"), t("views.status"), ""].map((title) => h("th", {}, title)))),
      h("tbody", {}, subs.map((s) => h("tr", { "data-webhook": s.id, class: s.enabled ? "" : "disabled" },
        h("td", {}, h("strong", { class: "mono" }, s.url), h("div", { class: "muted" }, s.description)),
        h("td", {}, s.events.map((e) => h("span", { class: "chip" }, e))),
        h("td", {}, s.enabled ? h("span", { class: "pill status-resolved" }, t("webhooks.active"))
          : h("span", { class: "pill status-disabled", title: s.disabled_reason || "" },
            s.disabled_reason ? t("webhooks.disabled_by_hub") : t("webhooks.disabled"))),
        h("td", { class: "row-actions" },
          h("button", { class: "btn btn-small", "data-deliveries": s.id, onclick: () => deliveryLog(s, body) },
            t("webhooks.deliveries")))))))
      : h("p", { class: "empty-panel muted" }, t("webhooks.none"))));
}

function webhookForm(body) {
  const url = h("input", { type: "url", id: "webhook-url", placeholder: "https://crm.example.com/hub-events" });
  const events = h("div", { class: "checks", id: "webhook-events" }, EVENTS().map(([id, label]) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", value: id }), label)));
  const description = h("input", { type: "text", id: "webhook-description", placeholder: t("webhooks.what_for") });
  const general = h("div", { class: "form-error", role: "alert", id: "webhook-error" });
  const content = h("div", {}, h("label", { class: "field" }, h("span", {}, "URL"), url),
    h("div", { class: "field" }, h("span", {}, t("webhooks.events")), events),
    h("label", { class: "field" }, h("span", {}, t("webhooks.description")), description), general);
  modal(t("webhooks.add"), content, t("webhooks.add"), async () => {
    let made;
    try {
      made = await api.post("/api/v1/webhooks", { url: url.value.trim(), description: description.value.trim(),
        events: [...events.querySelectorAll("input:checked")].map((i) => i.value) });
    } catch (err) {
      general.textContent = errorText(err);
      return false;
    }
    automationScreen(body);
    modal(t("webhooks.secret"), h("div", {},
      h("p", {}, t("webhooks.secret_explain")),
      h("input", { type: "text", id: "webhook-secret", class: "mono", readonly: true, value: made.secret })),
    t("webhooks.done"), async () => true, { cancel: false });
    return true;
  });
}

async function deliveryLog(sub, body) {
  const list = h("tbody");
  const load = async () => {
    const items = (await api.get(`/api/v1/webhooks/${sub.id}/deliveries`)).items;
    list.replaceChildren(...items.map((d) => h("tr", { "data-delivery": d.id },
      h("td", { class: "mono" }, `#${d.id}`), h("td", {}, d.event_type),
      h("td", {}, h("span", { class: `pill delivery-${d.status}` }, d.status)),
      h("td", {}, d.response_status ? String(d.response_status) : "—", " ",
        h("span", { class: "muted" }, d.last_error || "")),
      h("td", {}, String(d.attempts)),
      h("td", { class: "row-actions" }, h("button", { class: "btn btn-small", type: "button", "data-resend": d.id,
        onclick: async () => {
          await api.post(`/api/v1/webhooks/${sub.id}/deliveries/${d.id}/resend`);
          toast(t("webhooks.requeued", { id: d.id }), "ok");
          load();
        } }, t("webhooks.resend"))))));
  };
  await load();
  const enable = sub.enabled ? null : h("button", { class: "btn", type: "button", id: "webhook-enable", onclick: async () => {
    await api.patch(`/api/v1/webhooks/${sub.id}`, { enabled: true });
    toast(t("webhooks.enabled"), "ok");
    automationScreen(body);
  } }, t("webhooks.enable_again"));
  const dlg = modal(t("webhooks.deliveries_to", { url: sub.url }), h("div", {},
    sub.disabled_reason ? h("div", { class: "notice bad" }, icon("alert"), sub.disabled_reason, " ", enable) : enable,
    h("table", { class: "admin-table", id: "deliveries-admin" },
      h("thead", {}, h("tr", {}, [t("webhooks.delivery"), t("webhooks.event"), t("views.status"), t("webhooks.response"), t("webhooks.attempts"), ""].map((title) => h("th", {}, title)))),
      list)), t("common.close"), async () => true, { cancel: false });
  dlg.classList.add("wide");
}
