"""Writing new delivery rows, inside the transaction of the event they carry (hub.event_log.record) or of the rule
that sends it (hub.automation.runner); hub.webhooks.deliveries sends them."""

from __future__ import annotations

from hub.history.db import Tx
from hub.webhooks import subscriptions


def for_event(tx: Tx, event_id: int, event_type: str, conversation_id: int | None, now: str) -> int:
    """Queue EVENT_ID for every subscription that wants its type; returns how many."""
    wanted = subscriptions.wanting(tx, event_type)
    for sub in wanted:
        add(tx, sub, event_id, conversation_id, now)
    return len(wanted)


def add(tx: Tx, subscription_id: int, event_id: int, conversation_id: int | None, now: str) -> int:
    """Queue EVENT_ID for SUBSCRIPTION_ID once: a subscription that wants the event's type and is also named by
    rules' send_webhook gets one delivery, not one per way. Returns the delivery's id."""
    # The rule runner holds the event's row (FOR UPDATE) while it adds, so no other transaction adds it meanwhile.
    had = tx.one("SELECT id FROM webhook_deliveries WHERE event_id = ? AND subscription_id = ?",
                 (event_id, subscription_id))
    if had is not None:
        return int(had["id"])
    row = tx.one(
        "INSERT INTO webhook_deliveries (subscription_id, event_id, conversation_id, status, next_attempt_at, "
        "created_at, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?) RETURNING id",
        (subscription_id, event_id, conversation_id, now, now, now),
    )
    assert row is not None
    return int(row["id"])
