"""What the hub could not place, in one place: every flagged (failed) or rejected journaled event of every channel,
with who sent it and why, and what operators do about it (replay, attach to a customer, dismiss), each action
journaled. Served by /api/v1/attention, the console's "Needs attention" page and `hub events show/replay`."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

from hub import fail_points
from hub.channels.base import Channel, Fact, IngestFailed, IngestResult
from hub.history import store
from hub.history.db import Tx
from hub.identities import IdentityError, normalize
from hub.ingest import AlsoInTx, Ingest
from hub.journal import FLAGGED
from hub.model import AttachmentIn, Inbound, format_time, utcnow

log = logging.getLogger("hub.attention")

#: statuses an operator can still act on; 'dismissed' is the end of the road (kept, with the note)
OPEN = FLAGGED
ACTIONS = ("replay", "attach", "dismiss")


class AttentionError(Exception):
    """An action that cannot be done as asked (a 4xx, with the reason)."""


@dataclass
class Flagged:
    id: int
    channel: str
    status: str
    #: short reason code (no_sender, unmatched_bounce, unreadable, ignored, failed...; docs/attention.md)
    reason: str
    #: the full reason, as the hub logged it
    error: str
    received_at: str
    dedupe_key: str
    attempts: int
    sender: str
    summary: str
    message_id: int | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- what an event is, for a person -------------------------------------------------------------------------------


def _eml(raw: Any) -> bytes | None:
    if isinstance(raw, dict) and isinstance(raw.get("eml_base64"), str):
        try:
            return base64.b64decode(raw["eml_base64"])
        except (binascii.Error, ValueError):
            return None
    return None


def _first_line(text: Any) -> str:
    for line in str(text or "").splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def describe(body: dict[str, Any]) -> tuple[str, str]:
    """(who sent it, its subject or first line) of a journaled event's payload, as far as it can be read."""
    inbound = body.get("inbound")
    if isinstance(inbound, dict):
        subject = ((inbound.get("meta") or {}).get("email") or {}).get("subject")
        return str(inbound.get("identity") or ""), str(subject or _first_line(inbound.get("text")))
    fact = body.get("fact")
    if isinstance(fact, dict):
        return "", f"{fact.get('kind', 'fact')} about message {fact.get('external_id', '?')}"
    raw = body.get("raw")
    eml = _eml(raw)
    if eml is not None:
        try:
            headers = BytesHeaderParser(policy=policy.compat32).parsebytes(eml)
            return str(headers.get("From") or "")[:200], str(headers.get("Subject") or "")[:200]
        except Exception:  # a header block bad enough to stop even this: the raw is still there to read
            return "", ""
    if isinstance(raw, dict):
        if "From" in raw or "Body" in raw:  # a Twilio webhook form
            return str(raw.get("From") or ""), _first_line(raw.get("Body") or raw.get("CallStatus"))
        message = raw.get("message") or raw.get("edited_message") or raw.get("channel_post")
        if isinstance(message, dict):  # a Telegram update
            who = message.get("from") or message.get("chat") or {}
            name = who.get("username") or " ".join(str(who.get(k) or "") for k in ("first_name", "last_name"))
            return f"{name.strip()} ({who.get('id', '?')})", _first_line(message.get("text") or message.get("caption"))
    return "", _first_line(raw if isinstance(raw, str) else "")


def raw_bytes(body: dict[str, Any]) -> tuple[bytes, str, str]:
    """The event as the provider sent it, to view or download: (bytes, content type, file name)."""
    eml = _eml(body.get("raw"))
    if eml is not None:
        return eml, "message/rfc822", "event.eml"
    return json.dumps(body.get("raw"), indent=2, default=str).encode(), "application/json", "event.json"


def _row(tx: Tx, journal_id: int) -> dict[str, Any]:
    row = tx.one(
        "SELECT id, channel, dedupe_key, payload, status, error, reason, attempts, message_id, received_at "
        "FROM journal WHERE id = ?", (journal_id,),
    )
    if row is None:
        raise store.NotFound(f"event {journal_id} does not exist")
    return dict(row)


