"""The inbound path, the only one: journal the raw event, resolve the identity, join or open the conversation,
store the message, publish. The journal write commits before the provider is acknowledged."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import orjson

from hub import event_log, journal
from hub.channels.base import Arrival, ChannelRules, Fact, Flagged, IngestFailed, IngestResult, Outcome
from hub.config import Settings
from hub.csat import answers as csat_answers
from hub.csat import surveys as csat_surveys
from hub.events import Event, EventBus
from hub.facts import Facts, any_waiting, apply_waiting
from hub.history import store
from hub.history.db import Database, Tx, retryable
from hub.html_safety import sanitized
from hub.identities import IdentityError, normalize
from hub.journal import write as _journal
from hub.json_codec import text as json_text
from hub.metrics import Metrics
from hub.model import ANSWER_META, Attachment, Inbound, Message, format_time, utcnow
from hub.reports import events as conversation_events

log = logging.getLogger("hub.ingest")

#: where a new conversation waits: its queue, or (queue, priority) when the routing rules give it a priority too
QueueChooser = Callable[[Inbound], str | tuple[str, int]]
#: (queue, priority) of a conversation this event opens
Place = tuple[str, int]
StoredHook = Callable[["IngestResult", Inbound], Awaitable[None]]
#: routing's first-response clock for a conversation this event opens (or reopens) in QUEUE, asked inside the write
#: transaction so that the deadline commits with the conversation: (arrival, deadline) in epoch seconds, or None
#: (the queue has no target)
FirstResponse = Callable[[Tx, str], tuple[float, float] | None]
#: a write of the caller's that must commit with the event's processing, in the same transaction (an operator's
#: action on a flagged event is recorded with its outcome, or not at all: see hub.attention)
AlsoInTx = Callable[[Tx, "IngestResult | IngestFailed"], None]


@dataclass
class _Prepared:
    """An arrival made ready for the write transaction (outside it: normalized, its queue chosen, its journal
    payload written out)."""

    channel: str
    #: None: the event is flagged, as CODE with REASON
    inbound: Inbound | None
    key: str
    payload: str
    fingerprint: str | None
    place: Place = ("", 0)
    queue_error: str | None = None
    code: str = ""
    reason: str = ""


@dataclass
class _Unjournaled:
    """A new event, journaled with its outcome when its processing ends (hub.journal.insert)."""

    channel: str
    key: str
    payload: str
    fingerprint: str | None


def _load(tx: Tx, journal_id: int, message_id: int, duplicate: bool, how: str) -> IngestResult:
    msg = store.message(tx, message_id)
    conv = store.conversation(tx, msg.conversation_id)
    cust = store.customer(tx, msg.customer_id)
    return IngestResult(msg, conv, cust, duplicate, how, journal_id)


class Ingest:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        bus: EventBus,
        metrics: Metrics,
        choose_queue: QueueChooser | None = None,
        on_stored: StoredHook | None = None,
        channel_rules: ChannelRules | None = None,
        first_response: FirstResponse | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.bus = bus
        self.metrics = metrics
        self.choose_queue = choose_queue or (lambda _inbound: settings.routing.default_queue)
        # Routing's hook: runs after the message is stored and published; its failure never un-stores anything.
        self.on_stored = on_stored
        self.first_response = first_response
        #: provider callbacks about messages already here, kept in the same journal
        #: what the core runs of the channels (their rules for later facts, readers of journaled raw events)
        self.channel_rules = channel_rules or ChannelRules()
        self.facts = Facts(db, bus, metrics, settings.ingest, self.channel_rules.facts)

    def normalized(self, inbound: Inbound) -> Inbound:
        """INBOUND with its identity in canonical form (raises IdentityError with a reason)."""
        region = self.settings.identities.default_region
        inbound.identity = normalize(inbound.identity.kind, inbound.identity.value, region)
        # A provider's text may carry NUL, which PostgreSQL text cannot hold: shown as U+FFFD on both stores, so
        # the message is kept instead of failing on every replay. (The REST API refuses NUL with a 422 instead.)
        inbound.text = inbound.text.replace("\x00", "\ufffd")
        for name in ("name", "html", "external_id", "business_line"):
            value = getattr(inbound, name)
            if value is not None and "\x00" in value:
                setattr(inbound, name, value.replace("\x00", "\ufffd"))
        for a in inbound.attachments:
            a.filename, a.content_type = a.filename.replace("\x00", "\ufffd"), a.content_type.replace("\x00", "")
        return inbound

    async def ingest(self, inbound: Inbound, raw: Any = None, fingerprint: str | None = None) -> IngestResult:
        """Store one inbound event exactly once. A retried event returns the stored message and stores nothing new.
        With a FINGERPRINT of its content, an event that reuses another's provider id is not a retry (see
        hub.journal.write): it is stored, marked `reused_external_id`."""
        (outcome,) = await self.ingest_batch([Arrival(inbound.channel, inbound, raw, fingerprint)])
        if isinstance(outcome, IngestFailed):
            raise outcome
        assert isinstance(outcome, IngestResult)
        return outcome

    async def flag(
        self, channel: str, dedupe_key: str | None, raw: Any, reason: str, code: str | None = None,
        fingerprint: str | None = None,
    ) -> int:
        """Keep an event that could not be parsed, flagged with the reason, so nothing is silently lost. CODE is
        the short reason operators filter on and /metrics counts (docs/attention.md lists them)."""
        (outcome,) = await self.ingest_batch([Arrival(channel, None, raw, fingerprint, dedupe_key, reason, code)])
        return outcome.journal_id

    async def ingest_batch(self, arrivals: list[Arrival]) -> list[Outcome]:
        """Journal and store (or flag) ARRIVALS in one write transaction, in order, each exactly as `ingest` (or
        `flag`) would on its own: a later event sees the earlier ones (a retry in the batch is a duplicate, a reply
        joins the thread), and an event whose processing fails rolls back to its savepoint and is kept flagged,
        the others stored. Publishing and routing follow the commit, one message at a time. Raises only when the
        transaction could not commit (nothing of the batch is durable then)."""
        prepared = [self._prepared(a) for a in arrivals]

        # One transaction: the raw events and their processing commit together, and a processing failure rolls back
        # to a savepoint so its raw event still commits, flagged. Either way it is durable before we answer.
        def run(tx: Tx) -> list[Outcome]:
            now = format_time(utcnow())
            return [self._journal_and_apply(tx, p, now) for p in prepared]

        # One event locks one customer: its identity orders it in a PostgreSQL group (see Database.write).
        alone = prepared[0].inbound if len(prepared) == 1 else None
        outcomes = await self.db.write(run, order=str(alone.identity) if alone is not None else "")
        for p, outcome in zip(prepared, outcomes, strict=True):
            await self._settle(p, outcome)
        return outcomes

    def _prepared(self, a: Arrival) -> _Prepared:
        inbound, reason, raw = a.inbound, a.reason, a.raw
        if inbound is not None:
            try:
                inbound = self.normalized(inbound)
            except IdentityError as e:
                if a.code is None:
                    raise
                reason, raw, inbound = str(e), a.flag_raw() if a.flag_raw is not None else a.raw, None
                dedupe_key = a.inbound.external_id if a.inbound is not None else a.dedupe_key
            else:
                key = inbound.external_id or f"hub-{uuid.uuid4()}"
                payload = json_text({"inbound": inbound.to_json(), "raw": raw})
                place, queue_error = self._queue(inbound)
                return _Prepared(a.channel, inbound, key, payload, a.fingerprint, place, queue_error)
        else:
            dedupe_key = a.dedupe_key
        code = a.code or ("ignored" if reason.startswith("ignored") else "unreadable")
        return _Prepared(a.channel, None, dedupe_key or f"hub-{uuid.uuid4()}",
                         json_text({"inbound": None, "raw": raw}), a.fingerprint, code=code,
                         reason=reason)

    def _journal_and_apply(self, tx: Tx, p: _Prepared, now: str) -> Outcome:
        # A new event is journaled once, with its outcome, at the end of its processing (one row written once, not
        # pending then done): both commit in this transaction, before the provider hears back, or neither does.
        journaled = journal.find(tx, p.channel, p.key, p.fingerprint)
        if p.inbound is None:
            if journaled.status == journal.NEW:
                journal_id, _ = journal.insert(tx, p.channel, journaled.key, p.payload, now, p.fingerprint,
                                               "rejected", error=p.reason, reason=p.code)
                return Flagged(journal_id, p.code, p.reason, True)
            if journaled.status == "pending":
                tx.exec("UPDATE journal SET status = 'rejected', error = ?, reason = ? WHERE id = ?",
                        (p.reason, p.code, journaled.id))
            return Flagged(journaled.id, p.code, p.reason, False)
        new = None
        if journaled.status == journal.NEW:
            new = _Unjournaled(p.channel, journaled.key, p.payload, p.fingerprint)
        return self._apply(tx, journaled.id, p.inbound, p.place, p.queue_error, now, reused=journaled.reused,
                           new=new)

    async def _settle(self, p: _Prepared, outcome: Outcome) -> None:
        """After the commit: count, publish and route one event's outcome."""
        if isinstance(outcome, Flagged):
            self.metrics.inbound.labels(p.channel, "rejected").inc()
            if outcome.inserted:
                self.metrics.flagged.labels(p.channel, outcome.code).inc()
            log.warning("flagged %s event %d (%s): %s", p.channel, outcome.journal_id, outcome.code, outcome.reason)
            return
        assert p.inbound is not None
        await self._after_commit(p.inbound, outcome)

    async def record_handled(
        self, channel: str, dedupe_key: str, raw: Any, outcome: str, about: str, fingerprint: str | None = None
    ) -> tuple[int | None, int | None]:
        """Journal an event that is about one of our outbound messages (an email bounce) as done, linked to the
        message whose external id is ABOUT; OUTCOME says what it did. Returns (journal id, message id), or
        (None, None) when no such message exists (nothing is journaled)."""
        payload = json.dumps({"inbound": None, "raw": raw}, default=str)
        now = format_time(utcnow())

        def write(tx: Tx) -> tuple[int | None, int | None]:
            row = tx.one(
                "SELECT id FROM messages WHERE channel = ? AND external_id = ? AND direction = 'out' ORDER BY id "
                "LIMIT 1", (channel, about),
            )
            if row is None:
                return None, None  # not ours: nothing journaled, the caller flags it
            message_id = int(row["id"])
            j = _journal(tx, channel, dedupe_key, payload, now, fingerprint)
            if j.status == "pending":
                tx.exec(
                    "UPDATE journal SET status = 'done', message_id = ?, error = ?, reason = 'bounce', "
                    "processed_at = ?, attempts = attempts + 1 WHERE id = ?", (message_id, outcome, now, j.id),
                )
            return j.id, message_id

        return await self.db.write(write)

    def _queue(self, inbound: Inbound) -> tuple[Place, str | None]:
        try:
            chosen = self.choose_queue(inbound)
        except Exception as e:
            log.exception("choosing a queue failed for a %s event", inbound.channel)
            return ("", 0), f"{type(e).__name__}: {e}"
        return (chosen, 0) if isinstance(chosen, str) else chosen, None

    def _apply(
        self, tx: Tx, journal_id: int, inbound: Inbound, place: Place, queue_error: str | None, now: str,
        reused: bool = False, new: _Unjournaled | None = None,
    ) -> IngestResult | IngestFailed:
        """Process the event journaled as JOURNAL_ID, or NEW, not journaled yet: journaled here with its outcome.
        REUSED: the event's provider id is held by another event with other content (see hub.journal.write)."""
        if new is None:  # a row journaled before: lock it and see whether it is done
            row = tx.one("SELECT status, message_id, dedupe_key FROM journal WHERE id = ?" + tx.for_update,
                         (journal_id,))
            assert row is not None
            if row["status"] == "done":  # a retry, or another worker got here first
                return _load(tx, journal_id, int(row["message_id"]), duplicate=True, how="joined")
            # Journaled under its id and fingerprint: a replay or recovery of a reused id.
            reused = reused or str(row["dedupe_key"]).startswith(f"{inbound.external_id}#")
        reason = queue_error
        if reason is None:
            try:
                with tx.undoable():  # a failed processing leaves nothing but the raw event, flagged below
                    return self._store(tx, journal_id, inbound, place, reused, now, new)
            except Exception as e:
                if retryable(e):
                    raise  # the database runs the whole transaction again; this is not the event's fault
                reason = f"{type(e).__name__}: {e}"
                log.exception("inbound %s event %s failed; kept in the journal for `hub events replay`",
                              inbound.channel, new.key if new is not None else journal_id)
        if new is not None:
            journal_id, _ = journal.insert(tx, new.channel, new.key, new.payload, now, new.fingerprint, "failed",
                                           error=reason)
        else:
            tx.exec(
                "UPDATE journal SET status = 'failed', error = ?, attempts = attempts + 1 WHERE id = ?",
                (reason, journal_id),
            )
        return IngestFailed(journal_id, reason)

    def _store(
        self, tx: Tx, journal_id: int, inbound: Inbound, place: Place, reused: bool, now: str,
        new: _Unjournaled | None = None,
    ) -> IngestResult:
        """Identity -> conversation -> message -> attachments; journals the event done (NEW: inserts its row) or
        marks its row done. The result is built from what the statements wrote and returned, not read back (the hot
        path: every statement counts)."""
        queue, priority = place
        # A known customer is locked as they are found (join_or_open needs the lock): one statement for both.
        customer, created = store.customer_for_identity(tx, inbound.identity, inbound.name, now, lock=True)
        customer_id = customer.id
        # join_or_open and join_thread set the conversation's updated_at to NOW in the statement that finds it
        touched = True
        started: tuple[float, float] | None = None  # the first-response clock this message starts
        # A reply inside a known thread (email) joins that conversation while it is open, whoever sent it.
        threaded = None
        # A survey's answer goes on the surveyed conversation and leaves it resolved: it opens no work. A customer
        # created just now has been sent no survey, and has no conversation nor survey to close (below).
        answer = None
        if not inbound.meta.get("automatic") and not created:
            answer = csat_surveys.answer_for(tx, customer_id, inbound, now)
        thread = inbound.thread_conversation_id
        if answer is None and thread is None and inbound.thread_refs:
            # Looked up here, in the transaction, so a reply finds the email it answers earlier in the same batch.
            thread = store.conversation_by_external_ids(tx, inbound.channel, inbound.thread_refs)
        if answer is None and thread is not None:
            threaded = store.join_thread(tx, thread, inbound.channel, now)
        if answer is not None:
            conv, how = store.conversation(tx, answer[0].conversation_id), "recorded"
            conv, touched = replace(conv, updated_at=now), False  # insert_message touches it below
        elif threaded is not None:
            conv, how = threaded, "joined"
        elif inbound.meta.get("automatic"):
            # Machine-written (an out-of-office): on the timeline, but it never opens or reopens work.
            conv, how = store.record_without_routing(
                tx, customer_id, inbound.channel, queue, inbound.business_line, now
            )
            conv, touched = replace(conv, updated_at=now), False  # insert_message touches it below
        else:
            conv, how = store.join_or_open(
                tx, customer_id, inbound.channel, queue, inbound.business_line,
                self.settings.conversations.reopen_window_seconds, now, new_customer=created, customer_locked=True,
            )
            if how in ("opened", "reopened") and self.first_response is not None:
                started = self.first_response(tx, conv.queue or queue)
            if how == "reopened" or (how == "opened" and (priority or started)):
                # The routing rule's priority and the first-response deadline, in the store before routing or a rule
                # sees the conversation: the one truth a rebuilt routing state reads back (an automation rule's
                # set_priority changes the priority). A reopened one's old deadline goes, replaced by its new one.
                tx.exec("UPDATE conversations SET priority = ?, respond_by = ? WHERE id = ?",
                        (priority, started[1] if started else None, conv.id))
        meta = dict(inbound.meta)
        meta.pop(ANSWER_META, None)
        if answer is not None:
            meta["csat"] = csat_answers.meta_for(*answer, now)
        if reused:
            # Another event with other content holds this provider id (some mailers send one fixed Message-ID).
            meta["reused_external_id"] = True
        mail = meta.get("email")
        if isinstance(mail, dict) and isinstance(mail.get("full_html"), str):
            # The full original an email keeps beside its trimmed body reaches browsers too: same rule.
            meta["email"] = {**mail, "full_html": sanitized(mail["full_html"], allow_remote_images=True)}
        if inbound.business_line:
            meta["business_line"] = inbound.business_line
        # Whatever the adapter did, no customer HTML is stored that could run in a browser (what the adapter
        # sanitized already, outside this transaction, is not done twice). Remote images are the adapter's call
        # (email blocks them by default), so they are kept here.
        html = sanitized(inbound.html, allow_remote_images=True) if inbound.html else None
        meta_text = json_text(meta)
        message_id = store.insert_message(
            tx,
            conversation_id=conv.id,
            customer_id=customer_id,
            channel=inbound.channel,
            direction="in",
            kind=inbound.kind,
            text=inbound.text,
            html=html,
            status="received",
            external_id=inbound.external_id,
            identity=str(inbound.identity),
            meta_text=meta_text,
            now=now,
            created_at=inbound.occurred_at,
            touch_conversation=not touched,
        )
        conversation_events.record_inbound(tx, conv, how, inbound.channel, customer_id, now, message_id)
        if answer is not None:
            csat_answers.record(tx, *answer, message_id, now, self.settings.csat.low_score)
        elif how in ("opened", "reopened") and not created:
            csat_surveys.close_open(tx, customer_id, now)
        max_bytes = self.settings.ingest.max_attachment_bytes
        files: list[Attachment] = []
        for a in inbound.attachments:
            data, status, why = a.data, "stored" if a.data is not None else "pending", None
            if a.data is not None and len(a.data) > max_bytes:
                data, status = None, "failed"
                why = f"attachment is {len(a.data)} bytes, over the {max_bytes}-byte limit"
            file_id = store.insert_attachment(tx, message_id, a.filename, a.content_type, data, a.url, status, why)
            files.append(Attachment(file_id, message_id, a.filename, a.content_type, len(data) if data else 0,
                                    status, a.url, why))
        events: list[tuple[str, int | None, bool]] = []
        if how in ("opened", "reopened"):  # not "recorded": an auto-reply kept without opening work for anyone
            events.append((f"conversation.{how}", None, False))
        # A survey's answer is left to rules on csat.received: an out-of-hours reply to a "5" would be noise.
        events.append(("message.received", message_id, bool(meta.get("automatic")) or answer is not None))
        event_log.record_all(tx, events, conv.id, now)
        # Facts that came in while the message waited (e.g. a call's status while the call waited for a replay):
        # whether any may wait is asked by the journal's statement (nearly never: no statement of its own).
        waiting, waiting_params = "", tuple[str, ...]()
        if inbound.external_id:
            waiting, waiting_params = any_waiting(tx.dialect, inbound.channel, inbound.external_id)
        if new is not None:
            journal_id, any_waited = journal.insert(
                tx, new.channel, new.key, new.payload, now, new.fingerprint, "done", message_id=message_id,
                also=waiting, also_params=waiting_params,
            )
        else:
            row = tx.one(
                "UPDATE journal SET status = 'done', message_id = ?, processed_at = ?, attempts = attempts + 1, "
                f"error = NULL WHERE id = ? RETURNING {waiting or 'NULL'} AS also",
                (message_id, now, journal_id, *waiting_params),
            )
            any_waited = row["also"] if row is not None else None
        amended = 0
        if inbound.external_id and any_waited:
            amended = apply_waiting(tx, inbound.channel, inbound.external_id, now, self.facts.rules)
        if amended:
            msg = store.message(tx, message_id)  # changed by a waiting fact
        else:
            msg = Message(
                id=message_id, conversation_id=conv.id, customer_id=customer_id, channel=inbound.channel,
                direction="in", kind=inbound.kind, text=inbound.text, html=html, status="received",
                status_reason=None, external_id=inbound.external_id, identity=str(inbound.identity), agent_id=None,
                created_at=inbound.occurred_at or now, updated_at=now,
                meta=orjson.loads(meta_text),  # as a read gives it back (a copy, JSON types only)
                attachments=files,
            )
        return IngestResult(msg, conv, customer, False, how, journal_id, started)

    async def _finish(self, inbound: Inbound, outcome: IngestResult | IngestFailed) -> IngestResult:
        await self._after_commit(inbound, outcome)
        if isinstance(outcome, IngestFailed):
            raise outcome
        return outcome

    async def _after_commit(self, inbound: Inbound, outcome: IngestResult | IngestFailed) -> None:
        if isinstance(outcome, IngestFailed):
            self.metrics.inbound.labels(inbound.channel, "failed").inc()
            self.metrics.flagged.labels(inbound.channel, "failed").inc()
            return
        self.metrics.inbound.labels(inbound.channel, "duplicate" if outcome.duplicate else "stored").inc()
        if not outcome.duplicate:
            await self._publish(outcome)
            if self.on_stored is not None and not inbound.meta.get("automatic"):
                try:
                    await self.on_stored(outcome, inbound)
                except Exception:
                    log.exception("after storing message %d: routing failed; the routing reconciler will queue it",
                                  outcome.message.id)

    async def process_event(self, journal_id: int, inbound: Inbound, also: AlsoInTx | None = None) -> IngestResult:
        """Process one journaled inbound event again (an operator's replay); ALSO runs in its transaction."""
        return await self._process(journal_id, inbound, also)

    async def ingest_journaled(self, journal_id: int, inbound: Inbound, also: AlsoInTx | None = None) -> IngestResult:
        """Store INBOUND as the event journaled as JOURNAL_ID (one that was rejected, read again after a fix, or
        attached to a customer by an operator): its payload becomes INBOUND, so recovery and replay see it too.
        ALSO runs in the same transaction, after the processing."""
        inbound = self.normalized(inbound)
        payload_inbound = json.dumps(inbound.to_json(), default=str)
        place, queue_error = self._queue(inbound)

        def run(tx: Tx) -> IngestResult | IngestFailed:
            row = tx.one("SELECT payload FROM journal WHERE id = ?" + tx.for_update, (journal_id,))
            assert row is not None
            body = json.loads(row["payload"])
            body["inbound"] = json.loads(payload_inbound)
            tx.exec("UPDATE journal SET payload = ? WHERE id = ?", (json.dumps(body, default=str), journal_id))
            outcome = self._apply(tx, journal_id, inbound, place, queue_error, format_time(utcnow()))
            if also is not None:
                also(tx, outcome)
            return outcome

        return await self._finish(inbound, await self.db.write(run))

    async def _process(self, journal_id: int, inbound: Inbound, also: AlsoInTx | None = None) -> IngestResult:
        """Process an already journaled event (recovery and replay)."""
        place, queue_error = self._queue(inbound)

        def run(tx: Tx) -> IngestResult | IngestFailed:
            outcome = self._apply(tx, journal_id, inbound, place, queue_error, format_time(utcnow()))
            if also is not None:
                also(tx, outcome)
            return outcome

        return await self._finish(inbound, await self.db.write(run))

    async def _publish(self, r: IngestResult) -> None:
        data = r.to_json()
        answer = r.message.meta.get("csat")
        if isinstance(answer, dict) and not answer.get("ignored"):
            # For the live wall and consoles; rules and webhooks get csat.received from the event log.
            score = int(answer["score"])
            await self.bus.publish(Event("csat.received", {
                "conversation_id": r.conversation.id, "conversation": data["conversation"], "score": score,
                "low": score <= self.settings.csat.low_score, "message_id": r.message.id}))
        if r.conversation_how in ("opened", "reopened"):
            await self.bus.publish(Event(f"conversation.{r.conversation_how}", {"conversation": data["conversation"]}))
        await self.bus.publish(Event("message.created", dict(data)))

    # -- recovery and replay -----------------------------------------------------------------------------------

    async def process_journal(self, statuses: tuple[str, ...] = ("pending",), older_than_seconds: float = 0) -> int:
        """Process journaled events in STATUSES (oldest first): inbound events, and later facts (see hub.facts).
        Returns how many were stored or applied now."""
        cutoff = format_time(utcnow() - timedelta(seconds=max(0.0, older_than_seconds)))
        marks = ", ".join("?" for _ in statuses)
        done = 0
        last_id = 0
        while True:
            rows = await self.db.read(
                lambda tx, after=last_id: tx.all(  # type: ignore[misc]
                    f"SELECT id, payload, received_at FROM journal WHERE status IN ({marks}) AND id > ? "
                    "AND received_at <= ? "
                    "ORDER BY id LIMIT 200",
                    (*statuses, after, cutoff),
                )
            )
            if not rows:
                return done
            for row in rows:
                last_id = int(row["id"])
                body = json.loads(row["payload"])
                if body.get("fact") is not None:
                    fact = Fact.from_json(body["fact"])
                    applied = await self.facts.retry(last_id, fact, str(row["received_at"]))
                    done += applied.state in ("applied", "unchanged")
                    continue
                if body.get("inbound") is None:
                    continue  # rejected at parse time: nothing to replay until an adapter can read it
                try:
                    result = await self._process(last_id, Inbound.from_json(body["inbound"]))
                except IngestFailed:
                    continue
                if not result.duplicate:
                    done += 1

    async def count_pending(self) -> int:
        row = await self.db.read(lambda tx: tx.one("SELECT COUNT(*) AS n FROM journal WHERE status = 'pending'"))
        return int(row["n"]) if row else 0

    async def recover_forever(self) -> None:
        """On start, finish what a crash interrupted; then keep sweeping up events another process dropped."""
        interval = self.settings.ingest.recovery_interval_seconds
        try:
            n = await self.process_journal()
            if n:
                log.info("recovered %d journaled inbound events that were not processed before the last stop", n)
        except Exception:
            log.exception("journal recovery at start failed; the sweep retries in %.0fs", interval)
        while True:
            await asyncio.sleep(interval)
            try:
                self.metrics.journal_pending.set(await self.count_pending())
                n = await self.process_journal(older_than_seconds=max(30.0, interval))
                if n:
                    log.info("recovered %d stalled inbound events", n)
            except Exception:
                log.exception("journal recovery sweep failed; will retry in %.0fs", interval)

    # -- edits -----------------------------------------------------------------------------------------------------

    async def edit(
        self, channel: str, dedupe_key: str, external_id: str, text: str, edited_at: str, raw: Any = None
    ) -> Message | None:
        """Apply a customer's edit of a message they sent earlier, journaled like any event; the old text is kept.

        Returns the updated message, or None when the original is unknown (the event is kept, flagged)."""
        payload = json.dumps({"inbound": None, "raw": raw, "edit": {"external_id": external_id, "text": text}},
                             default=str)
        now = format_time(utcnow())

        def write(tx: Tx) -> tuple[int | None, bool]:
            j = _journal(tx, channel, dedupe_key, payload, now)
            if j.status != "pending":  # a retry of an edit already applied (or already flagged)
                return j.message_id, False
            message_id = store.inbound_by_external_id(tx, channel, external_id)
            if message_id is None:
                tx.exec(
                    "UPDATE journal SET status = 'rejected', error = ?, processed_at = ? WHERE id = ?",
                    (f"edit of message {external_id}, which the hub never received", now, j.id),
                )
                return None, False
            store.edit_message(tx, message_id, text, edited_at, now)
            tx.exec(
                "UPDATE journal SET status = 'done', message_id = ?, processed_at = ?, attempts = attempts + 1 "
                "WHERE id = ?",
                (message_id, now, j.id),
            )
            return message_id, True

        message_id, changed = await self.db.write(write)
        if message_id is None:
            self.metrics.inbound.labels(channel, "rejected").inc()
            return None
        msg = await self.db.read(lambda tx: store.message(tx, message_id))
        if changed:
            self.metrics.inbound.labels(channel, "edited").inc()
            await self.bus.publish(Event("message.updated", {"message": msg.to_json()}))
        return msg
