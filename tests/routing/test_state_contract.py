"""The contract every RoutingState backend keeps; each test runs on memory and on a real Redis."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from redis.asyncio import Redis

from hub.routing.redis import RedisState
from hub.routing.state import RoutingState
from hub.routing.types import AgentConfig, Presence, QueueConfig, Stage, Strategy, Waiting

T = 1000.0


async def setup(
    state: RoutingState,
    queue: QueueConfig | None = None,
    agents: tuple[AgentConfig, ...] = (),
    available: bool = True,
) -> None:
    await state.put_queue(queue or QueueConfig("support", direct=True), T)
    for a in agents:
        await state.put_agent(a, T)
        if available:
            await state.set_presence(a.id, Presence.AVAILABLE, T)


def agent(aid: int, **kw: object) -> AgentConfig:
    kw.setdefault("queues", ("support",))
    return AgentConfig(aid, **kw)  # type: ignore[arg-type]


async def drain(state: RoutingState, queue: str = "support", now: float = T) -> list[tuple[int, int]]:
    out = []
    while (c := await state.dispatch_queue(queue, now)) is not None:
        out.append((c.conversation, c.agent))
    return out


async def test_priority_first_then_oldest_first(state: RoutingState) -> None:
    await setup(state)
    for cid, pri, at in [(1, 0, 5.0), (2, 0, 3.0), (3, 2, 9.0), (4, 0, 4.0), (5, 2, 8.0)]:
        await state.enqueue(Waiting(cid, "support", "webchat", pri, at), T, 0)
    await state.put_agent(agent(9, capacity={"chat": 10}), T)
    await state.set_presence(9, Presence.AVAILABLE, T)
    assert [c for c, _ in await drain(state)] == [5, 3, 2, 4, 1]


async def test_equal_scores_go_by_id_as_text(state: RoutingState) -> None:
    """Same priority, same age: the tie-break is the id as text (1, 10, 2), on both backends."""
    await setup(state, agents=(agent(1, capacity={"chat": 3}),))
    for cid in (2, 10, 1):
        await state.enqueue(Waiting(cid, "support", "webchat", 0, T - 5), T, 0)
    order = []
    while (claim := await state.dispatch_agent(1, T)) is not None:
        order.append(claim.conversation)
    assert order == [1, 10, 2]


async def test_capacity_is_never_exceeded_and_freed_by_resolve(state: RoutingState) -> None:
    await setup(state, agents=(agent(1, capacity={"chat": 2}),))
    for cid in (1, 2, 3):
        await state.enqueue(Waiting(cid, "support", "sms", 0, T + cid), T, 0)
    assert await drain(state) == [(1, 1), (2, 1)]
    assert (await state.conversation(3)).state == "waiting"  # type: ignore[union-attr]
    stats = await state.agent_stats(1)
    assert stats is not None and stats.load == {"chat": 2}
    released = await state.resolve(1, T + 10)
    assert released is not None and released.agent == 1 and released.wrapup_until is None
    claim = await state.dispatch_agent(1, T + 10)
    assert claim is not None and claim.conversation == 3


async def test_a_call_blocks_other_work_but_chats_do_not_block_a_call(state: RoutingState) -> None:
    await setup(state, agents=(agent(1, capacity={"voice": 1, "chat": 3}),))
    await state.enqueue(Waiting(1, "support", "voice", 0, T), T, 0)
    await state.enqueue(Waiting(2, "support", "webchat", 0, T + 1), T, 0)
    assert await drain(state) == [(1, 1)]
    await state.resolve(1, T)
    assert await drain(state) == [(2, 1)]
    await state.enqueue(Waiting(3, "support", "voice", 0, T + 2), T, 0)
    assert await drain(state) == [(3, 1)]


async def test_only_available_agents_get_work(state: RoutingState) -> None:
    await setup(state, agents=(agent(1), agent(2)), available=False)
    await state.set_presence(2, Presence.AWAY, T)
    await state.enqueue(Waiting(1, "support", "email", 0, T), T, 0)
    assert await drain(state) == []
    assert await state.dispatch_agent(1, T) is None
    await state.set_presence(1, Presence.AVAILABLE, T)
    claim = await state.dispatch_agent(1, T)
    assert claim is not None and (claim.conversation, claim.agent) == (1, 1)


async def test_required_skills_and_widening_stage(state: RoutingState) -> None:
    queue = QueueConfig("support", direct=True, skills={"es": 5}, stages=(Stage(after=30, skills={"es": 2}),))
    await setup(state, queue, agents=(agent(1, skills={"es": 3}), agent(2, skills={"fr": 9})))
    await state.enqueue(Waiting(1, "support", "webchat", 0, T), T, 0)
    assert await drain(state) == []
    assert await state.escalate("support", 1, T + 29 - 30, T + 29) == []
    esc = await state.escalate("support", 1, T + 31 - 30, T + 31)
    assert [(e.conversation, e.action) for e in esc] == [(1, "widen")]
    assert await drain(state, now=T + 31) == [(1, 1)]


async def test_a_skilled_head_does_not_block_widened_conversations_behind_it(state: RoutingState) -> None:
    queue = QueueConfig("support", direct=True, skills={"es": 5}, stages=(Stage(after=30, skills={"es": 2}),))
    await setup(state, queue, agents=(agent(1, skills={"es": 3}),))
    await state.enqueue(Waiting(1, "support", "webchat", 0, T), T, 0)
    await state.enqueue(Waiting(2, "support", "webchat", 0, T + 1), T, 0)
    assert await drain(state) == []
    assert [e.conversation for e in await state.escalate("support", 1, T + 1, T + 31)] == [1, 2]
    # More urgent and not widened yet: it heads the queue, and agent 1 is not skilled enough for it.
    await state.enqueue(Waiting(3, "support", "webchat", 1, T + 31), T + 31, 0)
    claim = await state.dispatch_agent(1, T + 31)
    assert claim is not None and claim.conversation == 1
    assert await drain(state, now=T + 31) == [(2, 1)]  # still oldest first among those agent 1 may take
    view = await state.conversation(3)
    assert view is not None and view.state == "waiting"


async def test_changing_the_plan_keeps_waiting_conversations_routable(state: RoutingState) -> None:
    widen = (Stage(after=30, skills={"es": 2}),)
    await setup(state, QueueConfig("support", direct=True, skills={"es": 5}), agents=(agent(1, skills={"es": 3}),))
    await state.enqueue(Waiting(1, "support", "webchat", 0, T), T, 0)
    await state.enqueue(Waiting(2, "support", "webchat", 0, T + 1), T, 0)
    assert await drain(state) == []
    # A stage added while they wait applies to them.
    await state.put_queue(QueueConfig("support", direct=True, skills={"es": 5}, stages=widen), T + 1)
    assert [e.conversation for e in await state.escalate("support", 1, T + 1, T + 31)] == [1, 2]
    assert await state.dispatch_agent(1, T + 31) is not None
    await state.enqueue(Waiting(3, "support", "webchat", 0, T + 31), T + 31, 0)
    # The stage removed again: conversation 2 stays at the last stage the plan has, and is not lost.
    await state.put_queue(QueueConfig("support", direct=True, skills={"es": 1}), T + 32)
    assert await drain(state, now=T + 32) == [(2, 1), (3, 1)]
    assert (await state.queue_stats("support", T + 32)).waiting == 0


async def test_offer_accept_reject_and_timeout(state: RoutingState) -> None:
    await setup(state, QueueConfig("support", offer_timeout=20), agents=(agent(1), agent(2)))
    await state.enqueue(Waiting(7, "support", "webchat", 1, 500.0), T, 0)
    first = await state.dispatch_queue("support", T)
    assert first is not None and first.offered and first.deadline == T + 20
    other = 2 if first.agent == 1 else 1
    assert await state.accept(7, other, T) is None  # not theirs
    assert await state.reject(7, first.agent, T + 1) is not None
    view = await state.conversation(7)
    assert view is not None and view.state == "waiting" and view.enqueued_at == 500.0 and view.priority == 1
    second = await state.dispatch_queue("support", T + 1)
    assert second is not None and second.agent == other  # the agent who rejected is skipped
    assert await state.expire_offers(T + 20.9, 3) == []
    expired = await state.expire_offers(T + 21, 3)
    assert [(e.conversation, e.agent, e.set_away) for e in expired] == [(7, other, False)]
    # Everyone has declined it: it goes back to the first of them rather than block the queue.
    third = await state.dispatch_queue("support", T + 21)
    assert third is not None and third.agent == first.agent
    assert await state.reject(7, first.agent, T + 21) is not None
    stats = await state.queue_stats("support", T + 21)
    assert (stats.offered, stats.rejected, stats.timed_out, stats.waiting) == (3, 2, 1, 1)
    assert stats.longest_wait == T + 21 - 500.0


async def test_accept_counts_sla(state: RoutingState) -> None:
    await setup(state, QueueConfig("support", sla_wait=10), agents=(agent(1, capacity={"chat": 5}),))
    await state.enqueue(Waiting(1, "support", "webchat", 0, T), T, 0)
    await state.enqueue(Waiting(2, "support", "webchat", 0, T - 50), T, 0)
    for c, a in await drain(state):
        assert await state.accept(c, a, T + 5) is not None
    assert await state.accept(1, 1, T + 5) is None  # already accepted
    stats = await state.queue_stats("support", T + 5)
    assert (stats.answered, stats.answered_in_sla, stats.accepted, stats.busy_agents) == (2, 1, 2, 1)
    assert stats.sla_attainment == 0.5


async def test_missed_offers_in_a_row_set_the_agent_away(state: RoutingState) -> None:
    await setup(state, QueueConfig("support", offer_timeout=5), agents=(agent(1, capacity={"chat": 1}),))
    now = T
    await state.enqueue(Waiting(1, "support", "webchat", 0, now), now, 0)
    for round_ in (1, 2):
        claim = await state.dispatch_queue("support", now)
        assert claim is not None and claim.agent == 1
        now += 6
        expired = await state.expire_offers(now, 2)
        assert [e.set_away for e in expired] == [round_ == 2]
    assert await state.dispatch_queue("support", now) is None
    stats = await state.agent_stats(1)
    assert stats is not None and stats.presence is Presence.AWAY and stats.timed_out == 2


async def test_wrapup_after_resolve(state: RoutingState) -> None:
    await setup(state, agents=(agent(1, wrapup=30.0, capacity={"chat": 1}),))
    await state.enqueue(Waiting(1, "support", "webchat", 0, T), T, 0)
    await state.enqueue(Waiting(2, "support", "webchat", 0, T + 1), T, 0)
    assert await drain(state) == [(1, 1)]
    released = await state.resolve(1, T + 10)
    assert released is not None and released.wrapup_until == T + 40
    assert await state.dispatch_agent(1, T + 20) is None
    assert await state.end_wrapups(T + 39) == []
    assert await state.end_wrapups(T + 40) == [1]
    claim = await state.dispatch_agent(1, T + 40)
    assert claim is not None and claim.conversation == 2


async def test_transfer_keeps_age_and_parks_for_an_agent(state: RoutingState) -> None:
    await setup(state, agents=(agent(1), agent(2, queues=("billing",))))
    await state.put_queue(QueueConfig("billing", direct=True), T)
    await state.set_presence(2, Presence.AWAY, T)
    await state.enqueue(Waiting(1, "support", "webchat", 0, 100.0), T, 0)
    assert await drain(state) == [(1, 1)]
    released = await state.transfer(1, T + 5, queue="billing")
    assert released is not None and (released.queue, released.agent) == ("support", 1)
    view = await state.conversation(1)
    assert view is not None and (view.queue, view.enqueued_at, view.state) == ("billing", 100.0, "waiting")
    assert (await state.agent_stats(1)).load == {}  # type: ignore[union-attr]
    await state.transfer(1, T + 6, agent=1, until=T + 66)
    assert (await state.conversation(1)).state == "parked"  # type: ignore[union-attr]
    assert await state.dispatch_queue("billing", T + 6) is None
    assert await state.release_parked(T + 65) == []
    released_back = await state.release_parked(T + 66)
    assert [(w.id, w.queue, w.enqueued_at) for w in released_back] == [(1, "billing", 100.0)]
    await state.set_presence(2, Presence.AVAILABLE, T + 67)
    assert await drain(state, "billing", T + 67) == [(1, 2)]
    with pytest.raises(KeyError):
        await state.transfer(1, T, queue="nowhere")


async def test_queue_stats_count_every_line_and_the_parked(state: RoutingState) -> None:
    # Nobody can take anything: conversations wait in lines of two classes and two stage lines, at two priorities.
    plan = (Stage(after=60, skills={}),)
    await setup(state, QueueConfig("support", skills={"fr": 3}, stages=plan), agents=(agent(1),), available=False)
    await state.enqueue(Waiting(1, "support", "webchat", 2, T - 10), T, 0)  # first in its line, not the oldest
    await state.enqueue(Waiting(2, "support", "webchat", 0, T - 40), T, 0)  # the oldest of the chat line
    await state.enqueue(Waiting(3, "support", "email", 1, T - 30), T - 5, 0)  # queued first: it escalates first
    await state.enqueue(Waiting(4, "support", "email", 5, T - 20), T, 0)
    stats = await state.queue_stats("support", T)
    assert (stats.waiting, stats.longest_wait) == (4, 40.0)
    # Conversation 3 widens into the next stage line; 2 is parked for an agent: both still wait in the queue.
    assert [e.conversation for e in await state.escalate("support", 1, T - 1, T + 1)] == [3]
    await state.transfer(2, T + 1, agent=1, until=T + 600)
    assert (await state.conversation(2)).state == "parked"  # type: ignore[union-attr]
    stats = await state.queue_stats("support", T + 1)
    assert (stats.waiting, stats.longest_wait) == (4, 41.0)
    await state.resolve(2, T + 2)
    stats = await state.queue_stats("support", T + 2)
    assert (stats.waiting, stats.longest_wait) == (3, 32.0)  # 3 is the oldest now, in the widened line
    for cid in (1, 3, 4):
        await state.resolve(cid, T + 3)
    stats = await state.queue_stats("support", T + 3)
    assert (stats.waiting, stats.longest_wait) == (0, 0.0)


async def test_sticky_parks_for_the_last_agent(state: RoutingState) -> None:
    await setup(state, agents=(agent(1), agent(2)))
    await state.enqueue(Waiting(1, "support", "webchat", 0, T, customer=42), T, 300)
    ((c, a),) = await drain(state)
    await state.resolve(c, T + 1)
    other = 2 if a == 1 else 1
    # The other agent is idler now, but the customer's last agent gets first refusal.
    assert await state.enqueue(Waiting(2, "support", "webchat", 0, T + 2, customer=42), T + 2, 300) == a
    assert await state.dispatch_queue("support", T + 2) is None
    claim = await state.dispatch_agent(a, T + 2)
    assert claim is not None and claim.conversation == 2
    await state.set_presence(a, Presence.OFFLINE, T + 3)
    # Last agent offline: straight to the queue.
    assert await state.enqueue(Waiting(3, "support", "webchat", 0, T + 3, customer=42), T + 3, 300) is None
    assert await drain(state, now=T + 3) == [(3, other)]


async def test_overflow_and_callback(state: RoutingState) -> None:
    plan = (Stage(after=60, overflow="general"),)
    await setup(state, QueueConfig("support", direct=True, stages=plan))
    await state.put_queue(QueueConfig("general", stages=(Stage(after=10, callback=True),)), T)
    await state.enqueue(Waiting(1, "support", "voice", 0, 50.0), T, 0)
    await state.enqueue(Waiting(2, "support", "webchat", 0, 60.0), T, 0)
    esc = await state.escalate("support", 1, T + 1 - 60, T + 1)
    assert esc == []
    esc = await state.escalate("support", 1, T + 60 - 60, T + 60)
    assert sorted((e.conversation, e.action, e.target) for e in esc) == [
        (1, "overflow", "general"),
        (2, "overflow", "general"),
    ]
    assert (await state.conversation(1)).enqueued_at == 50.0  # type: ignore[union-attr]
    esc = await state.escalate("general", 1, T + 70 - 10, T + 70)
    assert sorted((e.conversation, e.action) for e in esc) == [(1, "callback"), (2, "widen")]
    assert await state.conversation(1) is None
    assert (await state.queue_stats("general", T + 70)).waiting == 1


async def test_resolve_while_waiting_is_abandoned_and_duplicates_are_refused(state: RoutingState) -> None:
    await setup(state)
    await state.enqueue(Waiting(1, "support", "webchat", 0, T), T, 0)
    with pytest.raises(KeyError):
        await state.enqueue(Waiting(1, "support", "webchat", 0, T), T, 0)
    with pytest.raises(KeyError):
        await state.enqueue(Waiting(2, "nowhere", "webchat", 0, T), T, 0)
    released = await state.resolve(1, T)
    assert released is not None and released.agent is None
    assert await state.resolve(1, T) is None
    stats = await state.queue_stats("support", T)
    assert (stats.waiting, stats.abandoned, stats.longest_wait) == (0, 1, 0.0)


async def test_agent_leaving_a_queue_gets_no_more_of_its_work(state: RoutingState) -> None:
    await setup(state, agents=(agent(1),))
    await state.put_agent(agent(1, queues=()), T)
    await state.enqueue(Waiting(1, "support", "webchat", 0, T), T, 0)
    assert await drain(state) == []
    assert (await state.queue_stats("support", T)).available_agents == 0


@pytest.mark.parametrize("strategy", list(Strategy))
async def test_both_backends_choose_alike(strategy: Strategy, redis_url: str) -> None:
    """Same history on memory and Redis gives the same decisions, for every strategy."""
    from hub.routing.memory import MemoryState

    client = Redis.from_url(redis_url)
    red = RedisState(client, prefix=f"test:routing:{uuid.uuid4().hex}:")
    mem = MemoryState()
    try:
        logs = []
        for st in (mem, red):
            q = QueueConfig("support", strategy=strategy, skills={"x": 1}, offer_timeout=5)
            await st.put_queue(q, T)
            for i in range(1, 9):
                await st.put_agent(agent(i, skills={"x": 1 + i % 4}, capacity={"chat": 1 + i % 3}), T)
                await st.set_presence(i, Presence.AVAILABLE, T + i % 3)
            log = []
            now = T + 10
            for cid in range(1, 40):
                now += 1
                await st.enqueue(Waiting(cid, "support", "webchat", cid % 2, now - cid % 5), now, 0)
                claim = await st.dispatch_queue("support", now)
                log.append((claim.conversation, claim.agent) if claim else None)
                if cid % 3 == 0 and claim:
                    await st.reject(claim.conversation, claim.agent, now)
                if cid % 4 == 0:
                    await st.expire_offers(now, 10)
                if cid % 5 == 0 and claim:
                    await st.resolve(claim.conversation, now)
            logs.append(log)
        assert logs[0] == logs[1]
        assert sum(1 for x in logs[0] if x) > 10
    finally:
        await red.clear()
        await client.aclose()


async def test_redis_processes_never_double_assign(redis_url: str) -> None:
    """Several clients (as several hub processes would) race on one state."""
    prefix = f"test:routing:{uuid.uuid4().hex}:"
    clients = [Redis.from_url(redis_url) for _ in range(4)]
    states = [RedisState(c, prefix=prefix) for c in clients]
    try:
        await setup(
            states[0],
            QueueConfig("support", direct=True),
            agents=tuple(agent(i, capacity={"chat": 2}) for i in range(1, 11)),
        )
        for cid in range(1, 61):
            await states[0].enqueue(Waiting(cid, "support", "webchat", 0, T + cid), T, 0)

        async def worker(st: RedisState) -> list[tuple[int, int]]:
            out = []
            for _ in range(30):
                c = await st.dispatch_queue("support", T)
                if c is not None:
                    out.append((c.conversation, c.agent))
            return out

        results = [x for r in await asyncio.gather(*(worker(s) for s in states)) for x in r]
        conversations = [c for c, _ in results]
        assert len(conversations) == len(set(conversations)) == 20  # 10 agents x 2 chats
        per_agent = {a: sum(1 for _, b in results if b == a) for a in range(1, 11)}
        assert set(per_agent.values()) == {2}
        assert sorted(conversations) == list(range(1, 21))  # FIFO: the oldest twenty
    finally:
        await states[0].clear()
        for c in clients:
            await c.aclose()


async def test_batched_drains_decide_like_one_call_at_a_time(state: RoutingState) -> None:
    """drain_queue / drain_agents (one script in Redis) make the same decisions, in the same order, as repeated
    dispatch calls, and stop at `most`."""
    await setup(state, agents=(agent(1, capacity={"chat": 2}), agent(2, capacity={"chat": 1})), available=False)
    for cid in range(1, 7):
        await state.enqueue(Waiting(cid, "support", "webchat", 0, T + cid), T, 0)
    for aid in (1, 2):
        await state.set_presence(aid, Presence.AVAILABLE, T)
    claims = await state.drain_agents([2, 1], T, 10)
    assert [(c.conversation, c.agent) for c in claims] == [(1, 2), (2, 1), (3, 1)]
    assert await state.drain_agents([1, 2], T, 10) == []  # everyone is full
    for cid in (1, 2, 3):
        await state.resolve(cid, T)
    assert [(c.conversation, c.agent) for c in await state.drain_queue("support", T, 2)] == [(4, 1), (5, 1)]
    assert [(c.conversation, c.agent) for c in await state.drain_queue("support", T, 5)] == [(6, 2)]
    assert await state.drain_queue("support", T, 5) == []


async def test_first_response_counts_each_outcome_once(state: RoutingState) -> None:
    """Replied in time, replied late (before and after the sweep saw the breach), and never replied."""
    await setup(state, agents=(agent(1, capacity={"chat": 9}),))
    for cid in (1, 2, 3, 4):
        await state.enqueue(Waiting(cid, "support", "webchat", 0, T, respond_by=T + 60), T, 0)
    await state.enqueue(Waiting(5, "support", "webchat", 0, T), T, 0)  # no target: not measured
    assert len(await drain(state)) == 5
    first = await state.responded(1, T + 59)
    assert first is not None and (first.conversation, first.queue, first.enqueued_at, first.respond_by) == (
        1, "support", T, T + 60) and not first.breach_noticed
    assert await state.responded(1, T + 61) is None  # only the first reply counts
    assert await state.responded(5, T + 10) is None
    assert await state.responded(99, T + 10) is None
    assert await state.response_breaches(T + 60) == []  # at the deadline is still in time
    late = await state.responded(2, T + 61)  # late, before any sweep: this reply is what notices the breach
    assert late is not None and late.breach_noticed
    breached = await state.response_breaches(T + 61)
    assert [(b.conversation, b.queue, b.respond_by) for b in breached] == [
        (3, "support", T + 60), (4, "support", T + 60)]
    assert await state.response_breaches(T + 100) == []  # each breach once
    after = await state.responded(3, T + 120)  # late, after the sweep: counted as responded only
    assert after is not None and not after.breach_noticed
    stats = await state.queue_stats("support", T + 120)
    assert (stats.responded, stats.responded_in_sla, stats.response_breached) == (3, 1, 3)
    assert stats.first_response_attainment == 0.25


async def test_first_response_survives_transfer_and_resolve_ends_it(state: RoutingState) -> None:
    await setup(state)
    await state.put_queue(QueueConfig("billing", direct=True), T)
    for cid in (1, 2, 3):
        await state.enqueue(Waiting(cid, "support", "email", 0, T - 10, respond_by=T + 20), T, 0)
    # Moved to another queue, the conversation keeps its clock and the target of the queue it arrived in.
    await state.transfer(1, T + 1, queue="billing")
    await state.resolve(2, T + 5)  # resolved in time without a reply: no outcome
    await state.resolve(3, T + 25)  # resolved past its deadline without a reply: a breach
    breached = await state.response_breaches(T + 30)
    assert [(b.conversation, b.queue, b.enqueued_at) for b in breached] == [
        (1, "support", T - 10), (3, "support", T - 10)]
    assert await state.responded(2, T + 30) is None
    stats = await state.queue_stats("support", T + 30)
    assert (stats.responded, stats.responded_in_sla, stats.response_breached) == (0, 0, 2)
    assert stats.first_response_attainment == 0.0
    assert (await state.queue_stats("billing", T + 30)).response_breached == 0


async def test_an_agent_takes_the_best_head_of_their_queues_whatever_the_arrival_order(state: RoutingState) -> None:
    """dispatch_agent across two queues: priority first, then oldest, with arrivals out of age order and a rejected
    conversation coming back with its age; settings changes (queue skills, agent skills) are seen at once."""
    await state.put_queue(QueueConfig("sales", offer_timeout=5), T)
    await setup(state, QueueConfig("support", offer_timeout=5), agents=(agent(1, queues=("support", "sales")),))
    await state.put_agent(agent(2, queues=("support",), capacity={"chat": 1}), T)
    await state.set_presence(2, Presence.AVAILABLE, T)
    arrivals = [(1, "support", 0, 50.0), (2, "sales", 0, 40.0), (3, "support", 0, 60.0), (4, "sales", 1, 90.0)]
    arrivals += [(5, "support", 0, 30.0), (6, "sales", 0, 45.0), (7, "support", 1, 95.0)]
    for cid, queue, priority, at in arrivals:
        await state.enqueue(Waiting(cid, queue, "webchat", priority, T - 100 + at), T, 0)
    first = await state.dispatch_agent(2, T)
    assert first is not None and first.conversation == 7  # priority 1 of support
    await state.reject(7, 2, T)  # back in its line, keeping its age
    order = []
    for _ in range(3):
        claim = await state.dispatch_agent(1, T)
        assert claim is not None
        order.append(claim.conversation)
    assert order == [4, 7, 5]  # priority 1 by age (4 is older than 7), then the oldest of priority 0 anywhere
    for cid in order:
        await state.resolve(cid, T)
    # The queue now needs a skill agent 1 lacks: nothing from it, until the agent gets the skill.
    await state.put_queue(QueueConfig("support", offer_timeout=5, skills={"fr": 2}), T)
    claim = await state.dispatch_agent(1, T)
    assert claim is not None and claim.conversation == 2  # the oldest of sales
    await state.put_agent(agent(1, queues=("support", "sales"), skills={"fr": 2}), T)
    claim = await state.dispatch_agent(1, T)
    assert claim is not None and claim.conversation == 6  # sales: 45 is older than support's 50 and 60
    claim = await state.dispatch_agent(1, T)
    assert claim is not None and claim.conversation == 1
    assert await state.dispatch_agent(1, T) is None  # full: three chats


async def test_concurrent_drains_decide_as_if_one_after_another(state: RoutingState) -> None:
    """Many drain_agents / dispatch_agent calls at once (Redis sends those made while one is in flight together, in
    one script): each caller gets its own decisions, in call order, and nothing is decided twice."""
    await setup(state, agents=tuple(agent(i, capacity={"chat": 2}) for i in range(1, 9)))
    for cid in range(1, 31):
        await state.enqueue(Waiting(cid, "support", "webchat", 0, T + cid), T, 0)
    singles, drains = await asyncio.gather(
        asyncio.gather(*(state.dispatch_agent(i, T) for i in range(1, 9))),
        asyncio.gather(*(state.drain_agents([i], T, 5) for i in range(1, 9))),
    )
    assert [(c.conversation, c.agent) for c in singles if c is not None] == [(i, i) for i in range(1, 9)]
    # each agent's one free slot, oldest first
    assert [[(c.conversation, c.agent) for c in r] for r in drains] == [[(8 + i, i)] for i in range(1, 9)]
    assert await state.drain_agents(list(range(1, 9)), T, 5) == []
    unknown, mixed = await asyncio.gather(state.dispatch_agent(99, T), state.drain_agents([1, 99], T, 3))
    assert unknown is None and mixed == []  # an unknown agent decides nothing and spoils nothing


async def test_redis_state_from_before_the_parked_index_is_upgraded_by_put_queue(redis_url: str) -> None:
    """Earlier versions kept every waiting and parked conversation of a queue in one age index ('o:'). The first
    put_queue (every start runs one per queue) keeps the parked ones in their own index and drops the old one."""
    client = Redis.from_url(redis_url)
    red = RedisState(client, prefix=f"test:routing:{uuid.uuid4().hex}:")
    try:
        await setup(red, QueueConfig("support"), agents=(agent(1),), available=False)
        await red.enqueue(Waiting(1, "support", "webchat", 0, T - 50), T, 0)
        await red.enqueue(Waiting(2, "support", "webchat", 0, T - 30), T, 0)
        await red.transfer(1, T, agent=1, until=T + 600)
        # As an earlier version left it: both in the age index, no parked index.
        await client.zadd(red.prefix + "o:support", {"1": T - 50, "2": T - 30})
        await client.delete(red.prefix + "pk:support")
        await red.put_queue(QueueConfig("support"), T)
        assert await client.exists(red.prefix + "o:support") == 0
        assert await client.zrange(red.prefix + "pk:support", 0, -1) == [b"1"]
        stats = await red.queue_stats("support", T)
        assert (stats.waiting, stats.longest_wait) == (2, 50.0)
        await red.release_parked(T + 600)
        stats = await red.queue_stats("support", T + 600)
        assert (stats.waiting, stats.longest_wait) == (2, 650.0)
    finally:
        await red.clear()
        await client.aclose()


@pytest.mark.parametrize("old_plan", ['[["support",[0]]]', None], ids=["plan without capacity", "no plan"])
async def test_redis_agent_from_an_earlier_version_gets_a_plan(redis_url: str, old_plan: str | None) -> None:
    client = Redis.from_url(redis_url)
    red = RedisState(client, prefix=f"test:routing:{uuid.uuid4().hex}:")
    try:
        await setup(red, agents=(agent(1, capacity={"chat": 1}),))
        key = red.prefix + "a:1"
        if old_plan is None:
            await client.hdel(key, "plan")
        else:
            await client.hset(key, "plan", old_plan)
        await red.enqueue(Waiting(1, "support", "webchat", 0, T), T, 0)
        await red.enqueue(Waiting(2, "support", "webchat", 0, T + 1), T, 0)
        claim = await red.dispatch_agent(1, T)
        assert claim is not None and claim.conversation == 1
        assert await red.dispatch_agent(1, T) is None  # the capacity of the new plan holds
        plan = json.loads(await client.hget(key, "plan"))  # type: ignore[arg-type]
        assert plan["c"] == {"chat": 1} and [q[0] for q in plan["q"]] == ["support"]
    finally:
        await red.clear()
        await client.aclose()


async def test_redis_line_members_from_an_earlier_version_are_still_claimed(redis_url: str) -> None:
    """Lines written before members carried the claim's data hold bare conversation ids."""
    client = Redis.from_url(redis_url)
    red = RedisState(client, prefix=f"test:routing:{uuid.uuid4().hex}:")
    try:
        await setup(red, agents=(agent(1, capacity={"chat": 2}),), available=False)
        await red.enqueue(Waiting(1, "support", "webchat", 0, T - 9, customer=77), T, 0)
        await red.enqueue(Waiting(2, "support", "sms", 1, T - 1), T, 0)
        line = red.prefix + "w:support:chat:0"
        for cid in ("1", "2"):  # as an earlier version wrote them
            (member,) = [m for m in await client.zrange(line, 0, -1) if m.split(b" ")[0] == cid.encode()]
            score = await client.zscore(line, member)
            await client.zrem(line, member)
            await client.zadd(line, {cid: score})  # type: ignore[dict-item]
            await client.hdel(red.prefix + f"c:{cid}", "lm")
        await red.set_presence(1, Presence.AVAILABLE, T)
        claims = [await red.dispatch_agent(1, T), await red.dispatch_agent(1, T)]
        got = [(c.conversation, c.channel, c.enqueued_at) for c in claims if c]
        assert got == [(2, "sms", T - 1), (1, "webchat", T - 9)]
        assert await client.zcard(line) == 0
        assert (await red.queue_stats("support", T)).waiting == 0
    finally:
        await red.clear()
        await client.aclose()


