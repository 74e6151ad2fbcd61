"""Campaigns by SMS end to end on SQLite and PostgreSQL: customers known from real-format Twilio webhooks, a campaign
to a list or a segment previewed, test-sent, written through the outbox at its rate to the Twilio simulator, its
results moved by delivery receipts, a reply (which opens a conversation like any message) and a STOP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.campaigns.sender import CampaignSender
from hub.config import Settings
from hub.keys import BUS, CAMPAIGNS, DB, OUTBOX, SETTINGS
from hub.model import format_time, parse_time, utcnow
from hub.reports.rollup import RollRules, catch_up
from tests.api.client import Api, start_api
from tests.channels.twilio.fake import (
    BIZ,
    Scripted,
    TwilioFake,
    make_hub_settings,
    new_sid,
    sample,
    settings_env,
    webhook,
)
from tests.waiting import eventually

SMS = "/webhooks/twilio/sms"
STATUS = "/webhooks/twilio/sms/status"
C = "/api/v1/campaigns"
ANN, BOB, CARA, DAN = "+14155550101", "+14155550102", "+14155550103", "+14155550104"


@pytest.fixture
def start(aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str],
          db_url: str) -> Callable[..., Any]:
    async def go(**extra: Any) -> Api:
        # The sender is driven by each test (run_once, with its clock), not by its poll.
        # A campaign starts the exchange: its SMS go out from the business's number (channels.twilio.sms_from).
        extra = {"campaigns__poll_interval_seconds": "3600", "channels__twilio__sms_from": BIZ, **extra}
        return await start_api(aiohttp_client, make_hub_settings(make_settings, db_url, fake[1], **extra))

    return go


async def texts(api: Api, phone: str, body: str) -> None:
    sid = new_sid("SM")
    status, _, _ = await webhook(api.client, SMS, sample("sms_inbound", From=phone, Body=body, MessageSid=sid,
                                                         SmsSid=sid, SmsMessageSid=sid))
    assert status == 200


async def people(api: Api) -> None:
    """Ann (plan gold) and Bob wrote by SMS; Cara wrote and then texted STOP; Dan only ever emailed."""
    for phone, name in ((ANN, "Ann Lee"), (BOB, "Bob Stone"), (CARA, "Cara Diaz")):
        await api.call("POST", "/api/v1/inbound", "/api/v1/inbound",
                       {"identity": f"phone:{phone}", "text": "hello", "name": name}, expect=201)
    await api.call("POST", "/api/v1/inbound", "/api/v1/inbound",
                   {"identity": "email:dan@example.com", "text": "hi", "name": "Dan Ray"}, expect=201)
    await api.client.app[DB].write(lambda tx: tx.exec(
        "INSERT INTO customer_attributes (customer_id, name, value, updated_at) SELECT customer_id, 'plan', 'gold', "
        "'2026-01-01T00:00:00.000000Z' FROM identities WHERE value = ?", (ANN,)))
    await texts(api, CARA, "STOP")
    # Everyone's conversation resolved: what a campaign writes must not open work.
    rows = await api.client.app[DB].read(lambda tx: tx.all("SELECT id FROM conversations WHERE status <> 'resolved'"))
    for r in rows:
        await api.call("POST", "/api/v1/conversations/{id}/resolve", f"/api/v1/conversations/{r['id']}/resolve", {})


#: a campaign the tests drive with their own clock starts an hour from now, so the app's own sender (on the real
#: clock) leaves it alone
LATER = format_time(utcnow() + timedelta(hours=1))


def at(seconds: float = 0.0) -> Callable[[], str]:
    return lambda: format_time(parse_time(LATER) + timedelta(seconds=seconds))


async def conversations(api: Api) -> list[tuple[int, str]]:
    rows = await api.client.app[DB].read(lambda tx: tx.all("SELECT id, status FROM conversations ORDER BY id"))
    return [(int(r["id"]), str(r["status"])) for r in rows]


TEXT = 'Hi {{first_name | fallback: "there"}}, your {{attributes.plan | fallback: "free"}} plan renews soon.'


async def test_a_list_campaign_previews_sends_once_each_and_counts_its_results(
    start: Callable[..., Any], fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    api = await start()
    await people(api)
    before = await conversations(api)
    body = {"name": "Renewal", "channel": "sms", "text": TEXT,
            "csv": f"identity\nphone:{ANN}\nphone:{BOB}\nphone:{CARA}\nemail:dan@example.com\nphone:{BOB}\n"
                   "phone:+14155550177\nphone:12\n"}

    shown = await api.call("POST", f"{C}/preview", f"{C}/preview", body)
    assert (shown["total"], shown["sending"], shown["skipped"]) == (7, 3, 4)
    assert [(r["identity"], r["text"]) for r in shown["recipients"]] == [
        (f"phone:{ANN}", "Hi Ann, your gold plan renews soon."),
        (f"phone:{BOB}", "Hi Bob, your free plan renews soon."),
        ("phone:+14155550177", "Hi there, your free plan renews soon."),  # not known yet: the fallbacks
    ]
    reasons = {s["identity"]: s["reason"] for s in shown["skipped_sample"]}
    assert "opted out by texting STOP" in reasons[f"phone:{CARA}"]
    assert reasons["email:dan@example.com"] == "an email identity cannot be reached on sms"
    assert "listed twice" in next(s["reason"] for s in shown["skipped_sample"] if s["identity"] == f"phone:{BOB}")
    assert "not a possible phone number" in reasons["phone:12"]
    assert sim.sent() == [] and await conversations(api) == before, "a preview writes nothing"

    # A test send to yourself, through the outbox, marked as a test.
    test = await api.call("POST", f"{C}/test", f"{C}/test", {"channel": "sms", "text": TEXT,
                                                             "to": "phone:+14155550190"}, expect=201)
    assert test["message"]["text"] == "[test] Hi Sam, your free plan renews soon."
    await eventually(lambda: _bodies(sim), what="the test SMS")
    assert [(f["To"], f["Body"]) for f in sim.sent()] == [("+14155550190", test["message"]["text"])]

    made = await api.call("POST", C, C, body, expect=201)
    assert made["status"] == "scheduled" and made["rate_per_minute"] == 60 and made["list_size"] == 7
    # The hub's own sender starts it at once (creating it woke the sender) and writes the three.
    sent = await eventually(lambda: _bodies(sim, 4), what="the campaign's three SMS")
    done = await eventually(lambda: _status(api, made["id"], "done"), what="the campaign done")
    assert await api.client.app[CAMPAIGNS].run_once() == 0  # nobody twice
    assert sorted((f["To"], f["Body"]) for f in sent[1:]) == [
        (ANN, "Hi Ann, your gold plan renews soon."), (BOB, "Hi Bob, your free plan renews soon."),
        ("+14155550177", "Hi there, your free plan renews soon.")]

    # On each one's timeline, on their latest conversation (resolved: no work opened) or a new resolved one.
    after = await conversations(api)
    assert all(status == "resolved" for _, status in after) and len(after) == len(before) + 2  # +177, the test
    rows = await api.client.app[DB].read(lambda tx: tx.all(
        "SELECT m.text, m.meta, i.value FROM messages m JOIN identities i ON i.customer_id = m.customer_id "
        "AND i.kind = 'phone' WHERE m.direction = 'out' AND m.meta LIKE '%campaign%' ORDER BY m.id"))
    assert len(rows) == 4 and all('"automatic": true' in r["meta"] for r in rows)

    # Twilio may hold the last SMS a moment before the hub has marked it accepted: wait for the mark, then check all.
    got = await eventually(lambda: _results(api, made["id"], "sent", 3), what="the three marked accepted")
    # Accepted by Twilio (its "queued" is sent for us: out of our outbox), not yet reported delivered.
    assert (got["recipients"], got["queued"], got["skipped"], got["pending"], got["sent"], got["failed"]) == (
        7, 0, 4, 0, 3, 0)
    assert done["status"] == "done" and done["finished_at"]  # the second pass found nobody pending

    # Delivery receipts move the results; a reply opens a conversation like any message; a STOP counts.
    page = await api.call("GET", f"{C}/{{id}}/recipients", f"{C}/{made['id']}/recipients?limit=3")
    assert [r["status"] for r in page["items"]] == ["queued", "queued", "skipped"] and page["next"] == 3
    ann = page["items"][0]
    ext = await api.client.app[DB].read(lambda tx: tx.one("SELECT external_id FROM messages WHERE id = ?",
                                                          (ann["message_id"],)))
    status, _, _ = await webhook(api.client, STATUS, sample(
        "sms_status_delivered", MessageSid=ext["external_id"], SmsSid=ext["external_id"], To=ANN))
    assert status in (200, 204)
    got = await eventually(lambda: _results(api, made["id"], "delivered", 1), what="delivered")
    assert (got["sent"], got["queued"]) == (3, 0), got
    await texts(api, ANN, "Can I switch to yearly?")
    await texts(api, BOB, "STOP")
    got = await _results(api, made["id"], "replied", 1)
    assert got is not None and got["opted_out"] == 1
    opened = await api.client.app[DB].read(lambda tx: tx.all(
        "SELECT c.queue FROM conversations c JOIN identities i ON i.customer_id = c.customer_id "
        "WHERE i.value = ? AND c.status <> 'resolved'", (ANN,)))
    assert [r["queue"] for r in opened] == ["support"], "Ann's reply routes like any inbound message"
    listed = await api.call("GET", C, C)
    assert next(c["id"] for c in listed["items"]) == made["id"]


async def _bodies(sim: TwilioFake, n: int = 1) -> list[Any] | None:
    sent = sim.sent()
    return sent if len(sent) >= n else None


async def _status(api: Api, cid: int, status: str) -> dict[str, Any] | None:
    got = await api.call("GET", f"{C}/{{id}}", f"{C}/{cid}")
    return got if got["status"] == status else None


async def _results(api: Api, cid: int, key: str, n: int) -> dict[str, int] | None:
    got = (await api.call("GET", f"{C}/{{id}}", f"{C}/{cid}"))["results"]
    return got if got[key] >= n else None


async def test_each_recipient_moves_from_queued_to_sent_to_delivered_failed_replied_or_opted_out(
    start: Callable[..., Any], fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    # The first send Twilio refuses (503) waits an hour for its retry: that message stays in our outbox.
    api = await start(outbox__base_delay_seconds="3600", outbox__max_delay_seconds="3600")
    sim.script["Messages"] = [Scripted(503)]
    phones = [f"+1415555012{i}" for i in range(5)]
    made = await api.call("POST", C, C, {"name": "Stages", "channel": "sms", "text": "news",
                                         "identities": [f"phone:{p}" for p in phones]}, expect=201)
    got = await eventually(lambda: _settled(api, sim, made["id"]), what="five sends tried, four accepted")
    assert (got["queued"], got["sent"], got["delivered"], got["failed"]) == (1, 4, 0, 0), got
    page = await api.call("GET", f"{C}/{{id}}/recipients", f"{C}/{made['id']}/recipients")
    by_outcome = sorted(r["outcome"] for r in page["items"])
    assert by_outcome == ["queued", "sent", "sent", "sent", "sent"], page
    sent = [r for r in page["items"] if r["outcome"] == "sent"]
    waiting = next(r for r in page["items"] if r["outcome"] == "queued")
    assert waiting["message_status"] == "queued" and all(r["message_status"] == "sending" for r in sent)

    async def receipt(r: dict[str, Any], name: str) -> None:
        ext = await api.client.app[DB].read(lambda tx: tx.one("SELECT external_id FROM messages WHERE id = ?",
                                                              (r["message_id"],)))
        sid = ext["external_id"]
        code, _, _ = await webhook(api.client, STATUS, sample(name, MessageSid=sid, SmsSid=sid,
                                                              To=r["identity"].removeprefix("phone:")))
        assert code in (200, 204), code

    await receipt(sent[0], "sms_status_delivered")
    await receipt(sent[1], "sms_status_undelivered")
    await texts(api, sent[2]["identity"].removeprefix("phone:"), "What news?")
    await texts(api, sent[3]["identity"].removeprefix("phone:"), "STOP")
    got = await eventually(lambda: _results(api, made["id"], "failed", 1), what="the receipts counted")
    assert (got["queued"], got["sent"], got["delivered"], got["failed"], got["replied"], got["opted_out"]) == (
        1, 3, 1, 1, 1, 1), got
    page = await api.call("GET", f"{C}/{{id}}/recipients", f"{C}/{made['id']}/recipients")
    outcomes = {r["identity"]: r["outcome"] for r in page["items"]}
    assert [outcomes[r["identity"]] for r in (waiting, *sent)] == [
        "queued", "delivered", "failed", "replied", "opted_out"], outcomes
    failed = next(r for r in page["items"] if r["outcome"] == "failed")
    assert "unreachable destination handset" in failed["reason"]


async def _settled(api: Api, sim: TwilioFake, cid: int) -> dict[str, int] | None:
    got = (await api.call("GET", f"{C}/{{id}}", f"{C}/{cid}"))["results"]
    return got if len(sim.sent()) >= 5 and got["sent"] == 4 else None


async def test_the_rate_holds_across_a_restart_and_a_segment_is_read_at_the_start(
    start: Callable[..., Any], fake: tuple[TwilioFake, str]
) -> None:
    api = await start()
    await people(api)
    await catch_up(api.client.app[DB], RollRules(), cutoff="9999")
    seg = await api.call("POST", "/api/v1/segments", "/api/v1/segments", {"name": "Texters", "criteria": {
        "channels": ["api"]}}, expect=201)
    body = {"name": "Slow", "channel": "sms", "text": "{{name}}: news", "segment_id": seg["id"],
            "rate_per_minute": 1, "scheduled_at": LATER}
    shown = await api.call("POST", f"{C}/preview", f"{C}/preview", body)
    assert [r["text"] for r in shown["recipients"]] == ["Ann Lee: news", "Bob Stone: news"]
    assert sorted(s["reason"].split(" on ")[0] for s in shown["skipped_sample"]) == [
        "no phone identity to reach them", "opted out by texting STOP"]
    made = await api.call("POST", C, C, body, expect=201)

    def sender(clock: Callable[[], str]) -> CampaignSender:
        app = api.client.app
        return CampaignSender(app[DB], app[SETTINGS], app[OUTBOX], app[BUS], clock=clock)

    assert await sender(at()).run_once() == 1
    # A restarted hub (a new sender, as after a kill) counts the last minute from the store: nothing more yet.
    assert await sender(at(30)).run_once() == 0
    assert await sender(at(61)).run_once() == 1
    assert await sender(at(122)).run_once() == 0
    got = (await api.call("GET", f"{C}/{{id}}", f"{C}/{made['id']}"))
    assert got["status"] == "done" and got["results"]["recipients"] == 4


async def test_cancel_stops_what_is_not_written_yet(start: Callable[..., Any]) -> None:
    api = await start()
    await people(api)
    made = await api.call("POST", C, C, {"name": "Two", "channel": "sms", "text": "hello",
                                         "identities": [f"phone:{ANN}", f"phone:{BOB}"], "rate_per_minute": 1,
                                         "scheduled_at": LATER},
                          expect=201)
    app = api.client.app
    assert await CampaignSender(app[DB], app[SETTINGS], app[OUTBOX], app[BUS], clock=at()).run_once() == 1
    n = await api.client.app[DB].read(lambda tx: tx.one(
        "SELECT COUNT(*) AS n FROM campaign_recipients WHERE status = 'queued'"))
    assert int(n["n"]) == 1
    cancelled = await api.call("POST", f"{C}/{{id}}/cancel", f"{C}/{made['id']}/cancel", {})
    assert cancelled["status"] == "cancelled" and cancelled["results"]["cancelled"] == 1
    await api.call("POST", f"{C}/{{id}}/cancel", f"{C}/{made['id']}/cancel", {}, expect=409)
    later = CampaignSender(app[DB], app[SETTINGS], app[OUTBOX], app[BUS], clock=at(3600))
    assert await later.run_once() == 0


async def test_a_scheduled_campaign_waits_for_its_time(start: Callable[..., Any]) -> None:
    api = await start()
    await people(api)
    when = format_time(utcnow() + timedelta(hours=2))
    made = await api.call("POST", C, C, {"name": "Later", "channel": "sms", "text": "hello",
                                         "identities": [f"phone:{ANN}"], "scheduled_at": when}, expect=201)
    assert made["scheduled_at"] == when
    app = api.client.app
    now = CampaignSender(app[DB], app[SETTINGS], app[OUTBOX], app[BUS], clock=at())
    assert await now.run_once() == 0
    assert (await api.call("GET", f"{C}/{{id}}", f"{C}/{made['id']}"))["status"] == "scheduled"
    later = CampaignSender(app[DB], app[SETTINGS], app[OUTBOX], app[BUS],
                           clock=lambda: format_time(parse_time(when) + timedelta(seconds=1)))
    assert await later.run_once() == 1


@pytest.mark.parametrize(("body", "reason"), [
    ({"text": "Hi {{nickname}}"}, "unknown variable {{nickname}}"),
    ({"text": "Hi {{ name"}, 'a "{{" that is not a variable'),
    ({"channel": "fax"}, "channel is one of"),
    ({"channel": "telegram"}, "channel telegram is not configured"),
    ({"segment_id": 1}, "exactly one audience"),
    ({"identities": None, "segment_id": 999}, "segment 999 does not exist"),
    ({"identities": []}, "the list holds no identities"),
    ({"scheduled_at": "next tuesday"}, "scheduled_at is an ISO 8601 time"),
    ({"rate_per_minute": 0}, "rate_per_minute"),
])
async def test_bad_campaigns_get_reasons(start: Callable[..., Any], body: dict[str, Any], reason: str) -> None:
    api = await start()
    full = {"name": "x", "channel": "sms", "text": "hello", "identities": [f"phone:{ANN}"], **body}
    full = {k: v for k, v in full.items() if v is not None}
    status = 404 if "does not exist" in reason else 422
    bad = await api.call("POST", C, C, full, expect=status)
    assert reason in str(bad["error"]), bad


async def test_agents_cannot_run_campaigns(start: Callable[..., Any]) -> None:
    api = await start()
    db = api.client.app[DB]
    a = await add_agent(db, "Ann", "agent@example.com", "long password", "agent", ["support"])
    agent = {"Authorization": f"Bearer {await create_token(db, 'agent', a.id)}"}
    await api.call("GET", C, C, expect=403, headers=agent)
    await api.call("POST", C, C, {"name": "x", "channel": "sms", "text": "hi", "identities": [f"phone:{ANN}"]},
                   expect=403, headers=agent)
    await api.call("POST", f"{C}/test", f"{C}/test", {"channel": "sms", "text": "hi"}, expect=403, headers=agent)
    # A supervisor may, and a test send goes to their own phone when they have one.
    s = await add_agent(db, "Sue", "sue@example.com", "long password", "supervisor", ["support"])
    await db.write(lambda tx: tx.exec("UPDATE agents SET phone = ? WHERE id = ?", ("+14155550188", s.id)))
    sup = {"Authorization": f"Bearer {await create_token(db, 'agent', s.id)}"}
    sent = await api.call("POST", f"{C}/test", f"{C}/test", {"channel": "sms", "text": "hi {{name}}"}, expect=201,
                          headers=sup)
    assert sent["message"]["identity"] == "phone:+14155550188" and sent["message"]["text"] == "[test] hi Sam Sample"


async def test_two_processes_at_once_write_each_recipient_once_within_the_rate(
    start: Callable[..., Any], fake: tuple[TwilioFake, str]
) -> None:
    """Two senders (as in two hub processes, each with its own connections) passing at the same moment: the
    campaign row's lock serializes them, so the rate's allowance is used once and nobody gets two messages."""
    api = await start()
    phones = [f"+1415555{n:04d}" for n in range(120, 130)]
    made = await api.call("POST", C, C, {"name": "Race", "channel": "sms", "text": "hello",
                                         "identities": [f"phone:{p}" for p in phones], "rate_per_minute": 4,
                                         "scheduled_at": LATER}, expect=201)
    app = api.client.app
    pair = [CampaignSender(app[DB], app[SETTINGS], app[OUTBOX], app[BUS], clock=at()) for _ in range(2)]
    # (the tests' poll interval is an hour, so a pass may write the whole minute's allowance)
    assert sorted(await asyncio.gather(*(s.run_once() for s in pair))) == [0, 4]
    for second in range(2, 60, 2):
        later = [CampaignSender(app[DB], app[SETTINGS], app[OUTBOX], app[BUS], clock=at(second)) for _ in range(2)]
        await asyncio.gather(*(s.run_once() for s in later))
    rows = await app[DB].read(lambda tx: tx.all(
        "SELECT r.identity, COUNT(*) AS n FROM campaign_recipients r JOIN messages m ON m.id = r.message_id "
        "WHERE r.campaign_id = ? GROUP BY r.identity", (made["id"],)))
    assert len(rows) == 4 and all(int(r["n"]) == 1 for r in rows), "4 in the first minute, each once"
    out = await app[DB].read(lambda tx: tx.one("SELECT COUNT(*) AS n FROM messages WHERE direction = 'out'"))
    assert int(out["n"]) == 4


async def test_the_console_needs_the_csrf_token_to_create_or_cancel(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str], db_url: str
) -> None:
    # Served over plain http here, so an http public URL (with https the session cookie would be Secure).
    env = settings_env(fake[1], channels__twilio__sms_from=BIZ) | {"HUB_SERVER__PUBLIC_URL": "http://hub.example.com"}
    client = (await start_api(aiohttp_client, make_settings(db_url, **env))).client
    await add_agent(client.app[DB], "Sue Super", "sue@example.com", "long password", "supervisor", ["support"])
    signed = await client.post("/console/session", json={"email": "sue@example.com", "password": "long password"})
    assert signed.status == 200, await signed.text()
    csrf = (await signed.json())["csrf_token"]
    body = {"name": "x", "channel": "sms", "text": "hi", "identities": [f"phone:{ANN}"], "scheduled_at": LATER}
    for headers in ({}, {"X-CSRF-Token": "x" * 43}):
        refused = await client.post(C, json=body, headers=headers)
        assert refused.status == 403, await refused.text()
    assert (await client.get(C)).status == 200  # a read needs no token
    made = await client.post(C, json=body, headers={"X-CSRF-Token": csrf})
    assert made.status == 201, await made.text()
    cid = (await made.json())["id"]
    assert (await client.post(f"{C}/{cid}/cancel")).status == 403
    assert (await client.post(f"{C}/{cid}/cancel", headers={"X-CSRF-Token": csrf})).status == 200
    n = await client.app[DB].read(lambda tx: tx.one("SELECT COUNT(*) AS n FROM campaigns"))
    assert int(n["n"]) == 1


async def test_an_audience_over_the_limit_is_refused_with_the_reason(start: Callable[..., Any]) -> None:
    api = await start(campaigns__max_recipients="2")
    await people(api)
    await catch_up(api.client.app[DB], RollRules(), cutoff="9999")
    seg = await api.call("POST", "/api/v1/segments", "/api/v1/segments", {"name": "All", "criteria": {
        "channels": ["api"]}}, expect=201)
    body = {"name": "Big", "channel": "sms", "text": "hi", "segment_id": seg["id"]}
    bad = await api.call("POST", C, C, body, expect=422)
    assert "has more than 2 customers (campaigns.max_recipients)" in bad["error"]["message"]
    bad = await api.call("POST", f"{C}/preview", f"{C}/preview", body, expect=422)
    assert "more than 2 customers" in bad["error"]["message"]
    listed = {"name": "Big", "channel": "sms", "text": "hi", "identities": [f"phone:{p}" for p in (ANN, BOB, CARA)]}
    bad = await api.call("POST", C, C, listed, expect=422)
    assert "the list has 3 identities, more than 2" in bad["error"]["message"]
