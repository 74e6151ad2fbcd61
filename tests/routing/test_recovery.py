"""The routing state (memory or Redis) is derived from the store and comes back from it after every fault: a
Redis outage or wipe, a hub restart, a process that died between the two writes of a decision. After each, every
open conversation is with exactly one agent who can see it or waits in a queue, every agent's load is what the store
says they hold, and presence survives. In-process here (fast); tests/routing/test_faults.py kills real processes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.keys import DB, ROUTER
from hub.routing.reconciler import audit
from tests.routing.redis_server import PrivateRedis
from tests.waiting import eventually

Client = TestClient[Any, Any]
QUEUES = json.dumps({"support": {"title": "Support", "offer_timeout": 30}})


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.close()


def routing_env(backend: str, redis_url: str, prefix: str) -> dict[str, str]:
    return {"HUB_ROUTING__QUEUES": QUEUES, "HUB_ROUTING__BACKEND": backend, "HUB_ROUTING__REDIS_URL": redis_url,
            "HUB_ROUTING__KEY_PREFIX": prefix, "HUB_ROUTING__TICK_SECONDS": "0.1",
            "HUB_ROUTING__RECONCILE_SECONDS": "0.2",
            "HUB_ROUTING__DEFAULT_CAPACITY": json.dumps({"voice": 1, "chat": 2, "email": 5})}


async def agent(client: Client, name: str) -> tuple[int, dict[str, str]]:
    a = await add_agent(client.app[DB], name, f"{name.lower()}@example.com", "long password", "agent", ["support"])
    return a.id, {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', a.id)}"}


async def post(client: Client, path: str, headers: dict[str, str], body: Any = None, expect: int = 200) -> Any:
    resp = await client.post(path, json=body if body is not None else {}, headers=headers)
    data = await resp.json(content_type=None)
    assert resp.status == expect, (path, resp.status, data)
    return data


async def agent_row(client: Client, admin: dict[str, str], agent_id: int) -> dict[str, Any]:
    resp = await client.get("/api/v1/agents", headers=admin)
    assert resp.status == 200, await resp.text()
    return next(a for a in (await resp.json())["items"] if a["id"] == agent_id)


async def open_chat(client: Client, admin: dict[str, str], n: int) -> int:
    body = {"identity": f"phone:+1415555{n:04d}", "text": f"help {n}"}
    return int((await post(client, "/api/v1/inbound", admin, body, expect=201))["conversation"]["id"])


async def consistent(client: Client) -> list[str]:
    return await audit(client.app[DB], client.app[ROUTER].state)


async def test_resolve_during_a_redis_outage_frees_the_slot(
    aiohttp_client: Any, make_settings: Callable[..., Settings], private_redis: PrivateRedis
) -> None:
    """Seen: the resolve answered 500 and the agent's slot stayed taken forever; the retry got 409."""
    client: Client = await aiohttp_client(build_app(make_settings(
        **routing_env("redis", private_redis.url, f"t:{uuid.uuid4().hex[:8]}:"))))
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    ann, ann_h = await agent(client, "Ann")
    await post(client, "/api/v1/agents/me/presence", ann_h, {"presence": "available"})
    first, second = await open_chat(client, admin, 1), await open_chat(client, admin, 2)
    for conv in (first, second):
        await post(client, f"/api/v1/conversations/{conv}/accept", ann_h)
    third = await open_chat(client, admin, 3)  # waits: Ann is full (chat capacity 2)

    private_redis.stop()
    resolved = await post(client, f"/api/v1/conversations/{first}/resolve", ann_h)
    assert resolved["status"] == "resolved"
    refused = await post(client, f"/api/v1/conversations/{third}/accept", ann_h, expect=503)
    assert "retry" in refused["error"]["message"]
    private_redis.start()  # empty: Redis restarted without persistence

    async def offered_the_waiting_one() -> bool:
        resp = await client.get("/api/v1/offers", headers=ann_h)
        return resp.status == 200 and [o["conversation_id"] for o in (await resp.json())["items"]] == [third]

    await eventually(offered_the_waiting_one, within=15, what="the freed slot offered the waiting conversation")
    row = await agent_row(client, admin, ann)
    assert row["presence"] == "available" and row["load"].get("chat") == 2, row  # `second` held, `third` offered
    assert await consistent(client) == []


