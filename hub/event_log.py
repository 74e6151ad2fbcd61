"""The hub's durable event log: one row per thing that happened to a conversation, written in the same transaction
as the change it describes, with its webhook deliveries. Automation rules run on these rows (hub.automation.runner)
and outbound webhooks carry them (hub.webhooks); the bus (hub.events) stays the fast, best-effort live view."""

from __future__ import annotations

import json
from typing import Any

from hub import fail_points
from hub.history import store
from hub.history.db import Row, Tx

#: the event types rules and webhooks can name (payload version 1; docs/webhooks.md)
TYPES = (
    "conversation.opened",
    "conversation.reopened",
    "conversation.resolved",
    "message.received",
    "message.sent",
)
VERSION = 1


def record(
    tx: Tx, type_: str, conversation_id: int, now: str, *, message_id: int | None = None, depth: int = 0
) -> int:
    """Log one event (and queue its webhook deliveries) inside TX; returns the event's id.

    DEPTH is how many rule actions led here (0: a person or a customer did it); an event about a message marked
    `meta.automatic` (an auto-reply) is flagged so rules leave it alone."""
    assert type_ in TYPES, type_
    conv = store.conversation(tx, conversation_id)
    data: dict[str, Any] = {"conversation": conv.to_json() | {"labels": labels(tx, conversation_id)}}
    automatic = False
    if message_id is not None:
        msg = store.message(tx, message_id)
        data["message"] = msg.to_json()
        automatic = bool(msg.meta.get("automatic"))
    data["customer"] = store.customer(tx, conv.customer_id).to_json()
    row = tx.one(
        "INSERT INTO hub_events (type, conversation_id, depth, automatic, payload, status, created_at) "
        "VALUES (?, ?, ?, ?, ?, 'pending', ?) RETURNING id",
        (type_, conversation_id, depth, int(automatic), json.dumps(data, default=str), now),
    )
    assert row is not None
    event_id = int(row["id"])
    fail_points.hit("event.before_deliveries")
    from hub.webhooks.deliveries import enqueue  # the webhooks package reads this log: imported late

    enqueue(tx, event_id, type_, conversation_id, now)
    return event_id


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
        "data": json.loads(row["payload"]),
    }


def load(tx: Tx, event_id: int) -> Row | None:
    return tx.one(
        "SELECT id, type, conversation_id, depth, automatic, payload, status, created_at FROM hub_events WHERE id = ?",
        (event_id,),
    )
