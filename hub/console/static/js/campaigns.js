// Campaigns (admins and supervisors): one message to a saved segment or a list of identities on one channel. A new
// campaign is previewed (the first recipients' texts, who is skipped and why) and can be sent to yourself first;
// each campaign shows its progress and results, its recipients, and can be cancelled. docs/automation.md.
import { h, icon, clear, channelLabel, ago } from "./dom.js";
import { api } from "./api.js";
import { state, toast } from "./state.js";
import { t, formatNumber, formatDateTime } from "./i18n.js";

const CHANNELS = ["sms", "whatsapp", "email", "telegram"];
// Functions, not constants: the words follow the language chosen when they are drawn.
const RESULTS = () => [["recipients", t("campaigns.result.recipients")], ["pending", t("campaigns.result.pending")],
  ["queued", t("campaigns.result.queued")], ["sent", t("campaigns.result.sent")],
  ["delivered", t("campaigns.result.delivered")], ["failed", t("campaigns.result.failed")],
  ["replied", t("campaigns.result.replied")], ["opted_out", t("campaigns.result.opted_out")],
  ["skipped", t("campaigns.result.skipped")], ["cancelled", t("campaigns.result.cancelled")]];
const STATUS_TITLES = () => ({ scheduled: t("campaigns.status.scheduled"), running: t("campaigns.status.running"),
  done: t("campaigns.status.done"), cancelled: t("campaigns.status.cancelled") });
const result = (k) => RESULTS().find(([key]) => key === k)[1];
// WhatsApp's approval statuses of a template (Twilio's Content API); another one is shown as it comes.
const APPROVALS = () => ({ approved: t("campaigns.approval.approved"), pending: t("campaigns.approval.pending"),
  received: t("campaigns.approval.pending"), rejected: t("campaigns.approval.rejected"),
  paused: t("campaigns.approval.paused"), disabled: t("campaigns.approval.disabled"),
  unsubmitted: t("campaigns.approval.unsubmitted") });
let refresher = null;
// The account's WhatsApp templates, read once per visit of the page (null: not read yet).
let templates = null;

function value(id) {
  const el = document.getElementById(id);
  return el ? el.value.trim() : "";
}

// The template picked for a WhatsApp campaign, or null (a free-form text).
function chosenTemplate() {
  if (value("cmp-channel") !== "whatsapp" || !value("cmp-template")) return null;
  return (templates || []).find((x) => x.sid === value("cmp-template")) || null;
}

// The form as the API's body; a list is sent as CSV text (the first column of each line). With a template its
// variables are sent, not a text: the template's body is the text.
function body() {
  const b = { name: value("cmp-name"), channel: value("cmp-channel"), text: document.getElementById("cmp-text").value };
  const tpl = chosenTemplate();
  if (tpl) {
    delete b.text;
    b.template = { sid: tpl.sid, variables: Object.fromEntries(tpl.slots.map((n) => [n, value(`cmp-var-${n}`)])) };
  }
  if (value("cmp-audience") === "list") b.csv = document.getElementById("cmp-list").value;
  else b.segment_id = Number(value("cmp-segment")) || undefined;
  if (b.channel === "email" && value("cmp-subject")) b.subject = value("cmp-subject");
  if (value("cmp-rate")) b.rate_per_minute = Number(value("cmp-rate"));
  if (value("cmp-when")) b.scheduled_at = new Date(value("cmp-when")).toISOString();
  return b;
}

function previewBox(r) {
  return h("div", { class: "campaign-preview", id: "campaign-preview" },
    h("p", {}, h("strong", {}, t("campaigns.preview_count", { sending: r.sending, total: r.total })),
      t("campaigns.will_get"), r.skipped ? t("campaigns.skipped_count", { count: r.skipped }) : ""),
    h("ol", { class: "campaign-samples" }, r.recipients.map((x) => h("li", {},
      h("span", { class: "muted" }, x.name || x.identity), h("p", { class: "campaign-text" }, x.text)))),
    r.skipped_sample.length ? h("details", {}, h("summary", {}, t("campaigns.who_skipped")),
      h("ul", { id: "campaign-skipped" }, r.skipped_sample.map((x) => h("li", {},
        h("span", {}, x.name || x.identity), " — ", h("span", { class: "muted" }, x.reason))))) : null);
}

