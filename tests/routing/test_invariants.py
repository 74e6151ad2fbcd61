"""Property-based state machine over the engine on each backend: the routing invariants hold after every step.

Never two agents for one conversation, never over capacity, priority first and FIFO within a priority (priorities
changing as an automation rule changes them), no conversation forgotten; and
the state can be lost at any step (a Redis wipe, a restart of the memory backend) and rebuilt from what the store
recorded, as the reconciler does, with all of that still true. (A crash between a decision's two writes is a
transition of tests/routing/test_fault_machine.py, which runs a whole hub with its store.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from hub.routing.engine import Engine
from hub.routing.events import Assigned, CallbackRequested, Offered, PresenceChanged, RoutingEvent
from hub.routing.memory import MemoryState
from hub.routing.redis import RedisState
from hub.routing.state import RoutingState
from hub.routing.types import CAPACITY_CLASS, ConversationView, Presence, Waiting

from .conftest import FakeClock

T = TypeVar("T")
CONFIG: dict[str, Any] = {
    "missed_offers": 2,
    "queues": {"a": {"offer_timeout": 10}, "b": {"direct": True, "strategy": "least_occupied"}},
    "agents": [
        {"id": 1, "queues": ["a"], "capacity": {"voice": 1, "chat": 2}},
        {"id": 2, "queues": ["a", "b"], "capacity": {"chat": 1, "email": 2}, "wrapup": 5},
        {"id": 3, "queues": ["b"], "capacity": {"voice": 1, "chat": 3, "email": 1}},
    ],
}
CHANNELS = ("webchat", "sms", "voice", "email")
SETTINGS = settings(max_examples=150, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck))
REDIS_SETTINGS = settings(SETTINGS, max_examples=40)


class RoutingMachine(RuleBasedStateMachine):
    redis_url: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.client: Redis | None = None
        self.state: RoutingState
        if self.redis_url is None:
            self.state = MemoryState()
        else:
            self.client = Redis.from_url(self.redis_url)
            self.state = RedisState(self.client, prefix=f"test:routing:{uuid.uuid4().hex}:")
        self.engine: Engine = self.run(Engine.from_config(CONFIG, self.state, clock=self.clock))
        self.live: set[int] = set()  # routed and neither resolved nor sent to callback
        self.next_id = 1
        self.views: dict[int, ConversationView] = {}
        self.presence: dict[int, Presence] = {}  # as the store keeps it

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        if isinstance(self.state, RedisState) and self.client is not None:
            self.run(self.state.clear())
            self.run(self.client.aclose())
        self.loop.close()

    def snapshot(self) -> dict[int, ConversationView]:
        out = {}
        for cid in self.live:
            view = self.run(self.state.conversation(cid))
            assert view is not None, f"conversation {cid} was forgotten"
            out[cid] = view
        return out

    def apply(self, events: list[RoutingEvent]) -> None:
        before = self.views
        for e in events:
            if isinstance(e, CallbackRequested):
                self.live.discard(e.conversation)
            elif isinstance(e, PresenceChanged):
                self.presence[e.agent] = Presence(e.presence)
        after = self.snapshot()
        dispatched: dict[tuple[str, str, int], float] = {}
        for e in events:
            if not isinstance(e, Offered | Assigned) or e.conversation not in before:
                continue
            was = before[e.conversation]
            if was.state != "waiting":
                continue
            line = (e.queue, CAPACITY_CLASS[was.channel], was.priority)
            if was.queue == e.queue:
                # Priority first: nothing of a higher priority was waiting in the same line (no stages here).
                higher = [y.id for y in before.values() if y.state == "waiting" and y.queue == e.queue
                          and CAPACITY_CLASS[y.channel] == line[1] and y.priority > was.priority
                          and y.id in after and after[y.id].state == "waiting"]
                assert not higher, f"{e.conversation} was dispatched while {higher} of a higher priority wait"
                # Within one step too: the same line is served oldest first.
                assert was.enqueued_at >= dispatched.get(line, float("-inf")), f"{e.conversation} out of FIFO order"
                dispatched[line] = was.enqueued_at
            for y in after.values():
                old = before.get(y.id)
                same_line = (y.queue, CAPACITY_CLASS[y.channel], y.priority) == line
                if y.state == "waiting" and old is not None and old.state == "waiting" and old.queue == y.queue:
                    assert not (same_line and y.enqueued_at < was.enqueued_at), (
                        f"{e.conversation} was dispatched while older {y.id} waits (FIFO)"
                    )
        self.views = after

    @initialize(agents=st.sets(st.sampled_from([1, 2, 3]), min_size=1))
    def start(self, agents: set[int]) -> None:
        for a in sorted(agents):
            self.apply(self.run(self.engine.set_presence(a, Presence.AVAILABLE)))

    @rule(
        queue=st.sampled_from(["a", "b"]),
        channel=st.sampled_from(CHANNELS),
        priority=st.integers(0, 1),
        age=st.floats(0, 30),
    )
    def enqueue(self, queue: str, channel: str, priority: int, age: float) -> None:
        cid = self.next_id
        self.next_id += 1
        self.live.add(cid)
        self.views[cid] = ConversationView(cid, queue, channel, priority, 0.0, "new", None, 0)
        events = self.run(self.engine.enqueue(cid, queue, channel, priority=priority, enqueued_at=self.clock.now - age))
        self.apply(events)

    def _pick(self, state: str, i: int) -> ConversationView | None:
        found = sorted((v for v in self.views.values() if v.state == state), key=lambda v: v.id)
        return found[i % len(found)] if found else None

    @precondition(lambda self: any(v.state == "offered" for v in self.views.values()))
    @rule(i=st.integers(0, 50), accept=st.booleans())
    def answer(self, i: int, accept: bool) -> None:
        v = self._pick("offered", i)
        assert v is not None and v.agent is not None
        call = self.engine.accept if accept else self.engine.reject
        events = self.run(call(v.id, v.agent))
        assert events, "a live offer must be answerable by its agent"
        self.apply(events)

    @precondition(lambda self: bool(self.live))
    @rule(i=st.integers(0, 50))
    def resolve(self, i: int) -> None:
        cid = sorted(self.live)[i % len(self.live)]
        self.live.discard(cid)
        self.apply(self.run(self.engine.resolve(cid)))
        assert self.run(self.state.conversation(cid)) is None

    @precondition(lambda self: bool(self.live))
    @rule(i=st.integers(0, 50), queue=st.sampled_from(["a", "b"]))
    def transfer(self, i: int, queue: str) -> None:
        cid = sorted(self.live)[i % len(self.live)]
        enqueued = self.views[cid].enqueued_at
        self.apply(self.run(self.engine.transfer(cid, queue=queue, note="x")))
        assert self.views[cid].enqueued_at == enqueued  # age survives

    @precondition(lambda self: bool(self.live))
    @rule(i=st.integers(0, 50), priority=st.integers(-1, 2))
    def set_priority(self, i: int, priority: int) -> None:
        """An automation rule's set_priority: the store first (here, the views the rebuild reads), then the state."""
        cid = sorted(self.live)[i % len(self.live)]
        before = self.views[cid]
        assert self.run(self.engine.set_priority(cid, priority))
        self.apply([])
        after = self.views[cid]
        assert after.priority == priority
        # Nothing but its place in line changes: the same queue, state, agent and age.
        assert (after.queue, after.state, after.agent, after.enqueued_at, after.until) == (
            before.queue, before.state, before.agent, before.enqueued_at, before.until)

    @rule(agent=st.sampled_from([1, 2, 3]), presence=st.sampled_from(list(Presence)))
    def presence(self, agent: int, presence: Presence) -> None:
        self.apply(self.run(self.engine.set_presence(agent, presence)))

    @rule(seconds=st.sampled_from([1.0, 5.0, 10.0, 11.0]))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.apply(self.run(self.engine.tick()))

    @rule()
    def lose_state(self) -> None:
        """The derived state is gone (Redis restarted empty); rebuilt from the store's record, as the reconciler
        does: queues and agents loaded, presence given back, offers and assignments held by the same agent, every
        other live conversation back in its queue with its age, oldest first."""
        if isinstance(self.state, RedisState):
            self.run(self.state.clear())
        else:
            self.state = MemoryState()
        self.engine = self.run(Engine.from_config(CONFIG, self.state, clock=self.clock))
        events: list[RoutingEvent] = []
        for aid, presence in sorted(self.presence.items()):
            events += self.run(self.engine.set_presence(aid, presence))
        recorded = [self.views[cid] for cid in self.live]
        now = self.clock.now
        for v in recorded:
            if v.state in ("offered", "assigned") and v.agent is not None:
                item = Waiting(v.id, v.queue, v.channel, v.priority, v.enqueued_at)
                deadline = v.until if v.state == "offered" else None
                assert self.run(self.state.hold(item, v.agent, deadline, now))
        for v in sorted(recorded, key=lambda v: (v.enqueued_at, v.id)):
            if v.state not in ("offered", "assigned"):
                self.views[v.id] = ConversationView(v.id, v.queue, v.channel, v.priority, v.enqueued_at, "waiting",
                                                    None, 0)
                events += self.run(self.engine.enqueue(v.id, v.queue, v.channel, priority=v.priority,
                                                       enqueued_at=v.enqueued_at))
        self.apply(events)

    @invariant()
    def one_agent_per_conversation_and_within_capacity(self) -> None:
        held: dict[int, dict[str, int]] = {}
        for v in self.views.values():
            if v.state in ("offered", "assigned"):
                assert v.agent is not None
                cls = CAPACITY_CLASS[v.channel]
                held.setdefault(v.agent, {}).setdefault(cls, 0)
                held[v.agent][cls] += 1
            else:
                assert v.agent is None
        for aid in (1, 2, 3):
            stats = self.run(self.state.agent_stats(aid))
            assert stats is not None
            # The agent's load is exactly the conversations that name them: none counted twice or lost.
            assert stats.load == held.get(aid, {})
            for cls, n in stats.load.items():
                assert n <= stats.capacity.get(cls, 0), f"agent {aid} over capacity for {cls}"


def test_invariants_memory() -> None:
    run_state_machine_as_test(RoutingMachine, settings=SETTINGS)


def test_invariants_redis(redis_url: str) -> None:
    class RedisMachine(RoutingMachine):
        pass

    RedisMachine.redis_url = redis_url
    run_state_machine_as_test(RedisMachine, settings=REDIS_SETTINGS)
