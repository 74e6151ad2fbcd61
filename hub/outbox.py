"""The outbound path, the only one: a reply is written to the outbox with its message in one transaction, then a
worker sends it through its channel with capped exponential backoff and jitter. Retries survive a restart."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from hub import event_log
from hub.channels.base import Channel, SendError
from hub.config import OutboxSettings
from hub.events import Event, EventBus
from hub.facts import apply_waiting, moves_forward
from hub.history import store
from hub.history.db import Database, Tx
from hub.metrics import Metrics
from hub.model import CHANNEL_IDENTITY_KIND, AttachmentIn, Identity, Message, Outbound, format_time, parse_time
from hub.reports import events as conversation_events

log = logging.getLogger("hub.outbox")


class ReplyError(ValueError):
    """A reply that cannot be sent as asked; the message says why and what to do instead."""


@dataclass
class _Due:
    outbox_id: int
    outbound: Outbound


class RetrySettings(Protocol):
    base_delay_seconds: float
    max_delay_seconds: float


def backoff(attempt: int, settings: RetrySettings, rng: random.Random) -> float:
    """Exponential backoff with jitter, capped: spreads retries so a receiver's outage does not end in a stampede.
    The one schedule of every durable retry: the outbox, webhook deliveries, bot turns."""
    ceiling = min(settings.max_delay_seconds, settings.base_delay_seconds * (2 ** min(max(0, attempt - 1), 30)))
    return rng.uniform(ceiling / 2, ceiling)


def recipient(tx: Tx, conversation_id: int, customer_id: int, channel: str) -> Identity:
    """Whom a reply on CHANNEL goes to: the identity the customer last wrote from on it, else their newest that fits."""
    used = store.last_inbound_identity(tx, conversation_id, channel)
    if used:
        kind, _, value = used.partition(":")
        return Identity(kind, value)
    wanted = CHANNEL_IDENTITY_KIND.get(channel)
    for ident in reversed(store.identities_of(tx, customer_id)):
        if wanted is None or ident.kind == wanted:
            return ident
    raise ReplyError(
        f"customer {customer_id} has no {wanted or 'known'} identity to reach on channel {channel}; "
        "pick a channel they have an identity for"
    )


def _check_channel_files(name: str, adapter: Channel, attachments: Sequence[AttachmentIn]) -> None:
    caps = adapter.capabilities
    if caps.max_files is not None and len(attachments) > caps.max_files:
        raise ReplyError(f"{len(attachments)} files; channel {name} carries at most {caps.max_files} per message")
    total = sum(len(a.data or b"") for a in attachments)
    if caps.max_media_bytes is not None and total > caps.max_media_bytes:
        raise ReplyError(f"the files add up to {total} bytes; channel {name} carries at most "
                         f"{caps.max_media_bytes} bytes per message")


def _store_files(tx: Tx, message_id: int, attachments: Sequence[AttachmentIn]) -> None:
    for a in attachments:
        # Only the last path component: a name is shown and sent, never used as a path.
        name = a.filename.replace("\\", "/").rsplit("/", 1)[-1].strip() or "attachment"
        store.insert_attachment(tx, message_id, name, a.content_type or "application/octet-stream", a.data,
                                None, "stored")


def _outbound_meta(stored: str | None) -> dict[str, Any]:
    """What an adapter needs from a message's meta: a survey (hub.csat) it may render as buttons or a form, an
    approved template (a WhatsApp campaign) it sends instead of the text."""
    if not stored or ('"csat"' not in stored and '"template"' not in stored):
        return {}
    meta = json.loads(stored)
    return {k: meta[k] for k in ("csat", "template") if isinstance(meta.get(k), dict)}


def session_window(tx: Tx, customer_id: int | None, channel: str, hours: float) -> tuple[str | None, str | None]:
    """(the customer's last message on CHANNEL, when their window on it closes), None for either when they never
    wrote there. Only their messages open it: nothing the business sends (a template included) does."""
    if customer_id is None:
        return None, None
    row = tx.one("SELECT MAX(created_at) AS last FROM messages WHERE customer_id = ? AND channel = ? "
                 "AND direction = 'in'", (customer_id, channel))
    last = str(row["last"]) if row and row["last"] else None
    return last, format_time(parse_time(last) + timedelta(hours=hours)) if last else None


def outside_window(tx: Tx, customer_id: int | None, channel: str, hours: float, now: str) -> str | None:
    """Why a free-form message on a channel whose provider takes one only within HOURS of the customer's last message
    on it (WhatsApp's session window) cannot go now, or None. The one check: replies, campaigns and their preview."""
    last, closes = session_window(tx, customer_id, channel, hours)
    if closes is not None and parse_time(closes) >= parse_time(now):
        return None
    when = f"last wrote on {channel} at {last[:16].replace('T', ' ')} UTC" if last else f"never wrote on {channel}"
    return (f"outside {channel}'s {hours:g}-hour window: the customer {when}; only an approved template can be sent "
            "now (Send a template in the console, or a campaign with a template, docs/automation.md)")


class Outbox:
    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        settings: OutboxSettings,
        bus: EventBus,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.channels = channels
        self.settings = settings
        self.bus = bus
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._owner = f"{os.uname().nodename}:{os.getpid()}"

    def _now(self, later: float = 0.0) -> str:
        return format_time(datetime.fromtimestamp(self.clock(), UTC) + timedelta(seconds=later))

    # -- writing replies -----------------------------------------------------------------------------------------

    async def reply(
        self,
        conversation_id: int,
        text: str,
        channel: str | None = None,
        agent_id: int | None = None,
        note: bool = False,
        attachments: Sequence[AttachmentIn] = (),
        reply_all: bool = False,
        also: Callable[[Tx, int], None] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Message:
        """Write an agent's reply (or internal note) durably, with its files; sending happens in the background.
        REPLY_ALL (email) also addresses everyone else the customer's email went to. ALSO writes what belongs with
        the message (a note's @mentions) in the same transaction, given its id. META marks it (an approved
        template's `{"template": {...}}`: the channel sends the template, the text is what it reads)."""
        if not text.strip() and not attachments:
            raise ReplyError("text is empty")
        self._check_files(attachments)

        def write(tx: Tx) -> int:
            marks = {**(meta or {}), **({"reply_all": True} if reply_all and not note else {})}
            written = self.queue_reply(tx, conversation_id, text, channel, agent_id, note, attachments,
                                       meta=marks or None)
            if also is not None:
                also(tx, written)
            return written

        message_id = await self.db.write(write)
        msg = await self.db.read(lambda tx: store.message(tx, message_id))
        self._wake.set()
        await self.bus.publish(Event("message.created", {"message": msg.to_json()}))
        return msg

    def queue_reply(
        self,
        tx: Tx,
        conversation_id: int,
        text: str,
        channel: str | None = None,
        agent_id: int | None = None,
        note: bool = False,
        attachments: Sequence[AttachmentIn] = (),
        meta: dict[str, Any] | None = None,
        depth: int = 0,
        to: Identity | None = None,
    ) -> int:
        """Write a reply (or note) and its outbox row inside TX (raises ReplyError with the reason); the caller
        wakes the sender after commit. META marks it (an automation's reply is `{"automatic": true}`); DEPTH is
        how many rule actions led to it (hub.event_log). TO, one of the customer's identities, is whom to send it
        to (a campaign's recipient); by default the one they last wrote from on that channel."""
        conv = store.conversation(tx, conversation_id)
        now = self._now()
        if note:
            note_id = store.insert_message(
                tx, conversation_id=conv.id, customer_id=conv.customer_id, channel="hub", direction="out",
                kind="note", text=text, status="internal", agent_id=agent_id, now=now, meta=meta,
            )
            _store_files(tx, note_id, attachments)
            return note_id
        chosen = channel or conv.last_inbound_channel or conv.channel
        adapter = self.channels.get(chosen)
        if adapter is None:
            configured = ", ".join(sorted(self.channels)) or "none"
            raise ReplyError(f"channel {chosen!r} is not configured on this hub (configured: {configured})")
        limit = adapter.capabilities.max_text_length
        if len(text) > limit:
            raise ReplyError(f"text is {len(text)} characters; channel {chosen} allows at most {limit}")
        if to is None:
            to = recipient(tx, conv.id, conv.customer_id, chosen)
        elif to not in store.identities_of(tx, conv.customer_id):
            raise ReplyError(f"{to} is not an identity of customer {conv.customer_id}")
        if to.kind not in adapter.identity_kinds:
            raise ReplyError(f"channel {chosen} cannot reach a {to.kind} identity")
        stopped = store.opt_out(tx, str(to), chosen)
        if stopped is not None:  # told now, not after a failed send: the agent can pick another channel
            raise ReplyError(f"not sent: the customer opted out by texting {stopped[0]} on {stopped[1][:10]}; "
                             f"{chosen} messages are refused until they text START")
        window = adapter.capabilities.session_window_hours
        if window is not None and not (meta or {}).get("template"):
            # Refused now, with the reason, rather than by the provider later (Twilio's 63016).
            outside = outside_window(tx, conv.customer_id, chosen, window, now)
            if outside is not None:
                raise ReplyError(outside)
        if attachments and not adapter.capabilities.media:
            media = ", ".join(sorted(n for n, c in self.channels.items() if c.capabilities.media)) or "none"
            raise ReplyError(f"channel {chosen} cannot carry files; channels that can: {media}")
        _check_channel_files(chosen, adapter, attachments)
        message_id = store.insert_message(
            tx, conversation_id=conv.id, customer_id=conv.customer_id, channel=chosen, direction="out",
            kind="text", text=text, status="queued", identity=str(to), agent_id=agent_id, now=now, meta=meta,
        )
        _store_files(tx, message_id, attachments)
        conversation_events.record_reply(tx, conv.id, now, customer_id=conv.customer_id, channel=chosen,
                                         queue=conv.queue, agent_id=agent_id)
        tx.exec(
            "INSERT INTO outbox (message_id, channel, recipient, status, next_attempt_at, created_at, updated_at) "
            "VALUES (?, ?, ?, 'pending', ?, ?, ?)",
            (message_id, chosen, str(to), now, now, now),
        )
        event_log.record(tx, "message.sent", conv.id, now, message_id=message_id, depth=depth,
                         automatic=bool((meta or {}).get("automatic")))
        return message_id

    def wake(self) -> None:
        """Look for due rows now (after a transaction that queued replies committed)."""
        self._wake.set()

    def _check_files(self, attachments: Sequence[AttachmentIn]) -> None:
        if len(attachments) > self.settings.max_attachments:
            raise ReplyError(f"{len(attachments)} files; a reply carries at most {self.settings.max_attachments}")
        total = sum(len(a.data or b"") for a in attachments)
        if total > self.settings.max_attachment_bytes:
            raise ReplyError(f"the files add up to {total} bytes, over outbox.max_attachment_bytes "
                             f"({self.settings.max_attachment_bytes})")
        for a in attachments:
            if not a.data:
                raise ReplyError(f"file {a.filename!r} is empty")

    # -- sending ---------------------------------------------------------------------------------------------------

    async def _claim(self, limit: int) -> list[_Due]:
        """Lease due rows so that, with several hub processes, each message is sent by one of them at a time."""
        now, lease = self._now(), self._now(self.settings.lease_seconds)

        def claim(tx: Tx) -> list[_Due]:
            # A conversation's messages go out in the order they were written: one is due only when none written
            # before it in that conversation is still pending (being sent, or waiting to be retried). Sends of
            # different conversations still run side by side.
            rows = tx.all(
                "SELECT o.id, o.message_id, o.channel, o.recipient, o.attempts, m.conversation_id, m.text, m.html, "
                "m.meta "
                "FROM outbox o JOIN messages m ON m.id = o.message_id "
                "WHERE o.status = 'pending' AND o.next_attempt_at <= ? "
                "AND (o.lease_until IS NULL OR o.lease_until < ?) "
                "AND NOT EXISTS (SELECT 1 FROM messages e JOIN outbox p ON p.message_id = e.id "
                "WHERE e.conversation_id = m.conversation_id AND e.id < m.id AND p.status = 'pending') "
                "ORDER BY o.next_attempt_at, o.id LIMIT ?",
                (now, now, limit),
            )
            due = []
            for r in rows:
                taken = tx.exec(
                    "UPDATE outbox SET lease_until = ?, attempts = attempts + 1, updated_at = ? "
                    "WHERE id = ? AND status = 'pending' AND (lease_until IS NULL OR lease_until < ?)",
                    (lease, now, r["id"], now),
                )
                if not taken:
                    continue
                kind, _, value = str(r["recipient"]).partition(":")
                due.append(
                    _Due(
                        int(r["id"]),
                        Outbound(
                            message_id=int(r["message_id"]), conversation_id=int(r["conversation_id"]),
                            channel=str(r["channel"]), to=Identity(kind, value), text=str(r["text"]),
                            html=r["html"], attempt=int(r["attempts"]) + 1, meta=_outbound_meta(r["meta"]),
                        ),
                    )
                )
            return due

        return await self.db.write(claim)

    async def _finish(
        self, due: _Due, status: str, reason: str | None, external_id: str | None, retry_in: float | None
    ) -> None:
        now = self._now()

        def write(tx: Tx) -> None:
            if retry_in is not None:
                tx.exec(
                    "UPDATE outbox SET lease_until = NULL, next_attempt_at = ?, last_error = ?, updated_at = ? "
                    "WHERE id = ?",
                    (self._now(retry_in), reason, now, due.outbox_id),
                )
                tx.exec(
                    "UPDATE messages SET status_reason = ?, updated_at = ? WHERE id = ?",
                    (reason, now, due.outbound.message_id),
                )
                return
            tx.exec(
                "UPDATE outbox SET status = ?, lease_until = NULL, last_error = ?, updated_at = ? WHERE id = ?",
                ("failed" if status == "failed" else "done", reason, now, due.outbox_id),
            )
            tx.exec(
                "UPDATE messages SET status = ?, status_reason = ?, external_id = COALESCE(?, external_id), "
                "updated_at = ? WHERE id = ?",
                (status, reason, external_id, now, due.outbound.message_id),
            )
            if external_id:  # the provider's status callback may have come before its answer to the send
                apply_waiting(tx, due.outbound.channel, external_id, now)

        await self.db.write(write)
        if retry_in is None:
            await self._announce(due.outbound.message_id)

    async def _announce(self, message_id: int) -> None:
        msg = await self.db.read(lambda tx: store.message(tx, message_id))
        await self.bus.publish(
            Event("message.status", {"message_id": msg.id, "conversation_id": msg.conversation_id,
                                     "status": msg.status, "reason": msg.status_reason,
                                     "external_id": msg.external_id})
        )

    async def send_one(self, due: _Due) -> None:
        out = due.outbound
        adapter = self.channels.get(out.channel)
        if adapter is None:
            await self._finish(due, "failed", f"channel {out.channel} is no longer configured", None, None)
            return
        try:
            result = await adapter.send(out)
        except SendError as e:
            if e.permanent or out.attempt >= self.settings.max_attempts:
                why = e.reason if e.permanent else f"{e.reason} (gave up after {out.attempt} attempts)"
                self.metrics.outbound.labels(out.channel, "failed").inc()
                log.warning("message %d on %s failed: %s", out.message_id, out.channel, why)
                await self._finish(due, "failed", why, None, None)
            else:
                delay = max(e.retry_after or 0.0, backoff(out.attempt, self.settings, self.rng))
                self.metrics.outbound.labels(out.channel, "retry").inc()
                log.info("message %d on %s: %s; retry %d in %.1fs", out.message_id, out.channel, e.reason,
                         out.attempt + 1, delay)
                await self._finish(due, "queued", f"retrying: {e.reason}", None, delay)
            return
        except Exception as e:  # an adapter bug must not kill the worker or lose the message
            log.exception("channel %s raised while sending message %d", out.channel, out.message_id)
            delay = backoff(out.attempt, self.settings, self.rng)
            if out.attempt >= self.settings.max_attempts:
                await self._finish(due, "failed", f"{type(e).__name__}: {e}", None, None)
            else:
                await self._finish(due, "queued", f"retrying: {type(e).__name__}: {e}", None, delay)
            return
        self.metrics.outbound.labels(out.channel, "sent").inc()
        await self._finish(due, result.status, None, result.external_id, None)

    async def drain(self) -> int:
        """Send everything due now; returns how many were attempted."""
        total = 0
        sem = asyncio.Semaphore(self.settings.concurrency)

        async def guarded(d: _Due) -> None:
            async with sem:
                await self.send_one(d)

        while True:
            batch = await self._claim(self.settings.concurrency * 4)
            if not batch:
                return total
            total += len(batch)
            await asyncio.gather(*(guarded(d) for d in batch))

    async def run_forever(self) -> None:
        while True:
            try:
                await self.drain()
                self.metrics.outbox_pending.set(await self.pending())
            except Exception:
                log.exception("outbox pass failed; retrying in %.1fs", self.settings.poll_interval_seconds)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_seconds)
            except TimeoutError:
                pass

    async def pending(self) -> int:
        row = await self.db.read(lambda tx: tx.one("SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'"))
        return int(row["n"]) if row else 0

    # -- provider status callbacks ---------------------------------------------------------------------------------

    async def update_status(self, channel: str, external_id: str, status: str, reason: str | None = None) -> bool:
        """Move a sent message forward (delivered, read, failed...). Returns False if no such message is known.
        Not journaled: for the hub's own marks (web chat); a provider's callback goes through hub.facts."""
        now = self._now()

        def write(tx: Tx) -> int | None:
            row = tx.one(
                "SELECT id, status FROM messages WHERE channel = ? AND external_id = ? AND direction = 'out'"
                + tx.for_update,
                (channel, external_id),
            )
            if row is None:
                return None
            if not moves_forward(str(row["status"]), status):
                return None
            store.set_message_status(tx, int(row["id"]), status, reason, now)
            return int(row["id"])

        message_id = await self.db.write(write)
        if message_id is None:
            return False
        await self._announce(message_id)
        return True