def _flagged(r: dict[str, Any], body: dict[str, Any]) -> Flagged:
    sender, summary = describe(body)
    code = r.get("reason") or ("failed" if r["status"] == "failed" else "unreadable")
    return Flagged(
        id=int(r["id"]), channel=str(r["channel"]), status=str(r["status"]), reason=str(code),
        error=str(r["error"] or ""), received_at=str(r["received_at"]), dedupe_key=str(r["dedupe_key"]),
        attempts=int(r["attempts"] or 0), sender=sender, summary=summary, message_id=r["message_id"],
    )


def _where(channel: str | None, reason: str | None, statuses: tuple[str, ...]) -> tuple[str, list[Any]]:
    """The WHERE clause of what the list shows: the list and its count use this one, so they always agree."""
    where = [f"status IN ({', '.join('?' for _ in statuses)})"]
    params: list[Any] = [*statuses]
    if channel:
        where.append("channel = ?")
        params.append(channel)
    if reason:
        # The code is stored on rejected events; a processing failure is 'failed' by its status.
        where.append("(reason = ? OR (reason IS NULL AND ? = CASE status WHEN 'failed' THEN 'failed' "
                     "ELSE 'unreadable' END))")
        params += [reason, reason]
    return " AND ".join(where), params


def listing(tx: Tx, channel: str | None = None, reason: str | None = None, limit: int = 50,
            before: int | None = None, statuses: tuple[str, ...] = OPEN) -> list[Flagged]:
    """Flagged and rejected events, newest first (LIMIT of them, with ids below BEFORE)."""
    where, params = _where(channel, reason, statuses)
    if before is not None:
        where += " AND id < ?"
        params.append(before)
    rows = tx.all(
        "SELECT id, channel, dedupe_key, payload, status, error, reason, attempts, message_id, received_at "
        f"FROM journal WHERE {where} ORDER BY id DESC LIMIT ?", (*params, limit),
    )
    return [_flagged(dict(r), json.loads(r["payload"])) for r in rows]


def count(tx: Tx, channel: str | None = None, reason: str | None = None) -> int:
    """How many events `listing` lists with the same filters, over all its pages."""
    where, params = _where(channel, reason, OPEN)
    row = tx.one(f"SELECT COUNT(*) AS n FROM journal WHERE {where}", params)
    return int(row["n"]) if row else 0


def show(tx: Tx, journal_id: int) -> tuple[Flagged, dict[str, Any]]:
    """One journaled event (in any status) with its actions, and its payload."""
    r = _row(tx, journal_id)
    body = json.loads(r["payload"])
    f = _flagged(r, body)
    f.actions = [dict(a) for a in tx.all(
        "SELECT id, action, actor, note, outcome, message_id, created_at FROM journal_actions WHERE journal_id = ? "
        "ORDER BY id", (journal_id,),
    )]
    return f, body


def _ingest_outcome(res: IngestResult | IngestFailed) -> tuple[str, int | None]:
    if isinstance(res, IngestFailed):
        return f"failed again: {res.reason}", None
    return ("already stored" if res.duplicate else "stored"), res.message.id


def _write_action(tx: Tx, journal_id: int, action: str, actor: str, note: str | None, outcome: str,
                  message_id: int | None, status: str | None) -> None:
    """Record an operator's action on event JOURNAL_ID (and its new STATUS), in the transaction that did it: what
    the action wrote and its record commit together or not at all."""
    fail_points.hit("attention.before_record")
    if status is not None:
        tx.exec("UPDATE journal SET status = ?, message_id = COALESCE(?, message_id), processed_at = ? WHERE id = ?",
                (status, message_id, format_time(utcnow()), journal_id))
    _record(tx, journal_id, action, actor, note, outcome, message_id)


def _record(tx: Tx, journal_id: int, action: str, actor: str, note: str | None, outcome: str,
            message_id: int | None) -> None:
    tx.exec(
        "INSERT INTO journal_actions (journal_id, action, actor, note, outcome, message_id, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)", (journal_id, action, actor, note, outcome, message_id, format_time(utcnow())),
    )


# -- what operators do ---------------------------------------------------------------------------------------------


