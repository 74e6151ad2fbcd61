"""The hub's durable event log: one row per thing that happened to a conversation, written in the same transaction
as the change it describes, with its webhook deliveries. Automation rules run on these rows (hub.automation.runner)
and outbound webhooks carry them (hub.webhooks); the bus (hub.events) stays the fast, best-effort live view."""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any

from hub import fail_points
from hub.csat import surveys
from hub.history import store
from hub.history.db import Row, Tx
from hub.model import Conversation
from hub.reports import events as conversation_events
from hub.webhooks import enqueue, subscriptions

#: the event types rules and webhooks can name (payload version 1; docs/webhooks.md)
TYPES = (
    "conversation.opened",
    "conversation.reopened",
    "conversation.resolved",
    "message.received",
    "message.sent",
    "business_event.received",
    "csat.received",
    "csat.low",
    "conversation.assigned",
    "sla.breached",
)
#: How many rule actions led to what the current task does (0: a person, a customer or the hub's own clock).
#: Set by the rule runner around what it asks of routing after commit, so the events routing records for it
#: (conversation.assigned) carry the depth that stops rules re-triggering each other without end.
CAUSE_DEPTH: ContextVar[int] = ContextVar("hub_cause_depth", default=0)
VERSION = 1
COLUMNS = "id, type, conversation_id, message_id, depth, automatic, payload, status, created_at"


#: true when some subscription may want an event (wanting() reads which): returned by the statement that logs it, so
#: the common case, no subscription at all, costs no statement of its own
_SUBSCRIBED = f"EXISTS ({subscriptions.TAKING})"


def record(
    tx: Tx, type_: str, conversation_id: int, now: str, *, message_id: int | None = None, depth: int = 0,
    automatic: bool = False,
) -> int:
    """Log one event (and queue its webhook deliveries) inside TX; returns the event's id.

    DEPTH is how many rule actions led here (0: a person or a customer did it). AUTOMATIC: the event's message is
    marked `meta.automatic` (an auto-reply), so rules leave it alone. The payload (what webhooks carry: the
    conversation, message and customer as they are now) is written only when a subscription wants the event."""
    (event_id,) = record_all(tx, [(type_, message_id, automatic)], conversation_id, now, depth=depth)
    return event_id


def record_all(
    tx: Tx, events: list[tuple[str, int | None, bool]], conversation_id: int, now: str, *, depth: int = 0
) -> list[int]:
    """Log EVENTS, (type, message id, automatic) each, about one conversation as `record` does, in one statement
    (an inbound message that opens its conversation logs two); returns their ids, in order."""
    for type_, _message_id, _automatic in events:
        assert type_ in TYPES, type_
    rows = tx.all(
        "INSERT INTO hub_events (type, conversation_id, message_id, depth, automatic, status, created_at) VALUES "
        + ", ".join("(?, ?, ?, ?, ?, 'pending', ?)" for _ in events) + f" RETURNING id, {_SUBSCRIBED} AS subscribed",
        [p for type_, message_id, automatic in events
         for p in (type_, conversation_id, message_id, depth, int(automatic), now)],
    )
    # Ids are given in the order of the rows (rules run in id order: an opened conversation before its message);
    # RETURNING's own order is not promised.
    ids = sorted(int(r["id"]) for r in rows)
    assert len(ids) == len(events)
    fail_points.hit("event.before_deliveries")
    if any(r["subscribed"] for r in rows):
        for event_id, (type_, _message_id, _automatic) in zip(ids, events, strict=True):
            if enqueue.for_event(tx, event_id, type_, conversation_id, now):
                snapshot(tx, event_id)
    return ids


def resolve(tx: Tx, conversation_id: int, now: str, *, agent_id: int | None = None, depth: int = 0) -> Conversation:
    """Resolve a conversation inside TX, recorded in both logs that follow it: this one (rules, webhooks) and the
    reports' events (the resolution clock, credited to its agent, else to AGENT_ID who resolved it)."""
    before = store.conversation(tx, conversation_id)
    conversation_events.record(tx, "resolved", conversation_id, now, customer_id=before.customer_id,
                               channel=before.channel, queue=before.queue,
                               agent_id=before.agent_id if before.agent_id is not None else agent_id)
    after = store.set_conversation_status(tx, conversation_id, "resolved", now)
    record(tx, "conversation.resolved", conversation_id, now, depth=depth)
    # Whether and when it is sent is the survey sender's call (its queue's csat and csat_delay).
    surveys.schedule(tx, after, before.agent_id if before.agent_id is not None else agent_id, now)
    return after


def snapshot(tx: Tx, event_id: int) -> None:
    """Write the event's payload (once: a delivery added later carries the same snapshot as the first)."""
    row = tx.one("SELECT conversation_id, message_id, payload FROM hub_events WHERE id = ?", (event_id,))
    if row is None or row["payload"] is not None:
        return
    conv = store.conversation(tx, int(row["conversation_id"]))
    data: dict[str, Any] = {"conversation": conv.to_json() | {"labels": labels(tx, conv.id)}}
    if row["message_id"] is not None:
        data["message"] = store.message(tx, int(row["message_id"])).to_json()
    data["customer"] = store.customer(tx, conv.customer_id).to_json()
    tx.exec("UPDATE hub_events SET payload = ? WHERE id = ?", (json.dumps(data, default=str), event_id))


def labels(tx: Tx, conversation_id: int) -> list[str]:
    rows = tx.all("SELECT label FROM conversation_labels WHERE conversation_id = ? ORDER BY label", (conversation_id,))
    return [str(r["label"]) for r in rows]


def wire(row: Row) -> dict[str, Any]:
    """The event as webhooks carry it (versioned; docs/webhooks.md)."""
    return {
        "id": int(row["id"]),
        "type": str(row["type"]),
        "version": VERSION,
        "created_at": str(row["created_at"]),
        "depth": int(row["depth"]),
        "data": json.loads(row["payload"] or "{}"),
    }


def load(tx: Tx, event_id: int) -> Row | None:
    return tx.one(f"SELECT {COLUMNS} FROM hub_events WHERE id = ?", (event_id,))
