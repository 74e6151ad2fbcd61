"""The database connection: SQLite (embedded default) or PostgreSQL behind one transaction API.

Every unit of work is a plain function of a `Tx`, run whole in a worker thread, so the event loop never blocks and
a transaction costs one thread hop. SQL is written once with `?` placeholders; the dialect translates.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
Row = Mapping[str, Any]
Params = Sequence[Any]

log = logging.getLogger("hub.db")


class Tx(Protocol):
    """One open transaction. Rows are read-only mappings keyed by column name."""

    dialect: str
    #: appended to a SELECT to lock the rows it reads until commit (empty where the whole db is locked)
    for_update: str

    def one(self, sql: str, params: Params = ()) -> Row | None: ...
    def all(self, sql: str, params: Params = ()) -> list[Row]: ...
    def exec(self, sql: str, params: Params = ()) -> int: ...
    def script(self, sql: str) -> None: ...
    #: a block whose writes are undone when it raises, the transaction going on (see _undoable)
    def undoable(self) -> AbstractContextManager[None]: ...


class _Redo(BaseException):
    """A block that must be undoable failed in a transaction run without savepoints: the database rolls the
    transaction back and runs it again, this time with savepoints (see _undoable). Not an Exception, so that the
    block's own `except Exception` does not take it for the block's failure."""


@contextmanager
def _undoable(tx: Tx, careful: bool) -> Iterator[None]:
    """Tx.undoable. CAREFUL: in a savepoint, rolled back when the block raises (the exception goes on to the caller,
    who keeps what the transaction wrote before the block). Otherwise (how every write runs first) no savepoint: a
    savepoint costs (SQLite copies each page it changes to a statement journal, and FTS5 writes its pending terms out
    as a new index segment at each one), and most blocks do not fail; one that does raises _Redo, and the whole
    transaction runs again with CAREFUL set. A write may then run twice, as on PostgreSQL after a deadlock: only its
    last run commits."""
    if not careful:
        try:
            yield
        except Exception as e:
            raise _Redo from e
        return
    tx.exec("SAVEPOINT hub_undoable")
    try:
        yield
    except Exception:
        tx.exec("ROLLBACK TO SAVEPOINT hub_undoable")
        tx.exec("RELEASE SAVEPOINT hub_undoable")
        raise
    tx.exec("RELEASE SAVEPOINT hub_undoable")


class Database(Protocol):
    dialect: str
    url: str

    async def read(self, fn: Callable[[Tx], T]) -> T: ...
    #: BACKGROUND: work nobody waits on (the reports roller, automation): SQLite runs it in a transaction of its own,
    #: after the writes waiting before it (see SqliteDatabase)
    #: ORDER: what the write locks first, when it is one thing (the inbound path: the customer's identity). A
    #: PostgreSQL group runs its writes in this order (those without one first), so that two groups side by side take
    #: those locks in the same order and never wait on each other in a circle (see PostgresDatabase)
    async def write(self, fn: Callable[[Tx], T], background: bool = False, order: str = "") -> T: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class _SqliteTx:
    dialect = "sqlite"
    for_update = ""

    def __init__(self, conn: sqlite3.Connection, careful: bool = True) -> None:
        self._c = conn
        self._careful = careful

    def one(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = self._c.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        return list(self._c.execute(sql, params).fetchall())

    def exec(self, sql: str, params: Params = ()) -> int:
        return self._c.execute(sql, params).rowcount

    def script(self, sql: str) -> None:
        for stmt in _statements(sql):
            self._c.execute(stmt)

    def undoable(self) -> AbstractContextManager[None]:
        return _undoable(self, self._careful)


_DOLLAR_QUOTE = re.compile(r"\$[A-Za-z_]*\$")
_BEGIN = re.compile(r"\bBEGIN\b", re.IGNORECASE)


def _parts(sql: str) -> list[str]:
    """SQL split at each semicolon outside a dollar-quoted text (a PostgreSQL function's body: $$ ... $$)."""
    parts: list[str] = []
    start = i = 0
    while (semi := sql.find(";", i)) >= 0:
        quote = _DOLLAR_QUOTE.search(sql, i, semi)
        if quote is None:
            parts.append(sql[start:semi])
            start = i = semi + 1
            continue
        end = sql.find(quote.group(), quote.end())
        if end < 0:
            break  # unclosed: the rest is one statement
        i = end + len(quote.group())
    parts.append(sql[start:])
    return parts


def _statements(sql: str) -> list[str]:
    out: list[str] = []
    for part in (s.strip() for s in _parts(sql)):
        # A SQLite trigger's body has semicolons of its own: CREATE TRIGGER ... BEGIN ... END is one statement.
        last = out[-1].upper() if out else ""
        if last.startswith("CREATE TRIGGER") and _BEGIN.search(last) and not last.endswith("END"):
            out[-1] += "; " + part if part else ""
        elif part:
            out.append(part)
    return out


# At most this many waiting writes share one transaction.
GROUP_COMMIT_MAX = 64
#: how often, at most, a commit starts a WAL checkpoint on the checkpoint thread (SqliteDatabase)
CHECKPOINT_SECONDS = 1.0
#: past this many WAL pages (4 KB) the commit checkpoints, as SQLite does by default at 1,000: see SqliteDatabase
WAL_BACKSTOP_PAGES = 10_000

#: a write waiting for its group: its function, its future, the future's loop, and its ORDER (see Database.write)
_Pending = tuple[Callable[[Tx], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop, str]


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, err in outcomes:
        if fut.cancelled():
            continue
        if err is not None:
            fut.set_exception(err)
        else:
            fut.set_result(value)


def _wake(outcomes: list[tuple[_Pending, Any, BaseException | None]]) -> None:
    """Hands each write's outcome back to its event loop, with one wake-up per loop for the whole batch: each
    call_soon_threadsafe writes to the loop's self-pipe, a system call that also hands the GIL over."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for (_fn, fut, loop, _order), value, err in outcomes:
        by_loop.setdefault(loop, []).append((fut, value, err))
    for loop, settled in by_loop.items():
        loop.call_soon_threadsafe(_settle, settled)


class SqliteDatabase:
    """WAL mode; one writer thread (SQLite allows one writer) and a few reader threads with their own connections.

    Writes are group-committed: every write waiting when the writer thread gets to it runs in one transaction, and
    no caller hears back before the shared COMMIT. One commit then serves many messages under load. A failing write
    rolls back alone, as if it had its own transaction: the group runs without savepoints (they cost: see
    _undoable), and when a write raises, the transaction is rolled back and the group runs again, each write inside
    its own savepoint.

    Background writes (the reports roller's slices, automation's batches: nobody waits on them) never join a group:
    each runs in a transaction of its own, after the other writes waiting (one group of them: a background write
    waits for at most one group, so a steady flow does not starve it). An acknowledgement then waits behind at most
    one background write, never inside its transaction.

    No COMMIT runs a WAL checkpoint (SQLite's default runs one inside the commit that crosses 1,000 pages: copying
    the WAL into the database file and an fsync, while every acknowledgement in the batch waits). A thread of its
    own checkpoints instead (PASSIVE: it never blocks the writer), started by a commit at most every
    CHECKPOINT_SECONDS, and going again each CHECKPOINT_SECONDS until it has copied the whole WAL. The writer starts
    the WAL over once a checkpoint has caught up with it; under writes without a pause it may never catch up, so
    SQLite's own checkpoint in the commit stays as a backstop, at WAL_BACKSTOP_PAGES instead of 1,000: the WAL stops
    growing there.
    """

    dialect = "sqlite"

    def __init__(
        self, url: str, readers: int = 4, synchronous: str = "normal", checkpoint_seconds: float = CHECKPOINT_SECONDS,
        wal_backstop_pages: int = WAL_BACKSTOP_PAGES,
    ) -> None:
        self.url = url
        self.path = url.removeprefix("sqlite:///")
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous.upper()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="hub-db-write")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="hub-db-read")
        self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="hub-db-checkpoint")
        self._checkpoint_seconds = checkpoint_seconds
        self._checkpoint_due = time.monotonic() + checkpoint_seconds
        self._checkpointing = False
        self._checkpoint_again = False  # a commit landed while a checkpoint ran: its frames may not be copied
        self._checkpoint_lock = threading.Lock()
        self._closing = threading.Event()
        self._wal_backstop_pages = wal_backstop_pages
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._background: list[_Pending] = []
        self._background_turn = False
        self._draining = False

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            # See the class: _checkpoint does it off the commit; SQLite's own (in the commit) is the backstop.
            conn.execute(f"PRAGMA wal_autocheckpoint={int(self._wal_backstop_pages)}")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _run(self, fn: Callable[[Tx], T], begin: str) -> T:
        conn = self._conn()
        conn.execute(begin)
        try:
            result = fn(_SqliteTx(conn))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def read(self, fn: Callable[[Tx], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._run, fn, "BEGIN")

    async def write(self, fn: Callable[[Tx], T], background: bool = False, order: str = "") -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        with self._lock:
            # ORDER is not needed: one writer, so a group never waits on another's locks.
            (self._background if background else self._pending).append((fn, fut, loop, order))
            start, self._draining = not self._draining, True
        if start:
            self._writer.submit(self._drain)
        return await fut

    def _drain(self) -> None:
        while True:
            with self._lock:
                if self._background and (self._background_turn or not self._pending):
                    # Alone, and after at most one group of the others: they never wait inside its transaction,
                    # and it is never starved by them.
                    batch, self._background_turn = [self._background.pop(0)], False
                else:
                    batch, self._pending = self._pending[:GROUP_COMMIT_MAX], self._pending[GROUP_COMMIT_MAX:]
                    self._background_turn = bool(self._background)
                if not batch:
                    self._draining = False
                    return
            try:
                outcomes = [(item, value, err) for item, (value, err) in zip(batch, self._group(batch), strict=True)]
            except Exception as e:  # the transaction itself failed: none of the batch is durable
                outcomes = [(item, None, e) for item in batch]
            else:
                self._checkpoint_soon()
            # One wake-up per event loop for the whole batch: each call_soon_threadsafe writes to the loop's
            # self-pipe, a system call that also hands the GIL over, which per write cost as much as a statement.
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
            for (_fn, fut, loop, _order), value, err in outcomes:
                by_loop.setdefault(loop, []).append((fut, value, err))
            for loop, settled in by_loop.items():
                loop.call_soon_threadsafe(_settle, settled)

    def _group(self, batch: list[_Pending]) -> list[tuple[Any, BaseException | None]]:
        """Runs BATCH in one transaction and commits it: each write's (value, None), or (None, exception) for a write
        that raised, rolled back alone. The writes run without savepoints first (see _undoable: nearly every batch);
        when one raises, the transaction is rolled back and the batch runs again, each write in a savepoint of its
        own. Raises when the transaction itself fails."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            try:
                done: list[tuple[Any, BaseException | None]] = [
                    (fn(_SqliteTx(conn, careful=False)), None) for fn, _fut, _loop, _order in batch
                ]
            except (Exception, _Redo) as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if len(batch) == 1 and isinstance(e, Exception):
                    return [(None, e)]  # alone: nothing of it is kept, as with a savepoint of its own
                conn.execute("BEGIN IMMEDIATE")
                done = []
                for fn, _fut, _loop, _order in batch:
                    conn.execute("SAVEPOINT hub_write")
                    try:
                        done.append((fn(_SqliteTx(conn)), None))
                    except Exception as e:
                        conn.execute("ROLLBACK TO SAVEPOINT hub_write")
                        done.append((None, e))
                    conn.execute("RELEASE SAVEPOINT hub_write")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return done

    def _checkpoint_soon(self) -> None:
        """On the writer, after a commit: start a checkpoint when one is due and none is running."""
        now = time.monotonic()
        with self._checkpoint_lock:
            if self._checkpointing:
                self._checkpoint_again = True
                return
            if now < self._checkpoint_due:
                return
            self._checkpointing, self._checkpoint_due = True, now + self._checkpoint_seconds
        try:
            self._checkpointer.submit(self._checkpoint)
        except RuntimeError:  # closing: the last connection's close checkpoints
            with self._checkpoint_lock:
                self._checkpointing = False

    def _checkpoint(self) -> None:
        """Checkpoints until the WAL is copied. One that copied less than the WAL holds (a reader on an older
        snapshot) or that commits overtook (the end of a burst) goes again after CHECKPOINT_SECONDS by itself: no
        later commit may come to start one."""
        while True:
            with self._checkpoint_lock:
                self._checkpoint_again = False
            complete = False
            try:
                # PASSIVE: copies what no reader still needs and waits for nobody; the next writer reuses the WAL.
                row = self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                complete = row is not None and row[1] == row[2]  # (busy, frames in the WAL, frames copied)
            except sqlite3.Error as e:  # goes again below
                log.warning("WAL checkpoint failed: %s", e)
            with self._checkpoint_lock:
                if complete and not self._checkpoint_again:
                    self._checkpointing = False
                    return
            if self._closing.wait(max(self._checkpoint_seconds, 0.05)):  # closing: the last close checkpoints
                with self._checkpoint_lock:
                    self._checkpointing = False
                return

    async def ping(self) -> bool:
        try:
            return await self.read(lambda tx: tx.one("SELECT 1 AS ok") is not None)
        except sqlite3.Error:
            return False

    async def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._closing.set()
        self._checkpointer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._lock:
            for c in self._conns:
                c.close()
            self._conns.clear()


class _PgTx:
    dialect = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, conn: Any, careful: bool = True) -> None:
        self._c = conn
        # One cursor for the whole transaction: Connection.execute makes a new one per statement, a third of the
        # client's CPU for a short statement (every row is fetched before the next statement runs).
        self._cur = conn.cursor()
        self._careful = careful

    @staticmethod
    def _sql(sql: str) -> str:
        # Our SQL never contains a literal % or ?, so the placeholder swap is safe.
        return sql.replace("%", "%%").replace("?", "%s")

    def one(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = self._cur.execute(self._sql(sql), params).fetchone()
        return row

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        return list(self._cur.execute(self._sql(sql), params).fetchall())

    def exec(self, sql: str, params: Params = ()) -> int:
        rc: int = self._cur.execute(self._sql(sql), params).rowcount
        return rc

    def script(self, sql: str) -> None:
        for stmt in _statements(sql):
            self._c.execute(stmt)

    def undoable(self) -> AbstractContextManager[None]:
        return _undoable(self, self._careful)


class PostgresDatabase:
    """A small pool of threads, each with its own psycopg connection, reconnected when broken.

    Writes are group-committed, as on SQLite (see SqliteDatabase): every write waiting when the pool gets to it runs
    in one transaction on one connection, and no caller hears back before the shared COMMIT. A message's write is
    about ten short statements; its own transaction added a BEGIN and a COMMIT (two more round trips and a WAL flush),
    and a thread hop and a wake-up of the event loop each, which on PostgreSQL cost as much hub CPU as the
    statements (docs/performance.md). Groups run side by side on all but one of the pool's threads (one at a time
    waited for the GIL after each round trip, and PostgreSQL sat idle); reads and background writes (the reports
    roller's slices: nobody waits on them, and they are long) run on the pool too, each in a transaction of its
    own, and a group queues the next one behind those submitted meanwhile. A write that raises rolls back alone:
    the group is rolled back and runs again with a savepoint per write (see _undoable). A deadlock or serialization
    failure reruns the whole group, as it reran a write alone: a write may run twice, only its last run commits.
    A group holds its locks until its COMMIT, so two groups side by side (in one process or in two) that locked two
    customers in opposite order would wait on each other until PostgreSQL's deadlock check (deadlock_timeout, 1 s)
    aborted one: a group runs its writes in their ORDER (Database.write), which the inbound path sets to the
    customer's identity, so that groups take customers' locks in one order."""

    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 4) -> None:
        self.url = url
        self._pool = ThreadPoolExecutor(pool_size, thread_name_prefix="hub-db-pg")
        self._local = threading.local()
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        # Groups run side by side on this many threads (one is left to reads and background writes): a group waits
        # for the GIL after each of its round trips, so one at a time left PostgreSQL idle (see the class).
        self._lanes = max(1, pool_size - 1)
        self._draining = 0

    def _conn(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(self.url, row_factory=dict_row, autocommit=False, connect_timeout=10)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _run(self, fn: Callable[[Tx], T]) -> T:
        attempt, careful = 1, False  # without savepoints first: see _undoable
        while True:
            conn = self._conn()
            try:
                with conn.transaction():
                    return fn(_PgTx(conn, careful))
            except _Redo:
                careful = True
            except Exception as e:
                if not retryable(e) or attempt == 3:
                    raise
                log.info("transaction aborted by PostgreSQL (%s); running it again", type(e).__name__)
                time.sleep(random.uniform(0.005, 0.05) * attempt)
                attempt += 1

    def _drain(self) -> None:
        """On a pool thread: group-commits the writes waiting (see the class), then queues itself again behind the
        reads submitted meanwhile, so that under a steady flow of writes the groups never keep reads off the pool."""
        with self._lock:
            batch, self._pending = self._pending[:GROUP_COMMIT_MAX], self._pending[GROUP_COMMIT_MAX:]
            if not batch:
                self._draining -= 1
                return
        # In ORDER (stable: writes with the same order, or none, keep their turn): see Database.write.
        batch.sort(key=lambda item: item[3])
        try:
            outcomes = [(item, value, err) for item, (value, err) in zip(batch, self._group(batch), strict=True)]
        except Exception as e:  # the transaction itself failed: none of the batch is durable
            outcomes = [(item, None, e) for item in batch]
        _wake(outcomes)
        try:
            self._pool.submit(self._drain)
        except RuntimeError:  # closing: the pool takes no more work, so the writes still waiting go here
            self._drain()

    def _group(self, batch: list[_Pending]) -> list[tuple[Any, BaseException | None]]:
        """Runs BATCH in one transaction and commits it: each write's (value, None), or (None, exception) for a write
        that raised, rolled back alone. Raises when the transaction itself fails."""
        attempt = 1
        while True:
            try:
                return self._group_once(self._conn(), batch)
            except Exception as e:
                if not retryable(e) or attempt == 3:
                    raise
                log.info("transaction aborted by PostgreSQL (%s); running its %d writes again", type(e).__name__,
                         len(batch))
                time.sleep(random.uniform(0.005, 0.05) * attempt)
                attempt += 1

    @staticmethod
    def _group_once(conn: Any, batch: list[_Pending]) -> list[tuple[Any, BaseException | None]]:
        try:
            with conn.transaction():  # without savepoints first: see _undoable
                tx = _PgTx(conn, careful=False)  # one for the group: its cursor serves every write
                return [(fn(tx), None) for fn, _fut, _loop, _order in batch]
        except (Exception, _Redo) as e:
            # An error met inside an undoable block arrives as a _Redo (raised from it): a deadlock or a broken
            # connection there goes on to _group as it would from outside one.
            cause = e if isinstance(e, Exception) else e.__cause__
            assert isinstance(cause, Exception)
            if conn.broken or retryable(cause):
                if cause is e:
                    raise
                raise cause from None
            if len(batch) == 1 and isinstance(e, Exception):
                return [(None, e)]  # alone: nothing of it is kept, as with a savepoint of its own
        done: list[tuple[Any, BaseException | None]] = []
        with conn.transaction():
            for fn, _fut, _loop, _order in batch:
                try:
                    with conn.transaction():  # a savepoint: rolled back when the write raises
                        done.append((fn(_PgTx(conn)), None))
                except Exception as e:
                    if retryable(e):
                        raise  # the whole group runs again
                    done.append((None, e))
        return done

    def _run_read(self, fn: Callable[[Tx], T]) -> T:
        import psycopg

        try:
            return self._run(fn)
        except psycopg.OperationalError:
            # A connection the server dropped (restart, failover, idle kill) shows up on its next use. A read is
            # safe to repeat on a fresh connection; a write is not (it may have committed), so writes surface it.
            if not getattr(self._local.conn, "broken", False):
                raise
            log.warning("database connection was lost; reconnecting")
            return self._run(fn)

    async def read(self, fn: Callable[[Tx], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run_read, fn)

    async def write(self, fn: Callable[[Tx], T], background: bool = False, order: str = "") -> T:
        loop = asyncio.get_running_loop()
        if background:  # alone, beside the group: see the class
            return await loop.run_in_executor(self._pool, self._run, fn)
        fut: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._pending.append((fn, fut, loop, order))
            start = self._draining < self._lanes
            self._draining += start
        if start:
            self._pool.submit(self._drain)
        return await fut

    async def ping(self) -> bool:
        import psycopg

        try:
            return await self.read(lambda tx: tx.one("SELECT 1 AS ok") is not None)
        except psycopg.Error:
            return False

    async def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for c in self._conns:
                c.close()
            self._conns.clear()


class Conflict(Exception):
    """A write found that another transaction committed, since the write looked, a row it was about to insert (a
    unique key): run the transaction again whole, as after a deadlock, and the write then sees that row. Only where
    transactions run side by side (PostgreSQL); SQLite's one writer sees every commit before it starts."""


def retryable(e: BaseException) -> bool:
    """PostgreSQL aborted the transaction to break a deadlock or a serialization conflict, or a write met a Conflict:
    run it again whole."""
    import psycopg.errors

    return isinstance(e, Conflict | psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure)


def open_database(url: str, pool_size: int = 4, sqlite_synchronous: str = "normal") -> Database:
    if url.startswith("sqlite:///"):
        return SqliteDatabase(url, readers=pool_size, synchronous=sqlite_synchronous)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url, pool_size=pool_size)
    raise ValueError(f"unsupported database url {url!r}: use sqlite:///PATH or postgresql://...")


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
