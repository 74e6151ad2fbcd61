"""Later facts: what a provider tells the hub afterwards about a message it has (a delivery status, a call's status,
a voicemail's transcript). Journaled like inbound events and applied in the same transaction. A fact about a message
the hub does not know yet (Twilio's status callback can beat the answer to the send itself) waits as 'pending' and is
applied when the message is recorded, or by the journal sweep; past a deadline it is flagged 'failed', with why."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from hub.channels.base import STATUS_RANK, Fact, FactResult, FactRule, fact_key_prefix
from hub.config import IngestSettings
from hub.events import Event, EventBus
from hub.history import store
from hub.history.db import Database, Tx, retryable
from hub.journal import like_prefix
from hub.journal import write as journal_write
from hub.metrics import Metrics
from hub.model import Message, format_time, parse_time, utcnow

log = logging.getLogger("hub.facts")

#: no channel's rules: for callers that never apply a "call" fact (the outbox records outgoing messages only)
NO_RULES: Mapping[str, FactRule] = {}


def moves_forward(old: str, new: str) -> bool:
    """Provider status callbacks may arrive out of order; a status never moves backwards."""
    return STATUS_RANK.get(new, 0) > STATUS_RANK.get(old, 0)


def _direction(fact: Fact) -> str:
    return "out" if fact.kind == "status" else "in"


def _target(tx: Tx, fact: Fact) -> int | None:
    row = tx.one(
        "SELECT id FROM messages WHERE channel = ? AND external_id = ? AND direction = ? ORDER BY id LIMIT 1",
        (fact.channel, fact.external_id, _direction(fact)),
    )
    return int(row["id"]) if row else None


def _change(tx: Tx, fact: Fact, message_id: int, now: str, rules: Mapping[str, FactRule]) -> bool:
    """Apply FACT to its message; False when it changes nothing. RULES: each channel's rule for its call facts."""
    if fact.kind == "status":
        row = tx.one("SELECT status FROM messages WHERE id = ?" + tx.for_update, (message_id,))
        assert row is not None and fact.status is not None
        if not moves_forward(str(row["status"]), fact.status):
            return False
        store.set_message_status(tx, message_id, fact.status, fact.reason, now)
        return True
    if fact.kind == "call":
        # The channel's rule for what a call's status means, applied to the meta stored by now; the channel writes
        # the text. Without its rule the fact is flagged (kept for replay), never applied half.
        rule = rules.get(fact.channel)
        if rule is None:
            raise LookupError(f"no rule for {fact.channel} call facts (the app hands Ingest each channel's rule)")
        msg = store.message(tx, message_id)
        meta = {k: v for k, v in {**msg.meta, **fact.meta}.items() if v is not None}
        derived, text = rule(meta)
        store.amend_message(tx, message_id, text, {**fact.meta, **derived}, now)
        return True
    store.amend_message(tx, message_id, fact.text, fact.meta, now)
    return True


def _unknown(fact: Fact) -> str:
    what = f"status {fact.status!r}" if fact.kind == "status" else f"{fact.kind} fact {fact.key!r}"
    sent = "outgoing" if fact.kind == "status" else "incoming"
    return f"{what} for {fact.channel} message {fact.external_id}: no such {sent} message"


def _apply(
    tx: Tx, journal_id: int, fact: Fact, now: str, give_up: str | None, rules: Mapping[str, FactRule]
) -> FactResult:
    """Apply a journaled FACT and record the outcome on its journal row. GIVE_UP: why an unknown message is no
    longer waited for (the row is then flagged 'failed' instead of left 'pending')."""
    try:
        with tx.undoable():
            message_id = _target(tx, fact)
            changed = message_id is not None and _change(tx, fact, message_id, now, rules)
    except Exception as e:
        if retryable(e):
            raise
        reason = f"{type(e).__name__}: {e}"
        log.exception("fact %d could not be applied; kept in the journal for `hub events replay`", journal_id)
        tx.exec("UPDATE journal SET status = 'failed', error = ?, attempts = attempts + 1 WHERE id = ?",
                (reason, journal_id))
        return FactResult(journal_id, "failed", reason)
    if message_id is None:
        if give_up is None:
            reason = _unknown(fact) + " yet; applied as soon as it is recorded"
            state = "pending"
        else:
            reason = f"{_unknown(fact)} ({give_up}); `hub events replay` applies it if the message appears"
            state = "failed"
        tx.exec("UPDATE journal SET status = ?, error = ?, attempts = attempts + 1 WHERE id = ?",
                (state, reason, journal_id))
        return FactResult(journal_id, state, reason)
    tx.exec(
        "UPDATE journal SET status = 'done', message_id = ?, processed_at = ?, attempts = attempts + 1, error = NULL "
        "WHERE id = ?",
        (message_id, now, journal_id),
    )
    return FactResult(journal_id, "applied" if changed else "unchanged", None, message_id)


