"""Connects the routing engine to the hub: new conversations are queued, every routing decision is written to the
store (so the API and console see offers and assignments) and published as an event, and a ticker applies
deadlines (offer timeouts, wrap-up, escalation)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from hub.config import Settings
from hub.events import Event, EventBus
from hub.history.db import Database, Tx
from hub.ingest import IngestResult
from hub.model import Inbound, format_time, parse_time, utcnow
from hub.routing.config import RoutingConfig
from hub.routing.engine import Engine
from hub.routing.events import (
    Assigned,
    Offered,
    OfferTimedOut,
    Overflowed,
    Rejected,
    Resolved,
    RoutingEvent,
    Transferred,
)
from hub.routing.memory import MemoryState
from hub.routing.rules import Contact
from hub.routing.state import RoutingState
from hub.routing.types import CHANNELS, Presence

log = logging.getLogger("hub.router")


class RoutingError(ValueError):
    """A routing request that cannot be done (not your offer, unknown queue...); the message says why."""


def _state(settings: Settings) -> RoutingState:
    if settings.routing.backend == "redis":
        import redis.asyncio as redis

        from hub.routing.redis import RedisState

        # Bounded waits: a stuck Redis must fail a routing call visibly, not hang the request that made it.
        client = redis.from_url(settings.routing.redis_url, socket_timeout=10, socket_connect_timeout=5)
        return RedisState(client, prefix=settings.routing.key_prefix)
    return MemoryState()


def contact_of(inbound: Inbound) -> Contact:
    tags = inbound.meta.get("tags") or []
    attributes = inbound.meta.get("attributes") or {}
    return Contact(
        channel=inbound.channel,
        line=inbound.business_line,
        ivr=str(inbound.meta["ivr"]) if inbound.meta.get("ivr") is not None else None,
        text=inbound.text,
        tags=frozenset(str(t) for t in tags) if isinstance(tags, list) else frozenset(),
        attributes={str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {},
        language=inbound.meta.get("language"),
    )


def _apply_to_store(tx: Tx, events: list[RoutingEvent], now: str) -> None:
    for e in events:
        if isinstance(e, Offered):
            tx.exec(
                "UPDATE conversations SET offered_to = ?, offer_deadline = ?, updated_at = ? "
                "WHERE id = ? AND status <> 'resolved'",
                (e.agent, e.deadline, now, e.conversation),
            )
        elif isinstance(e, Assigned):
            tx.exec(
                "UPDATE conversations SET status = 'assigned', agent_id = ?, queue = ?, offered_to = NULL, "
                "offer_deadline = NULL, updated_at = ? WHERE id = ? AND status <> 'resolved'",
                (e.agent, e.queue, now, e.conversation),
            )
        elif isinstance(e, Rejected | OfferTimedOut):
            tx.exec(
                "UPDATE conversations SET offered_to = NULL, offer_deadline = NULL, updated_at = ? "
                "WHERE id = ? AND offered_to = ?",
                (now, e.conversation, e.agent),
            )
        elif isinstance(e, Overflowed):
            tx.exec(
                "UPDATE conversations SET queue = ?, updated_at = ? WHERE id = ?", (e.to_queue, now, e.conversation)
            )
        elif isinstance(e, Transferred):
            tx.exec(
                "UPDATE conversations SET status = 'open', agent_id = NULL, offered_to = NULL, offer_deadline = NULL, "
                "queue = COALESCE(?, queue), updated_at = ? WHERE id = ? AND status <> 'resolved'",
                (e.to_queue, now, e.conversation),
            )


class Router:
    def __init__(self, db: Database, settings: Settings, bus: EventBus, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.settings = settings
        self.bus = bus
        self.clock = clock
        self.config = RoutingConfig.from_dict(settings.routing.engine_config())
        self.state = _state(settings)
        self.engine = Engine(
            self.state,
            clock=clock,
            rules=self.config.rules,
            missed_offers=self.config.missed_offers,
            transfer_wait=self.config.transfer_wait,
        )

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Install queues and agents, then re-queue open conversations the routing state does not know (a restart
        of the embedded default loses in-process state; the store does not)."""
        await self.engine.apply(self.config)
        await self.sync_agents()
        restored = await self.restore()
        if restored:
            log.info("routing: re-queued %d open conversations", restored)

    async def close(self) -> None:
        client = getattr(self.state, "client", None)
        if client is not None:
            await client.aclose()

    async def sync_agents(self) -> list[int]:
        """Agents from the store (who, which queues) with routing facts from config (capacity, skills, wrap-up)."""
        routing = self.settings.routing
        facts = {a.email.strip().lower(): a for a in routing.agents}

        def read(tx: Tx) -> list[dict[str, Any]]:
            rows = tx.all("SELECT id, email FROM agents WHERE disabled = 0 ORDER BY id")
            members: dict[int, list[str]] = {}
            for m in tx.all("SELECT agent_id, queue FROM agent_queues"):
                members.setdefault(int(m["agent_id"]), []).append(str(m["queue"]))
            out = []
            for r in rows:
                fact = facts.get(str(r["email"]))
                queues = [q for q in members.get(int(r["id"]), []) if q in routing.queues]
                out.append({
                    "id": int(r["id"]),
                    "queues": queues,
                    "capacity": (fact.capacity if fact and fact.capacity else routing.default_capacity),
                    "skills": fact.skills if fact else {},
                    "wrapup": fact.wrapup if fact else 0.0,
                    "exclusive": fact.exclusive if fact else ["voice"],
                })
            return out

        from hub.routing.config import parse_agent

        raw_agents = await self.db.read(read)
        for raw in raw_agents:
            await self.engine.put_agent(parse_agent(raw, f"agent {raw['id']}", set(routing.queues)))
        return [int(a["id"]) for a in raw_agents]

    async def restore(self) -> int:
        rows = await self.db.read(
            lambda tx: tx.all(
                "SELECT c.id, c.customer_id, c.queue, c.channel, c.created_at FROM conversations c "
                "WHERE c.status = 'open' ORDER BY c.created_at, c.id"
            )
        )
        n = 0
        for r in rows:
            if await self.state.conversation(int(r["id"])) is not None:
                continue
            queue = r["queue"] if r["queue"] in self.engine.queues else self.settings.routing.default_queue
            channel = r["channel"] if r["channel"] in CHANNELS else "api"
            events = await self.engine.enqueue(
                int(r["id"]), queue, channel, customer=int(r["customer_id"]),
                enqueued_at=parse_time(r["created_at"]).timestamp(),
            )
            await self._apply(events)
            n += 1
        return n

    # -- the inbound path's hooks ------------------------------------------------------------------------------

    def choose_queue(self, inbound: Inbound) -> str:
        return self.engine.choose_queue(contact_of(inbound)).queue

    async def on_ingest(self, result: IngestResult, inbound: Inbound) -> None:
        """A newly opened (or reopened) conversation joins its queue; later messages only join the conversation."""
        if result.duplicate or result.conversation_how == "joined":
            return
        route = self.engine.choose_queue(contact_of(inbound))
        events = await self.engine.enqueue(
            result.conversation.id, result.conversation.queue or route.queue, inbound.channel,
            priority=route.priority, customer=result.customer.id,
        )
        await self._apply(events)

    # -- agents' actions -----------------------------------------------------------------------------------------

    async def set_presence(self, agent_id: int, presence: str) -> list[RoutingEvent]:
        try:
            wanted = Presence(presence)
        except ValueError:
            raise RoutingError("presence must be available, away or offline") from None
        if wanted is Presence.AVAILABLE:
            await self.sync_agents()  # pick up queue membership changed since start (e.g. `hub agents add`)
        try:
            events = await self.engine.set_presence(agent_id, wanted)
        except KeyError:
            raise RoutingError(f"agent {agent_id} is not known to routing (disabled, or not in the store)") from None
        await self._apply(events)
        return events

    async def accept(self, conversation_id: int, agent_id: int) -> list[RoutingEvent]:
        events = await self.engine.accept(conversation_id, agent_id)
        if not events:
            raise RoutingError(f"conversation {conversation_id} is not offered to you (the offer may have timed out)")
        await self._apply(events)
        return events

    async def reject(self, conversation_id: int, agent_id: int) -> list[RoutingEvent]:
        events = await self.engine.reject(conversation_id, agent_id)
        if not events:
            raise RoutingError(f"conversation {conversation_id} is not offered to you")
        await self._apply(events)
        return events

    async def transfer(
        self, conversation_id: int, queue: str | None, agent_id: int | None, note: str
    ) -> list[RoutingEvent]:
        try:
            events = await self.engine.transfer(conversation_id, queue=queue, agent=agent_id, note=note)
        except KeyError as e:
            raise RoutingError(str(e).strip("'\"")) from None
        except ValueError as e:
            raise RoutingError(str(e)) from None
        if not events:
            raise RoutingError(f"conversation {conversation_id} is not in routing (resolved?)")
        await self._apply(events)
        return events

    async def resolve(self, conversation_id: int) -> list[RoutingEvent]:
        events = await self.engine.resolve(conversation_id)
        await self._apply(events)
        return events

    # -- time --------------------------------------------------------------------------------------------------------

    async def tick(self) -> list[RoutingEvent]:
        events = await self.engine.tick()
        await self._apply(events)
        return events

    async def tick_forever(self) -> None:
        interval = self.settings.routing.tick_seconds
        last_sweep = self.clock()
        while True:
            try:
                await self.tick()
                if self.clock() - last_sweep >= 30:
                    # Catch any open conversation whose queueing failed after it was stored.
                    last_sweep = self.clock()
                    if n := await self.restore():
                        log.warning("routing: re-queued %d open conversations that had no place in a queue", n)
            except Exception:
                log.exception("routing tick failed; retrying in %.1fs", interval)
            await asyncio.sleep(interval)

    # -- effects ---------------------------------------------------------------------------------------------------

    async def _apply(self, events: list[RoutingEvent]) -> None:
        if not events:
            return
        now = format_time(utcnow())
        await self.db.write(lambda tx: _apply_to_store(tx, events, now))
        for e in events:
            if isinstance(e, Resolved) and e.agent is None:
                log.info("conversation %d left queue %s unanswered", e.conversation, e.queue)
            await self.bus.publish(Event(e.type, e.data()))