async def test_hold_rebuilds_an_offer_or_an_assignment_from_the_store(state: RoutingState) -> None:
    """What the reconciler uses after the state was lost: the store's decisions put back as they were."""
    await setup(state, QueueConfig("support", offer_timeout=30), agents=(agent(1, capacity={"chat": 2}),))
    assert await state.hold(Waiting(7, "support", "webchat", 0, T - 50, customer=3), 1, None, T)
    assert await state.hold(Waiting(8, "support", "sms", 0, T - 40), 1, T + 20, T)
    assert not await state.hold(Waiting(8, "support", "sms", 0, T - 40), 1, None, T), "already routed: no change"
    assert not await state.hold(Waiting(9, "support", "sms", 0, T), 99, None, T), "unknown agent"
    with pytest.raises(KeyError):
        await state.hold(Waiting(9, "nowhere", "sms", 0, T), 1, None, T)
    assert sorted(await state.routed()) == [7, 8]
    held, offered = await state.conversation(7), await state.conversation(8)
    assert held is not None and (held.state, held.agent, held.enqueued_at) == ("assigned", 1, T - 50)
    assert offered is not None and (offered.state, offered.agent) == ("offered", 1)
    stats = await state.agent_stats(1)
    assert stats is not None and stats.load == {"chat": 2}
    # Full: nothing more is offered; the rebuilt offer expires as any other, and a resolve frees the slot.
    await state.enqueue(Waiting(10, "support", "sms", 0, T), T, 0)
    assert await state.dispatch_queue("support", T) is None
    assert [e.conversation for e in await state.expire_offers(T + 21, 3)] == [8]
    released = await state.resolve(7, T + 22)
    assert released is not None and released.agent == 1
    # Both wait again, oldest first, and the agent has room for both.
    assert [(c.conversation, c.agent) for c in await state.drain_agents([1], T + 22, 5)] == [(8, 1), (10, 1)]


