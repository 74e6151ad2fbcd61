"""The routing decision core: turns what happened (arrival, presence, accept, resolve, time passing) into decisions.

It does no I/O of its own: all shared state sits behind a RoutingState (memory or Redis), whose methods are the atomic
steps, and time comes from the injected clock. Every method returns the events it caused, for the hub to publish.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from hub.routing.config import RoutingConfig
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
from hub.routing.rules import Contact, Route, Rules
from hub.routing.state import RoutingState
from hub.routing.types import (
    CAPACITY_CLASS,
    AgentConfig,
    AgentId,
    AgentStats,
    Claim,
    Clock,
    ConversationId,
    Presence,
    QueueConfig,
    QueueId,
    QueueStats,
    Waiting,
)

# Bounds one call's follow-up dispatching; anything left is picked up by the next event or tick.
_MAX_DISPATCH = 1000


class Engine:
    def __init__(
        self,
        state: RoutingState,
        *,
        clock: Clock = time.time,
        rules: Rules | None = None,
        missed_offers: int = 3,
        transfer_wait: float = 60.0,
    ) -> None:
        self.state = state
        self.clock = clock
        self.rules = rules
        self.missed_offers = missed_offers
        self.transfer_wait = transfer_wait
        self.queues: dict[QueueId, QueueConfig] = {}

    @classmethod
    async def from_config(cls, raw: Any, state: RoutingState, *, clock: Clock = time.time) -> Engine:
        """Build from the [routing] config table (see hub/routing/config.py); raises RoutingConfigError."""
        config = RoutingConfig.from_dict(raw)
        engine = cls(state, clock=clock, missed_offers=config.missed_offers, transfer_wait=config.transfer_wait)
        await engine.apply(config)
        return engine

    async def apply(self, config: RoutingConfig) -> None:
        """Install queues, agents and rules; safe to call again with changed config (no restart)."""
        self.rules = config.rules
        self.missed_offers = config.missed_offers
        self.transfer_wait = config.transfer_wait
        # A queue gone from config takes no new work; what is already in it stays in the state until resolved.
        for gone in set(self.queues) - set(config.queues):
            del self.queues[gone]
        for q in config.queues.values():
            await self.put_queue(q)
        for a in config.agents.values():
            await self.put_agent(a)

    async def put_queue(self, queue: QueueConfig) -> None:
        self.queues[queue.id] = queue
        await self.state.put_queue(queue, self.clock())

    async def put_agent(self, agent: AgentConfig) -> None:
        await self.state.put_agent(agent, self.clock())

    # arrivals

    def choose_queue(self, contact: Contact) -> Route:
        if self.rules is None:
            raise RuntimeError("no routing rules configured")
        return self.rules.route(contact)

    async def route(
        self,
        conversation: ConversationId,
        contact: Contact,
        *,
        customer: int | None = None,
        enqueued_at: float | None = None,
        replied: bool = False,
    ) -> list[RoutingEvent]:
        """Pick the queue by the rules, then enqueue and dispatch."""
        route = self.choose_queue(contact)
        return await self.enqueue(
            conversation,
            route.queue,
            contact.channel,
            priority=route.priority,
            customer=customer,
            enqueued_at=enqueued_at,
            replied=replied,
        )

    async def enqueue(
        self,
        conversation: ConversationId,
        queue: QueueId,
        channel: str,
        *,
        priority: int = 0,
        customer: int | None = None,
        enqueued_at: float | None = None,
        replied: bool = False,
        respond_by: float | None = None,
    ) -> list[RoutingEvent]:
        """`enqueued_at` is when the customer wrote (default: now): the conversation's age and the start of its
        first-response clock; `replied`: an agent already answered it (re-queued after a restart), nothing to time;
        `respond_by`: its first-response deadline as the store holds it (a business-hours one), instead of
        `enqueued_at` plus the queue's target."""
        q = self.queues.get(queue)
        if q is None:
            raise KeyError(f"unknown queue {queue!r}")
        if channel not in CAPACITY_CLASS:
            raise KeyError(f"unknown channel {channel!r}")
        now = self.clock()
        arrived = now if enqueued_at is None else enqueued_at
        if replied:
            due = 0.0
        elif respond_by is not None:
            due = respond_by
        else:
            due = arrived + q.first_response if q.first_response > 0 else 0.0
        item = Waiting(conversation, queue, channel, priority, arrived, customer, due)
        parked = await self.state.enqueue(item, now, q.sticky_for)
        events: list[RoutingEvent] = [Queued(conversation, queue, priority, parked)]
        if parked is not None:
            await self._drain_agent(parked, events)
        else:
            await self._drain_queue(queue, events)
        return events

    async def enqueue_many(self, items: Sequence[Waiting]) -> tuple[list[ConversationId], list[RoutingEvent]]:
        """enqueue for each item as given (its age, priority and first-response deadline): the state's writes in one
        step (one round trip in Redis), then each queue and each agent it was parked for drained once. Returns those
        queued (not one already routed, or of an unknown queue or channel) and the events."""
        now = self.clock()
        known = [i for i in items if i.queue in self.queues and i.channel in CAPACITY_CLASS]
        results = await self.state.enqueue_many([(i, self.queues[i.queue].sticky_for) for i in known], now)
        events: list[RoutingEvent] = []
        queued: list[ConversationId] = []
        queues: dict[QueueId, None] = {}
        parked_for: dict[AgentId, None] = {}
        for item, (ok, parked) in zip(known, results, strict=True):
            if not ok:
                continue
            queued.append(item.id)
            events.append(Queued(item.id, item.queue, item.priority, parked))
            if parked is not None:
                parked_for[parked] = None
            else:
                queues[item.queue] = None
        await self._drain_agents(list(parked_for), events)
        for q in queues:
            # One drain stops at _MAX_DISPATCH decisions; enqueued one by one, each would have had its own.
            while len(claims := await self.state.drain_queue(q, self.clock(), _MAX_DISPATCH)) == _MAX_DISPATCH:
                for claim in claims:
                    self._decided(claim, events)
            for claim in claims:
                self._decided(claim, events)
        return queued, events

    # agents

    async def set_presence(self, agent: AgentId, presence: Presence) -> list[RoutingEvent]:
        if not await self.state.set_presence(agent, presence, self.clock()):
            raise KeyError(f"unknown agent {agent}")
        events: list[RoutingEvent] = [PresenceChanged(agent, presence.value, "agent")]
        if presence is Presence.AVAILABLE:
            await self._drain_agent(agent, events)
        return events

    async def accept(self, conversation: ConversationId, agent: AgentId) -> list[RoutingEvent]:
        """Empty when the offer is no longer this agent's (timed out, transferred, resolved)."""
        now = self.clock()
        claim = await self.state.accept(conversation, agent, now)
        if claim is None:
            return []
        return [Assigned(conversation, agent, claim.queue, claim.channel, now - claim.enqueued_at, accepted=True)]

    async def reject(self, conversation: ConversationId, agent: AgentId) -> list[RoutingEvent]:
        claim = await self.state.reject(conversation, agent, self.clock())
        if claim is None:
            return []
        events: list[RoutingEvent] = [Rejected(conversation, agent, claim.queue)]
        await self._drain_queue(claim.queue, events)
        await self._drain_agent(agent, events)
        return events

    async def resolve(self, conversation: ConversationId) -> list[RoutingEvent]:
        """The conversation is done (or the customer left while waiting): free the agent's capacity."""
        release = await self.state.resolve(conversation, self.clock())
        if release is None:
            return []
        events: list[RoutingEvent] = [Resolved(conversation, release.queue, release.agent, release.wrapup_until)]
        if release.agent is not None and release.wrapup_until is None:
            await self._drain_agent(release.agent, events)
        return events

    async def transfer(
        self,
        conversation: ConversationId,
        *,
        queue: QueueId | None = None,
        agent: AgentId | None = None,
        note: str = "",
    ) -> list[RoutingEvent]:
        """To a queue (it keeps its age), or to an agent, who has `transfer_wait` seconds before it goes back."""
        if (queue is None) == (agent is None):
            raise ValueError("transfer to exactly one of a queue or an agent")
        if queue is not None and queue not in self.queues:
            raise KeyError(f"unknown queue {queue!r}")
        now = self.clock()
        release = await self.state.transfer(conversation, now, queue=queue, agent=agent, until=now + self.transfer_wait)
        if release is None:
            return []
        events: list[RoutingEvent] = [Transferred(conversation, release.queue, release.agent, queue, agent, note)]
        if agent is not None:
            await self._drain_agent(agent, events)
        else:
            assert queue is not None
            await self._drain_queue(queue, events)
        if release.agent is not None and release.agent != agent:
            await self._drain_agent(release.agent, events)
        return events

    async def set_priority(self, conversation: ConversationId, priority: int) -> bool:
        """A waiting (or parked) conversation moves to its place in line for PRIORITY, keeping its age; an offered
        or assigned one keeps it for when it goes back to a queue. False if routing does not hold it. Nothing is
        dispatched: the agents who could take the new head of a line could take the old one (a line's conversations
        all need the same skills and capacity)."""
        return await self.state.set_priority(conversation, priority)

    async def responded(self, conversation: ConversationId, agent: AgentId | None) -> list[RoutingEvent]:
        """An agent's reply was sent to the customer: the first one stops the conversation's first-response clock."""
        now = self.clock()
        r = await self.state.responded(conversation, now)
        if r is None:
            return []
        target, waited = r.respond_by - r.enqueued_at, now - r.enqueued_at
        events: list[RoutingEvent] = [FirstResponded(conversation, r.queue, agent, waited, target, now <= r.respond_by)]
        if r.breach_noticed:  # late, and no tick saw it first: the breach is recorded now, once, as a tick's would be
            events.append(SlaBreached(conversation, r.queue, "first_response", target, waited))
        return events

    # time passing

    async def tick(self) -> list[RoutingEvent]:
        """Apply every deadline due by now: offer timeouts, wrap-ups, sticky windows, escalation stages.

        The hub calls this about once a second; several processes may call it, each step is atomic.
        """
        now = self.clock()
        events: list[RoutingEvent] = []
        queues: dict[QueueId, None] = {}
        agents: dict[AgentId, None] = {}
        for e in await self.state.expire_offers(now, self.missed_offers):
            events.append(OfferTimedOut(e.conversation, e.agent, e.queue))
            queues[e.queue] = None
            if e.set_away:
                events.append(PresenceChanged(e.agent, Presence.AWAY.value, "missed_offers"))
            else:
                agents[e.agent] = None
        for aid in await self.state.end_wrapups(now):
            events.append(WrapUpEnded(aid))
            agents[aid] = None
        for b in await self.state.response_breaches(now):
            events.append(SlaBreached(b.conversation, b.queue, "first_response", b.respond_by - b.enqueued_at,
                                      now - b.enqueued_at))
        for w in await self.state.release_parked(now):
            events.append(Unparked(w.id, w.queue))
            queues[w.queue] = None
        for q in self.queues.values():
            for index, stage in enumerate(q.stages, start=1):
                for esc in await self.state.escalate(q.id, index, now - stage.after, now):
                    if esc.action == "overflow":
                        assert esc.target is not None
                        events.append(Overflowed(esc.conversation, q.id, esc.target, index))
                        queues[esc.target] = None
                    elif esc.action == "callback":
                        events.append(CallbackRequested(esc.conversation, q.id, index))
                    else:
                        events.append(Escalated(esc.conversation, q.id, index))
                        queues[q.id] = None
        for qid in queues:
            await self._drain_queue(qid, events)
        await self._drain_agents(list(agents), events)
        return events

    # reading

    async def queue_stats(self, queue: QueueId) -> QueueStats:
        return await self.state.queue_stats(queue, self.clock())

    async def agent_stats(self, agent: AgentId) -> AgentStats | None:
        return await self.state.agent_stats(agent)

    async def all_queue_stats(self) -> list[QueueStats]:
        return [await self.queue_stats(q) for q in self.queues]

    # dispatching

    def _decided(self, claim: Claim, events: list[RoutingEvent]) -> None:
        if claim.offered:
            assert claim.deadline is not None
            events.append(Offered(claim.conversation, claim.agent, claim.queue, claim.channel, claim.deadline))
        else:
            waited = self.clock() - claim.enqueued_at
            events.append(Assigned(claim.conversation, claim.agent, claim.queue, claim.channel, waited))

    async def _drain_queue(self, queue: QueueId, events: list[RoutingEvent]) -> None:
        for claim in await self.state.drain_queue(queue, self.clock(), _MAX_DISPATCH):
            self._decided(claim, events)

    async def _drain_agent(self, agent: AgentId, events: list[RoutingEvent]) -> None:
        await self._drain_agents([agent], events)

    async def _drain_agents(self, agents: list[AgentId], events: list[RoutingEvent]) -> None:
        """All the agents' free slots in one step (one round trip in Redis), e.g. after a tick freed many."""
        if agents:
            for claim in await self.state.drain_agents(agents, self.clock(), _MAX_DISPATCH):
                self._decided(claim, events)

    async def drain(self, queues: Iterable[QueueId] | None = None) -> list[RoutingEvent]:
        """Dispatch everything that can be dispatched now (after start-up or a config change)."""
        events: list[RoutingEvent] = []
        for q in self.queues if queues is None else queues:
            await self._drain_queue(q, events)
        return events
