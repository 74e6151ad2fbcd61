"""The adapter contract: what every channel provides (Channel), the hub as an adapter sees it (the sinks), and what
they hand each other (results, later facts, errors, a phone line's calls). Adapters only translate; they own no
storage and no routing, and import this, the words and named infrastructure only (tests/test_imports.py)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from aiohttp import web

from hub.model import Conversation, Customer, Identity, Inbound, Message, Outbound

if TYPE_CHECKING:
    from hub.api.auth import Principal
    from hub.config import TwilioNumberSettings
    from hub.events import Event, Subscription
    from hub.metrics import Metrics


@dataclass(frozen=True)
class Capabilities:
    """Facts the rest of the hub reads instead of branching on channel names."""

    max_text_length: int
    media: bool = False
    voice: bool = False
    html: bool = False
    #: messages per second the provider accepts from us (None: no known limit)
    rate_per_second: float | None = None
    #: files one message may carry, and their total bytes (None: only the outbox's own limits)
    max_files: int | None = None
    max_media_bytes: int | None = None
    #: the provider holds approved message templates, the channel is a TemplateSource (WhatsApp's, through Twilio)
    templates: bool = False
    #: the provider takes a free-form message only this many hours after the customer's last message on the channel
    #: (WhatsApp's session window); after it, only an approved template. None: any time
    session_window_hours: float | None = None


@dataclass(frozen=True)
class SendResult:
    external_id: str | None
    status: str = "sent"


class SendError(Exception):
    """A send that did not go through. PERMANENT errors are not retried; RETRY_AFTER honours a provider's hint."""

    def __init__(self, reason: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass
class IngestResult:
    """What the inbound path made of one event: the stored message, its conversation and customer."""

    message: Message
    conversation: Conversation
    customer: Customer
    #: True when this event was seen before: nothing new was stored
    duplicate: bool
    #: how the conversation came about: "joined", "opened", "reopened", or "recorded" (an automatic message put
    #: on a conversation that stays as it was)
    conversation_how: str
    journal_id: int
    #: the first-response clock a conversation it opened or reopened started: (arrival, deadline) in epoch seconds,
    #: the deadline stored on the conversation in the same transaction; None: no target (or not opened)
    first_response: tuple[float, float] | None = None
    _json: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The message, its conversation and customer as the API answers and the message.created event carry them;
        built once for both (read-only from then on)."""
        if self._json is None:
            self._json = {"message": self.message.to_json(), "conversation": self.conversation.to_json(),
                          "customer": self.customer.to_json()}
        return self._json


class IngestFailed(Exception):
    """The event is journaled (so nothing is lost) but could not be processed; `hub events replay` retries it."""

    def __init__(self, journal_id: int, reason: str) -> None:
        super().__init__(reason)
        self.journal_id = journal_id
        self.reason = reason


@dataclass
class Arrival:
    """One raw event of a batch handed to the inbound path (`InboundSink.ingest_batch`): what the adapter read of it
    (INBOUND), or None when it could not place it, to be kept flagged with REASON as CODE."""

    channel: str
    inbound: Inbound | None
    raw: Any = None
    #: a hash of the event's content: with it, another event reusing the provider id is not a retry (hub.journal)
    fingerprint: str | None = None
    #: the journal key of an event with no INBOUND (its provider id, if it has one)
    dedupe_key: str | None = None
    reason: str = ""
    #: what the event is flagged as when it cannot be placed; when set, an INBOUND whose identity is unusable is
    #: flagged as CODE too (else the identity's error is raised)
    code: str | None = None
    #: what is journaled instead of RAW when the event is flagged (an email then keeps its whole self for an
    #: operator); called only then, since it may cost (an email's bytes in base64)
    flag_raw: Callable[[], Any] | None = None


@dataclass(frozen=True)
class Flagged:
    """An event kept in the journal for an operator, unplaced (see docs/attention.md)."""

    journal_id: int
    code: str
    reason: str
    #: False when it was journaled before (a provider retry): nothing new was written
    inserted: bool


#: what the inbound path made of one event of a batch
Outcome = IngestResult | IngestFailed | Flagged


#: "status": an outgoing message's delivery status; "amend": more about an inbound message (text and meta);
#: "call": a call's status (meta call_status, duration_seconds), which the channel's FactRule settles
FACT_KINDS = ("status", "amend", "call")

#: the delivery statuses in the order a message moves through them; provider callbacks may arrive out of order,
#: and a status never moves backwards
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4, "undelivered": 5, "failed": 5}


def fact_key_prefix(external_id: str) -> str:
    """The start of every fact's journal key about message EXTERNAL_ID. Facts share the journal with inbound
    events; the prefix keeps their keys apart and findable by message."""
    return f"fact:{external_id}:"


@dataclass(frozen=True)
class Fact:
    """What a provider tells the hub later about a message it has (see hub.facts)."""

    kind: str
    channel: str
    #: the provider's id of the message the fact is about (Twilio's MessageSid, CallSid, RecordingSid...)
    external_id: str
    #: what tells this fact from the others about the same message (e.g. the status); a retry repeats it
    key: str
    status: str | None = None
    reason: str | None = None
    text: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FACT_KINDS:
            raise ValueError(f"unknown fact kind {self.kind!r} (known: {', '.join(FACT_KINDS)})")
        if self.kind == "status" and self.status not in STATUS_RANK:
            raise ValueError(f"unknown message status {self.status!r}")

    @property
    def dedupe_key(self) -> str:
        return f"{fact_key_prefix(self.external_id)}{self.kind}:{self.key}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "channel": self.channel, "external_id": self.external_id, "key": self.key,
                "status": self.status, "reason": self.reason, "text": self.text, "meta": self.meta}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Fact:
        return cls(kind=d["kind"], channel=d["channel"], external_id=d["external_id"], key=d["key"],
                   status=d.get("status"), reason=d.get("reason"), text=d.get("text"), meta=d.get("meta") or {})


@dataclass(frozen=True)
class FactResult:
    journal_id: int
    #: applied (the message changed), unchanged (known, but nothing new: e.g. an older status), duplicate (this
    #: fact was journaled before), pending (no such message yet), failed (flagged: see reason)
    state: str
    reason: str | None = None
    message_id: int | None = None


#: A channel's rule for a "call" fact: from the call message's meta merged with the fact's (all the provider said
#: by then), what that settles (meta to add) and the message's text. The channel writes the text; the core applies
#: it when the fact is, which may be later, in another process (a status that waited for its call, a replay).
FactRule = Callable[[dict[str, Any]], tuple[dict[str, Any], str]]

#: A channel's reader of a raw event it journaled but could not place (an email without a usable sender), as if
#: SENDER had sent it on CHANNEL: for an operator attaching it to a customer (hub.attention). (raw, channel, sender)
#: -> the Inbound, or None when the raw event is not this channel's.
RawReader = Callable[[Any, str, Identity], Inbound | None]


@dataclass(frozen=True)
class ChannelRules:
    """What the core runs of the channels without them (the journal sweep, `hub events replay`, an operator's
    action): handed in by the wiring (hub.channels.registry), so the core never imports an adapter."""

    #: channel name -> its rule for call facts
    facts: Mapping[str, FactRule] = field(default_factory=dict)
    readers: tuple[RawReader, ...] = ()


class InboundSink(Protocol):
    """The hub as an adapter sees it: the one inbound path, and provider status callbacks for sent messages."""

    async def ingest(self, inbound: Inbound, raw: Any = None, fingerprint: str | None = None) -> IngestResult: ...

    async def ingest_batch(self, arrivals: list[Arrival]) -> list[Outcome]:
        """Journal and store (or flag) ARRIVALS in one write transaction, in order: what each became."""
        ...

    async def flag(
        self, channel: str, dedupe_key: str | None, raw: Any, reason: str, code: str | None = None,
        fingerprint: str | None = None,
    ) -> int: ...

    async def update_status(self, channel: str, external_id: str, status: str, reason: str | None = None) -> bool: ...

    async def outbound_files(self, message_id: int) -> list[tuple[str, str, bytes]]:
        """(filename, content type, bytes) of the files an agent attached to an outgoing message."""
        ...


class Channel(ABC):
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: identity kinds this channel can reach a customer by
    identity_kinds: ClassVar[tuple[str, ...]]

    def __init__(self, sink: InboundSink) -> None:
        self.sink = sink

    def routes(self) -> list[web.RouteDef]:
        """Webhook routes this channel serves (each authenticates its provider)."""
        return []

    async def start(self) -> None:
        """Start long-lived tasks (pollers). Called once the store is ready."""

    async def stop(self) -> None:
        """Stop what start() started; drain in-flight work."""

    def problems(self) -> list[str]:
        """What keeps this channel from working right now (a mailbox it cannot log in to), for /readyz; each
        names the part (never a secret) and why."""
        return []

    @abstractmethod
    def parse(self, payload: Any) -> Inbound:
        """Translate one provider payload into an Inbound (raise ValueError with a reason if it cannot)."""

    @abstractmethod
    async def send(self, outbound: Outbound) -> SendResult:
        """Deliver one message; raise SendError (permanent or not) when it does not go through."""


class AttachmentSink(InboundSink, Protocol):
    """For adapters that list an attachment at once and fetch its bytes in the background, with retries."""

    async def pending_attachments(self, channel: str, limit: int = 20) -> list[tuple[int, str]]: ...

    async def attachment_attempts(self, attachment_id: int) -> int: ...

    async def finish_attachment(
        self,
        attachment_id: int,
        *,
        data: bytes | None = None,
        content_type: str | None = None,
        error: str | None = None,
        retry_in: float | None = None,
    ) -> None: ...


class ChatSink(AttachmentSink, Protocol):
    """The hub as a chat channel (Telegram, web chat) sees it: the inbound path plus edits, files fetched in the
    background, outgoing files, and the customer's own history on the channel. `ChannelHost` implements it."""

    async def edit(
        self, channel: str, dedupe_key: str, external_id: str, text: str, edited_at: str, raw: Any = None
    ) -> Message | None: ...

    async def history(self, identity: Identity, channel: str, limit: int) -> list[tuple[Message, str | None]]: ...

    async def agent_name(self, message_id: int) -> str | None: ...

    @property
    def metrics(self) -> Metrics: ...

    async def is_customer(self, identity: Identity) -> bool: ...

    async def typing_target(
        self, principal: Principal, conversation_id: int, channel: str
    ) -> tuple[str | None, str | None, int]: ...

    async def customer_typing(self, channel: str, identity: Identity, typing: bool) -> None: ...

    async def thread_messages(self, conversation_id: int, channel: str, limit: int = 50) -> list[Message]: ...

    async def customer_file(
        self, identity: Identity, channel: str, attachment_id: int
    ) -> tuple[str, str, bytes] | None:
        ...

    async def outgoing_attachments(self, message_id: int) -> list[tuple[int, str]]: ...

    async def is_resolved(self, conversation_id: int) -> bool: ...

    async def claim_attachments(self, channel: str, lease_seconds: float, limit: int = 20) -> list[tuple[int, str]]: ...

    async def publish(self, event: Event) -> None: ...

    def subscribe(self) -> Subscription: ...

    async def link_identity(
        self, channel: str, dedupe_key: str, old: Identity, new: Identity, raw: Any, *, text: str,
        meta: dict[str, Any], occurred_at: str | None = None,
    ) -> str: ...


# -- phone lines: what a voice channel offers the hub's calls (hub.routing.calls), which drive it -----------------

#: call statuses that mean nobody talked
MISSED = frozenset({"busy", "no-answer", "failed", "canceled"})


@dataclass(frozen=True)
class MenuChoice:
    """A caller pressed a key in the keypad menu."""

    call_sid: str
    line: str | None  # the business line of the number called
    digits: str
    option: str | None  # the queue the number's menu names for DIGITS (None: not an option)
    conversation_queue: str  # where the call's conversation waits now


@dataclass(frozen=True)
class LegStatus:
    """A status callback for a call the hub placed: the agent leg of a bridge, or a leg of a click-to-call."""

    leg: str  # "agent" | "customer"
    call_sid: str
    status: str
    duration: int | None
    caller_call_sid: str  # bridge: the waiting caller's CallSid ("" for click-to-call)
    agent_id: int | None
    message_id: int | None  # click-to-call: the call's message on the timeline
    declined: bool = False  # a screened bridge ended without the agent pressing 1 (no key, voicemail, hang-up)


#: which queue a caller waits in after a menu choice. hub.routing.calls plugs routing in here; by default the
#: menu's option
CallQueue = Callable[[MenuChoice], Awaitable[str]]
#: told about every leg of the calls the hub placed (hub.routing.calls re-offers a call whose agent did not pick up)
LegListener = Callable[[LegStatus], Awaitable[None]]
#: told (with its CallSid) that a caller is on the line waiting (hub.routing.calls rings the agent who has them)
CallListener = Callable[[str], Awaitable[None]]


class PhoneLine(Protocol):
    """A voice channel as the hub's calls see it: the hooks it calls back, and what it does to calls on request."""

    call_queue: CallQueue
    on_leg: LegListener
    on_waiting: CallListener

    def number(self, number: str) -> TwilioNumberSettings:
        """The settings of one of our phone numbers (its line, its agents' phones, its waits)."""
        ...

    def handoff_queue(self, caller_call_sid: str) -> str:
        """The queue a caller handed off to one agent waits in."""
        ...

    async def note(self, call_sid: str, **meta: Any) -> dict[str, Any] | None: ...

    async def hand_off(self, caller_call_sid: str, queued_at: float | None = None) -> str: ...

    async def bridge(
        self, *, queue: str, from_number: str, agent: str = "", caller_call_sid: str = "", agent_id: int | None = None,
        screen: str = "",
    ) -> str: ...

    async def call_customer(
        self, *, agent: str, customer: str, from_number: str, agent_id: int | None = None, message_id: int | None = None
    ) -> str: ...


#: WhatsApp's approval statuses of a template; only an approved one may be sent
APPROVED = "approved"


@dataclass(frozen=True)
class MessageTemplate:
    """A message the provider approved in advance (WhatsApp's templates, Twilio's Content API): outside the 24-hour
    session window the only message a business may send. BODY holds {{1}}, {{2}}... for its VARIABLES."""

    sid: str
    name: str
    language: str
    body: str
    #: "1", "2"... -> the sample value given when the template was made
    variables: dict[str, str]
    #: WhatsApp's approval status (approved, pending, rejected, paused, disabled, unsubmitted...)
    approval: str
    rejection_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"sid": self.sid, "name": self.name, "language": self.language, "body": self.body,
                "variables": self.variables, "approval": self.approval, "rejection_reason": self.rejection_reason}


class TemplateSource(Protocol):
    """A channel whose provider holds its approved templates (Capabilities.templates). Both raise SendError with
    the provider's reason (permanent: the template or the credentials are wrong)."""

    async def templates(self) -> list[MessageTemplate]: ...

    async def template(self, sid: str) -> MessageTemplate: ...
