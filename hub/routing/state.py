"""The one interface both routing state backends (memory, Redis) implement.

Each method is atomic: in Redis it is one Lua script, so several hub processes can share one state and never hand a
conversation to two agents or an agent more than their capacity. `now` always comes from the engine's clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from hub.routing.types import (
    AgentConfig,
    AgentId,
    AgentStats,
    Claim,
    ConversationId,
    ConversationView,
    Escalation,
    Expiry,
    FirstResponse,
    Presence,
    QueueConfig,
    QueueId,
    QueueStats,
    Release,
    Waiting,
)


class RoutingState(Protocol):
    async def put_queue(self, queue: QueueConfig, now: float) -> None:
        """Create or replace a queue's settings; conversations already waiting stay."""

    async def put_agent(self, agent: AgentConfig, now: float) -> None:
        """Create or replace an agent's settings; presence and current load are kept (new agents start offline)."""

    async def set_presence(self, agent: AgentId, presence: Presence, now: float) -> bool:
        """False if the agent is unknown."""

    async def enqueue(self, item: Waiting, now: float, sticky_for: float) -> AgentId | None:
        """Put a conversation in its queue, or park it for the customer's last agent (returned) when sticky.

        Raises KeyError if the conversation is already routed (waiting, offered or assigned).
        """

    async def enqueue_many(
        self, items: Sequence[tuple[Waiting, float]], now: float
    ) -> list[tuple[bool, AgentId | None]]:
        """enqueue for each (item, sticky_for), in order, as one round trip in Redis (the reconciler's rebuild): for
        each, whether it was queued (False: already routed) and the agent it was parked for."""

    async def dispatch_queue(self, queue: QueueId, now: float) -> Claim | None:
        """Give the best waiting conversation of the queue to the best ready agent, if any can take it."""

    async def dispatch_agent(self, agent: AgentId, now: float) -> Claim | None:
        """Give this agent the best conversation parked for them, else the best head of their queues."""

    async def drain_queue(self, queue: QueueId, now: float, most: int) -> list[Claim]:
        """dispatch_queue until it decides nothing (at most `most` times), as one step: one round trip in Redis."""

    async def drain_agents(self, agents: Sequence[AgentId], now: float, most: int) -> list[Claim]:
        """dispatch_agent for each agent in turn until it decides nothing (at most `most` claims in all)."""

    async def accept(self, conversation: ConversationId, agent: AgentId, now: float) -> Claim | None:
        """None unless the conversation is currently offered to this agent."""

    async def reject(self, conversation: ConversationId, agent: AgentId, now: float) -> Claim | None:
        """Put the offered conversation back in its queue (keeping its age); that agent is skipped for it."""

    async def expire_offers(self, now: float, missed_limit: int) -> list[Expiry]:
        """Requeue every offer past its deadline; an agent reaching `missed_limit` misses in a row is set away."""

    async def resolve(self, conversation: ConversationId, now: float) -> Release | None:
        """Forget the conversation and free the agent's capacity (wrap-up follows an assigned one)."""

    async def transfer(
        self,
        conversation: ConversationId,
        now: float,
        *,
        queue: QueueId | None = None,
        agent: AgentId | None = None,
        until: float = 0.0,
    ) -> Release | None:
        """Move the conversation to a queue, or park it for an agent until `until`; it keeps its age."""

    async def set_priority(self, conversation: ConversationId, priority: int) -> bool:
        """Give the conversation a new priority: waiting or parked, it moves to its new place in line, keeping its
        age; offered or assigned, it keeps the priority for when it goes back to a queue (reject, timeout,
        transfer). False, changing nothing, for a conversation the state does not hold."""

    async def end_wrapups(self, now: float) -> list[AgentId]:
        """Agents whose wrap-up ended by `now`, ready again."""

    async def release_parked(self, now: float) -> list[Waiting]:
        """Parked conversations whose agent did not take them in time, moved into their queue."""

    async def escalate(self, queue: QueueId, stage: int, older_than: float, now: float) -> list[Escalation]:
        """Apply stage `stage` (1-based) of the queue's plan to conversations in the queue since `older_than`."""

    async def responded(self, conversation: ConversationId, now: float) -> FirstResponse | None:
        """An agent replied: the first reply to a conversation awaiting one (its queue has a first-response target)
        is counted, in or out of target, and returned; None for any later reply or a conversation not routed."""

    async def response_breaches(self, now: float) -> list[FirstResponse]:
        """Conversations whose first-response deadline passed with no reply yet, each returned (and counted) once;
        a conversation resolved after its deadline without a reply is one too."""

    async def hold(self, item: Waiting, agent: AgentId, deadline: float | None, now: float) -> bool:
        """Rebuild one decision the store holds: the conversation is offered to the agent until `deadline` (None:
        assigned to them) and counts against their capacity, whatever their room; a first-response deadline
        (`item.respond_by`) is timed again. False, changing nothing, if the conversation is already routed or the
        agent unknown; KeyError for an unknown queue."""

    async def hold_many(self, holds: Sequence[tuple[Waiting, AgentId, float | None]], now: float) -> list[bool]:
        """hold for each (item, agent, deadline), in order, as one round trip in Redis (the reconciler's rebuild)."""

    async def restore_counts(self, queue: QueueId, counts: Mapping[str, int]) -> None:
        """Replace the queue's counters (QueueStats' offered, accepted, ... response_breached; a missing one is 0)
        with what the store recorded: a state rebuilt from the store (a restart, a wiped Redis) counts on."""

    async def version(self) -> int:
        """A number that changes whenever a conversation is added to the state, dropped from it, or changes its
        state, agent or priority (one round trip in Redis): the reconciler's cheap look before comparing."""

    async def changes(self, since: int) -> tuple[int, list[ConversationId]] | None:
        """The version now and every conversation whose change moved version() past SINCE (one round trip in Redis):
        the reconciler's incremental pass. None when that is no longer known: trimmed past SINCE, or the version
        went back (a wiped Redis)."""

    async def trim_changes(self, below: int) -> None:
        """Forget which conversations changed up to version BELOW: changes(since) is None for any SINCE below it."""

    async def routed(self) -> list[ConversationId]:
        """Every conversation the state holds (waiting, parked, offered or assigned): the reconciler's side."""

    async def conversation(self, conversation: ConversationId) -> ConversationView | None: ...

    async def read_conversations(self, ids: Sequence[ConversationId]) -> dict[ConversationId, ConversationView]:
        """The views of those of IDS the state holds, read at once: one round trip in Redis (the reconciler's page)."""

    async def queue_stats(self, queue: QueueId, now: float) -> QueueStats: ...

    async def agent_stats(self, agent: AgentId) -> AgentStats | None: ...

    async def read_agents(self, ids: Sequence[AgentId]) -> dict[AgentId, AgentStats]:
        """agent_stats of those of IDS the state knows, read at once: one round trip in Redis."""