def _waiting(dialect: str, channel: str, external_id: str) -> tuple[str, tuple[str, ...]]:
    """The condition on journal rows of the facts waiting for CHANNEL's message EXTERNAL_ID, and its parameters:
    every one of them, and maybe others (apply_waiting compares the id after)."""
    prefix = fact_key_prefix(external_id)
    if dialect == "sqlite":
        # A seek on the journal's unique (channel, dedupe_key) index: the keys that start with PREFIX are exactly
        # those in [PREFIX, PREFIX with its last character, ':', raised by one) in SQLite's byte order. By status
        # (LIKE can use no index) it scanned every pending row, and every event of a group commit is pending until
        # it is done: a batch of 32 read 32 rows for each of its messages. (`+status`: never by the status index,
        # whatever an ANALYZE may say.)
        return ("channel = ? AND dedupe_key >= ? AND dedupe_key < ? AND +status = 'pending'",
                (channel, prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)))
    # PostgreSQL: with a collation other than C a range on text is no prefix, so a LIKE; the constant LIKE is
    # migration 117's index predicate, which PostgreSQL reads only when the query states it.
    return ("status = 'pending' AND channel = ? AND dedupe_key LIKE 'fact:%' AND dedupe_key LIKE ? ESCAPE '!'",
            (channel, like_prefix(prefix)))


def any_waiting(dialect: str, channel: str, external_id: str) -> tuple[str, tuple[str, ...]]:
    """An SQL expression (and its parameters), true when a fact may be waiting for CHANNEL's message EXTERNAL_ID: for
    the statement that records the message to return, so that apply_waiting runs only then (nearly never)."""
    where, params = _waiting(dialect, channel, external_id)
    return f"EXISTS (SELECT 1 FROM journal WHERE {where})", params


def apply_waiting(
    tx: Tx, channel: str, external_id: str, now: str, rules: Mapping[str, FactRule] = NO_RULES
) -> int:
    """Apply the facts that arrived before CHANNEL's message EXTERNAL_ID was recorded (call in the transaction that
    records it). Returns how many were applied."""
    where, params = _waiting(tx.dialect, channel, external_id)
    rows = tx.all(f"SELECT id, payload FROM journal WHERE {where} ORDER BY id", params)
    n = 0
    for row in rows:
        body = json.loads(row["payload"])
        fact = Fact.from_json(body["fact"])
        if fact.external_id != external_id:  # LIKE ignores case on SQLite
            continue
        if _apply(tx, int(row["id"]), fact, now, None, rules).state in ("applied", "unchanged"):
            n += 1
    return n


class Facts:
    def __init__(
        self, db: Database, bus: EventBus, metrics: Metrics, settings: IngestSettings,
        rules: Mapping[str, FactRule] = NO_RULES,
    ) -> None:
        self.db = db
        self.bus = bus
        self.metrics = metrics
        self.settings = settings
        #: channel name -> its rule for call facts (hub.channels.registry, handed in by the wiring)
        self.rules = rules

    async def record(self, fact: Fact, raw: Any = None) -> FactResult:
        """Journal FACT and apply it, in one transaction. A retried fact changes nothing (state 'duplicate'),
        unless it is still waiting for its message, in which case it is tried again."""
        payload = json.dumps({"inbound": None, "raw": raw, "fact": fact.to_json()}, default=str)
        now = format_time(utcnow())

        def write(tx: Tx) -> FactResult:
            j = journal_write(tx, fact.channel, fact.dedupe_key, payload, now)
            if not j.inserted:  # lock the row: another process may be applying the same fact right now
                row = tx.one("SELECT status, message_id FROM journal WHERE id = ?" + tx.for_update, (j.id,))
                assert row is not None
                if row["status"] != "pending":
                    return FactResult(j.id, "duplicate", None, row["message_id"])
            return _apply(tx, j.id, fact, now, None, self.rules)

        return await self._finish(fact, await self.db.write(write))

    async def retry(self, journal_id: int, fact: Fact, received_at: str,
                    also: Callable[[Tx, FactResult], None] | None = None) -> FactResult:
        """Try a journaled fact again (the sweep, `hub events replay`). One that has waited longer than
        ingest.pending_fact_seconds for its message is flagged 'failed' with the reason. ALSO runs in the same
        transaction, with the result (an operator's action is recorded with it)."""
        now = utcnow()
        waited = (now - parse_time(received_at)).total_seconds()
        limit = self.settings.pending_fact_seconds

        def write(tx: Tx) -> FactResult:
            row = tx.one("SELECT status FROM journal WHERE id = ?" + tx.for_update, (journal_id,))
            if row is None or row["status"] not in ("pending", "failed"):
                result = FactResult(journal_id, "duplicate")
            else:
                give_up = None
                if row["status"] == "failed" or waited >= limit:
                    give_up = f"waited {waited:.1f}s; ingest.pending_fact_seconds is {limit:g}"
                result = _apply(tx, journal_id, fact, format_time(now), give_up, self.rules)
            if also is not None:
                also(tx, result)
            return result

        return await self._finish(fact, await self.db.write(write))

    async def _finish(self, fact: Fact, result: FactResult) -> FactResult:
        self.metrics.inbound.labels(fact.channel, f"fact_{result.state}").inc()
        if result.state == "failed":
            log.warning("flagged %s fact (journal %d): %s", fact.channel, result.journal_id, result.reason)
        if result.state != "applied" or result.message_id is None:
            return result
        mid = result.message_id
        msg: Message = await self.db.read(lambda tx: store.message(tx, mid))
        if fact.kind == "status":
            await self.bus.publish(Event("message.status", {
                "message_id": msg.id, "conversation_id": msg.conversation_id, "status": msg.status,
                "reason": msg.status_reason, "external_id": msg.external_id,
            }))
        else:
            await self.bus.publish(Event("message.updated", {"message": msg.to_json()}))
        return result
