"""WhatsApp campaigns with approved templates (Twilio's Content API), on SQLite and PostgreSQL: the account's
templates listed with their approval status through the official client pointed at the Twilio simulator, an
unapproved one refused with the reason, each recipient's values rendered into the preview and sent as ContentSid
and ContentVariables."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from hub.config import Settings
from hub.keys import DB
from hub.model import format_time, utcnow
from tests.api.client import Api, person, start_api
from tests.channels.twilio.fake import BIZ, Scripted, TwilioFake, make_hub_settings, new_sid, sample, webhook
from tests.waiting import eventually

C = "/api/v1/campaigns"
ANN, BOB, CARA, DAN = "+14155550131", "+14155550132", "+14155550133", "+14155550134"
BODY = "Hi {{1}}, your {{2}} plan renews on {{3}}."
VARIABLES = {"1": '{{first_name | fallback: "there"}}', "2": "{{attributes.plan}}", "3": "1 January"}


@pytest.fixture
def start(aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str],
          db_url: str) -> Callable[..., Any]:
    async def go() -> Api:
        return await start_api(aiohttp_client, make_hub_settings(
            make_settings, db_url, fake[1], campaigns__poll_interval_seconds="0.2",
            channels__twilio__whatsapp_from=BIZ))

    return go


async def customers(api: Api) -> None:
    """Ann (plan gold) and Bob (plan free) wrote on WhatsApp long ago; Cara has no plan."""
    for phone, name, plan in ((ANN, "Ann Lee", "gold"), (BOB, "Bob Stone", "free"), (CARA, "Cara Diaz", None)):
        await api.call("POST", "/api/v1/inbound", "/api/v1/inbound",
                       {"identity": f"phone:{phone}", "text": "hello", "name": name}, expect=201)
        if plan:
            await api.client.app[DB].write(lambda tx, p=phone, v=plan: tx.exec(  # type: ignore[misc]
                "INSERT INTO customer_attributes (customer_id, name, value, updated_at) SELECT customer_id, 'plan', "
                "?, '2026-01-01T00:00:00.000000Z' FROM identities WHERE value = ?", (v, p)))


def campaign(sid: str, variables: dict[str, str] | None = None, **more: Any) -> dict[str, Any]:
    return {"name": "Renewal", "channel": "whatsapp", "identities": [f"phone:{p}" for p in (ANN, BOB, CARA)],
            "template": {"sid": sid, "variables": VARIABLES if variables is None else variables}, **more}


async def test_an_approved_template_is_listed_previewed_and_sent_with_each_recipients_values(
    start: Callable[..., Any], fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    sid = sim.add_template("renewal_reminder", BODY, {"1": "Sam", "2": "basic", "3": "1 May"})
    pending = sim.add_template("spring_sale", "Spring sale, {{1}}!", {"1": "Sam"}, status="pending")
    api = await start()
    await customers(api)

    listed = (await api.call("GET", f"{C}/templates", f"{C}/templates"))["items"]
    by_sid = {t["sid"]: t for t in listed}
    assert by_sid[sid]["body"] == BODY and by_sid[sid]["slots"] == ["1", "2", "3"]
    assert (by_sid[sid]["approval"], by_sid[sid]["sendable"]) == ("approved", True)
    assert (by_sid[pending]["approval"], by_sid[pending]["sendable"]) == ("pending", False)
    assert [name for name, _ in sim.requests if name in ("Content", "ApprovalRequests")].count("ApprovalRequests") == 2

    shown = await api.call("POST", f"{C}/preview", f"{C}/preview", campaign(sid))
    assert [(r["identity"], r["text"]) for r in shown["recipients"]] == [
        (f"phone:{ANN}", "Hi Ann, your gold plan renews on 1 January."),
        (f"phone:{BOB}", "Hi Bob, your free plan renews on 1 January.")]
    assert [s["reason"] for s in shown["skipped_sample"]] == ["no value for {{attributes.plan}} and no fallback"]

    made = await api.call("POST", C, C, campaign(sid), expect=201)
    assert made["template"] == {"sid": sid, "name": "renewal_reminder", "variables": VARIABLES}
    assert made["text"] == 'Hi {{first_name | fallback: "there"}}, your {{attributes.plan}} plan renews on 1 January.'

    async def two() -> list[Any] | None:
        got = sim.sent()
        return got if len(got) >= 2 else None

    forms = await eventually(two, what="the two template messages")
    sent = sorted((f["To"], f["From"], f["ContentSid"], json.loads(f["ContentVariables"]), f.get("Body"))
                  for f in forms)
    assert sent == [
        (f"whatsapp:{ANN}", f"whatsapp:{BIZ}", sid, {"1": "Ann", "2": "gold", "3": "1 January"}, None),
        (f"whatsapp:{BOB}", f"whatsapp:{BIZ}", sid, {"1": "Bob", "2": "free", "3": "1 January"}, None)]
    # Twilio sent the template's text with the values; the timeline shows that same text.
    assert sorted(m["body"] for m in sim.messages.values()) == [
        "Hi Ann, your gold plan renews on 1 January.", "Hi Bob, your free plan renews on 1 January."]
    rows = await api.client.app[DB].read(lambda tx: tx.all(
        "SELECT text FROM messages WHERE direction = 'out' ORDER BY text"))
    assert [r["text"] for r in rows] == ["Hi Ann, your gold plan renews on 1 January.",
                                         "Hi Bob, your free plan renews on 1 January."]

    async def done() -> dict[str, Any] | None:
        got = await api.call("GET", f"{C}/{{id}}", f"{C}/{made['id']}")
        return got if got["status"] == "done" else None


    await eventually(done, what="the campaign done")
    page = await api.call("GET", f"{C}/{{id}}/recipients", f"{C}/{made['id']}/recipients")
    assert [(r["outcome"], r["reason"]) for r in page["items"]] == [
        ("sent", None), ("sent", None), ("skipped", "no value for {{attributes.plan}} and no fallback")]


@pytest.mark.parametrize(("status", "variables", "reason"), [
    ("pending", None, "is not approved for WhatsApp (its status is pending)"),
    ("rejected", None, "its status is rejected: INVALID_FORMAT"),
    ("approved", {"1": "{{first_name}}", "2": "x"}, "give a value for template variable {{3}} (its sample: '1 May')"),
    ("approved", {**VARIABLES, "4": "x"}, "has no variable {{4}}"),
    ("approved", {**VARIABLES, "1": "{{nickname}}"}, "template variable {{1}}: unknown variable {{nickname}}"),
])
async def test_a_template_that_cannot_be_sent_is_refused_with_the_reason(
    start: Callable[..., Any], fake: tuple[TwilioFake, str], status: str, variables: dict[str, str] | None,
    reason: str
) -> None:
    sid = fake[0].add_template("renewal_reminder", BODY, {"1": "Sam", "2": "basic", "3": "1 May"}, status=status,
                               rejection_reason="INVALID_FORMAT" if status == "rejected" else "")
    api = await start()
    for path in (f"{C}/preview", C):
        bad = await api.call("POST", path, path, campaign(sid, variables), expect=422)
        assert reason in str(bad["error"]), bad
    assert fake[0].sent() == [] and (await api.call("GET", C, C))["items"] == []


@pytest.mark.parametrize(("body", "status", "reason"), [
    ({"template": {"sid": "HX" + "0" * 32, "variables": {}}}, 422, "Twilio error 20404"),
    ({"channel": "sms"}, 422, "a template is sent on whatsapp only"),
    ({"text": "hello"}, 422, "leave text out with a template"),
    ({"template": {"sid": "not-a-sid", "variables": {}}}, 422, "template"),
])
async def test_bad_template_campaigns_get_reasons(
    start: Callable[..., Any], fake: tuple[TwilioFake, str], body: dict[str, Any], status: int, reason: str
) -> None:
    api = await start()
    full = {**campaign(fake[0].add_template("renewal_reminder", BODY, {})), **body}
    bad = await api.call("POST", C, C, full, expect=status)
    assert reason in str(bad["error"]), bad


async def test_twilio_unreachable_is_a_502_with_the_reason(start: Callable[..., Any],
                                                           fake: tuple[TwilioFake, str]) -> None:
    sim = fake[0]
    sid = sim.add_template("renewal_reminder", BODY, {})
    api = await start()
    sim.script["Content"] = [Scripted(503)] * 10
    bad = await api.call("GET", f"{C}/templates", f"{C}/templates", expect=502)
    assert "Twilio error" in str(bad["error"]), bad
    bad = await api.call("POST", C, C, campaign(sid), expect=502)
    assert "Twilio error" in str(bad["error"]), bad


async def test_a_free_form_whatsapp_message_outside_the_24_hour_window_is_refused_with_the_reason(
    start: Callable[..., Any], fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    api = await start()
    await customers(api)  # they wrote through the API, never on WhatsApp
    # Bob writes on WhatsApp now: his window is open.
    sid = new_sid("SM")
    status, _, _ = await webhook(api.client, "/webhooks/twilio/sms", sample(
        "whatsapp_inbound", From=f"whatsapp:{BOB}", WaId=BOB.removeprefix("+"), MessageSid=sid, SmsSid=sid,
        SmsMessageSid=sid))
    assert status == 200
    # Dan last wrote on WhatsApp 25 hours ago: his window has closed.
    await api.call("POST", "/api/v1/inbound", "/api/v1/inbound",
                   {"identity": f"phone:{DAN}", "text": "hello", "name": "Dan Ray"}, expect=201)
    await api.client.app[DB].write(lambda tx: tx.exec(
        "UPDATE messages SET channel = 'whatsapp', created_at = ? WHERE customer_id = (SELECT customer_id FROM "
        "identities WHERE value = ?)", (format_time(utcnow() - timedelta(hours=25)), DAN)))

    made = await api.call("POST", C, C, {"name": "Free", "channel": "whatsapp", "text": "Hi {{first_name}}",
                                         "identities": [f"phone:{p}" for p in (ANN, BOB, DAN)]}, expect=201)

    async def done() -> dict[str, Any] | None:
        got = await api.call("GET", f"{C}/{{id}}", f"{C}/{made['id']}")
        return got if got["status"] == "done" else None

    await eventually(done, what="the campaign done")
    page = await api.call("GET", f"{C}/{{id}}/recipients", f"{C}/{made['id']}/recipients")
    outcomes = [(r["outcome"], r["reason"]) for r in page["items"]]
    assert outcomes[0] == ("skipped", "outside whatsapp's 24-hour window: the customer never wrote on whatsapp; only "
                                      "an approved template can be sent now (Send a template in the console, or a "
                                      "campaign with a template, docs/automation.md)")
    assert outcomes[1][0] in ("queued", "sent")
    assert outcomes[2][0] == "skipped" and "the customer last wrote on whatsapp at " in outcomes[2][1]
    await eventually(lambda: _bodies(sim, 1), what="Bob's message")
    assert [(f["To"], f["Body"]) for f in sim.sent()] == [(f"whatsapp:{BOB}", "Hi Bob")]

    # An agent's free-form WhatsApp reply to Ann is refused at once, with the reason (a 4xx, not a failed send).
    conv = await api.client.app[DB].read(lambda tx: tx.one(
        "SELECT c.id FROM conversations c JOIN identities i ON i.customer_id = c.customer_id WHERE i.value = ? "
        "ORDER BY c.id DESC", (ANN,)))
    refused = await api.call("POST", "/api/v1/conversations/{id}/messages",
                             f"/api/v1/conversations/{conv['id']}/messages",
                             {"text": "Are you there?", "channel": "whatsapp"}, expect=422)
    assert "outside whatsapp's 24-hour window" in str(refused["error"]), refused


async def _bodies(sim: TwilioFake, n: int) -> list[Any] | None:
    sent = sim.sent()
    return sent if len(sent) >= n else None


# -- an agent's template from a conversation, the campaign's test send, the preview's window -----------------------

ORDER = "Hi {{1}}, your order {{2}} has shipped."
M = "/api/v1/conversations/{id}/messages"


async def whatsapp_from(api: Api, phone: str, hours_ago: float = 0.0) -> int:
    """PHONE writes on WhatsApp (its signed webhook), HOURS_AGO hours ago; returns their open conversation's id."""
    sid = new_sid("SM")
    status, _, _ = await webhook(api.client, "/webhooks/twilio/sms", sample(
        "whatsapp_inbound", From=f"whatsapp:{phone}", WaId=phone.removeprefix("+"), MessageSid=sid, SmsSid=sid,
        SmsMessageSid=sid))
    assert status == 200
    if hours_ago:
        await api.client.app[DB].write(lambda tx: tx.exec(
            "UPDATE messages SET created_at = ? WHERE external_id = ?",
            (format_time(utcnow() - timedelta(hours=hours_ago)), sid)))
    row = await api.client.app[DB].read(lambda tx: tx.one(
        "SELECT conversation_id FROM messages WHERE external_id = ?", (sid,)))
    return int(row["conversation_id"])