function form(segments, onCreated) {
  const out = h("div", { class: "campaign-out", "aria-live": "polite" });
  const fail = (err) => clear(out).append(h("div", { class: "form-error", role: "alert" }, err.message));
  // Every campaign channel, the hub's own first: a preview works on any; creating one needs it set up.
  const ready = (c) => state.channels.some((x) => x.name === c);
  const channels = [...CHANNELS.filter(ready), ...CHANNELS.filter((c) => !ready(c))];
  const listBox = h("label", { class: "wide", id: "cmp-list-box" }, t("campaigns.identities"),
    h("textarea", { id: "cmp-list", rows: 4, placeholder: "phone:+14155550100\nemail:ann@example.com" }));
  const segmentBox = h("label", { id: "cmp-segment-box" }, t("campaigns.segment"), h("select", { id: "cmp-segment" },
    segments.map((s) => h("option", { value: s.id }, s.name))));
  const subjectBox = h("label", { id: "cmp-subject-box" }, t("campaigns.subject"), h("input", { id: "cmp-subject", maxlength: 200 }));
  const templateSelect = h("select", { id: "cmp-template", onchange: () => shape() });
  const templateBox = h("label", { id: "cmp-template-box" }, t("campaigns.template"), templateSelect);
  const templateFields = h("div", { class: "campaign-template wide", id: "cmp-template-fields" });
  const textBox = h("label", { class: "wide", id: "cmp-text-box" }, t("campaigns.message"), h("textarea", { id: "cmp-text", rows: 3, required: true, maxlength: 4000,
    placeholder: t("campaigns.message_placeholder") }));
  // The picker lists every template with its approval status; only an approved one can be chosen.
  const fillTemplates = async () => {
    if (templates === null) {
      templateSelect.replaceChildren(h("option", { value: "" }, t("campaigns.templates_loading")));
      try {
        templates = (await api.get("/api/v1/campaigns/templates")).items;
      } catch (err) {
        templates = [];
        templateFields.replaceChildren(h("p", { class: "form-error", role: "alert" }, t("campaigns.templates_failed", { reason: err.message })));
      }
    }
    templateSelect.replaceChildren(h("option", { value: "" }, t("campaigns.free_form")),
      ...templates.map((x) => h("option", { value: x.sid, disabled: !x.sendable },
        t("campaigns.template_option", { name: x.name, language: x.language || "—", approval: APPROVALS()[x.approval] || x.approval }))));
  };
  const drawTemplate = () => {
    const tpl = chosenTemplate();
    const text = document.getElementById("cmp-text");
    textBox.style.display = tpl ? "none" : "";
    if (text) text.required = !tpl;
    if (!tpl) {
      if (!templateFields.querySelector(".form-error")) clear(templateFields);
      return;
    }
    clear(templateFields).append(
      h("p", { class: "muted" }, t("campaigns.template_help")),
      h("p", { class: "campaign-text", id: "cmp-template-body" }, tpl.body),
      ...tpl.slots.map((n) => h("label", {}, `${t("campaigns.template_variable")} {{${n}}}`,
        h("input", { id: `cmp-var-${n}`, maxlength: 500, placeholder: tpl.variables[n] || "" }))));
  };
  const shape = () => {
    const list = value("cmp-audience") === "list";
    const whatsapp = value("cmp-channel") === "whatsapp";
    // style, not the hidden attribute: the form's labels are display: grid, which wins over [hidden]
    listBox.style.display = list ? "" : "none";
    segmentBox.style.display = list ? "none" : "";
    subjectBox.style.display = value("cmp-channel") === "email" ? "" : "none";
    templateBox.style.display = whatsapp ? "" : "none";
    templateFields.style.display = whatsapp ? "" : "none";
    if (whatsapp && templates === null) fillTemplates().then(drawTemplate);
    else drawTemplate();
  };
  const file = h("input", { type: "file", id: "cmp-file", accept: ".csv,text/csv,text/plain", onchange: async (e) => {
    const f = e.target.files[0];
    if (f) document.getElementById("cmp-list").value = await f.text();
  } });
  const preview = async () => {
    try {
      const b = body();
      // A name is not needed to see what would be sent.
      clear(out).append(previewBox(await api.post("/api/v1/campaigns/preview", { ...b, name: b.name || "Preview" })));
    } catch (err) {
      fail(err);
    }
  };
  const test = async () => {
    const b = body();
    // A template's test is the template itself (ContentSid and ContentVariables), with your values.
    const to = value("cmp-test-to");
    try {
      const r = await api.post("/api/v1/campaigns/test", { channel: b.channel, text: b.template ? undefined : b.text,
        template: b.template, subject: b.subject, to: to || undefined });
      toast(t("campaigns.test_sent", { to: r.message.identity }));
    } catch (err) {
      fail(err);
    }
  };
  const create = async (e) => {
    e.preventDefault();
    try {
      const c = await api.post("/api/v1/campaigns", body());
      toast(c.status === "scheduled" && new Date(c.scheduled_at) > new Date()
        ? t("campaigns.created_scheduled", { name: c.name }) : t("campaigns.created_started", { name: c.name }));
      onCreated(c.id);
    } catch (err) {
      fail(err);
    }
  };
  const f = h("form", { class: "segment-form campaign-form", id: "campaign-form", onsubmit: create },
    h("label", {}, t("campaigns.name"), h("input", { id: "cmp-name", required: true, maxlength: 120, placeholder: t("campaigns.name_placeholder") })),
    h("label", {}, t("campaigns.channel"), h("select", { id: "cmp-channel", onchange: shape },
      channels.map((c) => h("option", { value: c }, ready(c) ? channelLabel(c) : t("campaigns.not_set_up", { channel: channelLabel(c) }))))),
    h("label", {}, t("campaigns.audience"), h("select", { id: "cmp-audience", onchange: shape },
      h("option", { value: segments.length ? "segment" : "list" }, segments.length ? t("campaigns.a_segment") : t("campaigns.a_list")),
      segments.length ? h("option", { value: "list" }, t("campaigns.a_list")) : null)),
    segmentBox, listBox, h("label", {}, t("campaigns.csv_file"), file), subjectBox, templateBox, templateFields,
    textBox,
    h("label", {}, t("campaigns.per_minute"), h("input", { type: "number", id: "cmp-rate", min: 1, placeholder: t("campaigns.default") })),
    h("label", {}, t("campaigns.start_at"), h("input", { type: "datetime-local", id: "cmp-when" })),
    h("label", {}, t("campaigns.test_to"), h("input", { id: "cmp-test-to", maxlength: 330, placeholder: t("campaigns.your_own") })),
    h("div", { class: "campaign-buttons" },
      h("button", { type: "button", class: "btn btn-small", id: "campaign-preview-btn", onclick: preview }, t("campaigns.preview")),
      h("button", { type: "button", class: "btn btn-small", id: "campaign-test", onclick: test }, t("campaigns.send_test")),
      h("button", { type: "submit", class: "btn btn-small btn-primary", id: "campaign-create" }, t("campaigns.create"))));
  return h("section", { class: "panel", id: "campaign-new" }, h("h2", {}, t("campaigns.new")),
    h("p", { class: "muted" }, t("campaigns.variables_help")),
    f, out);
}