async def test_the_reconcilers_bulk_steps_do_what_one_at_a_time_does(state: RoutingState) -> None:
    """read_conversations, read_agents, hold_many and enqueue_many (one round trip each in Redis): the same views,
    stats and outcomes as conversation, agent_stats, hold and enqueue, in order; and version() moves with every
    change of what the state holds, but not with a read."""
    await setup(state, QueueConfig("support", offer_timeout=30), agents=(agent(1, capacity={"chat": 3}), agent(2)))
    v0 = await state.version()
    held = await state.hold_many([(Waiting(7, "support", "webchat", 0, T - 50, customer=3), 1, None),
                                  (Waiting(8, "support", "sms", 0, T - 40), 1, T + 20),
                                  (Waiting(7, "support", "sms", 0, T - 40), 1, None),  # already routed
                                  (Waiting(9, "support", "sms", 0, T), 99, None)], T)  # unknown agent
    assert held == [True, True, False, False]
    v1 = await state.version()
    assert v1 != v0
    queued = await state.enqueue_many([(Waiting(10, "support", "sms", 2, T - 5), 0.0),
                                       (Waiting(8, "support", "sms", 0, T), 0.0),  # already routed
                                       (Waiting(11, "support", "email", 0, T - 9), 0.0)], T)
    assert queued == [(True, None), (False, None), (True, None)]
    v2 = await state.version()
    assert v2 != v1
    views = await state.read_conversations([7, 8, 9, 10, 11, 12])
    assert sorted(views) == [7, 8, 10, 11]
    for cid, view in views.items():
        assert view == await state.conversation(cid)
    assert (views[8].state, views[8].agent, views[10].state, views[10].priority) == ("offered", 1, "waiting", 2)
    agents = await state.read_agents([1, 2, 3])
    assert sorted(agents) == [1, 2] and agents[1] == await state.agent_stats(1)
    assert agents[1].load == {"chat": 2}
    assert await state.read_conversations([]) == {} and await state.read_agents([]) == {}
    assert await state.version() == v2  # reads move nothing
    assert await state.set_priority(10, 5)
    assert await state.version() != v2


