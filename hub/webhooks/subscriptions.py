"""Webhook subscriptions: a URL, a secret and the event types wanted, stored in the hub's database."""

from __future__ import annotations

import json
import secrets
from typing import Any

from hub.history.db import Row, Tx
from hub.history.store import NotFound

COLUMNS = "id, url, secret, events, enabled, disabled_reason, description, created_at, updated_at"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def to_json(row: Row, with_secret: bool = False) -> dict[str, Any]:
    secret = str(row["secret"])
    return {
        "id": int(row["id"]),
        "url": str(row["url"]),
        "events": json.loads(row["events"]),
        "enabled": bool(row["enabled"]),
        "disabled_reason": row["disabled_reason"],
        "description": str(row["description"]),
        # Shown whole only when created or rotated; afterwards enough to tell secrets apart.
        "secret": secret if with_secret else secret[:10] + "…",
        "created_at": str(row["created_at"]),
        "updated_at": str(row["updated_at"]),
    }


def get(tx: Tx, subscription_id: int) -> Row:
    row = tx.one(f"SELECT {COLUMNS} FROM webhook_subscriptions WHERE id = ?", (subscription_id,))
    if row is None:
        raise NotFound(f"webhook subscription {subscription_id} does not exist")
    return row


def listing(tx: Tx) -> list[Row]:
    return tx.all(f"SELECT {COLUMNS} FROM webhook_subscriptions ORDER BY id")


def create(tx: Tx, url: str, events: list[str], secret: str, description: str, now: str) -> Row:
    row = tx.one(
        "INSERT INTO webhook_subscriptions (url, secret, events, enabled, description, created_at, updated_at) "
        "VALUES (?, ?, ?, 1, ?, ?, ?) RETURNING id",
        (url, secret, json.dumps(sorted(set(events))), description, now, now),
    )
    assert row is not None
    return get(tx, int(row["id"]))


def update(tx: Tx, subscription_id: int, changes: dict[str, Any], now: str) -> Row:
    get(tx, subscription_id)
    sets, params = [], []
    for column, value in changes.items():
        if column == "events":
            value = json.dumps(sorted(set(value)))
        if column == "enabled":
            value = int(value)
            # Enabling clears why the hub disabled it (its waiting deliveries resume); an admin's disable has no
            # reason, and stops new deliveries being queued at all.
            sets.append("disabled_reason = NULL")
        sets.append(f"{column} = ?")
        params.append(value)
    sets.append("updated_at = ?")
    tx.exec(f"UPDATE webhook_subscriptions SET {', '.join(sets)} WHERE id = ?", (*params, now, subscription_id))
    return get(tx, subscription_id)


def delete(tx: Tx, subscription_id: int) -> None:
    get(tx, subscription_id)
    tx.exec("DELETE FROM webhook_deliveries WHERE subscription_id = ?", (subscription_id,))
    tx.exec("DELETE FROM webhook_subscriptions WHERE id = ?", (subscription_id,))


def disable(tx: Tx, subscription_id: int, reason: str, now: str) -> None:
    tx.exec(
        "UPDATE webhook_subscriptions SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?",
        (reason, now, subscription_id),
    )


#: the subscriptions that take deliveries: the enabled ones, and those the hub disabled after persistent failure
#: (their deliveries wait, so fixing the receiver and enabling it again loses nothing)
TAKING = "SELECT id, events FROM webhook_subscriptions WHERE enabled = 1 OR disabled_reason IS NOT NULL"


def wanting(tx: Tx, event_type: str) -> list[int]:
    """The subscriptions (of TAKING) that want EVENT_TYPE ("*" wants every type)."""
    rows = tx.all(TAKING + " ORDER BY id")
    return [int(r["id"]) for r in rows if {event_type, "*"} & set(json.loads(r["events"]))]
