"""The delivery log and its sender. A delivery row is written in the transaction that logs its event
(hub.event_log.record, through hub.webhooks.enqueue), so an event is never without its deliveries. Senders in
every hub process lease due rows like the outbox does, post them signed, and retry with the outbox's capped,
jittered backoff; a conversation's deliveries to one subscription go in order (the next waits while an earlier one
is pending). After max_attempts the delivery fails and its subscription is disabled with the reason; enabling it
again resumes what waited."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from hub import event_log, fail_points
from hub.config import WebhookSettings
from hub.history.db import Database, Row, Tx
from hub.history.store import NotFound
from hub.model import format_time
from hub.outbox import backoff
from hub.webhooks import signing, subscriptions
from hub.webhooks.targets import PublicResolver, TargetError, check_url

log = logging.getLogger("hub.webhooks")

COLUMNS = ("id, subscription_id, event_id, conversation_id, status, attempts, next_attempt_at, response_status, "
           "last_error, created_at, updated_at, delivered_at")


def to_json(row: Row) -> dict[str, Any]:
    return {k: row[k] for k in COLUMNS.split(", ")}


def listing(tx: Tx, subscription_id: int, status: str | None, limit: int) -> list[dict[str, Any]]:
    subscriptions.get(tx, subscription_id)
    where, params = "subscription_id = ?", list[Any]([subscription_id])
    if status:
        where += " AND status = ?"
        params.append(status)
    rows = tx.all(f"SELECT {COLUMNS}, (SELECT type FROM hub_events e WHERE e.id = event_id) AS event_type "
                  f"FROM webhook_deliveries WHERE {where} ORDER BY id DESC LIMIT ?", (*params, limit))
    return [to_json(r) | {"event_type": r["event_type"]} for r in rows]


def resend(tx: Tx, subscription_id: int, delivery_id: int, now: str) -> dict[str, Any]:
    """Send a delivery again (whatever became of it), as a new attempt series."""
    row = tx.one(f"SELECT {COLUMNS} FROM webhook_deliveries WHERE id = ? AND subscription_id = ?",
                 (delivery_id, subscription_id))
    if row is None:
        raise NotFound(f"delivery {delivery_id} of webhook subscription {subscription_id} does not exist")
    tx.exec("UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, lease_until = NULL, "
            "updated_at = ? WHERE id = ?", (now, now, delivery_id))
    again = tx.one(f"SELECT {COLUMNS} FROM webhook_deliveries WHERE id = ?", (delivery_id,))
    assert again is not None
    return to_json(again)


@dataclass(frozen=True)
class _Due:
    id: int
    subscription_id: int
    url: str
    secret: str
    event_type: str
    body: bytes
    attempt: int


class Deliverer:
    """Posts due deliveries; one per hub process, run by the app's cleanup context."""

    def __init__(self, db: Database, settings: WebhookSettings, clock: Callable[[], float] | None = None,
                 rng: random.Random | None = None) -> None:
        import time

        self.db = db
        self.settings = settings
        self.clock = clock or time.time
        self.rng = rng or random.Random()
        self.wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._owner = f"{os.uname().nodename}:{os.getpid()}"

    def _now(self, later: float = 0.0) -> str:
        return format_time(datetime.fromtimestamp(self.clock(), UTC) + timedelta(seconds=later))

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(resolver=PublicResolver(self.settings.allow_private_targets), limit=32)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
            headers={"User-Agent": "hub-webhooks/1"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _claim(self, limit: int) -> list[_Due]:
        now, lease = self._now(), self._now(self.settings.lease_seconds)

        def claim(tx: Tx) -> list[_Due]:
            rows = tx.all(
                "SELECT d.id, d.subscription_id, d.attempts, s.url, s.secret, e.id AS event_id, e.type, "
                "e.depth, e.payload, e.created_at "
                "FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id "
                "JOIN hub_events e ON e.id = d.event_id "
                "WHERE d.status = 'pending' AND s.enabled = 1 AND d.next_attempt_at <= ? "
                "AND (d.lease_until IS NULL OR d.lease_until < ?) "
                # In order per conversation: an earlier pending delivery of the same pair goes first.
                "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.subscription_id = d.subscription_id "
                "AND p.conversation_id = d.conversation_id AND p.status = 'pending' AND p.id < d.id) "
                "ORDER BY d.id LIMIT ?",
                (now, now, limit),
            )
            due = []
            for r in rows:
                taken = tx.exec(
                    "UPDATE webhook_deliveries SET lease_until = ?, attempts = attempts + 1, updated_at = ? "
                    "WHERE id = ? AND status = 'pending' AND (lease_until IS NULL OR lease_until < ?)",
                    (lease, now, r["id"], now),
                )
                if taken:
                    event = event_log.wire({"id": r["event_id"], "type": r["type"], "depth": r["depth"],
                                            "payload": r["payload"], "created_at": r["created_at"]})
                    due.append(_Due(int(r["id"]), int(r["subscription_id"]), str(r["url"]), str(r["secret"]),
                                    str(r["type"]), json.dumps(event).encode(), int(r["attempts"]) + 1))
            return due

        return await self.db.write(claim)

    async def send_one(self, due: _Due) -> None:
        assert self._session is not None, "start() first"
        status: int | None = None
        retry_after: float | None = None
        try:
            check_url(due.url, self.settings.allow_private_targets)
            headers = signing.headers(due.secret, due.body, due.id, due.event_type, now=self.clock())
            async with self._session.post(due.url, data=due.body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                text = (await resp.text(errors="replace"))[:200]
                if resp.status == 429 and resp.headers.get("Retry-After", "").isdigit():
                    retry_after = float(resp.headers["Retry-After"])
            error = None if 200 <= status < 300 else f"HTTP {status}: {text}".strip()
        except TargetError as e:
            error = f"refused target: {e}"
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if error is None:
            fail_points.hit("webhook.after_post")
            await self._finish(due, "delivered", status, None, None)
            return
        if due.attempt >= self.settings.max_attempts:
            log.warning("webhook delivery %d to subscription %d failed %d times; disabling the subscription: %s",
                        due.id, due.subscription_id, due.attempt, error)
            await self._finish(due, "failed", status, error, None)
            return
        delay = max(retry_after or 0.0, backoff(due.attempt, self.settings, self.rng))
        log.info("webhook delivery %d: %s; attempt %d in %.1fs", due.id, error, due.attempt + 1, delay)
        await self._finish(due, "pending", status, error, delay)

    async def _finish(self, due: _Due, status: str, response: int | None, error: str | None,
                      retry_in: float | None) -> None:
        now = self._now()

        def write(tx: Tx) -> None:
            if retry_in is not None:
                tx.exec("UPDATE webhook_deliveries SET lease_until = NULL, next_attempt_at = ?, response_status = ?, "
                        "last_error = ?, updated_at = ? WHERE id = ?",
                        (self._now(retry_in), response, error, now, due.id))
                return
            tx.exec("UPDATE webhook_deliveries SET status = ?, lease_until = NULL, response_status = ?, "
                    "last_error = ?, updated_at = ?, delivered_at = ? WHERE id = ?",
                    (status, response, error, now, now if status == "delivered" else None, due.id))
            if status == "failed":
                subscriptions.disable(
                    tx, due.subscription_id,
                    f"delivery {due.id} failed {due.attempt} times; last: {error}", now)

        await self.db.write(write)

    def _any_due(self, tx: Tx) -> bool:
        return tx.one("SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? LIMIT 1",
                      (self._now(),)) is not None

    async def drain(self) -> int:
        total = 0
        sem = asyncio.Semaphore(self.settings.concurrency)

        async def guarded(d: _Due) -> None:
            async with sem:
                try:
                    await self.send_one(d)
                except Exception:  # a bug must not stop the sender; the lease expires and it is retried
                    log.exception("webhook delivery %d raised", d.id)

        while True:
            if not await self.db.read(self._any_due):  # a read first: most wake-ups find nothing to send
                return total
            batch = await self._claim(self.settings.concurrency * 4)
            if not batch:
                return total
            total += len(batch)
            await asyncio.gather(*(guarded(d) for d in batch))

    async def run_forever(self) -> None:
        while True:
            try:
                await self.drain()
            except Exception:
                log.exception("webhook pass failed; retrying in %.1fs", self.settings.poll_interval_seconds)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.poll_interval_seconds)