async def test_hold_times_the_first_response_again(state: RoutingState) -> None:
    """A rebuilt offer or assignment awaiting its first reply keeps its deadline: a reply in time counts in target,
    none by the deadline is one breach."""
    await setup(state, QueueConfig("support", offer_timeout=30), agents=(agent(1, capacity={"chat": 3}),))
    assert await state.hold(Waiting(7, "support", "webchat", 0, T - 50, respond_by=T + 10), 1, None, T)
    assert await state.hold(Waiting(8, "support", "webchat", 0, T - 40, respond_by=T + 20), 1, T + 30, T)
    assert await state.hold(Waiting(9, "support", "webchat", 0, T - 40), 1, None, T)  # replied to: no clock
    replied = await state.responded(8, T + 5)
    assert replied is not None and replied.respond_by == T + 20
    assert [b.conversation for b in await state.response_breaches(T + 11)] == [7]
    assert await state.response_breaches(T + 100) == []
    stats = await state.queue_stats("support", T + 100)
    assert (stats.responded, stats.responded_in_sla, stats.response_breached) == (1, 1, 1)


async def test_restored_counters_count_on(state: RoutingState) -> None:
    """A state rebuilt from the store gets the queue's counters back, and counts on from them."""
    await setup(state, QueueConfig("support", offer_timeout=30, sla_wait=60), agents=(agent(1),))
    counts = {"offered": 5, "accepted": 3, "rejected": 1, "timed_out": 1, "answered": 4, "answered_in_sla": 2,
              "abandoned": 2, "responded": 3, "responded_in_sla": 2, "response_breached": 1}
    await state.restore_counts("support", counts)
    stats = await state.queue_stats("support", T)
    assert {k: getattr(stats, k) for k in counts} == counts
    await state.enqueue(Waiting(1, "support", "webchat", 0, T), T, 0)
    claim = await state.dispatch_queue("support", T)
    assert claim is not None and await state.accept(1, 1, T + 1) is not None
    stats = await state.queue_stats("support", T + 1)
    assert (stats.offered, stats.accepted, stats.answered, stats.answered_in_sla) == (6, 4, 5, 3)
    await state.restore_counts("support", {})  # the store recorded nothing: all from zero
    assert (await state.queue_stats("support", T + 1)).offered == 0


