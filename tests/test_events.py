"""The event bus over a real Redis: what one hub process publishes reaches the others' subscribers, once each."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from hub.config import load_settings
from hub.events import Event, MemoryBus, RedisBus, Subscription, open_bus
from hub.keys import AUTH, BUS


@pytest.fixture
async def buses(redis_url: str) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    channel = f"hub:test:{uuid.uuid4().hex}:events"  # one channel per test: runs never hear each other
    pair = (RedisBus(Redis.from_url(redis_url, client_name=f"hub-test-a-{channel}"), channel),
            RedisBus(Redis.from_url(redis_url, client_name=f"hub-test-b-{channel}"), channel))
    for bus in pair:
        await bus.start()
        assert bus.ready.is_set()
    yield pair
    for bus in pair:
        await bus.close()


async def take(sub: Subscription, wait: float = 10.0) -> Event:
    async def first() -> Event:
        async for event in sub:
            return event
        raise AssertionError("subscription ended")

    return await asyncio.wait_for(first(), wait)


async def test_an_event_reaches_every_process_once(buses: tuple[RedisBus, RedisBus]) -> None:
    a, b = buses
    on_a, on_b = a.subscribe(), b.subscribe()
    await a.publish(Event("message.created", {"message": {"id": 7, "text": "héllo"}}))
    got = await take(on_b)
    assert (got.type, got.data) == ("message.created", {"message": {"id": 7, "text": "héllo"}})
    mine = await take(on_a)
    assert mine.data["message"]["id"] == 7
    await b.publish(Event("typing", {"conversation_id": 3}))
    assert (await take(on_a)).type == "typing", "nothing of A's own came back to it a second time before this"
    await asyncio.sleep(0.3)
    assert on_a.queue.empty() and not on_a.lagged  # type: ignore[attr-defined]


async def test_garbage_on_the_channel_is_ignored(buses: tuple[RedisBus, RedisBus], redis_url: str) -> None:
    a, b = buses
    on_b = b.subscribe()
    client = Redis.from_url(redis_url)
    await client.publish(a.channel, b"not json")
    await client.publish(a.channel, b'{"type": "x"}')
    await client.aclose()
    await a.publish(Event("conversation.opened", {"conversation": {"id": 1}}))
    assert (await take(on_b)).type == "conversation.opened"


async def test_a_lost_subscription_reconnects_and_marks_subscribers_lagged(
    buses: tuple[RedisBus, RedisBus], redis_url: str
) -> None:
    a, b = buses
    on_b = b.subscribe()
    admin = Redis.from_url(redis_url)
    killed = 0
    for c in await admin.client_list(_type="pubsub"):
        if c.get("name") == f"hub-test-b-{b.channel}":
            killed += await admin.client_kill_filter(_id=c["id"])
    await admin.aclose()
    assert killed == 1

    deadline = asyncio.get_running_loop().time() + 15
    while not (b.ready.is_set() and on_b.lagged):  # the reader notices, resubscribes and flags its subscribers
        assert asyncio.get_running_loop().time() < deadline, "did not resubscribe"
        await asyncio.sleep(0.05)
    await a.publish(Event("message.created", {"n": 1}))
    assert (await take(on_b)).data == {"n": 1}


def test_config_chooses_the_backend() -> None:
    assert isinstance(open_bus(load_settings(None, environ={})), MemoryBus)
    s = load_settings(None, environ={"HUB_EVENTS__BACKEND": "redis", "HUB_EVENTS__CHANNEL": "hub:x:events"})
    bus = open_bus(s)
    assert isinstance(bus, RedisBus) and bus.channel == "hub:x:events"


async def test_a_subscriber_is_offered_only_what_it_wants_and_lags_only_on_that() -> None:
    bus = MemoryBus(buffer=2)
    typing_only = bus.subscribe(lambda e: e.type == "typing")
    everything = bus.subscribe()
    for n in range(5):
        await bus.publish(Event("message.created", {"n": n}))
    await bus.publish(Event("typing", {"n": 5}))
    assert (await take(typing_only)).data == {"n": 5}
    assert typing_only.queue.empty() and not typing_only.lagged, "five unwanted events neither queued nor dropped"
    assert everything.lagged and [(await take(everything)).data["n"] for _ in range(2)] == [4, 5]


async def test_an_inbound_message_wakes_none_of_the_hubs_own_subscribers_but_automation(
    client: TestClient[Any, Any],
) -> None:
    bus = client.app[BUS]
    assert isinstance(bus, MemoryBus)
    subs = list(bus.subscribers)
    assert len(subs) == 4  # routing, automation, snooze and the token cache: no console socket is open
    inbound = Event("message.created", {"message": {"direction": "in", "kind": "text", "agent_id": None},
                                        "conversation": {"status": "open"}})
    woken = [s for s in subs if s.wants is None or s.wants(inbound)]
    assert len(woken) == 1, "only automation's pass runs for every message"
    reply = Event("message.created", {"message": {"direction": "out", "kind": "text", "agent_id": 3},
                                      "conversation": {"status": "assigned"}})
    assert sum(1 for s in subs if s.wants is None or s.wants(reply)) == 2, "routing stops the first-response clock"
    snoozed = Event("message.created", {"message": {"direction": "in", "kind": "text", "agent_id": None},
                                        "conversation": {"status": "snoozed"}})
    assert sum(1 for s in subs if s.wants is None or s.wants(snoozed)) == 2, "the snooze waker looks now"


async def test_a_lagging_token_cache_forgets_on_the_next_event_of_any_kind(
    client: TestClient[Any, Any], admin_headers: dict[str, str],
) -> None:
    auth, bus = client.app[AUTH], client.app[BUS]
    assert isinstance(bus, MemoryBus)
    assert (await client.get("/api/v1/tokens", headers=admin_headers)).status == 200
    assert auth._cache, "the admin token's verification is remembered"
    bus.mark_lagged()  # as after a Redis reconnect: a revocation may have been missed
    await bus.publish(Event("message.created", {"message": {"direction": "in"}}))
    for _ in range(100):
        if not auth._cache:
            break
        await asyncio.sleep(0.01)
    assert not auth._cache, "every remembered token is asked of the store again"
