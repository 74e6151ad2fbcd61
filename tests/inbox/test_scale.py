"""The inbox's page, a search's first results and a customer search that finds few customers cost the same work
however many conversations are open, customers known and messages stored: counted in SQLite virtual-machine steps
(the same whatever else the machine is doing), at one size and at four times it. A condition evaluated before the
LIMIT, a sort of every match, or a substring test on every customer (what the trigram indexes of migration 92
replaced) grows with the size. FTS5 reads its own pages outside the virtual machine, so those reads are not in the
count: what FTS5 holds in memory for a common word's search is measured by SQLite's own memory counter instead."""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from bench.inbox import Shape, load
from hub.api.auth import Principal
from hub.api.schemas import ViewFilters
from hub.console.handlers import _inbox
from hub.history import store
from hub.history.db import Database, Tx, _SqliteTx, open_database
from hub.history.schema import migrate
from hub.inbox import views

NOW = datetime(2026, 6, 1, tzinfo=UTC)


async def _center(tmp_path: Path, open_conversations: int, messages_each: int = 40) -> tuple[str, Shape]:
    path = tmp_path / f"center-{open_conversations}.db"
    db = open_database(f"sqlite:///{path}")
    await migrate(db)
    await db.close()
    shape = Shape.of(argparse.Namespace(conversations=open_conversations, messages=open_conversations * messages_each,
                                        agents=50, queues=5))
    load(f"sqlite:///{path}", shape, 7, NOW)
    return str(path), shape


def _steps(path: str, work: Callable[[Tx], object]) -> int:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    conn.set_progress_handler(tick, 100)  # called every 100 VM instructions
    try:
        work(_SqliteTx(conn))
    finally:
        conn.close()
    return count[0]


def _works(shape: Shape) -> dict[str, Callable[[Tx], object]]:
    agent, boss = 1, shape.agents  # an agent in two queues; a supervisor of every queue
    mine = Principal(0, "agent", agent, tuple(shape.agent_queues(agent)))
    sup = Principal(0, "supervisor", boss, tuple(shape.agent_queues(boss)))
    return {
        "agent's inbox": lambda tx: _inbox(tx, mine, 50, {}),
        "supervisor's inbox": lambda tx: _inbox(tx, sup, 50, {}),
        "supervisor's one queue": lambda tx: _inbox(tx, sup, 50, {}, views.View("f", "F", "filter",
                                                                               ViewFilters(queue="q03"))),
        "agent's search, a common word": lambda tx: store.search_messages(tx, "refund", mine.queues, agent, 20),
        "supervisor's search, a common word": lambda tx: store.search_messages(tx, "refund", sup.queues, boss, 20),
    }


@pytest.mark.parametrize("size", [500])
async def test_a_page_costs_the_same_at_four_times_the_center(tmp_path: Path, size: int) -> None:
    small_path, small = await _center(tmp_path, size)
    large_path, large = await _center(tmp_path, size * 4)
    small_works, large_works = _works(small), _works(large)
    for name in small_works:
        a, b = _steps(small_path, small_works[name]), _steps(large_path, large_works[name])
        assert a > 0 and b / a < 1.5, (name, a, b)


