"""The routing vocabulary every routing module imports: presence, strategies, queues, agents and state records."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]  # seconds; time.time in production, a settable fake in tests
ConversationId = int
AgentId = int
QueueId = str

CHANNELS = ("sms", "voice", "whatsapp", "email", "telegram", "webchat", "api")

# Capacity is counted per class, not per channel: an agent can hold 3 chats whether they came by SMS or Telegram.
CAPACITY_CLASS: dict[str, str] = {
    "voice": "voice",
    "email": "email",
    "sms": "chat",
    "whatsapp": "chat",
    "telegram": "chat",
    "webchat": "chat",
    "api": "chat",
}
CLASSES = ("voice", "chat", "email")

# How many ready agents one decision looks at, at most: keeps a decision O(1) however big the queue is.
SCAN_LIMIT = 64


class Presence(enum.StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    OFFLINE = "offline"


class Strategy(enum.StrEnum):
    LONGEST_IDLE = "longest_idle"
    LEAST_OCCUPIED = "least_occupied"
    ROUND_ROBIN = "round_robin"
    SKILLS = "skills"


@dataclass(frozen=True)
class Stage:
    """One step of a queue's escalation plan, taken `after` seconds in the queue."""

    after: float
    skills: dict[str, int] | None = None  # widen: the new minimum proficiencies (0 or absent = anyone)
    overflow: QueueId | None = None  # move to this queue; the conversation keeps its age
    callback: bool = False  # calls leave the queue for voicemail/callback; other channels just widen

    @property
    def action(self) -> str:
        return "overflow" if self.overflow else "callback" if self.callback else "widen"


@dataclass(frozen=True)
class QueueConfig:
    id: QueueId
    strategy: Strategy = Strategy.LONGEST_IDLE
    skills: dict[str, int] = field(default_factory=dict)  # required skill -> minimum proficiency
    offer_timeout: float = 30.0
    direct: bool = False  # assign without an offer
    sticky_for: float = 0.0  # how long the customer's last agent gets first refusal
    sla_wait: float = 60.0  # target time from arrival to an agent answering
    stages: tuple[Stage, ...] = ()
    first_response: float = 0.0  # target time from arrival to the first agent reply the customer gets (0: none)
    first_response_hours: str = "calendar"  # "business": the target counts only the queue's business hours

    @functools.cached_property
    def levels(self) -> list[dict[str, int]]:
        """Minimum proficiencies in force at each stage index (0 = before the first stage)."""
        out = [dict(self.skills)]
        for stage in self.stages:
            out.append(dict(stage.skills) if stage.skills is not None else out[-1])
        return out

    @functools.cached_property
    def floor(self) -> dict[str, int]:
        """The widest requirement any stage reaches: an agent below it is never a candidate here."""
        levels = self.levels
        return {s: min(level.get(s, 0) for level in levels) for s in self.skills}


@dataclass(frozen=True)
class AgentConfig:
    id: AgentId
    queues: tuple[QueueId, ...] = ()
    capacity: dict[str, int] = field(default_factory=lambda: {"voice": 1, "chat": 3, "email": 5})
    skills: dict[str, int] = field(default_factory=dict)
    wrapup: float = 0.0  # seconds after resolving an assigned conversation before new work
    exclusive: frozenset[str] = frozenset({"voice"})  # while holding one of these, nothing else is offered


@dataclass(frozen=True)
class Waiting:
    """A conversation as it enters a queue."""

    id: ConversationId
    queue: QueueId
    channel: str
    priority: int = 0  # higher first
    enqueued_at: float = 0.0  # its age: kept across escalation, overflow and transfer
    customer: int | None = None
    respond_by: float = 0.0  # the first-response deadline (0: no target, or already answered)

    @property
    def capacity_class(self) -> str:
        return CAPACITY_CLASS[self.channel]


@dataclass(slots=True)  # not frozen: one is built per decision, and a frozen __init__ costs several times more
class Claim:
    """A decision: this conversation now belongs to this agent, as an offer or directly."""

    conversation: ConversationId
    agent: AgentId
    queue: QueueId
    channel: str
    offered: bool
    deadline: float | None
    enqueued_at: float


@dataclass(frozen=True)
class Expiry:
    conversation: ConversationId
    agent: AgentId
    queue: QueueId
    set_away: bool  # the agent missed too many offers in a row


@dataclass(frozen=True)
class Release:
    """A conversation leaving an agent (or a queue) by resolve or transfer."""

    conversation: ConversationId
    queue: QueueId
    agent: AgentId | None
    wrapup_until: float | None = None


@dataclass(frozen=True)
class Escalation:
    conversation: ConversationId
    queue: QueueId
    stage: int
    action: str  # widen | overflow | callback
    target: QueueId | None = None


@dataclass(frozen=True)
class FirstResponse:
    """An agent's first reply to a conversation that had a first-response target (counted once)."""

    conversation: ConversationId
    queue: QueueId  # the queue whose target it was: the one the conversation arrived in
    enqueued_at: float
    respond_by: float
    #: a late reply that came before any tick saw the deadline pass: the reply is what notices the breach
    breach_noticed: bool = False


@dataclass(frozen=True)
class ConversationView:
    id: ConversationId
    queue: QueueId
    channel: str
    priority: int
    enqueued_at: float
    state: str  # waiting | parked (for one agent) | offered | assigned
    agent: AgentId | None
    stage: int
    until: float = 0.0  # the offer's deadline, or when a parked one goes back to its queue


#: the counters of QueueStats: what a state rebuilt from the store gets back (RoutingState.restore_counts)
COUNTED = ("offered", "accepted", "rejected", "timed_out", "answered", "answered_in_sla", "abandoned", "responded",
           "responded_in_sla", "response_breached")


@dataclass(frozen=True)
class QueueStats:
    queue: QueueId
    waiting: int
    longest_wait: float
    available_agents: int  # ready for at least one more conversation
    busy_agents: int  # holding at least one conversation
    offered: int
    accepted: int
    rejected: int
    timed_out: int
    answered: int
    answered_in_sla: int
    abandoned: int
    # First response (only conversations whose queue has a target): each one's outcome is counted once, as
    # in_sla (replied by the deadline) or breached (the deadline passed first); `responded` counts every first reply.
    responded: int = 0
    responded_in_sla: int = 0
    response_breached: int = 0

    @property
    def sla_attainment(self) -> float | None:
        return self.answered_in_sla / self.answered if self.answered else None

    @property
    def first_response_attainment(self) -> float | None:
        known = self.responded_in_sla + self.response_breached
        return self.responded_in_sla / known if known else None


@dataclass(frozen=True)
class AgentStats:
    agent: AgentId
    presence: Presence
    load: dict[str, int]
    capacity: dict[str, int]
    wrapup_until: float
    missed_in_row: int
    offered: int
    accepted: int
    rejected: int
    timed_out: int
