"""Two hub processes on one PostgreSQL store and one real Redis event bus: both run rules and send webhooks, and
each event still acts once (one reply per message, one run per rule and event, one delivery per event)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestServer

from hub.config import Settings
from hub.keys import DB
from tests.api.client import Api, start_api
from tests.waiting import eventually
from tests.webhooks.receiver import Receiver

MESSAGES = 24


async def test_two_processes_one_action_per_event(
    make_settings: Callable[..., Settings], pg_url: str, redis_url: str, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    env = {"HUB_EVENTS__BACKEND": "redis", "HUB_EVENTS__REDIS_URL": redis_url,
           "HUB_EVENTS__CHANNEL": f"hub:test:{uuid.uuid4().hex}:events",
           "HUB_AUTOMATION__POLL_INTERVAL_SECONDS": "0.05", "HUB_WEBHOOKS__POLL_INTERVAL_SECONDS": "0.05",
           "HUB_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true"}
    a: Api = await start_api(aiohttp_client, make_settings(pg_url, **env))
    b: Api = await start_api(aiohttp_client, make_settings(pg_url, **env))
    receiver = Receiver()
    server: TestServer = await aiohttp_server(receiver.app(), host="127.0.0.1")
    sub = await a.call("POST", "/api/v1/webhooks", "/api/v1/webhooks",
                       {"url": f"http://127.0.0.1:{server.port}/hook", "events": ["message.received"]}, expect=201)
    receiver.secret = sub["secret"]
    rule = await a.call("POST", "/api/v1/automation/rules", "/api/v1/automation/rules", {
        "name": "Ack", "event": "message.received", "conditions": [],
        "actions": [{"type": "send_reply", "value": "Thanks, we are on it"}, {"type": "add_label", "value": "acked"}],
    }, expect=201)

    async def send(i: int) -> None:
        api = a if i % 2 else b
        await api.call("POST", "/api/v1/inbound", "/api/v1/inbound",
                       {"identity": f"phone:+1415555{i:04d}", "text": f"hello {i}", "external_id": f"two-{i}"},
                       expect=201)

    await asyncio.gather(*(send(i) for i in range(MESSAGES)))

    async def all_done() -> bool:
        row = await a.client.app[DB].read(lambda tx: tx.one(
            "SELECT COUNT(*) AS n FROM hub_events WHERE status = 'pending'"))
        return row is not None and int(row["n"]) == 0 and len(receiver.accepted) >= MESSAGES

    await eventually(all_done, what="every event handled and delivered")
    replies = await a.client.app[DB].read(lambda tx: tx.all(
        "SELECT conversation_id, COUNT(*) AS n FROM messages WHERE direction = 'out' GROUP BY conversation_id"))
    assert len(replies) == MESSAGES and all(int(r["n"]) == 1 for r in replies)
    shown = await b.call("GET", "/api/v1/automation/rules/{id}", f"/api/v1/automation/rules/{rule['id']}")
    assert shown["runs"] == MESSAGES
    await asyncio.sleep(0.3)  # anything sent twice would have arrived by now
    per_delivery = Counter(d for d, _ in receiver.accepted)
    assert len(per_delivery) == MESSAGES and set(per_delivery.values()) == {1}
    # Every event was logged once: opened, received, and the rule's reply sent.
    handled = await a.client.app[DB].read(lambda tx: tx.one("SELECT COUNT(*) AS n FROM hub_events"))
    assert handled is not None and int(handled["n"]) == 2 * MESSAGES + MESSAGES  # opened + received + sent
