"""Snooze is kept in the store, not in a process: a conversation snoozed in one hub process is woken by another
that started after the first stopped (a restart), at its time, and offered to its owner there; a customer's message
through a second process wakes one snoozed through the first."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.keys import DB
from hub.model import format_time, utcnow
from tests.waiting import eventually

Client = TestClient[Any, Any]
QUEUES = json.dumps({"support": {"title": "Support", "offer_timeout": 300}})


async def call(client: Client, method: str, path: str, headers: dict[str, str], body: Any = None,
               expect: int = 200) -> Any:
    resp = await client.request(method, path, json=body, headers=headers)
    data = await resp.json()
    assert resp.status == expect, (method, path, resp.status, data)
    return data


async def test_a_snooze_outlives_its_process_and_wakes_in_another(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, prefix: str,
) -> None:
    def settings() -> Settings:
        return make_settings(db_url, HUB_ROUTING__QUEUES=QUEUES, HUB_ROUTING__KEY_PREFIX=prefix,
                             HUB_ROUTING__TICK_SECONDS="0.1", HUB_CONSOLE__SNOOZE_POLL_SECONDS="0.2")

    first: Client = await aiohttp_client(build_app(settings()))
    db = first.app[DB]
    admin = {"Authorization": f"Bearer {await create_token(db, 'admin')}"}
    ann = await add_agent(db, "Ann", "ann@example.com", "long password", "agent", ["support"])
    ann_h = {"Authorization": f"Bearer {await create_token(db, 'agent', ann.id)}"}
    await call(first, "POST", "/api/v1/agents/me/presence", ann_h, {"presence": "available"})
    timed = int((await call(first, "POST", "/api/v1/inbound", admin,
                            {"identity": "phone:+14155550301", "text": "hi"}, expect=201))["conversation"]["id"])
    await eventually(lambda: _offered(first, ann_h, timed), what="the offer")
    await call(first, "POST", f"/api/v1/conversations/{timed}/accept", ann_h)
    until = format_time(utcnow() + timedelta(seconds=2))
    await call(first, "POST", f"/api/v1/conversations/{timed}/snooze", ann_h, {"until": until})
    replied = int((await call(first, "POST", "/api/v1/inbound", admin,
                              {"identity": "phone:+14155550302", "text": "hello"}, expect=201))["conversation"]["id"])
    await eventually(lambda: _offered(first, ann_h, replied), what="the second offer")
    await call(first, "POST", f"/api/v1/conversations/{replied}/accept", ann_h)
    await call(first, "POST", f"/api/v1/conversations/{replied}/snooze", ann_h)
    await first.close()  # the process that snoozed them is gone before either is due

    second: Client = await aiohttp_client(build_app(settings()))
    # The time comes: the new process wakes it from the store and offers it to Ann (Available, kept in the store).
    await eventually(lambda: _offered(second, ann_h, timed), within=20, what="the timed snooze woke as an offer")
    # The customer writes through this process: the other snoozed conversation wakes too.
    await call(second, "POST", "/api/v1/inbound", admin, {"identity": "phone:+14155550302", "text": "news?"},
               expect=201)
    await eventually(lambda: _offered(second, ann_h, replied), within=20, what="the customer's reply woke it")
    convs = {c["id"]: c for c in (await call(second, "GET", "/api/v1/conversations", admin))["items"]}
    assert convs[timed]["status"] == "open" and convs[replied]["status"] == "open"


async def _offered(client: Client, headers: dict[str, str], conv: int) -> bool:
    items = (await call(client, "GET", "/api/v1/offers", headers))["items"]
    return conv in [o["conversation_id"] for o in items]
