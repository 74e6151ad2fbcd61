"""The wall's figures come from the store: they survive a restart, count only their time window, and each agent's
load is what they hold in the store (the memory routing state starts empty after a restart)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.keys import CSAT, DB
from tests.channels.conftest import fake  # noqa: F401
from tests.channels.twilio.fake import new_sid, sample, webhook
from tests.csat.test_sms import start  # noqa: F401
from tests.waiting import eventually

Client = TestClient[Any, Any]
QUEUES = json.dumps({"support": {"title": "Support", "offer_timeout": 300, "sla_wait": 60},
                     "sales": {"title": "Sales"}})


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES=QUEUES, HUB_ROUTING__TICK_SECONDS="0.1")


async def call(client: Client, method: str, path: str, headers: dict[str, str], body: Any = None,
               expect: int = 200) -> Any:
    resp = await client.request(method, path, json=body, headers=headers)
    data = await resp.json()
    assert resp.status == expect, (path, resp.status, data)
    return data


async def test_figures_survive_a_restart_and_keep_to_their_window(aiohttp_client: Any, settings: Settings) -> None:
    started = time.time() - 1
    first: Client = await aiohttp_client(build_app(settings))
    db = first.app[DB]
    admin = {"Authorization": f"Bearer {await create_token(db, 'admin')}"}
    alice = await add_agent(db, "Alice", "alice@example.com", "long password", "agent", ["support"])
    alice_h = {"Authorization": f"Bearer {await create_token(db, 'agent', alice.id)}"}
    dana = await add_agent(db, "Dana", "dana@example.com", "long password", "supervisor", ["support"])
    dana_h = {"Authorization": f"Bearer {await create_token(db, 'agent', dana.id)}"}
    await call(first, "POST", "/api/v1/agents/me/presence", alice_h, {"presence": "available"})
    convs = []
    for n in range(3):
        if n == 2:  # Alice steps away (her offer goes back as a rejection); the next customer waits for no one
            await call(first, "POST", "/api/v1/agents/me/presence", alice_h, {"presence": "away"})
        made = await call(first, "POST", "/api/v1/inbound", admin, {"identity": f"phone:+1415555012{n}",
                                                                     "text": "help"}, expect=201)
        convs.append(made["conversation"]["id"])
        if n == 0:
            await call(first, "POST", f"/api/v1/conversations/{convs[0]}/accept", alice_h)
        if n == 1:
            await call(first, "POST", f"/api/v1/conversations/{convs[1]}/reject", alice_h)
    # The third customer gives up while waiting (resolved with no agent): abandoned.
    await call(first, "POST", f"/api/v1/conversations/{convs[2]}/resolve", admin)
    before = await call(first, "GET", f"/api/v1/wall?since={started}", dana_h)
    await first.close()

    second: Client = await aiohttp_client(build_app(settings))  # a new process over the same store
    after = await call(second, "GET", f"/api/v1/wall?since={started}", dana_h)
    assert [q["window"] for q in after["queues"]] == [q["window"] for q in before["queues"]]
    support = next(q for q in after["queues"] if q["name"] == "support")
    window = support["window"]
    assert window["answered"] == 1 and window["answered_in_sla"] == 1 and window["sla_attainment"] == 1.0
    assert window["rejected"] == 2 and window["abandoned"] == 1 and window["offered"] >= 3
    assert support["now"]["waiting"] == 1  # the rejected one, back in its queue after the restart
    # Alice still holds the conversation she accepted, whatever the fresh routing state says.
    assert after["agents"] == [{"id": alice.id, "holding": {"chat": 1}}]
    sales = next(q for q in after["queues"] if q["name"] == "sales")
    assert sales["window"]["answered"] == 0 and sales["window"]["sla_attainment"] is None

    # A window that starts after all of it counts none of it.
    later = await call(second, "GET", f"/api/v1/wall?since={time.time() + 1}", dana_h)
    assert next(q for q in later["queues"] if q["name"] == "support")["window"]["answered"] == 0
    # Default window: today (UTC); a named offset is the viewer's day.
    today = await call(second, "GET", "/api/v1/wall", dana_h)
    assert today["since"].endswith("T00:00:00.000000Z")
    await call(second, "GET", "/api/v1/wall?since=2026-12-06T00:00:00%2B01:00", dana_h)

    for bad in ("yesterday", "2026-12-06T00:00:00", "99999999999999999999"):
        error = await call(second, "GET", f"/api/v1/wall?since={bad}", dana_h, expect=400)
        assert "since" in error["error"]["message"]
    await call(second, "GET", "/api/v1/wall", alice_h, expect=403)


async def sms_texts(client: Client, body: str, phone: str) -> None:
    sid = new_sid("SM")
    status, _, _ = await webhook(client, "/webhooks/twilio/sms", sample("sms_inbound", Body=body, From=phone,
                                                                        MessageSid=sid, SmsSid=sid, SmsMessageSid=sid))
    assert status == 200


async def test_the_wall_shows_satisfaction_and_each_low_rating_with_its_conversation(
    start: Any, fake: Any, db_url: str  # noqa: F811 (the fixtures imported above)
) -> None:
    """Answers arrive by SMS (the real path: Twilio webhooks, the survey sent through the outbox): the wall counts
    them in its window as the reports do, and lists the low one, newest first, with the conversation to open."""
    client, admin = await start(db_url, csat__low_score="2")
    expected = []
    for n, (phone, answer) in enumerate((("+14155550100", "5"), ("+14155550100", "1 nobody called back"))):
        await sms_texts(client, "Where is my order?", phone)
        conv = (await client.app[DB].read(lambda tx: tx.one("SELECT MAX(id) AS id FROM conversations")))["id"]
        await call(client, "POST", f"/api/v1/conversations/{conv}/resolve", admin)
        assert await client.app[CSAT].run_once() == 1

        async def surveyed(n: int = n) -> bool:
            return len(fake[0].sent()) > n

        await eventually(surveyed, what="the survey SMS")
        await sms_texts(client, answer, phone)
        expected.append(conv)
    wall = await call(client, "GET", "/api/v1/wall", admin)
    csat = wall["csat"]
    assert (csat["responses"], csat["average"], csat["score"], csat["low_score"]) == (2, 3.0, 0.5, 2)
    [low] = csat["low"]
    assert (low["conversation_id"], low["score"], low["comment"]) == (expected[1], 1, "nobody called back")
    # The window keeps to itself: from now on, nothing yet.
    later = await call(client, "GET", f"/api/v1/wall?since={time.time() + 1:.0f}", admin)
    assert later["csat"] == {"responses": 0, "average": None, "score": None, "low_score": 2, "low": []}
