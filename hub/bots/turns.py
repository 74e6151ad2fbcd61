"""A bot's turns: each customer message in a bot's queue is a turn row, written in the transaction that runs the
automation for it, and sent by every hub process's turn sender (leased like the outbox, in order per conversation,
retried with backoff). The bot's answer is applied in one transaction: its texts become replies through the outbox
(`meta.bot`), and a hand-off moves the conversation to the bot's hand-off queue with the bot's note and labels.
A customer who asks for a person is handed off at once; a bot that never answers hands off with the reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from hub.bots import registry
from hub.config import WebhookSettings
from hub.history import store
from hub.history.db import Database, Tx
from hub.inbox import labels as inbox_labels
from hub.model import format_time
from hub.outbox import Outbox, ReplyError, backoff
from hub.webhooks import signing
from hub.webhooks.targets import PublicResolver, TargetError, check_url

log = logging.getLogger("hub.bots")

#: a customer asking for a person, in the words people use
ASKS_FOR_PERSON = re.compile(r"\b(agent|human|(real )?person|someone|representative|operator|talk to (a|an) \w+)\b",
                             re.IGNORECASE)
MAX_ANSWERS = 10


def start(tx: Tx, conversation_id: int, message_id: int, now: str) -> str | None:
    """Called for each customer message (not automatic): a turn for the conversation's bot, or a hand-off at once
    when the customer asks for a person. Returns the queue handed off to, if any."""
    conv = store.conversation(tx, conversation_id)
    bot = registry.active(tx, conv.queue)
    if bot is None or conv.agent_id is not None:
        return None
    msg = store.message(tx, message_id)
    if ASKS_FOR_PERSON.search(msg.text or ""):
        handoff(tx, conversation_id, str(bot["queue"]), str(bot["handoff_queue"]),
                "The customer asked for a person.", [], now)
        return str(bot["handoff_queue"])
    tx.exec("INSERT INTO bot_turns (queue, conversation_id, message_id, status, next_attempt_at, created_at, "
            "updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
            (bot["queue"], conversation_id, message_id, now, now, now))
    return None


def handoff(tx: Tx, conversation_id: int, bot_queue: str, to_queue: str, note: str, labels: list[str],
            now: str) -> None:
    """Move the conversation from the bot to people: queue, labels, the bot's note; later turns are dropped."""
    tx.exec("UPDATE conversations SET queue = ?, updated_at = ? WHERE id = ? AND queue = ?",
            (to_queue, now, conversation_id, bot_queue))
    for label in labels:
        inbox_labels.ensure(tx, label[:64], now)  # the bot names it; an admin gives it a title and color later
        inbox_labels.add(tx, "conversation", conversation_id, label[:64])
    conv = store.conversation(tx, conversation_id)
    store.insert_message(tx, conversation_id=conversation_id, customer_id=conv.customer_id, channel="hub",
                         direction="out", kind="note", text=f"Handed off by the bot: {note}".strip(),
                         status="internal", meta={"automatic": True, "bot": bot_queue, "handoff": True}, now=now)
    tx.exec("UPDATE bot_turns SET status = 'dropped', lease_until = NULL, updated_at = ? "
            "WHERE conversation_id = ? AND status = 'pending'", (now, conversation_id))


@dataclass(frozen=True)
class _Turn:
    id: int
    queue: str
    conversation_id: int
    url: str
    secret: str
    handoff_queue: str
    body: bytes
    attempt: int


@dataclass
class Applied:
    """What an answer did, for after commit."""

    conversation_id: int
    messages: list[int] = field(default_factory=list)
    handed_off_to: str | None = None


def _answers(raw: Any) -> tuple[list[str], dict[str, Any] | None]:
    """Texts and the hand-off (if any) in a Rasa REST channel answer: [{"text": ...}, {"custom": {"handoff": ...}}]."""
    if not isinstance(raw, list):
        raise ValueError("the bot's answer is not a JSON list of messages")
    texts: list[str] = []
    hand: dict[str, Any] | None = None
    for item in raw[:MAX_ANSWERS]:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("text"), str) and item["text"].strip():
            texts.append(item["text"])
        custom = item.get("custom")
        if isinstance(custom, dict) and custom.get("handoff"):
            labels = custom.get("labels")
            labels = labels if isinstance(labels, list) else []
            hand = {"note": str(custom.get("note") or ""), "labels": [str(x) for x in labels][:10]}
    return texts, hand


