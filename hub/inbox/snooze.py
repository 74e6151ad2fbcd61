"""Snooze: a conversation set aside until a time or until the customer writes again, then woken back to its owner.

Snoozing writes the store first (status `snoozed`, the owner, when it is due), then lets go of it in routing, so the
owner's capacity is free meanwhile (a crash between the two: the reconciler lets go of it). A customer's message on
a snoozed conversation makes it due at once in the message's own transaction (hub.history.store.WAKE_ON_MESSAGE).
Waking is driven by the store: every hub process looks for due conversations every `snooze.poll_seconds` (and at
once when it hears of a customer's message), and one conditional UPDATE decides which process wakes each; a restart
loses nothing. A woken conversation waits in its queue again and is offered to its owner first (routing's transfer
to an agent: if they cannot take it within the queue's transfer wait, it goes to whoever can)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from hub import fail_points
from hub.events import Event, EventBus
from hub.history import store
from hub.history.db import Database, Tx
from hub.model import Conversation, format_time, utcnow
from hub.routing.service import Router, RoutingError

log = logging.getLogger("hub.inbox.snooze")

#: the bus event a woken conversation's owner hears (the console shows it as a notification)
WOKE = "conversation.woke"


class SnoozeError(ValueError):
    """The conversation cannot be snoozed (resolved); the message says why."""


@dataclass(frozen=True)
class Snoozed:
    conversation: Conversation
    event_id: int  # the timeline's "Snoozed until …" line


@dataclass(frozen=True)
class Woken:
    conversation: Conversation
    owner: int | None
    reason: str  # "time" | "message" | "agent"
    event_id: int


def _who(tx: Tx, agent_id: int | None) -> str:
    row = tx.one("SELECT name FROM agents WHERE id = ?", (agent_id,)) if agent_id is not None else None
    return f" by {row['name']}" if row else ""


def snooze(tx: Tx, conversation_id: int, until: datetime | None, by: int | None, now: str) -> Snoozed:
    """Set the conversation aside inside TX. Its owner: whoever holds it, else BY (the agent snoozing it)."""
    c = store.conversation(tx, conversation_id)
    if c.status == "resolved":
        raise SnoozeError(f"conversation {conversation_id} is resolved: reopen it first")
    owner = c.agent_id if c.agent_id is not None else by
    due = format_time(until) if until is not None else None
    tx.exec("UPDATE conversations SET status = 'snoozed', snoozed_until = ?, snoozed_at = ?, snoozed_by = ?, "
            "wake_reason = NULL, agent_id = ?, offered_to = NULL, offer_deadline = NULL, updated_at = ? WHERE id = ?",
            (due, now, owner, owner, now, conversation_id))
    when = f"until {due[:16].replace('T', ' ')} UTC" if due else "until the customer writes"
    event_id = store.insert_message(
        tx, conversation_id=conversation_id, customer_id=c.customer_id, channel="hub", direction="out",
        kind="event", text=f"Snoozed {when}{_who(tx, by)}", status="internal", agent_id=by, now=now,
        meta={"event": "conversation.snoozed", "until": due},
    )
    return Snoozed(store.conversation(tx, conversation_id), event_id)


def due(tx: Tx, now: str, limit: int = 100) -> list[int]:
    rows = tx.all("SELECT id FROM conversations WHERE status = 'snoozed' AND snoozed_until <= ? "
                  "ORDER BY snoozed_until, id LIMIT ?", (now, limit))
    return [int(r["id"]) for r in rows]


def wake(tx: Tx, conversation_id: int, now: str, *, early: bool = False, by: int | None = None) -> Woken | None:
    """Wake one snoozed conversation inside TX (None: not snoozed, e.g. another process woke it first). EARLY: a
    person (agent BY, or an admin token) wakes it before it is due; else its time came, or the customer wrote."""
    row = tx.one("SELECT status, snoozed_by, wake_reason FROM conversations WHERE id = ?", (conversation_id,))
    if row is None or row["status"] != "snoozed":
        return None
    changed = tx.exec("UPDATE conversations SET status = 'open', agent_id = NULL, snoozed_until = NULL, "
                      "snoozed_at = NULL, snoozed_by = NULL, wake_reason = NULL, updated_at = ? "
                      "WHERE id = ? AND status = 'snoozed'", (now, conversation_id))
    if not changed:
        return None
    reason = "agent" if early else str(row["wake_reason"] or "time")
    text = {"agent": f"Unsnoozed{_who(tx, by)}", "message": "Snooze ended: the customer wrote",
            "time": "Snooze ended"}[reason]
    c = store.conversation(tx, conversation_id)
    event_id = store.insert_message(
        tx, conversation_id=conversation_id, customer_id=c.customer_id, channel="hub", direction="out",
        kind="event", text=text, status="internal", agent_id=by, now=now,
        meta={"event": "conversation.woke", "reason": reason},
    )
    owner = int(row["snoozed_by"]) if row["snoozed_by"] is not None else None
    return Woken(c, owner, reason, event_id)


async def publish_message(db: Database, bus: EventBus, conversation_id: int, event_id: int) -> None:
    """The timeline line, live to consoles (as every message is)."""
    def load(tx: Tx) -> Event:
        c = store.conversation(tx, conversation_id)
        return Event("message.created", {"message": store.message(tx, event_id).to_json(),
                                         "conversation": c.to_json(),
                                         "customer": store.customer(tx, c.customer_id).to_json()})

    await bus.publish(await db.read(load))


async def after_wake(db: Database, bus: EventBus, router: Router, woken: Woken) -> None:
    """Back into routing, offered to its owner first, and the owner told. The store already says it is open:
    a crash before this ends with the reconciler putting it back in its queue."""
    fail_points.hit("wake.after_store")
    c = woken.conversation
    await publish_message(db, bus, c.id, woken.event_id)
    with contextlib.suppress(KeyError):  # routed already (the reconciler was quicker)
        await router.reopen(c.id, c.queue or "", c.channel, c.customer_id)
    if woken.owner is not None:
        try:
            await router.transfer(c.id, None, woken.owner, "woke from snooze")
        except RoutingError as e:
            log.info("woken conversation %d waits in its queue: not offered to agent %d (%s)", c.id, woken.owner, e)
    await bus.publish(Event(WOKE, {"conversation": (await db.read(lambda tx: store.conversation(tx, c.id))).to_json(),
                                   "agent": woken.owner, "reason": woken.reason}))


async def after_snooze(db: Database, bus: EventBus, router: Router, snoozed: Snoozed) -> None:
    """Let go of it in routing (the owner's capacity is free while it sleeps), and tell consoles."""
    fail_points.hit("snooze.before_release")
    await router.release(snoozed.conversation.id)
    await publish_message(db, bus, snoozed.conversation.id, snoozed.event_id)
    await bus.publish(Event("conversation.snoozed", {"conversation": snoozed.conversation.to_json()}))


def _wakes_a_snoozed(event: Event) -> bool:
    """A customer's message on a snoozed conversation: what Waker.listen acts on."""
    m = event.data.get("message") if event.type == "message.created" else None
    c = event.data.get("conversation") if event.type == "message.created" else None
    return isinstance(m, dict) and m.get("direction") == "in" and isinstance(c, dict) and c.get("status") == "snoozed"


class Waker:
    """Wakes due conversations, in every process, from the store."""

    def __init__(self, db: Database, bus: EventBus, router: Router, poll_seconds: float) -> None:
        self.db, self.bus, self.router, self.poll_seconds = db, bus, router, poll_seconds
        self.nudge = asyncio.Event()

    async def wake_due(self) -> int:
        """One pass: wake every conversation due now; returns how many this process woke."""
        now = format_time(utcnow())
        woke = 0
        for cid in await self.db.read(lambda tx: due(tx, now)):
            def write(tx: Tx, cid: int = cid) -> Woken | None:
                return wake(tx, cid, format_time(utcnow()))

            woken = await self.db.write(write)
            if woken is None:
                continue  # another process woke it
            woke += 1
            try:
                await after_wake(self.db, self.bus, self.router, woken)
            except Exception:  # the store says open: the reconciler puts it back in its queue
                log.exception("snooze: conversation %d woke, routing it failed", cid)
        return woke

    async def run_forever(self) -> None:
        while True:
            try:
                await self.wake_due()
            except Exception:
                log.exception("snooze: a wake-up pass failed (next one in %.1f s)", self.poll_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.nudge.wait(), self.poll_seconds)
            self.nudge.clear()

    async def listen(self) -> None:
        """A customer's message may have made a snoozed conversation due: look now, not at the next poll."""
        sub = self.bus.subscribe(_wakes_a_snoozed)  # not woken for every other message
        try:
            async for _ in sub:
                self.nudge.set()
        finally:
            sub.close()