// shape() reads the form's own fields, so it runs once the form is in the page.
function shaped(panel) {
  panel.querySelector("#cmp-audience").dispatchEvent(new Event("change"));
  return panel;
}

function results(c) {
  return h("dl", { class: "campaign-results", "data-campaign": c.id }, RESULTS().filter(([k]) => k !== "cancelled" || c.results.cancelled)
    .map(([k, title]) => h("div", { "data-result": k }, h("dt", {}, title), h("dd", {}, formatNumber(c.results[k])))));
}

async function detail(box, id, reload) {
  let c, page;
  try {
    [c, page] = await Promise.all([api.get(`/api/v1/campaigns/${id}`), api.get(`/api/v1/campaigns/${id}/recipients?limit=50`)]);
  } catch (err) {
    clear(box).append(h("div", { class: "notice" }, icon("alert"), err.message));
    return;
  }
  const cancel = async () => {
    try {
      await api.post(`/api/v1/campaigns/${id}/cancel`);
      toast(t("campaigns.cancelled_toast", { name: c.name }));
      reload(id);
    } catch (err) {
      toast(err.message, "error");
    }
  };
  clear(box).append(h("section", { class: "panel", id: "campaign-detail", "data-campaign": id },
    h("header", { class: "panel-head" },
      h("div", {}, h("h2", {}, c.name), h("p", { class: "muted" },
        t("campaigns.detail_line", { channel: channelLabel(c.channel), status: STATUS_TITLES()[c.status] || c.status,
          rate: c.rate_per_minute }),
        c.started_at ? t("campaigns.started", { when: ago(c.started_at) })
          : t("campaigns.starts", { when: formatDateTime(new Date(c.scheduled_at)) }))),
      ["scheduled", "running"].includes(c.status)
        ? h("button", { class: "btn btn-small btn-danger", id: "campaign-cancel", onclick: cancel }, t("campaigns.cancel")) : null),
    h("p", { class: "campaign-text" }, c.text),
    results(c),
    h("table", { class: "report-table", id: "campaign-recipients" },
      h("thead", {}, h("tr", {}, [t("campaigns.col.recipient"), t("campaigns.col.identity"), t("campaigns.col.outcome"),
        t("campaigns.col.why")].map((title) => h("th", {}, title)))),
      h("tbody", {}, page.items.length ? page.items.map((r) => h("tr", { "data-position": r.position },
        h("td", {}, r.name || "—"), h("td", {}, r.identity),
        h("td", { "data-outcome": r.outcome }, result(r.outcome)),
        h("td", { class: "muted" }, r.reason || "")))
        : h("tr", {}, h("td", { colspan: 4, class: "muted" }, t("campaigns.listed_once")))))));
}

