"""The database layer against real servers: dialect translation, transactions, and surviving a lost connection."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from hub.history.db import Database, PostgresDatabase, SqliteDatabase, Tx, _statements, open_database, redact


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = open_database(db_url, pool_size=2)
    yield database
    await database.close()


async def test_write_rolls_back_on_error(db: Database) -> None:
    await db.write(lambda tx: tx.exec("CREATE TABLE t (v INTEGER)"))

    def boom(tx: Any) -> None:
        tx.exec("INSERT INTO t (v) VALUES (?)", (1,))
        raise RuntimeError("halfway")

    with pytest.raises(RuntimeError):
        await db.write(boom)
    assert await db.read(lambda tx: tx.all("SELECT v FROM t")) == []
    await db.write(lambda tx: tx.exec("INSERT INTO t (v) VALUES (?)", (2,)))
    assert [r["v"] for r in await db.read(lambda tx: tx.all("SELECT v FROM t"))] == [2]


async def test_percent_signs_are_data_not_placeholders(db: Database) -> None:
    await db.write(lambda tx: tx.exec("CREATE TABLE t (v TEXT)"))
    await db.write(lambda tx: tx.exec("INSERT INTO t (v) VALUES (?)", ("100% sure?",)))
    rows = await db.read(lambda tx: tx.all("SELECT v FROM t WHERE v LIKE ?", ("%sure%",)))
    assert [r["v"] for r in rows] == ["100% sure?"]


async def test_ping(db: Database) -> None:
    assert await db.ping()


def test_redact_hides_passwords() -> None:
    assert redact("postgresql://hub:s3cret@db:5432/hub") == "postgresql://hub:***@db:5432/hub"
    assert redact("postgresql://hub@db/hub") == "postgresql://hub@db/hub"
    assert redact("sqlite:///hub-data/hub.db") == "sqlite:///hub-data/hub.db"


def _kill_other_connections(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


async def test_lost_postgres_connections_give_503_then_recover(
    aiohttp_client: Any, make_settings: Any, pg_url: str
) -> None:
    from hub.api.auth import create_token
    from hub.app import build_app
    from hub.keys import DB

    client: TestClient[Any, Any] = await aiohttp_client(build_app(make_settings(
        # Only this test's writes use the pool: background passes would meet the dropped connections first.
        pg_url, HUB_DATABASE__POOL_SIZE="2", HUB_AUTOMATION__ENABLED="false", HUB_WEBHOOKS__ENABLED="false",
        HUB_AUTOMATION__POLL_INTERVAL_SECONDS="3600", HUB_WEBHOOKS__POLL_INTERVAL_SECONDS="3600",
        HUB_REPORTS__ROLL_INTERVAL_SECONDS="3600", HUB_ROUTING__RECONCILE_SECONDS="3600")))
    headers = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    body = {"identity": "phone:+14155550100", "text": "before"}
    assert (await client.post("/api/v1/inbound", json=body, headers=headers)).status == 201
    assert _kill_other_connections(pg_url) >= 1
    statuses: list[int] = []
    # Each of the pool's two connections was dropped and says so once, when it is next used: which write meets the
    # second depends on which pool thread takes it (PostgreSQL's group commit hands its turn from thread to thread).
    # So write until four in a row have been stored since the last 503.
    for i in range(12):
        resp = await client.post("/api/v1/inbound", json={**body, "text": f"after {i}", "external_id": f"x{i}"},
                                 headers=headers)
        statuses.append(resp.status)
        if resp.status == 503:
            data = await resp.json()
            assert "retry" in data["error"]["message"] and resp.headers["Retry-After"] == "5"
        if len(statuses) >= 4 and statuses[-4:] == [201] * 4 and 503 in statuses:
            break
    assert 500 not in statuses
    assert 503 in statuses, "a write on a dropped connection must say retry (not silently succeed or 500)"
    assert statuses.count(503) <= 2, ("at most once per pooled connection", statuses)
    assert statuses[-4:] == [201] * 4, statuses
    ready = await client.get("/readyz")
    assert ready.status == 200


async def test_sqlite_checkpoints_again_until_the_wal_is_copied_with_no_commit_to_start_one(tmp_path: Any) -> None:
    """A checkpoint that could not copy every frame (a reader still on an older snapshot, or commits landing while it
    ran, as at the end of a burst) tries again on its own: no later commit is needed to start one. Before, the WAL of
    a burst stayed uncopied until the next write."""
    path = tmp_path / "hub.db"
    db = SqliteDatabase(f"sqlite:///{path}", readers=1, checkpoint_seconds=0.0)
    reader = None
    try:
        await db.write(lambda tx: tx.exec("CREATE TABLE t (v BLOB)"))
        await asyncio.sleep(0.2)  # the CREATE's own checkpoint done
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()  # holds the snapshot before the rows
        for _ in range(50):
            await db.write(lambda tx: tx.exec("INSERT INTO t (v) VALUES (?)", (b"w" * 40_000,)))
        await asyncio.sleep(0.3)
        assert path.stat().st_size < 40_000  # the reader's snapshot holds the checkpoints back
        reader.execute("COMMIT")  # the last commit is long past: only a retry can copy the rows now
        for _ in range(150):
            await asyncio.sleep(0.02)
            if path.stat().st_size > 45 * 40_000:
                break
        assert path.stat().st_size > 45 * 40_000
    finally:
        if reader is not None:
            reader.close()
        await db.close()


async def test_sqlite_commits_leave_the_wal_checkpoint_to_its_own_thread(tmp_path: Any) -> None:
    """A commit that crosses SQLite's auto-checkpoint threshold (1,000 pages) used to copy the WAL into the database
    file and fsync it inside that COMMIT, on the writer: every acknowledgement waiting on the group commit waited
    too (200 ms on a busy disk). The database file is written only by checkpoints, so its size shows who ran one."""
    path = tmp_path / "hub.db"
    db = SqliteDatabase(f"sqlite:///{path}", readers=1, checkpoint_seconds=3600.0)
    try:
        await db.write(lambda tx: tx.exec("CREATE TABLE t (v BLOB)"))
        before = path.stat().st_size
        for _ in range(100):  # 100 commits of 40 KB: about 1,000 pages of 4 KB through the WAL
            await db.write(lambda tx: tx.exec("INSERT INTO t (v) VALUES (?)", (b"x" * 40_000,)))
        assert path.stat().st_size == before  # no commit checkpointed
    finally:
        await db.close()

    # With no background checkpoint at all (none due), the backstop still keeps the WAL from growing without end.
    path = tmp_path / "other.db"
    db = SqliteDatabase(f"sqlite:///{path}", readers=1, checkpoint_seconds=3600.0, wal_backstop_pages=500)
    try:
        await db.write(lambda tx: tx.exec("CREATE TABLE t (v BLOB)"))
        for _ in range(300):  # 12 MB of WAL frames
            await db.write(lambda tx: tx.exec("INSERT INTO t (v) VALUES (?)", (b"y" * 40_000,)))
        assert (tmp_path / "other.db-wal").stat().st_size < 100 * 40_000  # about 500 pages, 2 MB
    finally:
        await db.close()

    # Background checkpoints as it goes: the database file has the rows before anyone closes it.
    path = tmp_path / "third.db"
    db = SqliteDatabase(f"sqlite:///{path}", readers=1, checkpoint_seconds=0.0)
    try:
        await db.write(lambda tx: tx.exec("CREATE TABLE t (v BLOB)"))
        for _ in range(100):
            await db.write(lambda tx: tx.exec("INSERT INTO t (v) VALUES (?)", (b"z" * 40_000,)))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if path.stat().st_size > 90 * 40_000:
                break
        assert path.stat().st_size > 90 * 40_000
    finally:
        await db.close()


async def test_sqlite_background_writes_go_alone_after_the_writes_waiting_before_them(tmp_path: Any) -> None:
    """The reports roller and automation write in the background: an acknowledgement never shares their transaction
    (it would wait for their commit), and writes already waiting run first; nor are they starved under load."""
    path = tmp_path / "hub.db"
    db = SqliteDatabase(f"sqlite:///{path}")
    await db.write(lambda tx: tx.exec("CREATE TABLE t (name TEXT)"))
    release = threading.Event()
    order: list[str] = []

    def blocker(tx: Any) -> None:
        release.wait(10)  # holds the writer while the others queue

    def fore(name: str) -> Any:
        def fn(tx: Any) -> None:
            order.append(name)
            tx.exec("INSERT INTO t (name) VALUES (?)", (name,))
        return fn

    def back(name: str) -> Any:
        def fn(tx: Any) -> int:
            order.append(name)
            # Another connection sees only what is committed: the writes that ran before this one, if it has a
            # transaction of its own.
            other = sqlite3.connect(path)
            try:
                return int(other.execute("SELECT COUNT(*) FROM t").fetchone()[0])
            finally:
                other.close()
        return fn

    first = asyncio.ensure_future(db.write(blocker))
    await asyncio.sleep(0.05)
    b1 = asyncio.ensure_future(db.write(back("b1"), background=True))
    await asyncio.sleep(0.01)
    f1 = [asyncio.ensure_future(db.write(fore(f"f{i}"))) for i in range(3)]
    await asyncio.sleep(0.01)
    b2 = asyncio.ensure_future(db.write(back("b2"), background=True))
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(first, *f1)
    seen1, seen2 = await b1, await b2
    # Queued before the three, b1 still ran after them, alone: it saw their rows committed.
    assert order == ["f0", "f1", "f2", "b1", "b2"] and (seen1, seen2) == (3, 3)
    # Under a steady flow of writes a background write waits for one group of them, not for the flow to stop.
    order.clear()
    release.clear()
    first = asyncio.ensure_future(db.write(blocker))
    await asyncio.sleep(0.05)
    b3 = asyncio.ensure_future(db.write(back("b3"), background=True))
    waves = [asyncio.ensure_future(db.write(fore(f"g{i}"))) for i in range(3)]
    release.set()
    await asyncio.sleep(0)
    assert await b3 == 6
    await asyncio.gather(first, *waves)
    assert order[:4] == ["g0", "g1", "g2", "b3"]
    await db.close()


async def test_an_undoable_block_that_fails_leaves_the_rest_of_its_transaction(db: Database) -> None:
    """Tx.undoable: what the block wrote is undone when it raises, what the write did before and after it commits. A
    write runs without savepoints first, so one whose block fails runs again (as after a deadlock on PostgreSQL);
    one whose block does not fail runs once."""
    await db.write(lambda tx: tx.exec("CREATE TABLE t (v INTEGER)"))
    runs = {"fails": 0, "works": 0}

    def write(tx: Tx, name: str) -> str:
        runs[name] += 1
        tx.exec("INSERT INTO t (v) VALUES (?)", (1 if name == "fails" else 4,))
        try:
            with tx.undoable():
                tx.exec("INSERT INTO t (v) VALUES (?)", (2 if name == "fails" else 5,))
                if name == "fails":
                    raise ValueError("the block's own failure")
        except ValueError as e:
            tx.exec("INSERT INTO t (v) VALUES (?)", (3,))
            return str(e)
        return "done"

    assert await db.write(lambda tx: write(tx, "fails")) == "the block's own failure"
    assert await db.write(lambda tx: write(tx, "works")) == "done"
    assert sorted(r["v"] for r in await db.read(lambda tx: tx.all("SELECT v FROM t"))) == [1, 3, 4, 5]
    assert runs == {"fails": 2, "works": 1}


async def test_sqlite_group_commit_takes_no_savepoint_unless_a_write_fails(tmp_path: Any) -> None:
    """Waiting writes share one transaction. Savepoints cost (SQLite copies each page a savepoint changes to a
    statement journal; FTS5 writes its pending terms out as a new segment at each one), so a group runs without
    them; when a write raises, the group runs again with one per write, and the failing write rolls back alone."""
    db = SqliteDatabase(f"sqlite:///{tmp_path / 'hub.db'}")
    await db.write(lambda tx: tx.exec("CREATE TABLE t (name TEXT)"))
    statements: list[str] = []
    release = threading.Event()

    def blocker(tx: Any) -> None:
        tx._c.set_trace_callback(statements.append)
        release.wait(10)  # holds the writer while the others queue: they run as one group

    def insert(name: str, fails: bool = False, undoable: bool = False) -> Any:
        def fn(tx: Tx) -> str:
            tx.exec("INSERT INTO t (name) VALUES (?)", (name,))
            if undoable:
                with tx.undoable():
                    tx.exec("INSERT INTO t (name) VALUES (?)", (name + "+",))
            if fails:
                raise RuntimeError(name)
            return name
        return fn

    async def group(*fns: Any) -> list[Any]:
        first = asyncio.ensure_future(db.write(blocker))
        await asyncio.sleep(0.05)
        writes = [asyncio.ensure_future(db.write(fn)) for fn in fns]
        await asyncio.sleep(0.01)
        statements.clear()
        release.set()
        await first
        out = await asyncio.gather(*writes, return_exceptions=True)
        release.clear()
        return out

    assert await group(insert("a"), insert("b", undoable=True), insert("c")) == ["a", "b", "c"]
    assert statements.count("BEGIN IMMEDIATE") == 1 and not [s for s in statements if "SAVEPOINT" in s]
    out = await group(insert("d"), insert("e", fails=True), insert("f", undoable=True))
    assert out[0] == "d" and isinstance(out[1], RuntimeError) and out[2] == "f"
    assert statements.count("BEGIN IMMEDIATE") == 2 and statements.count("SAVEPOINT hub_write") == 3
    rows = await db.read(lambda tx: tx.all("SELECT name FROM t ORDER BY rowid"))
    assert [r["name"] for r in rows] == ["a", "b", "b+", "c", "d", "f", "f+"]
    await db.close()


async def test_postgres_group_commit_runs_waiting_writes_in_one_transaction_and_a_failing_one_alone(
    pg_url: str,
) -> None:
    """On PostgreSQL too, the writes waiting share one transaction: one BEGIN and one COMMIT (and one WAL flush) for
    the group instead of a pair per write, the round trips that cost the hub as much CPU as the statements. A write
    that raises rolls back alone; the others commit, once each."""
    db = PostgresDatabase(pg_url, pool_size=2)  # one group at a time: the others' threads are for reads
    await db.write(lambda tx: tx.exec("CREATE TABLE t (name TEXT, xid TEXT)"))
    release = threading.Event()
    runs: dict[str, int] = {}

    def blocker(tx: Tx) -> None:
        release.wait(10)  # holds the group's thread while the others queue: they run as one group

    def insert(name: str, fails: bool = False) -> Any:
        def fn(tx: Tx) -> str:
            runs[name] = runs.get(name, 0) + 1
            tx.exec("INSERT INTO t (name, xid) VALUES (?, pg_current_xact_id()::text)", (name,))
            if fails:
                raise RuntimeError(name)
            return name
        return fn

    try:
        first = asyncio.ensure_future(db.write(blocker))
        await asyncio.sleep(0.05)
        names = [f"w{i}" for i in range(16)]
        writes = [asyncio.ensure_future(db.write(insert(n, fails=n == "w5"))) for n in names]
        await asyncio.sleep(0.05)
        release.set()
        await first
        out = await asyncio.gather(*writes, return_exceptions=True)
        assert isinstance(out[5], RuntimeError) and [o for o in out if isinstance(o, str)] == names[:5] + names[6:]
        rows = await db.read(lambda tx: tx.all("SELECT name, xid FROM t ORDER BY name"))
        assert sorted(r["name"] for r in rows) == sorted(names[:5] + names[6:])
        assert len({r["xid"] for r in rows}) == 1  # 15 writes, one transaction
        # Run without savepoints up to the failing write, then all again with a savepoint each: only the last run of
        # each committed.
        assert runs == {n: 2 if i <= 5 else 1 for i, n in enumerate(names)}
    finally:
        await db.close()


async def test_postgres_group_commits_let_reads_waiting_for_the_pool_go_between_them(pg_url: str) -> None:
    """A steady flow of writes never keeps reads off the pool: after each group the writes still waiting queue
    behind the reads submitted meanwhile."""
    db = PostgresDatabase(pg_url, pool_size=1)  # one thread for groups and reads alike
    order: list[str] = []
    release = threading.Event()

    def blocker(tx: Tx) -> None:
        order.append("blocker")
        release.wait(10)

    def write(name: str) -> Any:
        return lambda tx: order.append(name)

    try:
        first = asyncio.ensure_future(db.write(blocker))
        await asyncio.sleep(0.05)
        read = asyncio.ensure_future(db.read(lambda tx: order.append("read")))
        await asyncio.sleep(0.01)
        writes = [asyncio.ensure_future(db.write(write(f"w{i}"))) for i in range(3)]
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(first, read, *writes)
        assert order == ["blocker", "read", "w0", "w1", "w2"]
    finally:
        await db.close()


async def test_postgres_groups_side_by_side_lock_in_the_writes_order_and_never_deadlock(
    pg_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Two groups running side by side (two workers here), each with a write that locks customer a and one that
    locks customer b, submitted in opposite order: each group runs its writes in their ORDER, so both lock a before
    b, and the second waits for the first's COMMIT instead of for PostgreSQL's deadlock check (1 s), after which
    one group ran again."""
    one, two = PostgresDatabase(pg_url, pool_size=2), PostgresDatabase(pg_url, pool_size=2)  # one group at a time
    await one.write(lambda tx: tx.script("CREATE TABLE c (name TEXT PRIMARY KEY); INSERT INTO c VALUES ('a'), ('b')"))
    release = threading.Event()
    runs: list[str] = []

    def blocker(tx: Tx) -> None:
        release.wait(10)  # holds its database's group thread while the two writes queue: they run as one group

    def lock(name: str) -> Any:
        def fn(tx: Tx) -> None:
            runs.append(name)
            tx.one("SELECT name FROM c WHERE name = ?" + tx.for_update, (name,))
            tx.one("SELECT pg_sleep(0.2)")  # the other group takes its first lock meanwhile
        return fn

    caplog.set_level("INFO", logger="hub.db")
    try:
        blockers = [asyncio.ensure_future(db.write(blocker)) for db in (one, two)]
        await asyncio.sleep(0.05)
        writes = [asyncio.ensure_future(one.write(lock("b"), order="b")),
                  asyncio.ensure_future(one.write(lock("a"), order="a")),
                  asyncio.ensure_future(two.write(lock("a"), order="a")),
                  asyncio.ensure_future(two.write(lock("b"), order="b"))]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*blockers, *writes)
        assert "aborted by PostgreSQL" not in caplog.text
        assert sorted(runs) == ["a", "a", "b", "b"]  # each write ran once: no group ran again
    finally:
        await one.close()
        await two.close()


