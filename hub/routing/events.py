"""What routing decided, as plain events the engine returns and the hub publishes (type + data, like hub.events)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from hub.routing.types import AgentId, ConversationId, QueueId


@dataclass(frozen=True)
class RoutingEvent:
    type: ClassVar[str] = "routing"

    def data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Queued(RoutingEvent):
    type: ClassVar[str] = "routing.queued"
    conversation: ConversationId
    queue: QueueId
    priority: int
    parked_for: AgentId | None  # the customer's last agent, who gets first refusal


@dataclass(frozen=True)
class Offered(RoutingEvent):
    type: ClassVar[str] = "routing.offered"
    conversation: ConversationId
    agent: AgentId
    queue: QueueId
    channel: str
    deadline: float


@dataclass(frozen=True)
class Assigned(RoutingEvent):
    """The agent accepted the offer, or the queue assigns directly."""

    type: ClassVar[str] = "routing.assigned"
    conversation: ConversationId
    agent: AgentId
    queue: QueueId
    channel: str
    waited: float
    accepted: bool = False  # the agent accepted an offer (else: assigned directly, or by a repair)


@dataclass(frozen=True)
class Rejected(RoutingEvent):
    type: ClassVar[str] = "routing.rejected"
    conversation: ConversationId
    agent: AgentId
    queue: QueueId


@dataclass(frozen=True)
class OfferTimedOut(RoutingEvent):
    type: ClassVar[str] = "routing.offer_timed_out"
    conversation: ConversationId
    agent: AgentId
    queue: QueueId


@dataclass(frozen=True)
class PresenceChanged(RoutingEvent):
    type: ClassVar[str] = "routing.presence"
    agent: AgentId
    presence: str
    reason: str  # agent | missed_offers


@dataclass(frozen=True)
class Escalated(RoutingEvent):
    """The conversation reached a stage that widens who may take it."""

    type: ClassVar[str] = "routing.escalated"
    conversation: ConversationId
    queue: QueueId
    stage: int


@dataclass(frozen=True)
class Overflowed(RoutingEvent):
    type: ClassVar[str] = "routing.overflowed"
    conversation: ConversationId
    queue: QueueId
    to_queue: QueueId
    stage: int


@dataclass(frozen=True)
class CallbackRequested(RoutingEvent):
    """A call waited too long: it left the queue; the hub takes voicemail or schedules a callback."""

    type: ClassVar[str] = "routing.callback"
    conversation: ConversationId
    queue: QueueId
    stage: int


@dataclass(frozen=True)
class Transferred(RoutingEvent):
    type: ClassVar[str] = "routing.transferred"
    conversation: ConversationId
    from_queue: QueueId
    from_agent: AgentId | None
    to_queue: QueueId | None
    to_agent: AgentId | None
    note: str


@dataclass(frozen=True)
class Resolved(RoutingEvent):
    type: ClassVar[str] = "routing.resolved"
    conversation: ConversationId
    queue: QueueId
    agent: AgentId | None  # None: it was still waiting (abandoned), unless snoozed
    wrapup_until: float | None
    snoozed: bool = False  # set aside by an agent (hub.inbox.snooze), not abandoned nor done


@dataclass(frozen=True)
class WrapUpEnded(RoutingEvent):
    type: ClassVar[str] = "routing.wrapup_ended"
    agent: AgentId


@dataclass(frozen=True)
class Unparked(RoutingEvent):
    """The preferred agent did not take it in time: the conversation is now open to the whole queue."""

    type: ClassVar[str] = "routing.unparked"
    conversation: ConversationId
    queue: QueueId


@dataclass(frozen=True)
class FirstResponded(RoutingEvent):
    """An agent's first reply reached (was sent to) the customer; `within`: by the queue's first-response target."""

    type: ClassVar[str] = "routing.first_response"
    conversation: ConversationId
    queue: QueueId
    agent: AgentId | None
    waited: float  # seconds from arrival to the reply
    target: float  # seconds from arrival to the deadline (a business-hours target: the clock time it gave)
    within: bool


@dataclass(frozen=True)
class SlaBreached(RoutingEvent):
    """A conversation passed a service-level target (kind "first_response": no agent reply in time)."""

    type: ClassVar[str] = "routing.sla_breached"
    conversation: ConversationId
    queue: QueueId
    kind: str
    target: float  # seconds from arrival to the deadline (as FirstResponded's)
    waited: float  # seconds since arrival when the breach was seen
