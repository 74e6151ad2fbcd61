"""WhatsApp campaigns with approved templates (Twilio's Content API), on SQLite and PostgreSQL: the account's
templates listed with their approval status through the official client pointed at the Twilio simulator, an
unapproved one refused with the reason, each recipient's values rendered into the preview and sent as ContentSid
and ContentVariables."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from hub.config import Settings
from hub.keys import DB
from tests.api.client import Api, start_api
from tests.channels.twilio.fake import BIZ, Scripted, TwilioFake, make_hub_settings
from tests.waiting import eventually

C = "/api/v1/campaigns"
ANN, BOB, CARA = "+14155550131", "+14155550132", "+14155550133"
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