async def test_set_priority_moves_a_waiting_conversation_to_its_place_keeping_its_age(state: RoutingState) -> None:
    """A new priority reorders the line as if the conversation had arrived with it: same age, same stage clock."""
    await setup(state, QueueConfig("support", direct=True, stages=(Stage(after=30),)))
    for cid, pri, at in [(1, 0, 5.0), (2, 0, 3.0), (3, 0, 9.0), (4, 2, 8.0)]:
        await state.enqueue(Waiting(cid, "support", "webchat", pri, at), T, 0)
    assert await state.set_priority(3, 5)
    assert await state.set_priority(1, 5)
    assert await state.set_priority(4, -1)
    view = await state.conversation(1)
    assert view is not None and (view.priority, view.enqueued_at, view.state, view.stage) == (5, 5.0, "waiting", 0)
    stats = await state.queue_stats("support", T)
    assert (stats.waiting, stats.longest_wait) == (4, T - 3.0)
    # The stage clock runs from when each came into the queue, not from the change of priority.
    assert {e.conversation for e in await state.escalate("support", 1, T, T + 30)} == {1, 2, 3, 4}
    await state.put_agent(agent(9, capacity={"chat": 10}), T + 30)
    await state.set_presence(9, Presence.AVAILABLE, T + 30)
    assert [c for c, _ in await drain(state, now=T + 30)] == [1, 3, 2, 4]


