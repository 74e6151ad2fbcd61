"""The store suite, run against SQLite and a real PostgreSQL: timeline, conversations, reopen, merge, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from hub.config import Settings
from hub.events import MemoryBus
from hub.history import store
from hub.history.db import Database, open_database
from hub.history.merge import MergeError, merge_customers
from hub.history.schema import LATEST, current_version, migrate
from hub.ingest import Ingest
from hub.metrics import Metrics
from hub.model import Identity, Inbound, format_time, utcnow
from hub.reports.rollup import RollRules, catch_up


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = open_database(db_url, pool_size=4)
    await migrate(database)
    yield database
    await database.close()


@pytest.fixture
def ingest_with(db: Database, make_settings: Callable[..., Settings]) -> Callable[..., Ingest]:
    def make(**env: str) -> Ingest:
        return Ingest(db, make_settings(**env), MemoryBus(), Metrics())

    return make


def msg(identity: str, text: str, channel: str = "api", ext: str | None = None, at: str | None = None) -> Inbound:
    kind, _, value = identity.partition(":")
    return Inbound(channel=channel, identity=Identity(kind, value), text=text, external_id=ext, occurred_at=at)


async def test_migrate_is_idempotent(db: Database) -> None:
    assert await migrate(db) == []
    assert await current_version(db) == LATEST


async def test_timeline_across_channels_in_time_order(db: Database, ingest_with: Callable[..., Ingest]) -> None:
    ingest = ingest_with()
    first = await ingest.ingest(msg("phone:+14155550100", "sms first", "sms", at="2026-01-01T10:00:00.000000Z"))
    await ingest.ingest(msg("phone:+14155550100", "call third", "voice", at="2026-01-01T10:02:00.000000Z"))
    await ingest.ingest(msg("phone:+14155550100", "whatsapp second", "whatsapp", at="2026-01-01T10:01:00.000000Z"))
    cid = first.customer.id
    items, nxt = await db.read(lambda tx: store.timeline(tx, cid, 10, None))
    assert [m.text for m in items] == ["sms first", "whatsapp second", "call third"]
    assert [m.channel for m in items] == ["sms", "whatsapp", "voice"]
    assert nxt is None
    assert len({m.conversation_id for m in items}) == 1, "all channels join the one open conversation"


async def test_timeline_pages_with_cursor_both_ways(db: Database, ingest_with: Callable[..., Ingest]) -> None:
    ingest = ingest_with()
    for i in range(25):
        await ingest.ingest(msg("email:ann@example.com", f"m{i:02}", "email", ext=f"e{i}"))
    cid = (await db.read(lambda tx: store.customer_by_identity(tx, Identity("email", "ann@example.com"))))
    assert cid is not None
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await db.read(lambda tx, c=cursor: store.timeline(tx, cid, 10, c))  # type: ignore[misc]
        seen += [m.text for m in page]
        if cursor is None:
            break
    assert seen == [f"m{i:02}" for i in range(25)]
    newest, nxt = await db.read(lambda tx: store.timeline(tx, cid, 3, None, newest_first=True))
    assert [m.text for m in newest] == ["m24", "m23", "m22"]
    older, _ = await db.read(lambda tx: store.timeline(tx, cid, 3, nxt, newest_first=True))
    assert [m.text for m in older] == ["m21", "m20", "m19"]
    with pytest.raises(ValueError, match="cursor"):
        await db.read(lambda tx: store.timeline(tx, cid, 3, "garbage!!"))


async def test_resolve_then_new_conversation(db: Database, ingest_with: Callable[..., Ingest]) -> None:
    ingest = ingest_with()
    a = await ingest.ingest(msg("telegram:42", "hello"))
    assert a.conversation_how == "opened"
    b = await ingest.ingest(msg("telegram:42", "still there?"))
    assert b.conversation_how == "joined" and b.conversation.id == a.conversation.id
    now = format_time(utcnow())
    await db.write(lambda tx: store.set_conversation_status(tx, a.conversation.id, "resolved", now))
    c = await ingest.ingest(msg("telegram:42", "one more thing"))
    assert c.conversation_how == "opened" and c.conversation.id != a.conversation.id


async def test_reopen_window_reopens_last(db: Database, ingest_with: Callable[..., Ingest]) -> None:
    ingest = ingest_with(HUB_CONVERSATIONS__REOPEN_WINDOW_SECONDS="3600")
    a = await ingest.ingest(msg("webchat:v1", "hello"))
    now = format_time(utcnow())
    await db.write(lambda tx: store.set_conversation_status(tx, a.conversation.id, "resolved", now))
    b = await ingest.ingest(msg("webchat:v1", "thanks, but one more thing"))
    assert b.conversation_how == "reopened" and b.conversation.id == a.conversation.id
    assert b.conversation.status == "open" and b.conversation.resolved_at is None


async def test_merge_adds_the_merged_customers_report_figures_to_the_survivors(
        db: Database, ingest_with: Callable[..., Ingest]) -> None:
    """Reports by segment count a survivor with the merged customer's past: their per-customer hour and day rows
    are added to the survivor's (the same hour and day here, so they sum) and leave nothing behind."""
    ingest = ingest_with()
    survivor = (await ingest.ingest(msg("phone:+14155550100", "text from phone", "sms"))).customer.id
    merged = (await ingest.ingest(msg("email:ann@example.com", "mail", "email"))).customer.id
    await catch_up(db, RollRules(), cutoff=format_time(utcnow()))

    async def kept() -> dict[tuple[int, str], tuple[int, int]]:
        rows = await db.read(lambda tx: tx.all("SELECT customer_id, grain, n_opened, n_messages_in "
                                               "FROM report_customer_rollups"))
        return {(int(r["customer_id"]), str(r["grain"])): (int(r["n_opened"]), int(r["n_messages_in"]))
                for r in rows}

    if len(await kept()) == 4:  # both in one hour and day (not across a boundary): the rows meet and sum
        assert await kept() == {(c, g): (1, 1) for c in (survivor, merged) for g in ("hour", "day")}
        await db.write(lambda tx: merge_customers(tx, survivor, merged, format_time(utcnow())))
        assert await kept() == {(survivor, "hour"): (2, 2), (survivor, "day"): (2, 2)}
    else:
        await db.write(lambda tx: merge_customers(tx, survivor, merged, format_time(utcnow())))
        assert {c for c, _ in await kept()} == {survivor}


