"""Later facts (delivery statuses...) on the real inbound journal and outbox: journaled once, applied in order, kept
waiting for a message the hub has not recorded yet, flagged with the reason after the deadline, replayed."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from hub.channel_host import ChannelHost
from hub.channels.api import ApiChannel
from hub.channels.base import Channel, Fact
from hub.config import ApiChannelSettings, Settings
from hub.events import MemoryBus
from hub.facts import apply_waiting
from hub.history import store
from hub.history.db import Database, Tx
from hub.ingest import Ingest
from hub.journal import FLAGGED, listing
from hub.journal import write as journal_write
from hub.metrics import Metrics
from hub.model import Identity, Inbound, Message, format_time, utcnow
from hub.outbox import Outbox
from tests.counting import CountingTx

SECRET = "webhook-secret"
SENT_ID = "partner-1"  # the id the partner's webhook gives the first message it receives


def delivered(key: str = "delivered", status: str = "delivered") -> Fact:
    return Fact("status", "api", SENT_ID, key=key, status=status)


@pytest.fixture
async def partner(aiohttp_server: Any) -> str:
    """The API channel's partner system: it accepts every message and names it partner-N."""
    received: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"id": f"partner-{len(received)}"})

    app = web.Application()
    app.router.add_post("/hook", handle)
    return str((await aiohttp_server(app)).make_url("/hook"))


@pytest.fixture
async def world(
    db: Database, partner: str, make_settings: Callable[..., Settings], db_url: str
) -> AsyncIterator[dict[str, Any]]:
    settings = make_settings(db_url, HUB_INGEST__PENDING_FACT_SECONDS="0.3")
    bus = MemoryBus()
    ingest = Ingest(db, settings, bus, Metrics())
    channels: dict[str, Channel] = {}
    outbox = Outbox(db, channels, settings.outbox, bus, Metrics())
    channel = ApiChannel(ChannelHost(ingest, outbox), ApiChannelSettings(webhook_url=partner, webhook_secret=SECRET))
    channels["api"] = channel
    await channel.start()
    first = await ingest.ingest(
        Inbound(channel="api", identity=Identity("phone", "+14155550100"), text="hi", external_id="in-1")
    )
    yield {"ingest": ingest, "outbox": outbox, "bus": bus, "conversation": first.conversation.id}
    await channel.stop()


async def message(db: Database, mid: int) -> Message:
    return await db.read(lambda tx: store.message(tx, mid))


async def fact_rows(db: Database) -> list[dict[str, Any]]:
    rows = await db.read(lambda tx: tx.all(
        "SELECT id, dedupe_key, status, error, attempts, message_id, payload FROM journal "
        "WHERE dedupe_key LIKE 'fact:%' ORDER BY id"
    ))
    return [dict(r) for r in rows]


async def test_a_status_that_beats_the_send_result_is_applied_when_the_send_records_the_id(
    db: Database, world: dict[str, Any]
) -> None:
    ingest, outbox = world["ingest"], world["outbox"]
    msg = await outbox.reply(world["conversation"], "Your order ships today")
    early = await ingest.facts.record(delivered(), raw={"MessageSid": SENT_ID, "MessageStatus": "delivered"})
    assert early.state == "pending"
    assert early.reason == ("status 'delivered' for api message partner-1: no such outgoing message yet; "
                            "applied as soon as it is recorded")
    [row] = await fact_rows(db)
    assert row["status"] == "pending" and row["error"] == early.reason
    assert json.loads(row["payload"])["raw"] == {"MessageSid": SENT_ID, "MessageStatus": "delivered"}
    assert await outbox.drain() == 1
    sent = await message(db, msg.id)
    assert sent.external_id == SENT_ID and sent.status == "delivered", "the waiting status is applied at once"
    [row] = await fact_rows(db)
    assert row["status"] == "done" and row["message_id"] == msg.id and row["error"] is None


async def test_a_retried_fact_is_journaled_and_applied_once(db: Database, world: dict[str, Any]) -> None:
    ingest, outbox = world["ingest"], world["outbox"]
    msg = await outbox.reply(world["conversation"], "track me")
    await outbox.drain()
    sub = world["bus"].subscribe()
    first = await ingest.facts.record(delivered())
    again = await ingest.facts.record(delivered())
    assert (first.state, again.state) == ("applied", "duplicate")
    assert first.journal_id == again.journal_id and again.message_id == msg.id
    [row] = await fact_rows(db)
    assert row["attempts"] == 1
    events = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert [(e.type, e.data["status"]) for e in events] == [("message.status", "delivered")], "announced once"


async def test_statuses_only_move_forward(db: Database, world: dict[str, Any]) -> None:
    ingest, outbox = world["ingest"], world["outbox"]
    msg = await outbox.reply(world["conversation"], "track me")
    await outbox.drain()
    assert (await ingest.facts.record(delivered())).state == "applied"
    late = await ingest.facts.record(delivered("sent", "sent"))
    assert late.state == "unchanged", "a late 'sent' never undoes 'delivered'"
    assert (await message(db, msg.id)).status == "delivered"
    assert [r["status"] for r in await fact_rows(db)] == ["done", "done"]


