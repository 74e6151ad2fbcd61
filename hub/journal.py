"""The journal: every raw provider event (an inbound message, or a later fact about one), written before it is
processed and deduplicated on (channel, dedupe key). Statuses: pending -> done, or failed (kept, with the reason,
for `hub events replay`), or rejected (unreadable: kept for a person to look at)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.history.db import Row, Tx

#: what an operator has to look at: events that could not be processed, and events that could not be read
FLAGGED = ("failed", "rejected")
#: every status: 'dismissed' is a flagged event an operator closed with a note (hub.attention)
STATUSES = ("pending", "done", "failed", "rejected", "dismissed")


@dataclass
class Journaled:
    id: int
    status: str
    message_id: int | None
    inserted: bool = False
    #: the key it was journaled under: the provider's id, or that id and the fingerprint when another event
    #: with other content already holds the id
    key: str = ""
    #: the provider's id was already taken by an event with other content (a reused email Message-ID)
    reused: bool = False


def write(tx: Tx, channel: str, key: str, payload: str, now: str, fingerprint: str | None = None) -> Journaled:
    """Journal one event as pending, or find it already journaled (a provider retry).

    With a FINGERPRINT (a hash of the event's content), only an event with the same content is a retry: another
    event that reuses KEY is journaled under KEY and its fingerprint. Rows journaled without one match any."""
    row = tx.one(
        "INSERT INTO journal (channel, dedupe_key, payload, status, received_at, fingerprint) "
        "VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT (channel, dedupe_key) DO NOTHING RETURNING id",
        (channel, key, payload, now, fingerprint),
    )
    if row is not None:
        return Journaled(int(row["id"]), "pending", None, inserted=True, key=key)
    old = tx.one(
        "SELECT id, status, message_id, fingerprint FROM journal WHERE channel = ? AND dedupe_key = ?",
        (channel, key),
    )
    assert old is not None
    if fingerprint is not None and old["fingerprint"] is not None and old["fingerprint"] != fingerprint:
        again = write(tx, channel, f"{key}#{fingerprint}", payload, now, fingerprint)
        again.reused = True
        return again
    return Journaled(int(old["id"]), str(old["status"]), old["message_id"], key=key)


def like_prefix(prefix: str) -> str:
    """A LIKE pattern (with ESCAPE '!') matching keys that start with PREFIX, whatever characters it holds."""
    return prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


def listing(tx: Tx, statuses: tuple[str, ...], channel: str | None, limit: int) -> list[dict[str, Any]]:
    """Journal rows in STATUSES (all when empty), newest first, without their raw payloads."""
    where: list[str] = []
    params: list[Any] = []
    if statuses:
        where.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params.extend(statuses)
    if channel:
        where.append("channel = ?")
        params.append(channel)
    rows: list[Row] = tx.all(
        "SELECT id, channel, dedupe_key, status, error, reason, attempts, message_id, received_at, processed_at "
        f"FROM journal {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY id DESC LIMIT ?",
        (*params, limit),
    )
    return [dict(r) for r in rows]