async def test_merge_moves_everything_and_records_it(db: Database, ingest_with: Callable[..., Ingest]) -> None:
    ingest = ingest_with()
    phone = await ingest.ingest(msg("phone:+14155550100", "text from phone", "sms"))
    email = await ingest.ingest(msg("email:ann@example.com", "mail", "email"))
    survivor, merged = phone.customer.id, email.customer.id
    now = format_time(utcnow())
    event_id = await db.write(lambda tx: merge_customers(tx, survivor, merged, now))
    cust = await db.read(lambda tx: store.customer(tx, survivor))
    assert {str(i) for i in cust.identities} == {"phone:+14155550100", "email:ann@example.com"}
    gone = await db.read(lambda tx: store.customer(tx, merged))
    assert gone.merged_into == survivor
    items, _ = await db.read(lambda tx: store.timeline(tx, survivor, 10, None))
    assert [m.text for m in items][:2] == ["text from phone", "mail"]
    event = await db.read(lambda tx: store.message(tx, event_id))
    assert event.kind == "event" and f"#{merged}" in event.text and "email:ann@example.com" in event.text
    # both had an open conversation: only one may stay open
    opens = await db.read(
        lambda tx: tx.all("SELECT id FROM conversations WHERE customer_id = ? AND status <> 'resolved'", (survivor,))
    )
    assert len(opens) == 1
    # the merged identity now reaches the survivor
    later = await ingest.ingest(msg("email:ann@example.com", "again", "email"))
    assert later.customer.id == survivor
    with pytest.raises(MergeError, match="already merged"):
        await db.write(lambda tx: merge_customers(tx, survivor, merged, now))
    with pytest.raises(MergeError, match="itself"):
        await db.write(lambda tx: merge_customers(tx, survivor, survivor, now))


async def test_concurrent_first_messages_make_one_customer(db: Database, ingest_with: Callable[..., Ingest]) -> None:
    ingest = ingest_with()
    results = await asyncio.gather(*(ingest.ingest(msg("phone:+14155550111", f"burst {i}")) for i in range(12)))
    assert len({r.customer.id for r in results}) == 1
    assert len({r.conversation.id for r in results}) == 1
    customers = await db.read(lambda tx: tx.all("SELECT id FROM customers"))
    assert len(customers) == 1


async def test_concurrent_retries_store_once(db: Database, ingest_with: Callable[..., Ingest]) -> None:
    ingest = ingest_with()
    results = await asyncio.gather(*(ingest.ingest(msg("phone:+14155550112", "same", ext="SM1")) for _ in range(10)))
    assert len({r.message.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    rows = await db.read(lambda tx: tx.all("SELECT id FROM messages"))
    assert len(rows) == 1