async def test_set_priority_reorders_what_is_parked_for_an_agent(state: RoutingState) -> None:
    await setup(state, agents=(agent(1, capacity={"chat": 1}),), available=False)
    await state.enqueue(Waiting(1, "support", "webchat", 0, 100.0), T, 0)
    await state.enqueue(Waiting(2, "support", "webchat", 0, 200.0), T, 0)
    for cid in (1, 2):
        await state.transfer(cid, T, agent=1, until=T + 60)
    assert await state.set_priority(2, 3)
    view = await state.conversation(2)
    assert view is not None and (view.state, view.agent, view.until, view.priority) == ("parked", 1, T + 60, 3)
    assert (await state.queue_stats("support", T)).waiting == 2
    await state.set_presence(1, Presence.AVAILABLE, T + 1)
    claim = await state.dispatch_agent(1, T + 1)
    assert claim is not None and claim.conversation == 2
    # Its parking ends on time, with its priority: back in the queue.
    assert [(w.id, w.priority) for w in await state.release_parked(T + 60)] == [(1, 0)]


async def test_set_priority_of_an_offered_or_assigned_one_holds_when_it_goes_back(state: RoutingState) -> None:
    await setup(state, QueueConfig("support", offer_timeout=20), agents=(agent(1, capacity={"chat": 1}),))
    await state.enqueue(Waiting(1, "support", "webchat", 0, 100.0), T, 0)
    offer = await state.dispatch_queue("support", T)
    assert offer is not None and offer.conversation == 1
    await state.enqueue(Waiting(2, "support", "webchat", 1, 50.0), T, 0)  # waits: the agent is full
    assert await state.set_priority(1, 5)
    view = await state.conversation(1)
    assert view is not None and (view.state, view.agent, view.until, view.priority) == ("offered", 1, T + 20, 5)
    assert (await state.agent_stats(1)).load == {"chat": 1}  # type: ignore[union-attr]
    assert await state.reject(1, 1, T + 1) is not None
    # Back in line with priority 5, ahead of 2 (priority 1, older): the one who declined gets it again, as nobody
    # else can take it.
    again = await state.dispatch_queue("support", T + 1)
    assert again is not None and again.conversation == 1
    assert await state.accept(1, 1, T + 2) is not None
    assert await state.set_priority(1, -3)
    assert (await state.conversation(1)).state == "assigned"  # type: ignore[union-attr]
    await state.transfer(1, T + 3, queue="support")
    assert [(c.conversation, c.agent) for c in await state.drain_queue("support", T + 3, 5)] == [(2, 1)]
    view = await state.conversation(1)
    assert view is not None and (view.state, view.priority, view.enqueued_at) == ("waiting", -3, 100.0)


