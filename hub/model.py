"""The hub's words (see ARCHITECTURE.md) as plain dataclasses, shared by every module."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from hub.customer_profile import display_name

Direction = Literal["in", "out"]
MessageKind = Literal["text", "call", "voicemail", "note", "event"]
MessageStatus = Literal["received", "queued", "sending", "sent", "delivered", "read", "failed", "undelivered"]
ConversationStatus = Literal["open", "assigned", "snoozed", "resolved"]
Role = Literal["admin", "supervisor", "agent"]
TokenRole = Literal["admin", "agent"]

IDENTITY_KINDS = ("phone", "email", "telegram", "webchat")

#: the meta key an adapter sets on an Inbound that answers a satisfaction survey explicitly (a Telegram button, the
#: web page, the web chat's stars): {"survey": id, "score": 1-5, "comment": "..."}
ANSWER_META = "csat_answer"

# Which identity kind a channel reaches a customer through; "api" can carry any kind.
CHANNEL_IDENTITY_KIND: dict[str, str] = {
    "sms": "phone",
    "voice": "phone",
    "whatsapp": "phone",
    "email": "email",
    "telegram": "telegram",
    "webchat": "webchat",
}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _shallow(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, one level deep: dataclasses.asdict deep-copies, and costs ten times more
    on the hot paths (every API answer and event). The names are looked up once per class (fields() is slow)."""
    names = _FIELD_NAMES.get(type(obj))
    if names is None:
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in fields(obj))
    return {name: getattr(obj, name) for name in names}


def format_duration(seconds: int) -> str:
    """A duration as the timeline writes it: "3m 07s", "45s"."""
    m, s = divmod(max(0, seconds), 60)
    return f"{m}m {s:02d}s" if m else f"{s}s"


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_time(t: datetime) -> str:
    """Fixed-width UTC text: sorts the same as time, in SQLite and PostgreSQL alike."""
    # isoformat, not strftime: the same text, for a third of the cost (a few on every message and event)
    return t.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Identity:
    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


@dataclass
class Customer:
    id: int
    name: str
    created_at: str
    identities: list[Identity] = field(default_factory=list)
    merged_into: int | None = None

    @property
    def display_name(self) -> str:
        return display_name(self.id, self.name, [(i.kind, i.value) for i in self.identities])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "display_name": self.display_name,
            "created_at": self.created_at,
            "identities": [{"kind": i.kind, "value": i.value, "id": str(i)} for i in self.identities],
            "merged_into": self.merged_into,
        }


@dataclass
class Conversation:
    id: int
    customer_id: int
    status: ConversationStatus
    channel: str
    queue: str | None
    agent_id: int | None
    created_at: str
    updated_at: str
    resolved_at: str | None
    last_inbound_channel: str | None
    business_line: str | None

    def to_json(self) -> dict[str, Any]:
        return _shallow(self)


@dataclass
class Attachment:
    id: int
    message_id: int
    filename: str
    content_type: str
    size: int
    status: str  # stored | pending | failed
    source_url: str | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "status": self.status,
            "error": self.error,
            "url": f"/api/v1/attachments/{self.id}",
        }


@dataclass
class Message:
    id: int
    conversation_id: int
    customer_id: int
    channel: str
    direction: Direction
    kind: MessageKind
    text: str
    html: str | None
    status: str
    status_reason: str | None
    external_id: str | None
    identity: str | None
    agent_id: int | None
    created_at: str
    updated_at: str
    meta: dict[str, Any] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = _shallow(self)
        out["meta"] = dict(self.meta)
        out["attachments"] = [a.to_json() for a in self.attachments]
        return out


@dataclass
class AttachmentIn:
    """An attachment as an adapter hands it over: bytes already here, or a URL to fetch later."""

    filename: str
    content_type: str
    data: bytes | None = None
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "data": base64.b64encode(self.data).decode() if self.data is not None else None,
            "url": self.url,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AttachmentIn:
        data = d.get("data")
        return cls(d["filename"], d["content_type"], base64.b64decode(data) if data else None, d.get("url"))


@dataclass
class Inbound:
    """One normalized inbound event from any channel: what every adapter produces."""

    channel: str
    identity: Identity
    text: str = ""
    external_id: str | None = None
    name: str | None = None
    kind: MessageKind = "text"
    html: str | None = None
    attachments: list[AttachmentIn] = field(default_factory=list)
    occurred_at: str | None = None
    business_line: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: a conversation this event threads into (an email reply): joined while it is open, even when the sender is
    #: another customer; otherwise ignored and the sender's own conversation is used
    thread_conversation_id: int | None = None
    #: provider ids of the messages this event answers, most relevant first (an email's In-Reply-To, then its
    #: References newest first): without THREAD_CONVERSATION_ID, ingest threads it into the conversation holding
    #: the first one it finds, looked up in its write transaction
    thread_refs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = _shallow(self)
        out["identity"] = str(self.identity)
        out["meta"] = dict(self.meta)
        out["attachments"] = [a.to_json() for a in self.attachments]
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Inbound:
        kind, _, value = d["identity"].partition(":")
        return cls(
            channel=d["channel"],
            identity=Identity(kind, value),
            text=d.get("text", ""),
            external_id=d.get("external_id"),
            name=d.get("name"),
            kind=d.get("kind", "text"),
            html=d.get("html"),
            attachments=[AttachmentIn.from_json(a) for a in d.get("attachments", [])],
            occurred_at=d.get("occurred_at"),
            business_line=d.get("business_line"),
            meta=d.get("meta", {}),
            thread_conversation_id=d.get("thread_conversation_id"),
            thread_refs=list(d.get("thread_refs") or []),
        )


@dataclass
class Outbound:
    """One message for a channel adapter to send, as the outbox hands it over."""

    message_id: int
    conversation_id: int
    channel: str
    to: Identity
    text: str
    attempt: int
    html: str | None = None
    business_line: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Agent:
    id: int
    name: str
    email: str
    role: Role
    queues: list[str]
    created_at: str
    disabled: bool = False
    #: E.164 number the hub rings to connect this agent to a call
    phone: str | None = None
    #: Twilio Client identity (a softphone in the browser or an app) rung when set, before the phone
    voice_client: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = _shallow(self)
        out["queues"] = list(self.queues)
        return out


@dataclass
class ApiToken:
    id: int
    role: TokenRole
    agent_id: int | None
    label: str
    created_at: str