class Attention:
    """Acts on flagged events through the one inbound path (Ingest) and the channels' own parsers."""

    def __init__(self, ingest: Ingest, channels: dict[str, Channel]) -> None:
        self.ingest = ingest
        self.db = ingest.db
        self.channels = channels

    async def _load(self, journal_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        r = await self.db.read(lambda tx: _row(tx, journal_id))
        return r, json.loads(r["payload"])

    async def _journal_action(self, journal_id: int, action: str, actor: str, note: str | None, outcome: str,
                              status: str | None = None, error: str | None = None) -> None:
        """Record an action that wrote nothing else (its outcome, a new status or error), in one transaction."""

        def write(tx: Tx) -> None:
            if error is not None:
                tx.exec("UPDATE journal SET error = ?, attempts = attempts + 1 WHERE id = ?", (error, journal_id))
            _write_action(tx, journal_id, action, actor, note, outcome, None, status)

        await self.db.write(write)

    async def replay(self, journal_id: int, actor: str, note: str | None = None) -> dict[str, Any]:
        """Process the event again, as its channel reads it now (after a fix or a config change). Returns
        {"outcome", "status", "message_id"}; the event stays flagged, with the new reason, if it still fails.
        What the replay wrote and its record commit together (see `_write_action`)."""
        r, body = await self._load(journal_id)
        if r["status"] not in OPEN:
            raise AttentionError(f"event {journal_id} is {r['status']}: only failed or rejected events are replayed")
        done: list[tuple[str, int | None]] = []

        def record(tx: Tx, outcome: str, message_id: int | None) -> None:
            status = None
            if message_id is not None:
                row = tx.one("SELECT status FROM journal WHERE id = ?", (journal_id,))
                # Stored under another key (the adapter's id): this row is resolved by it.
                status = "done" if row is not None and row["status"] != "done" else None
            _write_action(tx, journal_id, "replay", actor, note, outcome, message_id, status)
            done[:] = [(outcome, message_id)]  # the transaction may run again: the last run is the one committed

        await self._replay(journal_id, r, body, record)
        outcome, message_id = done[-1]
        after = await self.db.read(lambda tx: _row(tx, journal_id))
        log.info("event %d: replay by %s: %s", journal_id, actor, outcome)
        return {"outcome": outcome, "status": after["status"], "message_id": message_id}

    async def _replay(self, journal_id: int, r: dict[str, Any], body: dict[str, Any],
                      record: Callable[[Tx, str, int | None], None]) -> None:
        """Replay the event by its kind, RECORD(tx, outcome, message id) in the transaction that did it."""
        if body.get("fact") is not None:
            await self.ingest.facts.retry(
                journal_id, Fact.from_json(body["fact"]), str(r["received_at"]),
                also=lambda tx, res: record(tx, f"fact {res.state}" + (f": {res.reason}" if res.reason else ""),
                                            res.message_id))
            return
        if body.get("inbound") is not None:
            with contextlib.suppress(IngestFailed):  # recorded as failed again, in its transaction
                await self.ingest.process_event(journal_id, Inbound.from_json(body["inbound"]),
                                                also=lambda tx, res: record(tx, *_ingest_outcome(res)))
            return
        channel = self.channels.get(str(r["channel"]))
        if channel is None:
            why = f"the {r['channel']} channel is not configured here: enable it, then replay"
            await self.db.write(lambda tx: record(tx, why, None))
            return
        eml = _eml(body.get("raw"))
        try:
            inbound = channel.parse(eml if eml is not None else body.get("raw"))
        except Exception as e:
            why = f"still unreadable: {type(e).__name__}: {e}"[:500]

            def still(tx: Tx) -> None:
                tx.exec("UPDATE journal SET error = ?, attempts = attempts + 1 WHERE id = ?", (why, journal_id))
                record(tx, why, None)

            await self.db.write(still)
            return
        outcome = await self._store(journal_id, r, inbound, lambda tx, res: record(tx, *_ingest_outcome(res)))
        if outcome is not None:  # refused before anything was written
            await self.db.write(lambda tx: record(tx, outcome, None))

    async def _store(self, journal_id: int, r: dict[str, Any], inbound: Inbound, also: AlsoInTx) -> str | None:
        """Store INBOUND through the one ingest path, journaled under this event's own key (so a later copy of the
        same event is a duplicate of it), ALSO in the same transaction. Returns why not when nothing was written
        (an identity that does not normalize); a processing failure is ALSO's to record."""
        inbound.external_id = inbound.external_id or str(r["dedupe_key"])
        try:
            await self.ingest.ingest_journaled(journal_id, inbound, also)
        except IngestFailed:
            return None
        except IdentityError as e:
            return f"still unreadable: {e}"
        return None

    async def attach(
        self, journal_id: int, actor: str, customer_id: int | None = None, identity: str | None = None,
        name: str | None = None, note: str | None = None,
    ) -> dict[str, Any]:
        """Store the event on a customer's timeline: CUSTOMER_ID's (an existing customer), or the customer who
        owns IDENTITY (created with NAME when new), through the one ingest path."""
        r, body = await self._load(journal_id)
        if r["status"] not in OPEN:
            raise AttentionError(f"event {journal_id} is {r['status']}: only failed or rejected events are attached")
        if (customer_id is None) == (identity is None):
            raise AttentionError("give either customer_id (an existing customer) or identity (e.g. "
                                 "email:ann@example.com) to attach it to")
        if customer_id is not None:
            who = await self.db.read(lambda tx: store.customer(tx, customer_id))
            kinds = self.channels[r["channel"]].identity_kinds if r["channel"] in self.channels else ()
            ids = sorted(who.identities, key=lambda i: (i.kind not in kinds, str(i)))
            if not ids:
                raise AttentionError(f"customer {customer_id} has no identity to store it under")
            target = ids[0]
        else:
            kind, _, value = str(identity).partition(":")
            try:
                target = normalize(kind, value, self.ingest.settings.identities.default_region)
            except IdentityError as e:
                raise AttentionError(str(e)) from None
        inbound = self._inbound_for(r, body, target, name)
        stored: list[int] = []
        failed: list[str] = []

        def record(tx: Tx, res: IngestResult | IngestFailed) -> None:
            # Each run says all of the outcome: a write may run twice (hub.history.db._undoable), and only the last
            # run's rows are kept.
            if isinstance(res, IngestFailed):
                stored[:], failed[:] = [], [f"failed: {res.reason}"]
                return  # the event stays flagged with the reason; nothing was attached
            _write_action(tx, journal_id, "attach", actor, note, f"stored on {target}'s timeline", res.message.id,
                          "done")
            stored[:], failed[:] = [res.message.id], []

        refused = await self._store(journal_id, r, inbound, record)
        if refused is not None or not stored:
            raise AttentionError(refused or (failed[-1] if failed else "not stored"))
        log.info("event %d: attach by %s: stored on %s's timeline", journal_id, actor, target)
        return {"outcome": "stored", "status": "done", "message_id": stored[-1]}

    def _inbound_for(self, r: dict[str, Any], body: dict[str, Any], target: Any, name: str | None) -> Inbound:
        channel = str(r["channel"])
        # A raw event its channel can read again as the target's (an email): the channel's own reader.
        reread = (read(body.get("raw"), channel, target) for read in self.ingest.channel_rules.readers)
        if body.get("inbound") is not None:
            inbound = Inbound.from_json(body["inbound"])
            inbound.identity = target
        elif (read_again := next((i for i in reread if i is not None), None)) is not None:
            inbound = read_again
        else:
            _sender, summary = describe(body)
            data, ctype, filename = raw_bytes(body)
            inbound = Inbound(channel=channel, identity=target, text=summary or f"(a {channel} event)",
                              attachments=[AttachmentIn(filename, ctype, data)])
        inbound.name = name or inbound.name
        inbound.meta = {**inbound.meta, "attached_from_event": int(r["id"])}
        return inbound

    async def dismiss(self, journal_id: int, actor: str, note: str | None) -> dict[str, Any]:
        """Nothing to do about it (spam, a test): kept, marked dismissed, with the note saying why."""
        r, _body = await self._load(journal_id)
        if r["status"] not in OPEN:
            raise AttentionError(f"event {journal_id} is {r['status']}: only failed or rejected events are dismissed")
        if not (note or "").strip():
            raise AttentionError("say why in a note: it is kept with the event")
        await self._journal_action(journal_id, "dismiss", actor, note, "dismissed", "dismissed")
        log.info("event %d: dismissed by %s", journal_id, actor)
        return {"outcome": "dismissed", "status": "dismissed", "message_id": None}