async def test_set_priority_of_an_unknown_conversation_changes_nothing(state: RoutingState) -> None:
    await setup(state)
    assert not await state.set_priority(99, 3)
    assert await state.conversation(99) is None
    await state.enqueue(Waiting(1, "support", "webchat", 0, 100.0), T, 0)
    await state.resolve(1, T)
    assert not await state.set_priority(1, 3)
    assert await state.routed() == []


async def test_changes_names_each_conversation_that_moved_the_version(state: RoutingState) -> None:
    """changes(since): the version and every conversation changed after it (the reconciler's incremental pass),
    reads naming none; trim_changes(below) makes a since below it None, never a shorter answer."""
    await setup(state, QueueConfig("support", offer_timeout=30), agents=(agent(1, capacity={"chat": 3}),))
    v0 = await state.version()
    assert await state.changes(v0) == (v0, [])
    await state.enqueue(Waiting(7, "support", "webchat", 0, T - 5), T, 0)
    await state.enqueue(Waiting(8, "support", "sms", 0, T), T, 0)
    v1, named = await state.changes(v0) or (0, [])
    assert v1 == await state.version() and sorted(named) == [7, 8]
    await state.conversation(7)
    await state.read_conversations([7, 8])
    assert await state.changes(v1) == (v1, [])  # reads name nothing
    assert await state.set_priority(8, 3)
    claim = await state.dispatch_queue("support", T)  # the first in line (now 8) offered to agent 1, accepted
    assert claim is not None and claim.conversation == 8
    assert await state.accept(8, 1, T + 1) is not None
    v2, named = await state.changes(v1) or (0, [])
    assert named == [8]
    assert await state.resolve(7, T + 2) is not None
    assert (await state.changes(v2) or (0, []))[1] == [7]
    await state.trim_changes(v2)
    assert await state.changes(v1) is None  # trimmed past: the caller compares everything
    assert (await state.changes(v2) or (0, []))[1] == [7]