def test_a_script_splits_at_semicolons_but_inside_a_trigger_body_or_a_function_body() -> None:
    """Migrations are scripts: a SQLite trigger's BEGIN ... END and a PostgreSQL function's $$ ... $$ body are one
    statement each, semicolons and all; a PostgreSQL trigger (no body of its own) ends at its semicolon."""
    sqlite = ("CREATE TABLE t (id INTEGER);\nCREATE TRIGGER t_log AFTER INSERT ON t WHEN new.id > 0 BEGIN\n"
              "    INSERT INTO t (id) VALUES (-1); DELETE FROM t WHERE id < -1;\nEND;\nCREATE INDEX t_id ON t (id)")
    assert [s.split()[1] for s in _statements(sqlite)] == ["TABLE", "TRIGGER", "INDEX"]
    assert _statements(sqlite)[1].endswith("DELETE FROM t WHERE id < -1; END")
    body = "BEGIN\n    INSERT INTO log VALUES (NEW.id);\n    RETURN NULL;\nEND;"
    postgresql = (f"CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\n{body}\n$$;\n"
                  "CREATE TRIGGER t_log AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();\n"
                  "CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $fn$ SELECT 1; $fn$;\nCREATE INDEX t_id ON t (id)")
    statements = _statements(postgresql)
    assert [s.split()[1] for s in statements] == ["FUNCTION", "TRIGGER", "FUNCTION", "INDEX"], statements
    assert body in statements[0] and statements[1].endswith("EXECUTE FUNCTION f()")
    assert statements[2].endswith("$fn$ SELECT 1; $fn$")
