"""The routing change log (hub.routing.changes, migration 115): the store's own triggers name every conversation
whose status, agent, offer or priority changed, a read from a cursor returns each once with the next cursor, and a
trim makes a read from below it say so (None) instead of returning less."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest

from bench import change_log
from hub.history.db import Database
from hub.model import format_time, utcnow
from hub.routing import changes


async def open_conversation(db: Database) -> int:
    now = format_time(utcnow())
    return await db.write(lambda tx: change_log.open_conversation(tx, now))


async def read(db: Database, cursor: changes.Cursor) -> changes.Changes:
    return await db.read(lambda tx: changes.since(tx, cursor))


async def test_the_triggers_name_what_routing_compares_and_nothing_else(db: Database) -> None:
    start = await db.read(changes.head)
    a, b = await open_conversation(db), await open_conversation(db)
    seen = await read(db, start)
    assert sorted(seen.conversations or []) == [a, b]
    assert (await read(db, seen.cursor)).conversations == []  # read once

    at = seen.cursor
    for sql in ("UPDATE conversations SET updated_at = 'x', queue = 'billing' WHERE id = ?",  # not compared
                "UPDATE conversations SET status = status, priority = priority WHERE id = ?"):  # unchanged
        await db.write(lambda tx, sql=sql: tx.exec(sql, (a,)))
    assert (await read(db, at)).conversations == []
    agent = await db.write(lambda tx: tx.one("INSERT INTO agents (name, email, role, password_hash, created_at) "
                                             "VALUES ('Bo', 'bo@example.com', 'agent', '-', 'now') RETURNING id"))
    assert agent is not None
    for column, value in (("status", "assigned"), ("agent_id", agent["id"]), ("offered_to", agent["id"]),
                          ("priority", 3)):
        await db.write(lambda tx, c=column, v=value: tx.exec(f"UPDATE conversations SET {c} = ? WHERE id = ?", (v, a)))
        got = await read(db, at)
        assert got.conversations == [a], column
        at = got.cursor
    await db.write(lambda tx: tx.exec("DELETE FROM conversations WHERE id = ?", (b,)))
    assert (await read(db, at)).conversations == [b]


async def test_a_trim_makes_an_older_cursor_say_so(db: Database) -> None:
    start = await db.read(changes.head)
    first = await open_conversation(db)
    middle = await read(db, start)
    second = await open_conversation(db)
    count = "SELECT COUNT(*) AS n FROM routing_changes WHERE conversation_id > 0"
    before = (await db.read(lambda tx: tx.one(count)) or {})["n"]
    await db.write(lambda tx: changes.trim(tx, middle.cursor))
    assert (await db.read(lambda tx: tx.one(count)) or {})["n"] < before  # the rows below it are gone
    assert (await read(db, start)).conversations is None  # not an empty or partial answer: "compare everything"
    assert (await read(db, middle.cursor)).conversations == [second]
    assert first != second
    # Everything trimmed: a head read now still starts at or above the trim, and reads what comes next.
    later = await read(db, middle.cursor)
    await db.write(lambda tx: changes.trim(tx, later.cursor))
    head = await db.read(changes.head)
    third = await open_conversation(db)
    assert (await read(db, head)).conversations == [third]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_postgresql_reads_a_change_committed_after_a_later_one(db: Database, db_url: str) -> None:
    """Ids are given when a row is written, not when it commits: a transaction that wrote first and commits last
    has the lower id. A cursor by id would skip it for good; the cursor by transaction reads it next time."""
    a, b = await open_conversation(db), await open_conversation(db)
    at = (await read(db, await db.read(changes.head))).cursor
    wrote, commit = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with psycopg.connect(db_url) as conn:
            conn.execute("UPDATE conversations SET priority = 5 WHERE id = %s", (a,))
            wrote.set()
            commit.wait(10)

    thread = threading.Thread(target=slow_writer)
    thread.start()
    try:
        assert await asyncio.to_thread(wrote.wait, 10)
        await db.write(lambda tx: tx.exec("UPDATE conversations SET priority = 6 WHERE id = ?", (b,)))
        seen = await read(db, at)
        assert seen.conversations == [b]  # a's change is not committed yet
    finally:
        commit.set()
        await asyncio.to_thread(thread.join)
    assert a in ((await read(db, seen.cursor)).conversations or [])
