"""Satisfaction surveys by SMS, end to end on SQLite and PostgreSQL: real-format Twilio webhooks signed with the real
algorithm, the survey sent through the outbox to the Twilio simulator, the answer read from a "reply 1-5" text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.config import Settings
from hub.csat.sender import SurveySender
from hub.keys import CSAT, DB, OUTBOX, SETTINGS
from hub.model import format_time, utcnow
from hub.reports.rollup import RollRules, catch_up, rebuild
from tests.channels.twilio.fake import TwilioFake, new_sid, sample, start_hub, webhook
from tests.waiting import eventually

Client = TestClient[Any, Any]
SMS = "/webhooks/twilio/sms"
CSAT_ON = {"routing__queues__support__csat": "true", "csat__poll_interval_seconds": "3600"}


@pytest.fixture
def start(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str]
) -> Callable[..., Any]:
    async def go(db_url: str | None = None, **extra: Any) -> tuple[Client, dict[str, str]]:
        return await start_hub(aiohttp_client, make_settings, fake[1], db_url, **{**CSAT_ON, **extra})

    return go


async def texts(client: Client, body: str) -> None:
    sid = new_sid("SM")
    status, _, _ = await webhook(client, SMS, sample("sms_inbound", Body=body, MessageSid=sid, SmsSid=sid,
                                                     SmsMessageSid=sid))
    assert status == 200


async def conversations(client: Client) -> list[Any]:
    return list(await client.app[DB].read(lambda tx: tx.all("SELECT id, status FROM conversations ORDER BY id")))


async def survey(client: Client) -> Any:
    rows = await client.app[DB].read(lambda tx: tx.all("SELECT * FROM csat_surveys ORDER BY id"))
    assert len(rows) == 1, rows
    return rows[0]


async def resolve(client: Client, admin: dict[str, str], conv: int) -> None:
    resp = await client.post(f"/api/v1/conversations/{conv}/resolve", headers=admin)
    assert resp.status == 200, await resp.text()


async def events(client: Client, type_: str) -> list[Any]:
    return list(await client.app[DB].read(lambda tx: tx.all(
        "SELECT conversation_id, message_id FROM hub_events WHERE type = ? ORDER BY id", (type_,))))


async def sent_bodies(sim: TwilioFake) -> list[str]:
    return [f["Body"] for f in sim.sent()]


async def test_sms_survey_answered_by_a_number_lands_on_the_conversation_and_the_reports(
    start: Any, fake: tuple[TwilioFake, str], db_url: str
) -> None:
    sim = fake[0]
    client, admin = await start(db_url)
    await texts(client, "Where is my order?")
    [conv] = await conversations(client)
    await resolve(client, admin, conv["id"])
    assert await client.app[CSAT].run_once() == 1
    [question] = await eventually(lambda: sent_bodies(sim), what="the survey SMS")
    assert "Reply with a number from 1 (very unhappy) to 5 (very happy)" in question
    s = await survey(client)
    assert s["status"] == "sent" and s["channel"] == "sms" and s["identity"] == "phone:+14155550100"

    await texts(client, "4 - quick and kind")
    s = await survey(client)
    assert (s["status"], s["score"], s["comment"]) == ("answered", 4, "quick and kind")
    assert [(c["id"], c["status"]) for c in await conversations(client)] == [(conv["id"], "resolved")], \
        "the answer opens no work"
    resp = await client.get(f"/api/v1/conversations/{conv['id']}", headers=admin)
    answer = (await resp.json())["messages"][-1]
    assert answer["text"] == "4 - quick and kind" and answer["meta"]["csat"]["score"] == 4
    assert [e["message_id"] for e in await events(client, "csat.received")] == [answer["id"]]
    assert await events(client, "csat.low") == []

    # A second answer is kept on the same conversation, marked ignored; the first one stands.
    await texts(client, "1")
    s = await survey(client)
    assert (s["status"], s["score"]) == ("answered", 4)
    assert len(await conversations(client)) == 1
    resp = await client.get(f"/api/v1/conversations/{conv['id']}", headers=admin)
    second = (await resp.json())["messages"][-1]
    assert second["text"] == "1" and "answered already" in second["meta"]["csat"]["ignored"]
    assert len(await events(client, "csat.received")) == 1

    rules = RollRules()
    await catch_up(client.app[DB], rules, cutoff="9999")
    resp = await client.get("/api/v1/reports/summary", headers=admin)
    figures = (await resp.json())["figures"]
    assert (figures["csat_responses"], figures["csat_score"], figures["csat_average"]) == (1, 1.0, 4.0)
    resp = await client.get("/api/v1/reports/breakdown", params={"by": "queue"}, headers=admin)
    by_queue = {r["value"]: r["figures"] for r in (await resp.json())["rows"]}
    assert by_queue["support"]["csat_responses"] == 1
    before = await client.app[DB].read(lambda tx: tx.all(
        "SELECT grain, dim, metric, bucket, value, n, total FROM report_rollups WHERE metric LIKE 'csat%' "
        "ORDER BY grain, dim, metric, bucket, value"))
    assert before
    await rebuild(client.app[DB], rules)
    await catch_up(client.app[DB], rules, cutoff="9999")  # PostgreSQL's rebuild leaves the last 2 s to the roller
    after = await client.app[DB].read(lambda tx: tx.all(
        "SELECT grain, dim, metric, bucket, value, n, total FROM report_rollups WHERE metric LIKE 'csat%' "
        "ORDER BY grain, dim, metric, bucket, value"))
    assert [dict(r) for r in after] == [dict(r) for r in before]


async def test_a_low_score_raises_csat_low_and_a_rule_acts_on_it(start: Any, fake: tuple[TwilioFake, str]) -> None:
    client, admin = await start()
    rule = {"name": "Unhappy customers get a call back", "event": "csat.low",
            "conditions": [{"field": "csat_score", "op": "lt", "value": 2}],
            "actions": [{"type": "add_label", "value": "call back"}]}
    resp = await client.post("/api/v1/automation/rules", json=rule, headers=admin)
    assert resp.status == 201, await resp.text()
    bad = {**rule, "conditions": [{"field": "csat_score", "op": "lt", "value": "two"}]}
    assert (await client.post("/api/v1/automation/rules", json=bad, headers=admin)).status == 422
    for n, score in enumerate(("2 nobody called back", "1")):
        await texts(client, f"Where is my order? ({n})")
        conv = (await conversations(client))[-1]
        await resolve(client, admin, conv["id"])
        await client.app[CSAT].run_once()
        await texts(client, score)
    first, second = await conversations(client)
    assert [e["conversation_id"] for e in await events(client, "csat.low")] == [first["id"], second["id"]]

    async def labels(conv: int) -> list[str]:
        detail = await (await client.get(f"/api/v1/conversations/{conv}", headers=admin)).json()
        return list(detail["labels"])

    assert await eventually(lambda: labels(second["id"]), what="the rule's label") == ["call back"]
    assert await labels(first["id"]) == [], "a 2 is low (csat.low_score) but not below the rule's 2"


async def test_a_number_with_no_survey_pending_is_an_ordinary_message(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    client, _admin = await start()
    await texts(client, "3")
    [conv] = await conversations(client)
    assert conv["status"] != "resolved", "no survey was pending: the 3 opened a conversation for an agent"
    assert await events(client, "csat.received") == []


async def test_a_customer_who_texted_stop_is_never_surveyed(start: Any, fake: tuple[TwilioFake, str]) -> None:
    sim = fake[0]
    client, admin = await start()
    await texts(client, "Where is my order?")
    await webhook(client, SMS, sample("sms_stop"))
    [conv] = await conversations(client)
    await resolve(client, admin, conv["id"])
    assert await client.app[CSAT].run_once() == 1
    s = await survey(client)
    assert s["status"] == "skipped" and "opted out by texting STOP" in s["reason"]
    assert sim.sent() == []
    assert await client.app[DB].read(lambda tx: tx.all("SELECT id FROM outbox")) == []


async def test_one_survey_per_conversation_even_when_resolved_twice(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    client, admin = await start(conversations__reopen_window_seconds="3600")
    await texts(client, "Where is my order?")
    [conv] = await conversations(client)
    await resolve(client, admin, conv["id"])
    await client.app[CSAT].run_once()
    await eventually(lambda: sent_bodies(sim), what="the survey SMS")
    await texts(client, "Actually, one more question")  # reopens the same conversation
    assert [c["status"] for c in await conversations(client)] == ["open"]
    await resolve(client, admin, conv["id"])
    assert await client.app[CSAT].run_once() == 0
    assert len(sim.sent()) == 1
    s = await survey(client)
    assert s["status"] == "sent"
    # The customer started something new: a number now is not taken for an answer to the old survey.
    await texts(client, "5")
    assert (await survey(client))["status"] == "sent"
    assert await events(client, "csat.received") == []


async def test_a_queue_without_csat_sends_nothing(start: Any, fake: tuple[TwilioFake, str]) -> None:
    client, admin = await start(routing__queues__support__csat="false")
    await texts(client, "Where is my order?")
    [conv] = await conversations(client)
    await resolve(client, admin, conv["id"])
    await client.app[CSAT].run_once()
    s = await survey(client)
    assert s["status"] == "skipped" and "does not survey" in s["reason"]
    assert fake[0].sent() == []


async def test_the_delay_holds_the_survey_and_a_late_answer_is_an_ordinary_message(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    client, admin = await start(routing__queues__support__csat_delay="3600", csat__answer_window_hours="1")
    await texts(client, "Where is my order?")
    [conv] = await conversations(client)
    await resolve(client, admin, conv["id"])
    assert await client.app[CSAT].run_once() == 0, "not due for an hour"
    assert (await survey(client))["status"] == "scheduled"
    later = SurveySender(client.app[DB], client.app[SETTINGS], client.app[OUTBOX], client.app[CSAT].bus,
                         clock=lambda: format_time(utcnow() + timedelta(hours=1, seconds=5)))
    assert await later.run_once() == 1
    s = await survey(client)
    assert s["status"] == "sent"
    # Sent "an hour from now" with a one-hour window: it closes two hours from now. Age it past that.
    await client.app[DB].write(lambda tx: tx.exec("UPDATE csat_surveys SET expires_at = ?",
                                                  (format_time(utcnow() - timedelta(seconds=1)),)))
    await texts(client, "5")
    assert (await survey(client))["status"] == "sent"
    assert len(await conversations(client)) == 2, "after the survey closed, a 5 is a new message for an agent"



async def test_a_survey_out_with_a_merged_customer_is_answered_by_the_survivor(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    client, admin = await start()
    await texts(client, "Where is my order?")
    [conv] = await conversations(client)
    await resolve(client, admin, conv["id"])
    await client.app[CSAT].run_once()
    phone_customer = (await survey(client))["customer_id"]
    resp = await client.post("/api/v1/inbound", json={"identity": "email:ann@example.com", "text": "hi"},
                             headers=admin)
    assert resp.status == 201, await resp.text()
    survivor = (await resp.json())["customer"]["id"]
    resp = await client.post(f"/api/v1/customers/{survivor}/merge", json={"customer_id": phone_customer},
                             headers=admin)
    assert resp.status == 200, await resp.text()
    await texts(client, "5")
    s = await survey(client)
    assert (s["status"], s["score"], s["customer_id"]) == ("answered", 5, survivor)