def _customer_searches(shape: Shape) -> dict[str, Callable[[Tx], object]]:
    agent, boss = 1, shape.agents
    mine, sup = shape.agent_queues(agent), shape.agent_queues(boss)
    _, phone, email = shape.identity(shape.open // 2 + 1)  # one customer, with an open conversation
    return {
        "agent's customer search, a whole phone": lambda tx: store.search_customers(tx, phone[1:], 20, mine, agent),
        "supervisor's customer search, an email": lambda tx: store.search_customers(tx, email.split("@")[0], 20, sup,
                                                                                    boss),
        "customer search, a phone as typed": lambda tx: store.search_customers(
            tx, f"+1 ({phone[2:5]}) {phone[5:8]}-{phone[8:]}", 20),
        "customer search, a word no customer has": lambda tx: store.search_customers(tx, "refund", 20),
    }


async def test_a_customer_search_that_finds_few_costs_the_same_at_four_times_the_customers(tmp_path: Path) -> None:
    """Above store.SCAN_FIRST customers (it reads that many in id order before it asks the trigram indexes), so the
    sizes are 2,500 and 10,000 customers, with few messages each: the messages are not what this measures."""
    small_path, small = await _center(tmp_path, 2500, 2)
    large_path, large = await _center(tmp_path, 10_000, 2)
    assert small.customers > store.SCAN_FIRST
    small_works, large_works = _customer_searches(small), _customer_searches(large)
    for name in small_works:
        a, b = _steps(small_path, small_works[name]), _steps(large_path, large_works[name])
        assert a > 0 and b / a < 1.5, (name, a, b)



def _sqlite_memory(path: str, work: Callable[[Tx], object]) -> int:
    """The most memory SQLite held while WORK ran on a fresh connection with a page cache of 20 pages: what FTS5
    builds in memory (a prefix query's merged list of every match), which the virtual machine's steps do not count.
    Read from the SQLite library this Python's sqlite3 module runs on."""
    lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    lib.sqlite3_memory_used.restype = lib.sqlite3_memory_highwater.restype = ctypes.c_int64
    lib.sqlite3_libversion.restype = ctypes.c_char_p
    assert lib.sqlite3_libversion().decode() == sqlite3.sqlite_version  # the same library, so the same counters
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA cache_size = 20")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # the schema, read once by any first query
        base = lib.sqlite3_memory_used()
        lib.sqlite3_memory_highwater(1)
        work(_SqliteTx(conn))
        return int(lib.sqlite3_memory_highwater(0) - base)
    finally:
        conn.close()

async def _messages(tmp_path: Path, count: int) -> str:
    """A migrated database whose COUNT messages were inserted row by row through the FTS5 triggers (in one
    transaction), each holding a word beginning with "refund" (half "refund" itself, half "refunds" or "refunded")."""
    path = tmp_path / f"messages-{count}.db"
    db = open_database(f"sqlite:///{path}")
    await migrate(db)
    await db.close()
    stamp = "2026-06-01T00:00:00.000000Z"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO customers (id, name, created_at, updated_at) VALUES (1, 'C', ?, ?)", (stamp, stamp))
        conn.execute("INSERT INTO conversations (id, customer_id, status, channel, queue, created_at, updated_at) "
                     "VALUES (1, 1, 'open', 'sms', 'support', ?, ?)", (stamp, stamp))
        variants = ("refund", "refund", "refunds", "refunded")
        conn.executemany("INSERT INTO messages (conversation_id, customer_id, channel, direction, kind, text, status, "
                         "created_at, updated_at) VALUES (1, 1, 'sms', 'in', 'text', ?, 'received', ?, ?)",
                         ((f"{variants[i % 4]} order w{i % 997}", stamp, stamp) for i in range(count)))
    conn.close()
    return str(path)


async def test_a_common_word_search_holds_no_list_of_its_matches(tmp_path: Path) -> None:
    """A search word is a prefix; FTS5 reads a prefix query by merging every matching message into one list in memory
    before the first row (every message here matches "refund"), so store.search_messages reads it as the few stored
    words it begins, which FTS5 walks newest first and leaves after the page. At four times the messages the prefix
    query held 2.5-3.9 times the memory; this holds 1.0-1.5 times."""
    small, large = await _messages(tmp_path, 25_000), await _messages(tmp_path, 100_000)
    for q in ("refund", "refunde", "ref order"):
        def work(tx: Tx, q: str = q) -> object:
            return store.search_messages(tx, q, None, None, 20)

        a, b = _sqlite_memory(small, work), _sqlite_memory(large, work)
        assert a > 0 and b / a < 2, (q, a, b)
class _FirstStatement:
    """A transaction that runs nothing and keeps the first statement it is given (the inbox's page)."""

    def __init__(self, dialect: str) -> None:
        self.dialect, self.for_update = dialect, ""
        self.sql: str = ""
        self.params: list[Any] = []

    def all(self, sql: str, params: Any = ()) -> list[Any]:
        if not self.sql:
            self.sql, self.params = sql, list(params)
        return []

    def one(self, sql: str, params: Any = ()) -> None:
        self.all(sql, params)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_an_inbox_page_reads_at_most_a_page_of_conversations_per_part_on_postgresql(
        db: Database, db_url: str) -> None:
    """Rows of `conversations` the inbox's statement reads (EXPLAIN ANALYZE: the same however busy the machine is),
    at a center of 25 queues: an agent's work list (two queues and their own) at most a page from each part, Mine,
    a supervisor's one queue and their whole inbox a page. Before migration 119 the agent's page walked every
    active conversation in inbox order until a page of theirs was found: a twelfth of them are (625 rows read)."""
    shape = Shape.of(argparse.Namespace(conversations=3000, messages=120_000, agents=100, queues=25))
    load(db_url, shape, 7, NOW)
    agent, boss, limit = 1, shape.agents, 50
    mine = Principal(0, "agent", agent, tuple(shape.agent_queues(agent)))
    sup = Principal(0, "supervisor", boss, tuple(shape.agent_queues(boss)))
    cases = {
        "agent's work list": (mine, None, (len(mine.queues) + 1) * limit),
        "agent's Mine": (mine, views.View("mine", "Mine", "builtin", ViewFilters(agent_id=agent)), limit),
        "supervisor's one queue": (sup, views.View("f", "F", "filter", ViewFilters(queue="q07")), limit),
        "supervisor's whole inbox": (sup, None, limit),
    }

    def rows_read(tx: Tx) -> dict[str, int]:
        out = {}
        for name, (p, view, _) in cases.items():
            first = _FirstStatement(tx.dialect)
            _inbox(cast(Tx, first), p, limit, {}, view)
            row = tx.one(f"EXPLAIN (ANALYZE, FORMAT JSON) {first.sql}", first.params)
            assert row is not None
            plan = next(iter(row.values()))
            out[name] = _conversation_rows_read((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
        return out

    read = await db.read(rows_read)
    for name, (_, _, bound) in cases.items():
        assert 0 < read[name] <= bound, (name, read)


def _conversation_rows_read(plan: dict[str, Any]) -> int:
    """Rows of `conversations` a PostgreSQL plan read: what each scan of it returned or filtered out, every loop."""
    own = 0
    if plan.get("Relation Name") == "conversations":
        own = (plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)
               + plan.get("Rows Removed by Index Recheck", 0)) * plan["Actual Loops"]
    return own + sum(_conversation_rows_read(p) for p in plan.get("Plans", []))


