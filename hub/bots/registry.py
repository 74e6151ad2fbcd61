"""Which queue has which bot: its URL, signing secret, and the queue it hands conversations off to."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.history.db import Row, Tx
from hub.history.store import NotFound

COLUMNS = "queue, url, secret, handoff_queue, enabled, updated_at"


class BotBody(BaseModel):
    """A queue's bot (PUT /api/v1/bots/{queue})."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="where each customer message is POSTed (Rasa REST channel format)")
    handoff_queue: str = Field(description="the queue of people a conversation moves to when the bot hands off")
    secret: str | None = Field(None, min_length=16, max_length=200,
                               description="signing secret; default: one the hub makes (shown once, in the answer)")
    enabled: bool = True


def to_json(row: Row, with_secret: bool = False) -> dict[str, Any]:
    secret = str(row["secret"])
    return {"queue": str(row["queue"]), "url": str(row["url"]), "handoff_queue": str(row["handoff_queue"]),
            "enabled": bool(row["enabled"]), "secret": secret if with_secret else secret[:10] + "…",
            "updated_at": str(row["updated_at"])}


def get(tx: Tx, queue: str) -> Row:
    row = tx.one(f"SELECT {COLUMNS} FROM bots WHERE queue = ?", (queue,))
    if row is None:
        raise NotFound(f"queue {queue!r} has no bot")
    return row


def active(tx: Tx, queue: str | None) -> Row | None:
    """The enabled bot of QUEUE, if any."""
    if not queue:
        return None
    return tx.one(f"SELECT {COLUMNS} FROM bots WHERE queue = ? AND enabled = 1", (queue,))


def listing(tx: Tx) -> list[Row]:
    return tx.all(f"SELECT {COLUMNS} FROM bots ORDER BY queue")


def save(tx: Tx, queue: str, url: str, secret: str, handoff_queue: str, enabled: bool, now: str) -> Row:
    tx.exec("DELETE FROM bots WHERE queue = ?", (queue,))
    tx.exec("INSERT INTO bots (queue, url, secret, handoff_queue, enabled, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (queue, url, secret, handoff_queue, int(enabled), now))
    return get(tx, queue)


def delete(tx: Tx, queue: str) -> None:
    get(tx, queue)
    tx.exec("DELETE FROM bots WHERE queue = ?", (queue,))
