"""The engine over both backends, with every timeout driven by the injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from hub.routing.engine import Engine
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
from hub.routing.rules import Contact
from hub.routing.state import RoutingState
from hub.routing.types import Presence

from .conftest import FakeClock

CONFIG: dict[str, Any] = {
    "default_queue": "support",
    "missed_offers": 2,
    "transfer_wait": 45,
    "queues": {
        "support": {"offer_timeout": 20, "sticky_for": 120, "sla_wait": 30},
        "billing": {
            "strategy": "skills",
            "skills": {"billing": 5},
            "offer_timeout": 10,
            "stages": [{"after": 60, "skills": {"billing": 1}}, {"after": 120, "overflow": "support"}],
        },
        "sales": {"direct": True, "stages": [{"after": 300, "callback": True}]},
    },
    "agents": [
        {"id": 1, "queues": ["support", "billing"], "skills": {"billing": 2}, "wrapup": 15},
        {"id": 2, "queues": ["support"]},
        {"id": 3, "queues": ["billing"], "skills": {"billing": 8}, "capacity": {"chat": 1}},
        {"id": 4, "queues": ["sales"], "capacity": {"voice": 1}},
    ],
    "rules": [
        {"queue": "billing", "keywords": ["invoice"], "priority": 1},
        {"queue": "sales", "channel": "voice", "ivr": "2"},
    ],
}


def of(events: list[RoutingEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


@pytest.fixture
async def engine(state: RoutingState, clock: FakeClock) -> Engine:
    return await Engine.from_config(CONFIG, state, clock=clock)


async def online(engine: Engine, *agents: int) -> None:
    for a in agents:
        await engine.set_presence(a, Presence.AVAILABLE)


async def test_rules_pick_the_queue_and_the_offer_goes_to_the_best_agent(engine: Engine, clock: FakeClock) -> None:
    await online(engine, 1, 3)
    events = await engine.route(10, Contact("webchat", text="Where is my INVOICE?"), customer=5)
    assert of(events, Queued) == [Queued(10, "billing", 1, None)]
    # Skills strategy: agent 3 (billing 8) before agent 1 (billing 2, below the minimum 5 anyway).
    assert of(events, Offered) == [Offered(10, 3, "billing", "webchat", clock.now + 10)]
    assert await engine.accept(10, 3) == [Assigned(10, 3, "billing", "webchat", 0.0, accepted=True)]


async def test_offer_timeout_reoffers_to_the_next_agent_and_missed_offers_set_away(
    engine: Engine, clock: FakeClock
) -> None:
    await online(engine, 1)
    clock.advance(1)
    await online(engine, 2)
    offered = of(await engine.enqueue(1, "support", "webchat"), Offered)
    assert [o.agent for o in offered] == [1]  # longest idle
    clock.advance(19.9)
    assert await engine.tick() == []
    clock.advance(0.1)
    events = await engine.tick()
    assert of(events, OfferTimedOut) == [OfferTimedOut(1, 1, "support")]
    assert [(o.conversation, o.agent) for o in of(events, Offered)] == [(1, 2)]
    assert await engine.accept(1, 1) == []  # too late
    clock.advance(20)
    events = await engine.tick()  # agent 2 misses; back to agent 1, the only other one
    assert [(o.conversation, o.agent) for o in of(events, Offered)] == [(1, 1)]
    clock.advance(20)
    events = await engine.tick()  # agent 1's second miss in a row: away
    assert PresenceChanged(1, "away", "missed_offers") in events
    assert [(o.conversation, o.agent) for o in of(events, Offered)] == [(1, 2)]
    stats = await engine.agent_stats(1)
    assert stats is not None and stats.presence is Presence.AWAY and stats.timed_out == 2


async def test_reject_goes_to_another_agent(engine: Engine) -> None:
    await online(engine, 1, 2)
    first = of(await engine.enqueue(1, "support", "sms"), Offered)[0]
    events = await engine.reject(1, first.agent)
    assert of(events, Rejected) == [Rejected(1, first.agent, "support")]
    assert [o.agent for o in of(events, Offered)] == [3 - first.agent]


async def test_direct_mode_assigns_without_an_offer(engine: Engine) -> None:
    await online(engine, 4)
    events = await engine.route(1, Contact("voice", ivr="2"))
    assert of(events, Offered) == []
    assert of(events, Assigned) == [Assigned(1, 4, "sales", "voice", 0.0)]


async def test_sticky_agent_first_then_anyone(engine: Engine, clock: FakeClock) -> None:
    await online(engine, 1, 2)
    first = of(await engine.enqueue(1, "support", "webchat", customer=77), Offered)[0]
    await engine.accept(1, first.agent)
    await engine.resolve(1)
    clock.advance(20)
    last, other = first.agent, 3 - first.agent
    events = await engine.enqueue(5, "support", "webchat", customer=77)
    assert of(events, Queued)[0].parked_for == last
    assert [o.agent for o in of(events, Offered)] == [last]
    await engine.reject(5, last)
    # Parked again only on a new arrival; after the window, the queue takes over for anyone.
    await engine.set_presence(last, Presence.AWAY)
    await engine.resolve(5)
    events = await engine.enqueue(6, "support", "webchat", customer=77)
    assert of(events, Queued)[0].parked_for is None
    assert [o.agent for o in of(events, Offered)] == [other]


async def test_sticky_window_expires(engine: Engine, clock: FakeClock) -> None:
    await online(engine, 1)
    await engine.enqueue(1, "support", "webchat", customer=9)
    await engine.accept(1, 1)
    await engine.resolve(1)  # wrap-up 15 s
    events = await engine.enqueue(2, "support", "webchat", customer=9)
    assert of(events, Queued)[0].parked_for == 1 and of(events, Offered) == []
    await online(engine, 2)  # idle, but the conversation waits for agent 1
    clock.advance(15)
    events = await engine.tick()
    assert of(events, WrapUpEnded) == [WrapUpEnded(1)]
    assert [(o.conversation, o.agent) for o in of(events, Offered)] == [(2, 1)]
    await engine.accept(2, 1)
    await engine.resolve(2)  # agent 1 in wrap-up again: available, but cannot take it yet
    events = await engine.enqueue(3, "support", "webchat", customer=9)
    assert of(events, Queued)[0].parked_for == 1 and of(events, Offered) == []
    await engine.set_presence(1, Presence.AWAY)
    clock.advance(119)
    assert of(await engine.tick(), Unparked) == []
    clock.advance(1)
    events = await engine.tick()
    assert of(events, Unparked) == [Unparked(3, "support")]
    assert [(o.conversation, o.agent) for o in of(events, Offered)] == [(3, 2)]


async def test_escalation_widens_then_overflows_keeping_age(engine: Engine, clock: FakeClock) -> None:
    await online(engine, 1)
    start = clock.now
    events = await engine.enqueue(1, "billing", "webchat", priority=1)
    assert of(events, Offered) == []  # agent 1 has billing 2, the queue needs 5
    await engine.set_presence(1, Presence.AWAY)
    clock.advance(60)
    events = await engine.tick()
    assert of(events, Escalated) == [Escalated(1, "billing", 1)]
    assert of(events, Offered) == []  # agent 1 away
    clock.advance(60)
    events = await engine.tick()
    assert of(events, Overflowed) == [Overflowed(1, "billing", "support", 2)]
    view = await engine.state.conversation(1)
    assert view is not None and (view.queue, view.enqueued_at, view.priority) == ("support", start, 1)
    events = await engine.set_presence(1, Presence.AVAILABLE)
    assert [(o.conversation, o.agent, o.queue) for o in of(events, Offered)] == [(1, 1, "support")]


async def test_escalation_lets_a_lower_proficiency_agent_in(engine: Engine, clock: FakeClock) -> None:
    await online(engine, 1)
    assert of(await engine.enqueue(1, "billing", "webchat"), Offered) == []
    clock.advance(60)
    events = await engine.tick()
    assert of(events, Escalated) == [Escalated(1, "billing", 1)]
    assert [(o.conversation, o.agent) for o in of(events, Offered)] == [(1, 1)]


async def test_calls_go_to_callback_at_the_last_stage(engine: Engine, clock: FakeClock) -> None:
    await engine.enqueue(1, "sales", "voice")
    await engine.enqueue(2, "sales", "email")
    clock.advance(300)
    events = await engine.tick()
    assert of(events, CallbackRequested) == [CallbackRequested(1, "sales", 1)]
    assert of(events, Escalated) == [Escalated(2, "sales", 1)]
    assert await engine.state.conversation(1) is None
    assert (await engine.queue_stats("sales")).waiting == 1


async def test_transfer_to_queue_with_note_keeps_age(engine: Engine, clock: FakeClock) -> None:
    await online(engine, 2, 3)
    start = clock.now
    await engine.enqueue(1, "support", "webchat")
    await engine.accept(1, 2)
    clock.advance(30)
    events = await engine.transfer(1, queue="billing", note="needs a refund")
    assert of(events, Transferred) == [Transferred(1, "support", 2, "billing", None, "needs a refund")]
    assert [(o.conversation, o.agent) for o in of(events, Offered)] == [(1, 3)]
    assert (await engine.state.conversation(1)).enqueued_at == start  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        await engine.transfer(1, queue="billing", agent=2)


async def test_transfer_to_agent_waits_for_them_then_returns(engine: Engine, clock: FakeClock) -> None:
    await online(engine, 1, 2)
    offered = of(await engine.enqueue(1, "support", "webchat"), Offered)[0]
    await engine.accept(1, offered.agent)
    target = 3 - offered.agent
    await engine.set_presence(target, Presence.AWAY)
    assert of(await engine.transfer(1, agent=target), Offered) == []
    clock.advance(45)
    events = await engine.tick()
    assert of(events, Unparked) == [Unparked(1, "support")]
    assert [o.agent for o in of(events, Offered)] == [offered.agent]


async def test_resolve_wrapup_then_next_work_and_stats(engine: Engine, clock: FakeClock) -> None:
    await online(engine, 1)
    await engine.set_presence(2, Presence.OFFLINE)
    for cid in (1, 2, 3, 4):  # agent 1 holds 3 chats at most (and could still take a call or an email)
        await engine.enqueue(cid, "support", "webchat")
    clock.advance(10)
    for cid in (1, 2, 3):
        await engine.accept(cid, 1)
    stats = await engine.queue_stats("support")
    assert (stats.waiting, stats.longest_wait, stats.busy_agents, stats.available_agents) == (1, 10.0, 1, 1)
    events = await engine.resolve(1)
    assert events == [Resolved(1, "support", 1, clock.now + 15)]
    clock.advance(15)
    events = await engine.tick()
    assert [(o.conversation, o.agent) for o in of(events, Offered)] == [(4, 1)]
    clock.advance(25)
    await engine.accept(4, 1)
    stats = await engine.queue_stats("support")
    assert (stats.answered, stats.answered_in_sla, stats.sla_attainment) == (4, 3, 0.75)
    assert [s.queue for s in await engine.all_queue_stats()] == ["support", "billing", "sales"]


async def test_unknown_things_are_refused(engine: Engine) -> None:
    with pytest.raises(KeyError):
        await engine.enqueue(1, "nowhere", "sms")
    with pytest.raises(KeyError):
        await engine.enqueue(1, "support", "fax")
    with pytest.raises(KeyError):
        await engine.set_presence(99, Presence.AVAILABLE)
    assert await engine.accept(1, 1) == [] and await engine.resolve(1) == []


async def test_first_response_target_events_and_attainment(state: RoutingState, clock: FakeClock) -> None:
    config = {"queues": {"support": {"direct": True, "first_response": 60}, "general": {"direct": True}},
              "agents": [{"id": 1, "queues": ["support", "general"]}]}
    engine = await Engine.from_config(config, state, clock=clock)
    await online(engine, 1)
    start = clock.now
    await engine.enqueue(1, "support", "webchat")
    await engine.enqueue(2, "support", "webchat", enqueued_at=start - 30)  # the customer wrote 30 s ago
    await engine.enqueue(3, "support", "webchat", replied=True)  # an agent already answered (restart)
    await engine.enqueue(4, "general", "webchat")  # no target in this queue
    clock.advance(40)
    assert await engine.responded(1, 1) == [FirstResponded(1, "support", 1, 40.0, 60.0, True)]
    assert await engine.responded(1, 1) == []
    assert await engine.responded(3, 1) == [] and await engine.responded(4, 1) == []
    assert of(await engine.tick(), SlaBreached) == [SlaBreached(2, "support", "first_response", 60.0, 70.0)]
    assert of(await engine.tick(), SlaBreached) == []
    clock.advance(5)
    assert await engine.responded(2, 1) == [FirstResponded(2, "support", 1, 75.0, 60.0, False)]
    stats = await engine.queue_stats("support")
    assert (stats.responded, stats.responded_in_sla, stats.response_breached) == (2, 1, 1)
    assert stats.first_response_attainment == 0.5
    assert (await engine.queue_stats("general")).first_response_attainment is None


async def test_a_stored_deadline_is_the_one_timed(state: RoutingState, clock: FakeClock) -> None:
    """A business-hours deadline (computed and stored by the hub) replaces arrival plus the target, in both state
    back-ends: nothing at arrival + 60 s, the breach at the given deadline, once; the same after an overflow."""
    config = {"queues": {"support": {"first_response": 60, "stages": [{"after": 10, "overflow": "general"}]},
                         "general": {}}}
    engine = await Engine.from_config(config, state, clock=clock)
    start = clock.now
    await engine.enqueue(1, "support", "webchat", respond_by=start + 3600)
    await engine.enqueue(2, "support", "webchat", respond_by=start + 7200)
    clock.advance(61)
    events = await engine.tick()  # both overflow to general, keeping their deadlines
    assert [e.conversation for e in events if isinstance(e, Overflowed)] == [1, 2]
    assert of(events, SlaBreached) == []
    clock.now = start + 3600
    assert of(await engine.tick(), SlaBreached) == []
    clock.now = start + 3601
    assert of(await engine.tick(), SlaBreached) == [SlaBreached(1, "support", "first_response", 3600.0, 3601.0)]
    assert of(await engine.tick(), SlaBreached) == []
    clock.now = start + 3700
    assert await engine.responded(2, None) == [FirstResponded(2, "support", None, 3700.0, 7200.0, True)]
    stats = await engine.queue_stats("support")
    assert (stats.responded, stats.responded_in_sla, stats.response_breached) == (1, 1, 1)


async def test_a_late_reply_before_the_tick_noticed_is_a_breach_once(state: RoutingState, clock: FakeClock) -> None:
    """Seen under load: the agent replied late before the tick had seen the deadline pass, so the breach was never
    recorded: the store's figures (the wall, reports, automation's "SLA breached") counted the reply as neither in
    time nor breached, while the routing state counted a breach."""
    config = {"queues": {"support": {"direct": True, "first_response": 60}},
              "agents": [{"id": 1, "queues": ["support"]}]}
    engine = await Engine.from_config(config, state, clock=clock)
    await online(engine, 1)
    await engine.enqueue(1, "support", "webchat")
    await engine.enqueue(2, "support", "webchat")
    clock.advance(75)  # no tick in between
    assert await engine.responded(1, 1) == [FirstResponded(1, "support", 1, 75.0, 60.0, False),
                                            SlaBreached(1, "support", "first_response", 60.0, 75.0)]
    assert of(await engine.tick(), SlaBreached) == [SlaBreached(2, "support", "first_response", 60.0, 75.0)]
    clock.advance(1)
    assert await engine.responded(2, 1) == [FirstResponded(2, "support", 1, 76.0, 60.0, False)]  # seen by the tick
    assert of(await engine.tick(), SlaBreached) == []
    stats = await engine.queue_stats("support")
    assert (stats.responded, stats.responded_in_sla, stats.response_breached) == (2, 0, 2)