async def test_a_fact_for_an_unknown_message_is_flagged_after_the_deadline_and_replay_applies_it(
    db: Database, world: dict[str, Any]
) -> None:
    ingest, outbox = world["ingest"], world["outbox"]
    assert (await ingest.facts.record(delivered())).state == "pending"
    assert await ingest.process_journal() == 0, "still waiting: nothing is flagged before the deadline"
    assert [r["status"] for r in await fact_rows(db)] == ["pending"]
    await asyncio.sleep(0.4)  # past ingest.pending_fact_seconds
    assert await ingest.process_journal() == 0
    [flagged] = await db.read(lambda tx: listing(tx, FLAGGED, "api", 10))
    assert flagged["status"] == "failed" and flagged["dedupe_key"] == "fact:partner-1:status:delivered"
    assert re.fullmatch(r"status 'delivered' for api message partner-1: no such outgoing message \(waited \d+\.\ds; "
                        r"ingest.pending_fact_seconds is 0.3\); `hub events replay` applies it if the message appears",
                        flagged["error"]), flagged["error"]
    # The message turns up (here: sent now); a flagged fact waits for an operator, replay applies it.
    msg = await outbox.reply(world["conversation"], "late")
    await outbox.drain()
    assert (await message(db, msg.id)).status == "sent"
    assert await ingest.process_journal(("failed", "pending")) == 1
    assert (await message(db, msg.id)).status == "delivered"
    assert [r["status"] for r in await fact_rows(db)] == ["done"]
    assert await ingest.process_journal(("failed", "pending")) == 0, "replay is idempotent"


async def test_a_fact_about_an_inbound_message_waits_for_it(db: Database, world: dict[str, Any]) -> None:
    ingest = world["ingest"]
    note = Fact("amend", "api", "in-2", key="transcription", text="transcribed", meta={"transcript": "completed"})
    assert (await ingest.facts.record(note)).state == "pending"
    stored = await ingest.ingest(
        Inbound(channel="api", identity=Identity("phone", "+14155550100"), text="pending", external_id="in-2")
    )
    assert stored.message.text == "transcribed" and stored.message.meta["transcript"] == "completed", (
        "applied in the transaction that stored the message"
    )
    assert [r["status"] for r in await fact_rows(db)] == ["done"]


class _PlannedTx(CountingTx):
    """Keeps each SELECT's query plan (SQLite's EXPLAIN QUERY PLAN) and how many rows it gave."""

    def __init__(self, tx: Tx) -> None:
        super().__init__(tx)
        self.plans: list[tuple[str, int]] = []

    def all(self, sql: str, params: Any = ()) -> Any:
        plan = ""
        if self.dialect == "sqlite":
            plan = " / ".join(str(r["detail"]) for r in self.tx.all("EXPLAIN QUERY PLAN " + sql, params))
        rows = super().all(sql, params)
        self.plans.append((plan, len(rows)))
        return rows


async def test_waiting_facts_are_found_by_their_key_not_among_every_pending_event(
    db: Database, world: dict[str, Any]
) -> None:
    """Every event of a SQLite group commit is pending until it is done, and each stored message looks for facts
    waiting for it: by status, that read every pending event of the batch once per message (a third of the
    writer's statement time in a batch of 32). The look-up seeks the journal's (channel, key) index instead, and
    still finds exactly the message's own facts: not those of an id it is a prefix of, nor (SQLite's LIKE ignores
    case) of the same id in other case."""
    ingest = world["ingest"]
    for ext in ("in-2", "in-2:x", "IN-2"):
        assert (await ingest.facts.record(Fact("amend", "api", ext, key="t", text=f"for {ext}"))).state == "pending"
    now = format_time(utcnow())

    def batch_then_look(tx: Tx) -> _PlannedTx:
        for n in range(40):  # the rest of a group commit, journaled and not yet done
            journal_write(tx, "api", f"batch-{n}", "{}", now)
        planned = _PlannedTx(tx)
        assert apply_waiting(planned, "api", "in-0", now) == 0
        return planned

    planned = await db.write(batch_then_look)
    [(plan, rows)] = planned.plans
    assert rows == 0
    if db.dialect == "sqlite":
        assert "journal_status" not in plan and "dedupe_key>? AND dedupe_key<?" in plan, plan
    stored = await ingest.ingest(
        Inbound(channel="api", identity=Identity("phone", "+14155550100"), text="as sent", external_id="in-2")
    )
    assert stored.message.text == "for in-2"
    waiting = {r["dedupe_key"]: r["status"] for r in await fact_rows(db)}
    assert waiting == {"fact:in-2:amend:t": "done", "fact:in-2:x:amend:t": "pending", "fact:IN-2:amend:t": "pending"}


async def test_the_look_up_of_waiting_facts_reads_their_own_index_on_postgresql(db: Database) -> None:
    """Every inbound message asks for the facts waiting for it. On PostgreSQL that look-up read every journal key of
    the channel (a LIKE prefix cannot use the default collation's index), more with each message; migration 117
    indexes the pending facts apart."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite seeks its (channel, dedupe_key) index by a range: the test above")
    plans: list[str] = []

    class Explaining(CountingTx):
        def all(self, sql: str, params: Any = ()) -> Any:
            plans.extend(str(r["QUERY PLAN"]) for r in self.tx.all("EXPLAIN " + sql, params))
            return super().all(sql, params)

    def backlog(tx: Tx) -> None:
        # Inbound events journaled and not yet processed (a burst, or a restart's recovery): pending, not facts.
        tx.exec("INSERT INTO journal (channel, dedupe_key, payload, status, received_at) SELECT 'sms', 'SM' || n, "
                "'{}', 'pending', '2026-01-01T00:00:00Z' FROM generate_series(1, 5000) AS n")
        tx.exec("ANALYZE journal")

    await db.write(backlog)
    await db.write(lambda tx: apply_waiting(Explaining(tx), "sms", "SM1", "2026-01-01T00:00:00Z"))
    assert any("journal_waiting_facts" in line for line in plans), plans
