"""The adapter contract: what every channel provides. Adapters only translate; they own no storage and no routing."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from aiohttp import web

from hub.model import Identity, Inbound, Message, Outbound

if TYPE_CHECKING:
    from hub.events import Event, Subscription
    from hub.ingest import IngestResult


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


class InboundSink(Protocol):
    """The hub as an adapter sees it: the one inbound path, and provider status callbacks for sent messages."""

    async def ingest(self, inbound: Inbound, raw: Any = None, fingerprint: str | None = None) -> IngestResult: ...

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
