"""The inbound path: journal first, recovery after a crash, replay of failures, flagging what cannot be parsed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from hub.channels.base import Arrival, IngestFailed, IngestResult
from hub.config import Settings
from hub.events import MemoryBus
from hub.history import store
from hub.history.db import Database, Tx
from hub.ingest import Ingest, _journal
from hub.metrics import Metrics
from hub.model import Identity, Inbound, format_time, utcnow
from tests.counting import CountingTx


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url)


def inbound(ext: str, text: str = "hello") -> Inbound:
    return Inbound(channel="sms", identity=Identity("phone", "+14155550100"), text=text, external_id=ext)


async def journal_states(db: Database) -> list[tuple[str, str]]:
    rows = await db.read(lambda tx: tx.all("SELECT dedupe_key, status FROM journal ORDER BY id"))
    return [(r["dedupe_key"], r["status"]) for r in rows]


async def test_journaled_but_unprocessed_events_are_recovered(db: Database, settings: Settings) -> None:
    # A crash right after the journal commit (the provider was acknowledged) leaves pending rows behind.
    now = format_time(utcnow())
    for ext in ("SM1", "SM2"):
        payload = json.dumps({"inbound": inbound(ext, f"text {ext}").to_json(), "raw": {"MessageSid": ext}})
        await db.write(lambda tx, p=payload, e=ext: _journal(tx, "sms", e, p, now))  # type: ignore[misc]
    assert await journal_states(db) == [("SM1", "pending"), ("SM2", "pending")]
    ingest = Ingest(db, settings, MemoryBus(), Metrics())
    assert await ingest.process_journal() == 2
    assert await journal_states(db) == [("SM1", "done"), ("SM2", "done")]
    assert await ingest.process_journal() == 0  # idempotent
    again = await ingest.ingest(inbound("SM1", "text SM1"))
    assert again.duplicate
    rows = await db.read(lambda tx: tx.all("SELECT text FROM messages ORDER BY id"))
    assert [r["text"] for r in rows] == ["text SM1", "text SM2"]


async def test_failed_processing_is_kept_and_replayed(db: Database, settings: Settings) -> None:
    calls = {"n": 0}

    def flaky_queue(_inbound: Inbound) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("routing rules unavailable")
        return "support"

    ingest = Ingest(db, settings, MemoryBus(), Metrics(), choose_queue=flaky_queue)
    with pytest.raises(IngestFailed) as e:
        await ingest.ingest(inbound("SM9"))
    assert "routing rules unavailable" in e.value.reason
    rows = await db.read(lambda tx: tx.all("SELECT status, error FROM journal"))
    assert rows[0]["status"] == "failed" and "routing rules unavailable" in rows[0]["error"]
    assert await db.read(lambda tx: tx.all("SELECT id FROM messages")) == []
    assert await ingest.process_journal(("failed",)) == 1
    assert await journal_states(db) == [("SM9", "done")]
    assert await ingest.process_journal(("failed",)) == 0


async def test_a_processing_that_fails_in_a_batch_leaves_its_raw_event_flagged_and_the_others_stored(
    db: Database, settings: Settings
) -> None:
    """Three events in one transaction; the second one's processing fails after it wrote its customer and its
    conversation. Its writes are undone (the whole batch runs again, this time with a savepoint per event), its raw
    event commits flagged, and the events before and after it are stored."""
    def first_response(tx: Tx, queue: str) -> None:
        newest = tx.one("SELECT i.value FROM conversations c JOIN identities i ON i.customer_id = c.customer_id "
                        "ORDER BY c.id DESC LIMIT 1")
        if newest is not None and newest["value"] == "+14155550102":
            raise RuntimeError("no clock for this one")

    ingest = Ingest(db, settings, MemoryBus(), Metrics(), first_response=first_response)
    arrivals = [Arrival("sms", Inbound(channel="sms", identity=Identity("phone", f"+1415555010{n}"), text=f"hi {n}",
                                       external_id=f"SM{n}"), {"n": n}) for n in (1, 2, 3)]
    first, failed, third = await ingest.ingest_batch(arrivals)
    assert isinstance(first, IngestResult) and isinstance(third, IngestResult)
    assert isinstance(failed, IngestFailed) and "no clock for this one" in failed.reason
    assert await journal_states(db) == [("SM1", "done"), ("SM2", "failed"), ("SM3", "done")]
    phones = await db.read(lambda tx: tx.all("SELECT value FROM identities ORDER BY id"))
    assert [r["value"] for r in phones] == ["+14155550101", "+14155550103"]
    texts = await db.read(lambda tx: tx.all("SELECT m.text FROM messages m JOIN conversations c "
                                            "ON c.id = m.conversation_id ORDER BY m.id"))
    assert [r["text"] for r in texts] == ["hi 1", "hi 3"]


async def test_unparseable_events_are_flagged_not_lost(db: Database, settings: Settings) -> None:
    ingest = Ingest(db, settings, MemoryBus(), Metrics())
    jid = await ingest.flag("sms", "SMbad", {"Body": "x"}, "missing From")
    row = await db.read(lambda tx: tx.one("SELECT status, error, payload FROM journal WHERE id = ?", (jid,)))
    assert row is not None
    assert row["status"] == "rejected" and row["error"] == "missing From"
    assert json.loads(row["payload"])["raw"] == {"Body": "x"}
    assert await ingest.flag("sms", "SMbad", {"Body": "x"}, "missing From") == jid  # retries do not pile up


async def test_events_are_published(db: Database, settings: Settings) -> None:
    bus = MemoryBus()
    sub = bus.subscribe()
    ingest = Ingest(db, settings, bus, Metrics())
    await ingest.ingest(inbound("SM1"))
    await ingest.ingest(inbound("SM2"))
    await ingest.ingest(inbound("SM2"))  # duplicate: nothing new to say
    types = []
    while not sub.queue.empty():
        types.append(sub.queue.get_nowait().type)
    assert types == ["conversation.opened", "message.created", "message.created"]


async def test_oversized_attachment_is_flagged_on_the_message(db: Database, make_settings: Callable[..., Settings],
                                                            db_url: str) -> None:
    from hub.model import AttachmentIn

    settings = make_settings(db_url, HUB_INGEST__MAX_ATTACHMENT_BYTES="10")
    ingest = Ingest(db, settings, MemoryBus(), Metrics())
    item = inbound("SM1")
    item.attachments = [AttachmentIn("big.bin", "application/octet-stream", b"x" * 11),
                        AttachmentIn("ok.txt", "text/plain", b"fine")]
    result = await ingest.ingest(item)
    big, ok = result.message.attachments
    assert big.status == "failed" and "over the 10-byte limit" in (big.error or "")
    assert ok.status == "stored" and ok.size == 4
    assert result.message.text == "hello"


async def test_business_line_is_kept(db: Database, settings: Settings) -> None:
    ingest = Ingest(db, settings, MemoryBus(), Metrics())
    item = inbound("SM1")
    item.business_line = "+18005550199"
    r = await ingest.ingest(item)
    assert r.conversation.business_line == "+18005550199"
    assert r.message.meta["business_line"] == "+18005550199"
    conv = await db.read(lambda tx: store.conversation(tx, r.conversation.id))
    assert conv.queue == "support"


async def test_customer_html_is_sanitized_on_the_way_in_body_and_kept_original(db: Database,
                                                                                 settings: Settings) -> None:
    ingest = Ingest(db, settings, MemoryBus(), Metrics())
    evil = '<p onclick="steal()">hi</p><script>alert(1)</script><a href="javascript:x()">a</a>'
    result = await ingest.ingest(Inbound(
        channel="api", identity=Identity("email", "eve@example.com"), text="hi", html=evil,
        meta={"email": {"subject": "s", "full_html": evil + "<blockquote>old</blockquote>"}},
    ))
    stored = await db.read(lambda tx: store.message(tx, result.message.id))
    for html in (stored.html, stored.meta["email"]["full_html"]):
        assert html is not None and "hi" in html
        assert "script" not in html and "onclick" not in html and "javascript:" not in html
    assert "old" in stored.meta["email"]["full_html"] and stored.meta["email"]["subject"] == "s"


async def test_a_new_customers_message_looks_for_no_conversation_or_survey_they_cannot_have(
    db: Database, settings: Settings
) -> None:
    """A customer created in the message's own transaction has no conversation to join, reopen or lock, and no
    survey to answer or close: their message opens one without looking (two statements of fifteen on SQLite, three
    on PostgreSQL). Bounds: the statements of one event's journaling and processing, a new customer's, then a known
    customer's reply that joins. The event is journaled once, with its outcome (its look-up, then its row: not a
    pending row and then its update), whether facts wait for it is asked by that row's insert, and the event log's
    rows (two when a conversation opens) are one insert that also says whether any webhook subscription exists: 13
    and 9 statements before (10 on PostgreSQL, which now locks a known customer as it finds them)."""
    ingest = Ingest(db, settings, MemoryBus(), Metrics())
    now = format_time(utcnow())

    def counted(ext: str) -> Callable[[Tx], tuple[int, IngestResult]]:
        def run(tx: Tx) -> tuple[int, IngestResult]:
            counting = CountingTx(tx)
            outcome = ingest._journal_and_apply(counting, ingest._prepared(Arrival("sms", inbound(ext), {}, None)), now)
            assert isinstance(outcome, IngestResult)
            return counting.statements, outcome

        return run

    statements, opened = await db.write(counted("SM1"))
    assert opened.conversation_how == "opened" and opened.conversation.status == "open"
    assert statements <= 9, statements
    statements, joined = await db.write(counted("SM2"))
    assert joined.conversation_how == "joined" and joined.conversation.id == opened.conversation.id
    # PostgreSQL locks the known customer in the statement that finds them (FOR UPDATE OF c): 7 on both.
    assert statements <= 7, statements
    rows = await db.read(lambda tx: tx.all("SELECT customer_id, status FROM conversations"))
    assert [(r["customer_id"], r["status"]) for r in rows] == [(opened.customer.id, "open")]


async def test_an_event_another_transaction_journals_meanwhile_is_stored_once(
    db: Database, settings: Settings, db_url: str
) -> None:
    """A new event is journaled at the end of its processing, so on PostgreSQL another transaction (another worker
    with the provider's retry) may journal the same key in between: the journal's insert then meets that row, the
    transaction runs again (hub.history.db.Conflict) and finds it, and the event is stored once. Here the other
    transaction journals it pending and commits while the hub's insert waits on it."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite's one writer sees every commit before its transaction starts")
    import psycopg

    ingest = Ingest(db, settings, MemoryBus(), Metrics())
    payload = json.dumps({"inbound": inbound("SM1").to_json(), "raw": {"MessageSid": "SM1"}})
    with psycopg.connect(db_url) as other, psycopg.connect(db_url, autocommit=True) as watch:
        other.execute("INSERT INTO journal (channel, dedupe_key, payload, status, received_at) "
                      "VALUES ('sms', 'SM1', %s, 'pending', %s)", (payload, format_time(utcnow())))
        stored = asyncio.ensure_future(ingest.ingest(inbound("SM1")))
        # The hub's transaction has processed the event and waits on the other's uncommitted row in the journal.
        for _ in range(400):
            waiting = watch.execute(  # its own connection: a transaction reads pg_stat_activity once
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = "
                "'Lock' AND query LIKE 'INSERT INTO journal%'").fetchone()
            if waiting and waiting[0]:
                break
            await asyncio.sleep(0.025)
        else:
            raise AssertionError("the hub's journal insert never waited on the other transaction's row")
        other.commit()
        result = await asyncio.wait_for(stored, 30)
    assert not result.duplicate and result.conversation_how == "opened"
    assert await journal_states(db) == [("SM1", "done")]
    rows = await db.read(lambda tx: tx.all("SELECT id FROM messages"))
    assert [r["id"] for r in rows] == [result.message.id]
    counts = await db.read(lambda tx: tx.one(
        "SELECT (SELECT count(*) FROM customers) AS customers, (SELECT count(*) FROM conversations) AS conversations, "
        "(SELECT count(*) FROM hub_events) AS events"))
    assert counts is not None and (counts["customers"], counts["conversations"], counts["events"]) == (1, 1, 2)
