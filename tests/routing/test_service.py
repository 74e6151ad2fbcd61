"""Routing wired into the hub, through the real app: inbound -> queue -> offer -> accept -> resolve, rules,
reject, transfer, stats, and re-queueing after a restart. Memory and Redis backends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.history import decisions
from hub.history.db import Database, Tx
from hub.keys import BUS, DB, ROUTER
from hub.routing.events import (
    Assigned,
    CallbackRequested,
    Escalated,
    FirstResponded,
    Offered,
    OfferTimedOut,
    Overflowed,
    PresenceChanged,
    Queued,
    Rejected,
    Resolved,
    RoutingEvent,
    SlaBreached,
    Transferred,
    Unparked,
    WrapUpEnded,
)
from tests.waiting import eventually

Client = TestClient[Any, Any]
T = TypeVar("T")
QUEUES = json.dumps({"support": {"title": "Support", "offer_timeout": 30},
                     "sales": {"title": "Sales", "offer_timeout": 30}})
RULES = json.dumps([{"queue": "sales", "keywords": ["price", "quote"], "name": "sales words"}])


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES=QUEUES, HUB_ROUTING__RULES=RULES,
                         HUB_ROUTING__BACKEND=backend, HUB_ROUTING__KEY_PREFIX=prefix,
                         HUB_ROUTING__TICK_SECONDS="0.1")


async def agent(client: Client, name: str, queues: list[str]) -> tuple[int, dict[str, str]]:
    a = await add_agent(client.app[DB], name, f"{name.lower()}@example.com", "long password", "agent", queues)
    return a.id, {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', a.id)}"}


async def post(client: Client, path: str, headers: dict[str, str], body: Any = None, expect: int = 200) -> Any:
    resp = await client.post(path, json=body if body is not None else {}, headers=headers)
    data = await resp.json()
    assert resp.status == expect, (path, resp.status, data)
    return data


async def get(client: Client, path: str, headers: dict[str, str]) -> Any:
    resp = await client.get(path, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def inbound(client: Client, admin: dict[str, str], identity: str, text: str) -> Any:
    return await post(client, "/api/v1/inbound", admin, {"identity": identity, "text": text}, expect=201)


async def test_offer_accept_resolve(client: Client, admin_headers: dict[str, str]) -> None:
    alice, alice_h = await agent(client, "Alice", ["support"])
    sub = client.app[BUS].subscribe()
    await post(client, "/api/v1/agents/me/presence", alice_h, {"presence": "available"})
    first = await inbound(client, admin_headers, "phone:+14155550100", "my parcel is late, where is it?")
    conv = first["conversation"]["id"]
    offers = (await get(client, "/api/v1/offers", alice_h))["items"]
    assert [o["conversation_id"] for o in offers] == [conv]
    assert offers[0]["preview"] == "my parcel is late, where is it?" and offers[0]["queue"] == "support"
    assert offers[0]["customer"]["identities"][0]["id"] == "phone:+14155550100"
    accepted = await post(client, f"/api/v1/conversations/{conv}/accept", alice_h)
    assert accepted["status"] == "assigned" and accepted["agent_id"] == alice
    await post(client, f"/api/v1/conversations/{conv}/accept", alice_h, expect=409)
    agents = (await get(client, "/api/v1/agents", admin_headers))["items"]
    assert agents[0]["presence"] == "available" and agents[0]["load"].get("chat") == 1
    mine = await get(client, f"/api/v1/conversations?agent={alice}", alice_h)
    assert [c["id"] for c in mine["items"]] == [conv]
    await post(client, f"/api/v1/conversations/{conv}/resolve", alice_h)
    agents = (await get(client, "/api/v1/agents", admin_headers))["items"]
    assert agents[0]["load"].get("chat", 0) == 0
    types = [sub.queue.get_nowait().type for _ in range(sub.queue.qsize())]
    for expected in ("routing.presence", "conversation.opened", "message.created", "routing.queued",
                     "routing.offered", "routing.assigned", "conversation.resolved", "routing.resolved"):
        assert expected in types, (expected, types)
    assert types.index("routing.offered") < types.index("routing.assigned") < types.index("routing.resolved")


async def test_rules_pick_the_queue(client: Client, admin_headers: dict[str, str]) -> None:
    sales = await inbound(client, admin_headers, "email:raj@example.com", "Could I get a quote for 50 seats?")
    support = await inbound(client, admin_headers, "email:ann@example.com", "My login does not work")
    assert sales["conversation"]["queue"] == "sales"
    assert support["conversation"]["queue"] == "support"
    queues = {q["name"]: q for q in (await get(client, "/api/v1/queues", admin_headers))["items"]}
    assert queues["sales"]["waiting"] == 1 and queues["support"]["waiting"] == 1
    assert queues["sales"]["title"] == "Sales"


async def test_reject_offers_the_next_agent_and_transfer(client: Client, admin_headers: dict[str, str]) -> None:
    alice, alice_h = await agent(client, "Alice", ["support"])
    _bob, bob_h = await agent(client, "Bob", ["support", "sales"])
    await post(client, "/api/v1/agents/me/presence", alice_h, {"presence": "available"})
    await post(client, "/api/v1/agents/me/presence", bob_h, {"presence": "available"})
    conv = (await inbound(client, admin_headers, "telegram:1111111", "hello"))["conversation"]["id"]
    first_offer = await eventually(lambda: _offered(client, conv))
    first_h, second_h = (alice_h, bob_h) if first_offer == alice else (bob_h, alice_h)
    await post(client, f"/api/v1/conversations/{conv}/reject", first_h)
    second = await eventually(lambda: _offered(client, conv))
    assert second != first_offer
    await post(client, f"/api/v1/conversations/{conv}/accept", second_h)
    moved = await post(client, f"/api/v1/conversations/{conv}/transfer", second_h,
                       {"queue": "sales", "note": "wants pricing"})
    assert moved["queue"] == "sales" and moved["status"] == "open" and moved["agent_id"] is None
    detail = await get(client, f"/api/v1/conversations/{conv}", admin_headers)
    assert detail["messages"][-1]["kind"] == "note" and detail["messages"][-1]["text"] == "wants pricing"
    err = await post(client, f"/api/v1/conversations/{conv}/transfer", admin_headers, {"queue": "nope"}, expect=409)
    assert "nope" in err["error"]["message"]
    await post(client, f"/api/v1/conversations/{conv}/transfer", admin_headers, {}, expect=422)


async def _offered(client: Client, conv: int) -> int | None:
    row = await client.app[DB].read(
        lambda tx: tx.one("SELECT offered_to FROM conversations WHERE id = ?", (conv,))
    )
    return int(row["offered_to"]) if row and row["offered_to"] is not None else None


async def test_presence_needs_an_agent(client: Client, admin_headers: dict[str, str]) -> None:
    resp = await client.post("/api/v1/agents/me/presence", json={"presence": "available"}, headers=admin_headers)
    assert resp.status == 400 and "agent" in (await resp.json())["error"]["message"]
    _, h = await agent(client, "Cid", ["support"])
    resp = await client.post("/api/v1/agents/me/presence", json={"presence": "sleeping"}, headers=h)
    assert resp.status == 422


async def test_offer_times_out_to_the_next_agent(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str
) -> None:
    quick = json.dumps({"support": {"offer_timeout": 0.5}, "sales": {}})
    settings = make_settings(db_url, HUB_ROUTING__QUEUES=quick, HUB_ROUTING__BACKEND=backend,
                             HUB_ROUTING__KEY_PREFIX=prefix, HUB_ROUTING__TICK_SECONDS="0.1",
                             HUB_ROUTING__MISSED_OFFERS="1")
    client: Client = await aiohttp_client(build_app(settings))
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    a, a_h = await agent(client, "Alice", ["support"])
    b, b_h = await agent(client, "Bob", ["support"])
    await post(client, "/api/v1/agents/me/presence", a_h, {"presence": "available"})
    conv = (await inbound(client, admin, "webchat:v-1", "hi"))["conversation"]["id"]
    assert await eventually(lambda: _offered(client, conv)) == a
    await post(client, "/api/v1/agents/me/presence", b_h, {"presence": "available"})
    # Alice does not answer: the offer times out, she is set away (missed_offers = 1), Bob gets it.
    assert await eventually(lambda: _is(client, conv, b)) == b
    agents = {x["id"]: x for x in (await get(client, "/api/v1/agents", admin))["items"]}
    assert agents[a]["presence"] == "away"


async def _is(client: Client, conv: int, agent_id: int) -> int | None:
    got = await _offered(client, conv)
    return got if got == agent_id else None


async def test_open_conversations_are_requeued_after_restart(
    aiohttp_client: Any, settings: Settings
) -> None:
    first: Client = await aiohttp_client(build_app(settings))
    admin = {"Authorization": f"Bearer {await create_token(first.app[DB], 'admin')}"}
    conv = (await inbound(first, admin, "phone:+14155550100", "anyone?"))["conversation"]["id"]
    _a, a_h = await agent(first, "Alice", ["support"])
    await first.close()
    second: Client = await aiohttp_client(build_app(settings))  # a new process over the same store
    await post(second, "/api/v1/agents/me/presence", a_h, {"presence": "available"})
    offers = (await get(second, "/api/v1/offers", a_h))["items"]
    assert [o["conversation_id"] for o in offers] == [conv]


async def test_first_response_within_and_after_the_target(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str
) -> None:
    from tests.routing.conftest import FakeClock

    queues = json.dumps({"support": {"title": "Support", "direct": True, "first_response": 60}})
    settings = make_settings(db_url, HUB_ROUTING__QUEUES=queues, HUB_ROUTING__BACKEND=backend,
                             HUB_ROUTING__KEY_PREFIX=prefix, HUB_ROUTING__TICK_SECONDS="0.05")
    client: Client = await aiohttp_client(build_app(settings))
    clock = FakeClock(time.time())
    router = client.app[ROUTER]
    router.clock = router.engine.clock = clock  # the background ticker reads it too: time moves only when told
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    alice, alice_h = await agent(client, "Alice", ["support"])
    await post(client, "/api/v1/agents/me/presence", alice_h, {"presence": "available"})
    sub = client.app[BUS].subscribe()
    seen: list[Any] = []

    async def event(kind: str, conv: int) -> dict[str, Any] | None:
        seen.extend(sub.queue.get_nowait() for _ in range(sub.queue.qsize()))
        return next((e.data for e in seen if e.type == kind and e.data["conversation"] == conv), None)

    quick = (await inbound(client, admin, "webchat:v-1", "hello?"))["conversation"]["id"]
    slow = (await inbound(client, admin, "webchat:v-2", "anyone there?"))["conversation"]["id"]
    clock.advance(30)
    await post(client, f"/api/v1/conversations/{quick}/messages", alice_h, {"text": "a note", "note": True},
               expect=201)  # a note is not a reply
    await asyncio.sleep(0.2)
    assert await event("routing.first_response", quick) is None
    await post(client, f"/api/v1/conversations/{quick}/messages", alice_h, {"text": "Hi, how can I help?"},
               expect=201)
    done = await eventually(lambda: event("routing.first_response", quick))
    assert done == {"conversation": quick, "queue": "support", "agent": alice, "waited": 30.0, "target": 60.0,
                    "within": True}
    clock.advance(31)  # 61 s since arrival: the other conversation is past its target, unanswered
    breach = await eventually(lambda: event("routing.sla_breached", slow))
    assert breach["kind"] == "first_response" and breach["queue"] == "support" and breach["target"] == 60.0
    assert breach["waited"] >= 61.0
    clock.advance(9)
    await post(client, f"/api/v1/conversations/{slow}/messages", alice_h, {"text": "Sorry for the wait"},
               expect=201)
    late = await eventually(lambda: event("routing.first_response", slow))
    assert late["within"] is False and late["waited"] == 70.0
    await post(client, f"/api/v1/conversations/{slow}/messages", alice_h, {"text": "Anything else?"}, expect=201)
    q = (await get(client, "/api/v1/queues", admin))["items"][0]
    assert (q["first_response"], q["responded"], q["responded_in_sla"], q["first_response_breached"]) == (
        60.0, 2, 1, 1)
    assert q["first_response_attainment"] == 0.5
    clock.advance(2)  # routing.stats goes out at most every 2 s, when a figure changed
    stats = await eventually(lambda: _stats_event(seen, sub))
    assert stats["queues"][0]["first_response_attainment"] == 0.5


async def _stats_event(seen: list[Any], sub: Any) -> dict[str, Any] | None:
    seen.extend(sub.queue.get_nowait() for _ in range(sub.queue.qsize()))
    pushed = [e.data for e in seen if e.type == "routing.stats"]
    return pushed[-1] if pushed and pushed[-1]["queues"][0]["responded"] == 2 else None


async def test_a_merge_that_closes_a_conversation_takes_it_out_of_routing(
    client: Client, admin_headers: dict[str, str]
) -> None:
    phone = await inbound(client, admin_headers, "phone:+14155550123", "my order never came")
    mail = await inbound(client, admin_headers, "email:pat@example.com", "same person, writing by email")

    async def waiting() -> int:
        items = (await get(client, "/api/v1/queues", admin_headers))["items"]
        return int(next(q["waiting"] for q in items if q["name"] == "support"))

    assert await waiting() == 2
    survivor = phone["customer"]["id"]
    await post(client, f"/api/v1/customers/{survivor}/merge", admin_headers, {"customer_id": mail["customer"]["id"]})
    closed = await get(client, f"/api/v1/conversations/{mail['conversation']['id']}", admin_headers)
    assert closed["status"] == "resolved"
    await eventually(lambda: _equals(waiting(), 1))
    # The agent who comes on is offered the surviving conversation only.
    _, alice_h = await agent(client, "Alice", ["support"])
    await post(client, "/api/v1/agents/me/presence", alice_h, {"presence": "available"})
    offers = (await get(client, "/api/v1/offers", alice_h))["items"]
    assert [o["conversation_id"] for o in offers] == [phone["conversation"]["id"]]


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


@contextlib.contextmanager
def writes_by_task(db: Database) -> Iterator[list[tuple[asyncio.Task[Any] | None, str]]]:
    """Each write transaction the store is asked for meanwhile, as (the asking task, the write's name): a spy, each
    still runs as it would."""
    calls: list[tuple[asyncio.Task[Any] | None, str]] = []
    write = db.write

    async def counted(fn: Callable[[Tx], T], background: bool = False, order: str = "") -> T:
        calls.append((asyncio.current_task(), fn.__qualname__))
        result: T = await write(fn, background, order)
        return result

    db.write = counted  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        db.write = write  # type: ignore[method-assign]


async def test_a_message_that_opens_a_conversation_no_agent_can_take_now_is_answered_after_one_commit(
    client: Client, admin_headers: dict[str, str]
) -> None:
    """Its queue, priority and first-response deadline commit with the message (the store is routing's truth);
    queueing it changes only the routing state, so nothing is left for a second transaction that the answer would
    wait for. The answer still means queued: the queue counts it at once. A later message joins, one commit too."""
    await agent(client, "Alice", ["support"])  # offline: nobody can take it now
    db = client.app[DB]
    for n, (identity, how) in enumerate([("phone:+14155550100", "opened"), ("phone:+14155550100", "joined"),
                                         ("email:raj@example.com", "opened")], start=1):
        with writes_by_task(db) as writes:
            answer = await inbound(client, admin_headers, identity, f"message {n}")
        assert answer["conversation"]["status"] == "open", answer
        # the request's own writes (the hub's background tasks write meanwhile too, in their own tasks)
        ingest_task = next(task for task, name in writes if name.startswith("Ingest."))
        mine = [name for task, name in writes if task is ingest_task]
        assert mine == ["Ingest.ingest_batch.<locals>.run"], (how, mine)
        queues = {q["name"]: q for q in (await get(client, "/api/v1/queues", admin_headers))["items"]}
        assert queues["support"]["waiting"] == (1 if n < 3 else 2), queues["support"]


async def test_an_offer_made_as_a_conversation_is_queued_is_stored_before_the_answer(
    client: Client, admin_headers: dict[str, str]
) -> None:
    """With an agent free, queueing decides an offer, and the offer is the store's to hold (reports, the wall, a
    rebuilt state): that write is routing's own, after the message's commit, and the answer waits for it."""
    alice, alice_h = await agent(client, "Alice", ["support"])
    await post(client, "/api/v1/agents/me/presence", alice_h, {"presence": "available"})
    db = client.app[DB]
    with writes_by_task(db) as writes:
        answer = await inbound(client, admin_headers, "telegram:1111111", "hello")
    ingest_task = next(task for task, name in writes if name.startswith("Ingest."))
    assert [name for task, name in writes if task is ingest_task] == [
        "Ingest.ingest_batch.<locals>.run", "Router._apply.<locals>.write"]
    assert await _offered(client, answer["conversation"]["id"]) == alice


def _every_event(conversation: int, agent_id: int) -> list[RoutingEvent]:
    """One of each routing event (two of Resolved and SlaBreached, whose writes depend on a field)."""
    c, a, q = conversation, agent_id, "support"
    return [
        Queued(c, q, 0, None), Offered(c, a, q, "sms", 1.0), Assigned(c, a, q, "sms", 2.0),
        Rejected(c, a, q), OfferTimedOut(c, a, q), PresenceChanged(a, "away", "agent"), Escalated(c, q, 1),
        Overflowed(c, q, "sales", 1), CallbackRequested(c, q, 1), Transferred(c, q, a, "sales", None, "note"),
        Resolved(c, q, None, None), Resolved(c, q, a, None), Resolved(c, q, None, None, snoozed=True),
        WrapUpEnded(a), Unparked(c, q), FirstResponded(c, q, a, 3.0, 60.0, True),
        SlaBreached(c, q, "first_response", 60.0, 61.0), SlaBreached(c, q, "answer", 60.0, 61.0),
    ]


async def test_a_routing_decision_skips_the_store_only_when_it_has_nothing_to_write(db: Database) -> None:
    """Router._apply asks the store for no transaction when its decisions write nothing (a conversation queued with
    no agent free): that list must hold exactly the events whose store writes run no statement."""
    from hub.channels.base import IngestResult
    from hub.events import MemoryBus
    from hub.ingest import Ingest
    from hub.metrics import Metrics
    from hub.model import Identity, Inbound
    from hub.routing.service import _apply_to_store, _writes_to_store
    from tests.counting import CountingTx

    settings = Settings()
    agent_row = await add_agent(db, "Alice", "alice@example.com", "long password", "agent", [])
    opened = await Ingest(db, settings, MemoryBus(), Metrics()).ingest(
        Inbound(channel="sms", identity=Identity("phone", "+14155550100"), text="hi"))
    assert isinstance(opened, IngestResult)
    events = _every_event(opened.conversation.id, agent_row.id)
    assert {type(e) for e in events} == set(_subclasses(RoutingEvent)), "an event is missing here"
    for e in events:
        def run(tx: Tx, e: RoutingEvent = e) -> int:
            counting = CountingTx(tx)
            _apply_to_store(counting, [e], "2026-12-08T00:00:00.000000Z")  # type: ignore[arg-type]
            decisions.record(counting, [e], "2026-12-08T00:00:00.000000Z", {"support": 30.0})  # type: ignore[arg-type]
            return counting.statements

        assert (await db.write(run) > 0) == _writes_to_store(e), e


def _subclasses(cls: type) -> list[type]:
    return [s for sub in cls.__subclasses__() for s in (sub, *_subclasses(sub))]
