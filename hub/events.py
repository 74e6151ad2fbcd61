"""The event bus: what happened in the hub, for the console, routing and integrations (in-process by default)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.model import format_time, utcnow

log = logging.getLogger("hub.events")


@dataclass(frozen=True)
class Event:
    type: str  # message.created, message.status, conversation.opened, conversation.resolved, customer.merged
    data: dict[str, Any]
    at: str = field(default_factory=lambda: format_time(utcnow()))

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "at": self.at, "data": self.data}


class Subscription(Protocol):
    lagged: bool

    def __aiter__(self) -> AsyncIterator[Event]: ...
    def close(self) -> None: ...


class EventBus(Protocol):
    async def publish(self, event: Event) -> None: ...
    def subscribe(self) -> Subscription: ...


class _MemorySubscription:
    def __init__(self, bus: MemoryBus, size: int) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        # Set when events were dropped because this subscriber fell behind; it must re-sync from the API.
        self.lagged = False

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True
            self.queue.get_nowait()
            self.queue.put_nowait(event)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()

    def close(self) -> None:
        self._bus.subscribers.discard(self)


class MemoryBus:
    """Fan-out to in-process subscribers; a slow subscriber loses its oldest events, never blocks a publisher."""

    def __init__(self, buffer: int = 1000) -> None:
        self.subscribers: set[_MemorySubscription] = set()
        self._buffer = buffer

    async def publish(self, event: Event) -> None:
        for sub in list(self.subscribers):
            sub.offer(event)

    def subscribe(self) -> _MemorySubscription:
        sub = _MemorySubscription(self, self._buffer)
        self.subscribers.add(sub)
        return sub