async def test_an_agent_sends_an_approved_template_when_the_window_has_closed(
    start: Callable[..., Any], fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    sid = sim.add_template("order_shipped", ORDER, {"1": "Sam", "2": "A-100"})
    api = await start()
    await customers(api)
    conv_id = await whatsapp_from(api, ANN, hours_ago=30)
    conv = await api.call("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv_id}")
    _, agent = await person(api.client, "Ava Agent", "agent", [conv["queue"]])
    [window] = conv["session_windows"]
    assert (window["channel"], window["hours"], window["open"]) == ("whatsapp", 24, False)
    assert window["closes_at"] < format_time(utcnow() - timedelta(hours=5))
    refused = await api.call("POST", M, M.format(id=conv_id), {"text": "Are you there?"}, expect=422,
                             headers=agent)
    assert "outside whatsapp's 24-hour window" in str(refused["error"]), refused

    # Any agent may list the templates (campaigns' list is for managers), and fill one in for this customer.
    listed = await api.call("GET", "/api/v1/templates", "/api/v1/templates", headers=agent)
    assert [(t["sid"], t["body"], t["slots"], t["sendable"]) for t in listed["items"]] == [
        (sid, ORDER, ["1", "2"], True)]
    choice = {"sid": sid, "variables": {"1": '{{first_name | fallback: "there"}}', "2": "A-100"}}
    P = "/api/v1/conversations/{id}/template-preview"
    shown = await api.call("POST", P, P.format(id=conv_id), {"template": choice}, headers=agent)
    assert (shown["channel"], shown["text"]) == ("whatsapp", "Hi Ann, your order A-100 has shipped.")
    assert sim.sent() == []

    sent = await api.call("POST", M, M.format(id=conv_id), {"template": choice}, expect=201, headers=agent)
    assert (sent["channel"], sent["text"], sent["status"]) == ("whatsapp", "Hi Ann, your order A-100 has shipped.",
                                                               "queued")
    assert sent["meta"]["template"] == {"sid": sid, "name": "order_shipped", "variables": {"1": "Ann", "2": "A-100"}}
    forms = await eventually(lambda: _bodies(sim, 1), what="the template at Twilio")
    assert [(f["To"], f["ContentSid"], json.loads(f["ContentVariables"]), f.get("Body")) for f in forms] == [
        (f"whatsapp:{ANN}", sid, {"1": "Ann", "2": "A-100"}, None)]
    page = await api.call("GET", "/api/v1/customers/{id}/timeline", f"/api/v1/customers/{conv['customer_id']}/timeline")
    [last] = [m for m in page["items"] if m["id"] == sent["id"]]
    assert (last["text"], last["meta"]["template"]["sid"], last["agent_id"]) == (sent["text"], sid, sent["agent_id"])

    # Sending a template does not reopen the window: only the customer's answer does.
    conv = await api.call("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv_id}")
    assert conv["session_windows"][0]["open"] is False
    await api.call("POST", M, M.format(id=conv_id), {"text": "Still there?"}, expect=422, headers=agent)
    assert await whatsapp_from(api, ANN) == conv_id
    conv = await api.call("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv_id}")
    assert conv["session_windows"][0]["open"] is True
    await api.call("POST", M, M.format(id=conv_id), {"text": "Glad you got it"}, expect=201, headers=agent)
    await eventually(lambda: _bodies(sim, 2), what="the free-form reply")
    assert sim.sent()[-1]["Body"] == "Glad you got it" and "ContentSid" not in sim.sent()[-1]


@pytest.mark.parametrize(("status", "variables", "who", "expect", "reason"), [
    ("pending", {"1": "x", "2": "y"}, ANN, 422, "is not approved for WhatsApp (its status is pending)"),
    ("approved", {"1": "x"}, ANN, 422, "give a value for template variable {{2}} (its sample: 'A-100')"),
    ("approved", {"1": "{{attributes.plan}}", "2": "y"}, CARA, 422,
     "template variable {{1}}: no value for {{attributes.plan}} and no fallback"),
    ("approved", {"1": "{{nickname}}", "2": "y"}, ANN, 422, "unknown variable {{nickname}}"),
    ("approved", {"1": "x", "2": "y"}, "twilio down", 502, "Twilio error"),
])
async def test_an_agents_template_that_cannot_be_sent_is_refused_with_the_reason(
    start: Callable[..., Any], fake: tuple[TwilioFake, str], status: str, variables: dict[str, str], who: str,
    expect: int, reason: str
) -> None:
    sim = fake[0]
    sid = sim.add_template("order_shipped", ORDER, {"1": "Sam", "2": "A-100"}, status=status)
    api = await start()
    await customers(api)
    conv_id = await whatsapp_from(api, CARA if who == CARA else ANN)
    if who == "twilio down":
        sim.script["Content"] = [Scripted(503)] * 10
    for path in (M, "/api/v1/conversations/{id}/template-preview"):
        bad = await api.call("POST", path, path.format(id=conv_id),
                             {"template": {"sid": sid, "variables": variables}}, expect=expect)
        assert reason in str(bad["error"]), bad
    bad = await api.call("POST", M, M.format(id=conv_id),
                         {"text": "hello", "template": {"sid": sid, "variables": variables}}, expect=422)
    assert "a template is sent alone" in str(bad["error"]), bad
    rows = await api.client.app[DB].read(lambda tx: tx.all("SELECT id FROM messages WHERE direction = 'out'"))
    assert rows == [] and sim.sent() == []


async def test_the_campaign_test_send_sends_the_template_itself(
    start: Callable[..., Any], fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    sid = sim.add_template("renewal_reminder", BODY, {"1": "Sam", "2": "basic", "3": "1 May"})
    api = await start()
    await customers(api)
    T = f"{C}/test"
    # To Ann, whose WhatsApp window never opened: a template may go all the same.
    got = await api.call("POST", T, T, {"channel": "whatsapp", "to": f"phone:{ANN}",
                                        "template": {"sid": sid, "variables": VARIABLES}}, expect=201)
    msg = got["message"]
    assert msg["text"] == "Hi Ann, your gold plan renews on 1 January."
    assert msg["meta"]["template"] == {"sid": sid, "name": "renewal_reminder",
                                       "variables": {"1": "Ann", "2": "gold", "3": "1 January"}}
    assert msg["meta"]["campaign_test"] is True
    forms = await eventually(lambda: _bodies(sim, 1), what="the test at Twilio")
    assert [(f["To"], f["ContentSid"], json.loads(f["ContentVariables"]), f.get("Body")) for f in forms] == [
        (f"whatsapp:{ANN}", sid, {"1": "Ann", "2": "gold", "3": "1 January"}, None)]
    # A tester with no name is "Sam Sample", and a value they lack shows its name, as a text test does.
    got = await api.call("POST", T, T, {"channel": "whatsapp", "to": f"phone:{DAN}",
                                        "template": {"sid": sid, "variables": VARIABLES}}, expect=201)
    assert got["message"]["meta"]["template"]["variables"] == {"1": "Sam", "2": "[attributes.plan]",
                                                              "3": "1 January"}
    for body, reason in (({"template": {"sid": sid, "variables": {"1": "x"}}}, "give a value for template variable"),
                         ({"template": {"sid": sid, "variables": VARIABLES}, "text": "hi"}, "not both"),
                         ({"template": {"sid": sid, "variables": VARIABLES}, "channel": "sms"},
                          "a template is sent on whatsapp only")):
        bad = await api.call("POST", T, T, {"channel": "whatsapp", "to": f"phone:{ANN}", **body}, expect=422)
        assert reason in str(bad["error"]), bad


async def test_the_preview_of_a_free_form_whatsapp_campaign_skips_who_is_outside_the_window(
    start: Callable[..., Any], fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    sid = sim.add_template("renewal_reminder", BODY, {"1": "Sam", "2": "basic", "3": "1 May"})
    api = await start()
    await customers(api)  # Ann and Cara never wrote on WhatsApp
    await whatsapp_from(api, BOB)  # Bob's window is open
    await whatsapp_from(api, DAN, hours_ago=25)  # Dan's has closed
    audience = [f"phone:{p}" for p in (ANN, BOB, DAN, "+14155550135")]  # and a number the hub does not know
    free = {"name": "Free", "channel": "whatsapp", "text": 'Hi {{first_name | fallback: "there"}}',
            "identities": audience}
    shown = await api.call("POST", f"{C}/preview", f"{C}/preview", free)
    assert (shown["total"], shown["sending"], shown["skipped"]) == (4, 1, 3)
    assert [r["identity"] for r in shown["recipients"]] == [f"phone:{BOB}"]

    made = await api.call("POST", C, C, free, expect=201)

    async def done() -> dict[str, Any] | None:
        got = await api.call("GET", f"{C}/{{id}}", f"{C}/{made['id']}")
        return got if got["status"] == "done" else None

    await eventually(done, what="the campaign done")
    page = await api.call("GET", f"{C}/{{id}}/recipients", f"{C}/{made['id']}/recipients")
    skipped = [(r["identity"], r["reason"]) for r in page["items"] if r["outcome"] == "skipped"]
    # The preview's reasons are the sender's, word for word.
    assert [(s["identity"], s["reason"]) for s in shown["skipped_sample"]] == skipped
    assert [i for i, _ in skipped] == [audience[0], audience[2], audience[3]]
    assert "outside whatsapp's 24-hour window: the customer last wrote on whatsapp at" in skipped[1][1]

    # A template campaign may go outside the window: its preview skips nobody for it.
    templated = {**free, "name": "Template", "template": {"sid": sid, "variables": {
        "1": '{{first_name | fallback: "there"}}', "2": "basic", "3": "1 May"}}}
    del templated["text"]
    shown = await api.call("POST", f"{C}/preview", f"{C}/preview", templated)
    assert (shown["total"], shown["sending"], shown["skipped"]) == (4, 4, 0)