class BotTurns:
    """Sends pending turns to their bots and applies the answers; one per hub process."""

    def __init__(self, db: Database, settings: WebhookSettings, outbox: Outbox,
                 after: Callable[[Applied], Awaitable[None]], clock: Callable[[], float] | None = None) -> None:
        import time

        self.db = db
        self.settings = settings
        self.outbox = outbox
        self.after = after
        self.clock = clock or time.time
        self.rng = random.Random()
        self.wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    def _now(self, later: float = 0.0) -> str:
        return format_time(datetime.fromtimestamp(self.clock(), UTC) + timedelta(seconds=later))

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(resolver=PublicResolver(self.settings.allow_private_targets), limit=16)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
            headers={"User-Agent": "hub-bots/1"})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _claim(self, tx: Tx) -> list[_Turn]:
        now, lease = self._now(), self._now(self.settings.lease_seconds)
        rows = tx.all(
            "SELECT t.id, t.queue, t.conversation_id, t.message_id, t.attempts, b.url, b.secret, b.handoff_queue "
            "FROM bot_turns t JOIN bots b ON b.queue = t.queue "
            "WHERE t.status = 'pending' AND t.next_attempt_at <= ? AND (t.lease_until IS NULL OR t.lease_until < ?) "
            "AND NOT EXISTS (SELECT 1 FROM bot_turns p WHERE p.conversation_id = t.conversation_id "
            "AND p.status = 'pending' AND p.id < t.id) ORDER BY t.id LIMIT 16", (now, now))
        turns = []
        for r in rows:
            if not tx.exec("UPDATE bot_turns SET lease_until = ?, attempts = attempts + 1, updated_at = ? "
                           "WHERE id = ? AND status = 'pending' AND (lease_until IS NULL OR lease_until < ?)",
                           (lease, now, r["id"], now)):
                continue
            msg = store.message(tx, int(r["message_id"]))
            body = {"sender": f"conversation-{r['conversation_id']}", "message": msg.text,
                    "metadata": {"conversation_id": int(r["conversation_id"]), "customer_id": msg.customer_id,
                                 "message_id": msg.id, "channel": msg.channel, "queue": str(r["queue"])}}
            turns.append(_Turn(int(r["id"]), str(r["queue"]), int(r["conversation_id"]), str(r["url"]),
                               str(r["secret"]), str(r["handoff_queue"]), json.dumps(body).encode(),
                               int(r["attempts"]) + 1))
        return turns

    async def send_one(self, turn: _Turn) -> None:
        assert self._session is not None, "start() first"
        try:
            check_url(turn.url, self.settings.allow_private_targets)
            headers = signing.headers(turn.secret, turn.body, turn.id, "message.received", now=self.clock())
            async with self._session.post(turn.url, data=turn.body, headers=headers, allow_redirects=False) as resp:
                if not 200 <= resp.status < 300:
                    raise ValueError(f"HTTP {resp.status}: {(await resp.text(errors='replace'))[:200]}")
                texts, hand = _answers(await resp.json(content_type=None))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError, TargetError) as e:
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if turn.attempt < self.settings.max_attempts:
                retry = self._now(backoff(turn.attempt, self.settings, self.rng))
                await self.db.write(lambda tx: tx.exec(
                    "UPDATE bot_turns SET lease_until = NULL, next_attempt_at = ?, last_error = ?, updated_at = ? "
                    "WHERE id = ?", (retry, error, self._now(), turn.id)))
                return
            log.warning("bot of queue %s failed %d times on conversation %d; handing off: %s",
                        turn.queue, turn.attempt, turn.conversation_id, error)
            texts, hand = [], {"note": f"the bot did not answer ({error})", "labels": []}
        applied = await self.db.write(lambda tx: self._apply(tx, turn, texts, hand))
        if applied is not None:
            await self.after(applied)

    def _apply(self, tx: Tx, turn: _Turn, texts: list[str], hand: dict[str, Any] | None) -> Applied | None:
        now = self._now()
        row = tx.one("SELECT status FROM bot_turns WHERE id = ?" + tx.for_update, (turn.id,))
        if row is None or row["status"] != "pending":
            return None
        tx.exec("UPDATE bot_turns SET status = 'done', lease_until = NULL, updated_at = ? WHERE id = ?",
                (now, turn.id))
        conv = store.conversation(tx, turn.conversation_id)
        if conv.queue != turn.queue or conv.status == "resolved":
            return None  # a person has it now (or it is closed): the bot's answer is not sent
        out = Applied(turn.conversation_id)
        for text in texts:
            try:
                out.messages.append(self.outbox.queue_reply(tx, conv.id, text,
                                                            meta={"automatic": True, "bot": turn.queue}))
            except ReplyError as e:
                log.warning("bot answer for conversation %d not sent: %s", conv.id, e)
        if hand is not None:
            # Stamped after the answers, so the note follows them on the timeline.
            handoff(tx, conv.id, turn.queue, turn.handoff_queue, hand["note"], hand["labels"], self._now())
            out.handed_off_to = turn.handoff_queue
        return out

    def _any_due(self, tx: Tx) -> bool:
        return tx.one("SELECT id FROM bot_turns WHERE status = 'pending' AND next_attempt_at <= ? LIMIT 1",
                      (self._now(),)) is not None

    async def drain(self) -> int:
        total = 0
        while await self.db.read(self._any_due):  # a read first: most wake-ups find nothing to send
            turns = await self.db.write(self._claim)
            if not turns:
                return total
            total += len(turns)
            await asyncio.gather(*(self.send_one(t) for t in turns))
        return total

    async def run_forever(self) -> None:
        while True:
            try:
                await self.drain()
            except Exception:
                log.exception("bot pass failed; retrying in %.1fs", self.settings.poll_interval_seconds)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.poll_interval_seconds)