export async function showCampaigns(main, side, openId = null) {
  clearTimeout(refresher);
  templates = null;
  clear(side);
  side.classList.add("hidden");
  clear(main).append(h("div", { class: "loading" }, t("campaigns.loading")));
  let list, segments;
  try {
    [list, segments] = await Promise.all([api.get("/api/v1/campaigns"), api.get("/api/v1/segments")]);
  } catch (err) {
    clear(main).append(h("div", { class: "notice" }, icon("alert"), err.message));
    return;
  }
  const box = h("div", { class: "campaign-box" });
  const reload = (id) => showCampaigns(main, side, id);
  clear(main).append(h("div", { class: "reports campaigns", id: "campaigns" },
    h("header", { class: "wall-head" }, h("div", {}, h("h1", {}, t("nav.campaigns")),
      h("p", { class: "muted" }, t("campaigns.subtitle")))),
    h("section", { class: "panel" },
      h("table", { class: "report-table", id: "campaign-list" },
        h("thead", {}, h("tr", {}, [t("campaigns.col.campaign"), t("campaigns.channel"), t("campaigns.col.status"), result("recipients"),
          result("sent"), result("delivered"), result("failed"), result("replied"), result("opted_out"), ""]
          .map((title) => h("th", {}, title)))),
        h("tbody", {}, list.items.length ? list.items.map((c) => h("tr", { "data-campaign": c.id },
          h("td", {}, c.name), h("td", {}, channelLabel(c.channel)), h("td", {}, STATUS_TITLES()[c.status] || c.status),
          ["recipients", "sent", "delivered", "failed", "replied", "opted_out"].map((k) => h("td", {}, formatNumber(c.results[k]))),
          h("td", {}, h("button", { class: "btn btn-small", "aria-label": t("campaigns.open_named", { name: c.name }), onclick: () => detail(box, c.id, reload) }, t("campaigns.open")))))
          : h("tr", {}, h("td", { colspan: 10, class: "muted" }, t("campaigns.none")))))),
    box, form(segments.items, reload)));
  shaped(main.querySelector("#campaign-new"));
  if (openId) await detail(box, openId, reload);
  // Progress moves while a campaign sends: refreshed quietly every few seconds while this page is shown.
  // (and for ten minutes after one ends, while delivery receipts and replies still come in).
  const recent = (c) => c.finished_at && Date.now() - new Date(c.finished_at).getTime() < 600_000;
  if (list.items.some((c) => ["scheduled", "running"].includes(c.status) || recent(c))) {
    refresher = setTimeout(() => {
      const opened = box.querySelector("#campaign-detail");
      if (location.hash === "#/campaigns" && !main.querySelector("#campaign-form :focus") && !value("cmp-name")) {
        showCampaigns(main, side, opened ? Number(opened.dataset.campaign) : null);
      }
    }, 5000);
  }
}