async def test_a_wiped_redis_is_rebuilt_from_the_store(
    aiohttp_client: Any, make_settings: Callable[..., Settings], private_redis: PrivateRedis
) -> None:
    """Seen: every agent offline, loads reset to zero while agents held chats, file-only queues unknown."""
    client: Client = await aiohttp_client(build_app(make_settings(
        **routing_env("redis", private_redis.url, f"t:{uuid.uuid4().hex[:8]}:"))))
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    ann, ann_h = await agent(client, "Ann")
    await post(client, "/api/v1/agents/me/presence", ann_h, {"presence": "available"})
    held = await open_chat(client, admin, 1)
    await post(client, f"/api/v1/conversations/{held}/accept", ann_h)
    offered = await open_chat(client, admin, 2)

    private_redis.stop()
    private_redis.start()

    async def rebuilt() -> bool:
        row = await agent_row(client, admin, ann)
        return row["presence"] == "available" and row["load"].get("chat") == 2

    await eventually(rebuilt, within=15, what="presence and load back from the store")
    assert await consistent(client) == []
    # The rebuilt state decides as before: the offer stands and can be accepted, and a third chat waits.
    await post(client, f"/api/v1/conversations/{offered}/accept", ann_h)
    waiting = await open_chat(client, admin, 3)
    resp = await client.get("/api/v1/queues", headers=admin)
    assert [q["waiting"] for q in (await resp.json())["items"] if q["name"] == "support"] == [1]
    await post(client, f"/api/v1/conversations/{held}/resolve", ann_h)
    resp = await client.get("/api/v1/offers", headers=ann_h)
    assert [o["conversation_id"] for o in (await resp.json())["items"]] == [waiting]


@pytest.fixture
async def restartable(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str
) -> AsyncIterator[Callable[[], Any]]:
    settings_env = routing_env(backend, "redis://127.0.0.1:6379/0", prefix)

    async def start() -> Client:
        return await aiohttp_client(build_app(make_settings(db_url, **settings_env)))

    yield start


async def test_a_restart_keeps_presence_and_load(restartable: Callable[[], Any]) -> None:
    """Seen: a restart set every agent offline; with memory routing it also forgot who held what."""
    client: Client = await restartable()
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    ann, ann_h = await agent(client, "Ann")
    await post(client, "/api/v1/agents/me/presence", ann_h, {"presence": "available"})
    held = await open_chat(client, admin, 1)
    await post(client, f"/api/v1/conversations/{held}/accept", ann_h)
    offered = await open_chat(client, admin, 2)
    await client.close()

    client = await restartable()
    row = await agent_row(client, admin, ann)
    assert row["presence"] == "available" and row["load"].get("chat") == 2, row
    assert await consistent(client) == []
    await post(client, f"/api/v1/conversations/{offered}/accept", ann_h)
    await post(client, f"/api/v1/conversations/{held}/resolve", ann_h)
    assert (await agent_row(client, admin, ann))["load"].get("chat") == 1


@pytest.mark.parametrize("point", ["accept.after_state", "reject.after_state", "transfer.after_state",
                                   "timeout.after_state", "resolve.after_store", "presence.after_store",
                                   "enqueue.before_state", "enqueue.after_state", "snooze.before_release",
                                   "wake.after_store"])
