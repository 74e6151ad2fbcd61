"""The event bus: what happened in the hub, for the console, routing and integrations: in-process by default,
or shared by every hub process through Redis Pub/Sub."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from hub import tasks as background
from hub.model import format_time, utcnow

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from hub.config import Settings

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


#: which events a subscriber acts on; the others are not queued for it, so it is not woken for them
Wants = Callable[[Event], bool]


class EventBus(Protocol):
    async def publish(self, event: Event) -> None: ...
    def subscribe(self, wants: Wants | None = None) -> Subscription: ...


class _MemorySubscription:
    def __init__(self, bus: MemoryBus, size: int, wants: Wants | None = None) -> None:
        self._bus = bus
        self.wants = wants
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
            if sub.wants is None or sub.wants(event):
                sub.offer(event)

    def subscribe(self, wants: Wants | None = None) -> _MemorySubscription:
        """Every event from now on, or only those WANTS says yes to (a subscriber lags only when those overflow)."""
        sub = _MemorySubscription(self, self._buffer, wants)
        self.subscribers.add(sub)
        return sub

    def mark_lagged(self) -> None:
        """Events may have been missed (e.g. while Redis was unreachable): every subscriber must re-sync."""
        for sub in list(self.subscribers):
            sub.lagged = True

    async def start(self) -> None:
        """Nothing to connect: here for the same lifecycle as RedisBus."""

    async def close(self) -> None:
        self.subscribers.clear()


class RedisBus:
    """Every hub process publishes to one Redis Pub/Sub channel and delivers what it reads there to its own
    subscribers. A process delivers its own events at once (not via Redis), so one process works while Redis is
    down; publishing to Redis happens in the background, never blocking a publisher. Events another process
    published while this one was cut off from Redis are missed: on reconnect every subscriber is marked lagged
    and re-syncs from the API (Pub/Sub keeps no history)."""

    def __init__(self, client: Redis, channel: str, buffer: int = 1000) -> None:
        self.client = client
        self.channel = channel
        self.local = MemoryBus(buffer)
        # Tells our own events apart when Redis hands them back to us.
        self.origin = secrets.token_hex(8)
        self._outgoing: asyncio.Queue[str] = asyncio.Queue(buffer * 10)
        self._tasks: list[asyncio.Task[None]] = []
        #: set once the reader is subscribed (tests wait for it; a publish before that is not seen by this reader)
        self.ready = asyncio.Event()

    async def publish(self, event: Event) -> None:
        await self.local.publish(event)
        wire = json.dumps({"origin": self.origin, "type": event.type, "at": event.at, "data": event.data},
                          default=str)
        try:
            self._outgoing.put_nowait(wire)
        except asyncio.QueueFull:
            self._outgoing.get_nowait()  # Redis is far behind: the oldest event is dropped for other processes
            self._outgoing.put_nowait(wire)
            log.warning("event bus: Redis is not keeping up; an event was dropped for other hub processes")

    def subscribe(self, wants: Wants | None = None) -> _MemorySubscription:
        return self.local.subscribe(wants)

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._read_forever(), name="hub-events-redis-read"),
                       asyncio.create_task(self._write_forever(), name="hub-events-redis-write")]
        # Start-up waits (briefly) for the subscription, so events published right after start reach the others.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), 5.0)

    async def close(self) -> None:
        await background.stop(self._tasks)
        self._tasks.clear()
        await self.client.aclose()
        await self.local.close()

    async def _write_forever(self) -> None:
        delay = 0.5
        while True:
            wire = await self._outgoing.get()
            while True:
                try:
                    await self.client.publish(self.channel, wire)
                    delay = 0.5
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # Redis down: keep the event and retry, the queue bounds what is kept
                    log.warning("event bus: cannot publish to Redis (%s); retrying in %.1fs", type(e).__name__, delay)
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(30.0, delay * 2)

    async def _read_forever(self) -> None:
        delay = 0.5
        first = True
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if not first:
                    self.local.mark_lagged()  # whatever others published while we were away is lost to us
                first = False
                self.ready.set()
                delay = 0.5
                while True:
                    msg = await pubsub.get_message(timeout=30.0)
                    if msg is not None and msg.get("type") == "message":
                        await self._deliver(msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.ready.clear()
                log.warning("event bus: Redis subscription lost (%s); reconnecting in %.1fs", type(e).__name__, delay)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(30.0, delay * 2)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _deliver(self, raw: bytes | str) -> None:
        try:
            wire = json.loads(raw)
            if wire.get("origin") == self.origin:
                return  # delivered here already, when it was published
            event = Event(str(wire["type"]), dict(wire["data"]), str(wire["at"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("event bus: ignoring an unreadable message on Redis channel %s", self.channel)
            return
        await self.local.publish(event)


def open_bus(settings: Settings) -> MemoryBus | RedisBus:
    """The bus events.backend names (connections are made by start())."""
    if settings.events.backend == "redis":
        import redis.asyncio as redis

        url = settings.events.redis_url or settings.routing.redis_url
        client = redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        return RedisBus(client, settings.events.channel)
    return MemoryBus()
