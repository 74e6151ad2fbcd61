"""The journal: every raw provider event (an inbound message, or a later fact about one), written before it is
processed and deduplicated on (channel, dedupe key). Statuses: pending -> done, or failed (kept, with the reason,
for `hub events replay`), or rejected (unreadable: kept for a person to look at)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.history.db import Conflict, Row, Tx

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


#: Journaled.status of an event not journaled yet (find): the caller inserts it with its outcome (insert)
NEW = "new"


def find(tx: Tx, channel: str, key: str, fingerprint: str | None = None) -> Journaled:
    """The event journaled under (CHANNEL, KEY), as `write` would find it, or one with status NEW naming the key to
    insert it under (`insert`, later in the same transaction). The inbound path journals an event once, with its
    outcome, instead of pending and then done: the row and the processing commit together either way."""
    old = tx.one(
        "SELECT id, status, message_id, fingerprint FROM journal WHERE channel = ? AND dedupe_key = ?",
        (channel, key),
    )
    if old is None:
        return Journaled(0, NEW, None, key=key)
    if fingerprint is not None and old["fingerprint"] is not None and old["fingerprint"] != fingerprint:
        again = find(tx, channel, f"{key}#{fingerprint}", fingerprint)
        again.reused = True
        return again
    return Journaled(int(old["id"]), str(old["status"]), old["message_id"], key=key)


def insert(
    tx: Tx, channel: str, key: str, payload: str, now: str, fingerprint: str | None, status: str, *,
    message_id: int | None = None, error: str | None = None, reason: str | None = None, also: str = "",
    also_params: tuple[Any, ...] = (),
) -> tuple[int, Any]:
    """Journal an event `find` said is NEW, with its outcome (STATUS, and MESSAGE_ID or ERROR and REASON): one row
    written once. ALSO: an expression (with ALSO_PARAMS) the statement returns beside the id, so a look-up the caller
    needs costs no statement of its own. Returns (id, ALSO's value or None).

    Raises Conflict when another transaction journaled the same key since `find` looked (PostgreSQL, where
    transactions run side by side; SQLite's writer runs one at a time): the database runs the transaction again,
    and `find` then sees that event."""
    row = tx.one(
        "INSERT INTO journal (channel, dedupe_key, payload, status, received_at, fingerprint, message_id, error, "
        "reason, processed_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel, dedupe_key) "
        f"DO NOTHING RETURNING id{', ' + also + ' AS also' if also else ''}",
        (channel, key, payload, status, now, fingerprint, message_id, error, reason, now if status == "done" else None,
         int(status in ("done", "failed")), *also_params),
    )
    if row is None:
        raise Conflict(f"{channel} event {key} was journaled by another transaction meanwhile")
    return int(row["id"]), row["also"] if also else None


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