async def test_a_decision_cut_between_its_two_writes_is_repaired(
    point: str, aiohttp_client: Any, make_settings: Callable[..., Settings], backend: str, prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operation stops at the fail point (as if the process died there, without killing this one); once the
    fault ends the reconciler brings state and store together again, whichever way the cut left them."""
    env = routing_env(backend, "redis://127.0.0.1:6379/0", prefix)
    env["HUB_ROUTING__QUEUES"] = json.dumps({"support": {"offer_timeout": 1}, "sales": {"offer_timeout": 30}})
    env["HUB_ROUTING__RECONCILE_SECONDS"] = "1000"  # the passes below are the test's own
    client: Client = await aiohttp_client(build_app(make_settings(**env)))
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    # Two agents, so a conversation let go by one is offered to the other at once (the state moves on).
    headers = {}
    for name in ("Ann", "Bob"):
        aid, headers[aid] = await agent(client, name)
        await post(client, "/api/v1/agents/me/presence", headers[aid], {"presence": "available"})
    conv = await open_chat(client, admin, 1)
    offered = await client.app[DB].read(
        lambda tx: tx.one("SELECT offered_to FROM conversations WHERE id = ?", (conv,)))
    ann_h = headers[int(offered["offered_to"])]  # whoever was offered it first
    if point in ("transfer.after_state", "resolve.after_store", "snooze.before_release", "wake.after_store"):
        await post(client, f"/api/v1/conversations/{conv}/accept", ann_h)
    if point == "wake.after_store":
        await post(client, f"/api/v1/conversations/{conv}/snooze", ann_h)

    monkeypatch.setenv("HUB_FAIL_POINTS", f"{point}:raise")
    if point == "accept.after_state":
        await post(client, f"/api/v1/conversations/{conv}/accept", ann_h, expect=500)
    elif point == "reject.after_state":
        await post(client, f"/api/v1/conversations/{conv}/reject", ann_h, expect=500)
    elif point == "transfer.after_state":
        await post(client, f"/api/v1/conversations/{conv}/transfer", admin, {"queue": "sales"}, expect=500)
    elif point == "timeout.after_state":
        router = client.app[ROUTER]
        first = int(offered["offered_to"])
        await eventually(lambda: _offer_gone(router, conv, first), within=10, what="the offer timed out")
    elif point == "resolve.after_store":
        await post(client, f"/api/v1/conversations/{conv}/resolve", ann_h, expect=500)
    elif point == "presence.after_store":
        await post(client, "/api/v1/agents/me/presence", ann_h, {"presence": "away"}, expect=500)
    elif point == "snooze.before_release":  # snoozed in the store, still held (and counted) by routing
        await post(client, f"/api/v1/conversations/{conv}/snooze", ann_h, expect=500)
    elif point == "wake.after_store":  # open in the store again, not yet back in routing
        resp = await client.delete(f"/api/v1/conversations/{conv}/snooze", headers=ann_h)
        assert resp.status == 500, await resp.text()
    elif point in ("enqueue.before_state", "enqueue.after_state"):
        # The message is stored and acknowledged all the same: routing is not the inbound path's to fail.
        await post(client, "/api/v1/inbound", admin, {"identity": "phone:+14155550999", "text": "hi"}, expect=201)
    assert await consistent(client), "the cut left state and store apart (else this test proves nothing)"
    monkeypatch.delenv("HUB_FAIL_POINTS")

    async def repaired() -> bool:
        await client.app[ROUTER].reconciler.run()
        return not await consistent(client)

    await eventually(repaired, within=15, what=f"state and store agree again after {point}")


async def _offer_gone(router: Any, conversation: int, agent: int) -> bool:
    view = await router.state.conversation(conversation)
    return view is None or view.state != "offered" or view.agent != agent


async def test_a_pass_never_brings_back_a_conversation_that_moved_on(
    aiohttp_client: Any, make_settings: Callable[..., Settings], backend: str, prefix: str
) -> None:
    """Seen: the 30 s sweep read the open conversations, then looked each one up in Redis; those resolved in
    between were queued again as ghosts and offered to agents who could not see them, until missed offers set
    every agent away. Here passes run back to back while an agent resolves conversation after conversation."""
    from hub.keys import BUS

    env = routing_env(backend, "redis://127.0.0.1:6379/0", prefix)
    env["HUB_ROUTING__QUEUES"] = json.dumps({"support": {"direct": True}})
    env["HUB_ROUTING__DEFAULT_CAPACITY"] = json.dumps({"voice": 1, "chat": 100, "email": 5})
    env["HUB_ROUTING__RECONCILE_SECONDS"] = "1000"
    client: Client = await aiohttp_client(build_app(make_settings(**env)))
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    _, ann_h = await agent(client, "Ann")
    await post(client, "/api/v1/agents/me/presence", ann_h, {"presence": "available"})
    convs = [await open_chat(client, admin, n) for n in range(40)]
    sub = client.app[BUS].subscribe()
    stop = False

    async def reconcile() -> list[Any]:
        passes = []
        while not stop:
            passes.append(await client.app[ROUTER].reconciler.run())
            await asyncio.sleep(0)
        return passes

    passes = asyncio.create_task(reconcile())
    for conv in convs:
        await post(client, f"/api/v1/conversations/{conv}/resolve", ann_h)
    stop = True
    done = await passes
    assert len(done) > 1
    assert [r for r in done if r.total()] == [], "no fault: nothing to repair"
    await client.app[ROUTER].reconciler.run()
    resolved: set[int] = set()
    ghosts = []
    while not sub.queue.empty():
        e = sub.queue.get_nowait()
        if e.type == "conversation.resolved":
            resolved.add(e.data["conversation"]["id"])
        elif e.type.startswith("routing.") and e.data.get("conversation") in resolved and e.type != "routing.resolved":
            ghosts.append((e.type, e.data))
    sub.close()
    assert resolved == set(convs)
    assert ghosts == []
    assert await client.app[ROUTER].state.routed() == []
    assert await consistent(client) == []


async def test_one_pass_at_a_time_across_processes(
    aiohttp_client: Any, make_settings: Callable[..., Settings], prefix: str
) -> None:
    """With Redis, a pass runs only where the lock was taken; the lock expires, so a process killed mid-pass
    does not stop the others for long."""
    from redis.asyncio import Redis

    env = routing_env("redis", "redis://127.0.0.1:6379/0", prefix)
    env["HUB_ROUTING__RECONCILE_SECONDS"] = "1000"  # no pass of its own in the background
    client: Client = await aiohttp_client(build_app(make_settings(**env)))
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        await redis.set(prefix + "reconcile:lock", "another process", px=400)
        assert await client.app[ROUTER].reconciler.run() is None
        await eventually(lambda: _unlocked(redis, prefix), within=5, what="the lock expired")
        assert await client.app[ROUTER].reconciler.run() is not None
        assert not await redis.exists(prefix + "reconcile:lock"), "released after the pass"
    finally:
        await redis.aclose()


async def _unlocked(redis: Any, prefix: str) -> bool:
    return not await redis.exists(prefix + "reconcile:lock")


async def _wipe(prefix: str) -> None:
    """Redis lost this hub's keys (a restart without persistence, a flush) while the hub was down."""
    from redis.asyncio import Redis

    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = [k async for k in redis.scan_iter(f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def wall_now(client: Client, admin: dict[str, str], queue: str = "support") -> dict[str, Any]:
    resp = await client.get("/api/v1/wall", headers=admin)
    assert resp.status == 200, await resp.text()
    return next(q["now"] for q in (await resp.json())["queues"] if q["name"] == queue)


async def test_a_rebuild_counts_what_agents_hold_before_offering_more(
    restartable: Callable[[], Any], backend: str, prefix: str
) -> None:
    """Seen: after a restart an agent holding their whole capacity was offered one more (3 chats of 2): the rebuild
    queued the conversations that waited (in the order they arrived) before it counted what the store says each
    agent holds, so an older one that waited went to an agent whose load still read 0."""
    client: Client = await restartable()
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    ann, ann_h = await agent(client, "Ann")
    for presence in ("available", "away"):  # known to routing, and away while three chats arrive
        await post(client, "/api/v1/agents/me/presence", ann_h, {"presence": presence})
    _waiting, *held = [await open_chat(client, admin, n) for n in (1, 2, 3)]
    for conv in held:  # the two later ones go to Ann; the oldest waits, as she is full
        await post(client, f"/api/v1/conversations/{conv}/transfer", admin, {"agent_id": ann})
    await post(client, "/api/v1/agents/me/presence", ann_h, {"presence": "available"})
    for conv in held:
        await post(client, f"/api/v1/conversations/{conv}/accept", ann_h)
    before = await wall_now(client, admin)
    assert (before["waiting"], before["busy_agents"]) == (1, 1), before
    await client.close()
    if backend == "redis":
        await _wipe(prefix)

    client = await restartable()
    row = await agent_row(client, admin, ann)
    assert row["presence"] == "available" and row["load"] == {"chat": 2}, row
    resp = await client.get("/api/v1/offers", headers=ann_h)
    assert (await resp.json())["items"] == [], "offered beyond capacity"
    after = await wall_now(client, admin)
    assert (after["waiting"], after["busy_agents"]) == (1, 1), after
    assert await consistent(client) == []
    await post(client, f"/api/v1/conversations/{held[0]}/resolve", ann_h)
    assert (await agent_row(client, admin, ann))["load"].get("chat", 0) <= 2
    assert await consistent(client) == []


COUNTERS = ("offers_accepted", "offers_rejected", "offers_timed_out", "answered", "abandoned", "sla_attainment",
            "responded", "responded_in_sla", "first_response_breached")


async def queue_row(client: Client, admin: dict[str, str], queue: str = "support") -> dict[str, Any]:
    resp = await client.get("/api/v1/queues", headers=admin)
    assert resp.status == 200, await resp.text()
    return next(q for q in (await resp.json())["items"] if q["name"] == queue)


@pytest.fixture
async def restart_with(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str
) -> AsyncIterator[Callable[..., Any]]:
    """Start a hub on this test's store and routing backend with QUEUES; with Redis, wiped=True first deletes
    every routing key (Redis lost its data while the hub was down); RULES: the routing rules."""

    async def start(queues: dict[str, Any], wiped: bool = False, rules: list[dict[str, Any]] | None = None) -> Client:
        if wiped and backend == "redis":
            await _wipe(prefix)
        env = routing_env(backend, "redis://127.0.0.1:6379/0", prefix) | {"HUB_ROUTING__QUEUES": json.dumps(queues)}
        if rules is not None:
            env["HUB_ROUTING__RULES"] = json.dumps(rules)
        return await aiohttp_client(build_app(make_settings(db_url, **env)))

    yield start


async def test_queue_counters_come_back_from_the_store(restart_with: Callable[..., Any]) -> None:
    """Seen: after a restart (memory) or a Redis wipe, GET /api/v1/queues counted offers accepted and rejected,
    answers and SLA from zero again, while the store kept every decision."""
    queues = {"support": {"offer_timeout": 30, "first_response": 3600}}
    client: Client = await restart_with(queues)
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    _, ann_h = await agent(client, "Ann")
    await post(client, "/api/v1/agents/me/presence", ann_h, {"presence": "available"})
    convs = [await open_chat(client, admin, n) for n in (1, 2)]
    await post(client, f"/api/v1/conversations/{convs[0]}/reject", ann_h)  # offered again: the only agent
    for conv in convs:
        await post(client, f"/api/v1/conversations/{conv}/accept", ann_h)
    await post(client, f"/api/v1/conversations/{convs[0]}/messages", ann_h, {"text": "on it"}, expect=201)
    for conv in convs:
        await post(client, f"/api/v1/conversations/{conv}/resolve", ann_h)
    before = {k: (await queue_row(client, admin))[k] for k in COUNTERS}
    assert (before["offers_accepted"], before["offers_rejected"], before["answered"], before["responded"]) == \
        (2, 1, 2, 1), before
    await client.close()

    client = await restart_with(queues, wiped=True)
    assert {k: (await queue_row(client, admin))[k] for k in COUNTERS} == before


async def test_first_response_deadlines_come_back_from_the_store(restart_with: Callable[..., Any]) -> None:
    """Seen: after a restart (memory) or a Redis wipe, a conversation an agent had accepted but not yet answered
    lost its first-response clock: its deadline passed and no breach was ever counted. And one already counted
    must not be counted twice."""
    queues = {"support": {"offer_timeout": 30, "first_response": 1}}
    client: Client = await restart_with(queues)
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    _, ann_h = await agent(client, "Ann")
    await post(client, "/api/v1/agents/me/presence", ann_h, {"presence": "available"})
    breached = await open_chat(client, admin, 1)
    await post(client, f"/api/v1/conversations/{breached}/accept", ann_h)

    async def breaches(c: Client) -> int:
        await c.app[ROUTER].tick()  # the deadline sweep, now
        return int((await queue_row(c, admin))["first_response_breached"])

    await eventually(lambda: breaches(client), within=15, what="the first breach counted")
    late = await open_chat(client, admin, 2)
    await post(client, f"/api/v1/conversations/{late}/accept", ann_h)  # its deadline is a second away
    await client.close()

    client = await restart_with(queues, wiped=True)
    assert await consistent(client) == []

    async def both() -> bool:
        return await breaches(client) == 2

    await eventually(both, within=15, what="the held conversation's breach counted after the rebuild")
    for _ in range(3):
        assert await breaches(client) == 2, "a breach counted twice"

    async def on_the_wall() -> int:
        resp = await client.get("/api/v1/wall", headers=admin)
        window = next(q["window"] for q in (await resp.json())["queues"] if q["name"] == "support")
        return int(window["first_response_breached"])

    # The background tick may have counted the breach first: its store write can land just after our reads.
    async def both_on_the_wall() -> bool:
        return await on_the_wall() == 2

    await eventually(both_on_the_wall, within=5, what="both breaches on the wall")
    await asyncio.sleep(0.5)
    assert await on_the_wall() == 2, "a breach counted twice on the wall"


async def test_a_decision_the_store_missed_is_counted_once_repaired(
    aiohttp_client: Any, make_settings: Callable[..., Settings], backend: str, prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seen: an accept cut after routing's write was brought into the store by the reconciler, but not into the
    store's record of decisions: the wall's answered count missed it, and a rebuild took it off the queue's."""
    from hub.history import decisions

    env = routing_env(backend, "redis://127.0.0.1:6379/0", prefix) | {"HUB_ROUTING__RECONCILE_SECONDS": "1000"}
    client: Client = await aiohttp_client(build_app(make_settings(**env)))
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    _, ann_h = await agent(client, "Ann")
    await post(client, "/api/v1/agents/me/presence", ann_h, {"presence": "available"})
    conv = await open_chat(client, admin, 1)
    monkeypatch.setenv("HUB_FAIL_POINTS", "accept.after_state:raise")
    await post(client, f"/api/v1/conversations/{conv}/accept", ann_h, expect=500)
    monkeypatch.delenv("HUB_FAIL_POINTS")

    async def repaired() -> bool:
        await client.app[ROUTER].reconciler.run()
        return not await consistent(client)

    await eventually(repaired, within=15, what="the accept brought into the store")
    counted = await client.app[DB].read(decisions.counters)
    assert (counted["support"].get("answered"), counted["support"].get("accepted")) == (1, 1), counted
    live = await queue_row(client, admin)
    assert (live["answered"], live["offers_accepted"]) == (1, 1), live


async def offered_to(client: Client, conversations: list[int]) -> dict[int, int | None]:
    rows = await client.app[DB].read(lambda tx: tx.all("SELECT id, offered_to FROM conversations"))
    return {int(r["id"]): r["offered_to"] for r in rows if int(r["id"]) in conversations}


async def test_a_rebuild_keeps_the_priority_a_routing_rule_gave(restart_with: Callable[..., Any]) -> None:
    """Seen: a conversation a routing rule put ahead waited at priority 0 after a restart (memory) or a Redis wipe:
    its priority lived only in the routing state."""
    queues = {"support": {"offer_timeout": 30}}
    rules = [{"name": "urgent", "queue": "support", "priority": 5, "keywords": ["urgent"]}]
    client: Client = await restart_with(queues, rules=rules)
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    ann, ann_h = await agent(client, "Ann")  # offline: everything waits
    older = [await open_chat(client, admin, n) for n in (1, 2)]
    body = {"identity": "phone:+14155550003", "text": "urgent: my line is down"}
    urgent = int((await post(client, "/api/v1/inbound", admin, body, expect=201))["conversation"]["id"])
    stored = await client.app[DB].read(lambda tx: {int(r["id"]): int(r["priority"]) for r in tx.all(
        "SELECT id, priority FROM conversations")})
    assert stored == {older[0]: 0, older[1]: 0, urgent: 5}
    await client.close()

    client = await restart_with(queues, wiped=True, rules=rules)
    view = await client.app[ROUTER].state.conversation(urgent)
    assert view is not None and (view.state, view.priority) == ("waiting", 5)
    assert await consistent(client) == []
    # Ann has room for two: the urgent one and the oldest, not the two oldest.
    await post(client, "/api/v1/agents/me/presence", ann_h, {"presence": "available"})
    assert await offered_to(client, [*older, urgent]) == {older[0]: ann, older[1]: None, urgent: ann}


async def test_a_priority_the_routing_state_missed_is_repaired(
    aiohttp_client: Any, make_settings: Callable[..., Settings], backend: str, prefix: str,
) -> None:
    """A priority written to the store whose routing call never landed (routing unreachable, a process killed
    after the commit): the reconciler gives the state the store's, once two passes saw the same difference."""
    from hub.model import format_time, utcnow
    from hub.routing.reconciler import SETTLE_SECONDS

    env = routing_env(backend, "redis://127.0.0.1:6379/0", prefix) | {"HUB_ROUTING__RECONCILE_SECONDS": "1000"}
    client: Client = await aiohttp_client(build_app(make_settings(**env)))
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    conv = await open_chat(client, admin, 1)
    router = client.app[ROUTER]
    await client.app[DB].write(lambda tx: tx.exec("UPDATE conversations SET priority = 7, updated_at = ? WHERE id = ?",
                                                  (format_time(utcnow()), conv)))
    assert await consistent(client) == [f"conversation {conv}: priority 7 in the store, 0 in routing"]
    first = await router.reconciler.run()
    assert first is not None and first.priority == 0  # seen once: it could be a change on its way
    assert (await router.state.conversation(conv)).priority == 0
    await asyncio.sleep(SETTLE_SECONDS)
    second = await router.reconciler.run()
    assert second is not None and second.priority == 1
    view = await router.state.conversation(conv)
    assert view is not None and (view.state, view.priority) == ("waiting", 7)
    assert (await router.reconciler.run()).priority == 0  # type: ignore[union-attr]
    assert await consistent(client) == []
