"""`python -m bench.inbox`: the inbox and search of a real `hub serve` at a big center's scale (default: 100,000 open
conversations over 1,000 agents and 50 queues, 10,000,000 messages in all), over HTTP with signed-in console sessions,
p50/p99 beside /healthz and beside the same store calls made directly on the database in the same run.
Targets: the inbox p99 < 20 ms; message and customer search p99 < 50 ms.

The history is bulk-loaded (big transactions on SQLite, COPY on PostgreSQL), streamed a batch at a time, into the
hub's own tables after the hub migrated them, so the search indexes are the hub's: their definitions are read from
the database, dropped for the load and made again after it (the FTS5 tables filled by 'rebuild', then their triggers;
the generated words column and its GIN index on PostgreSQL, migration 111)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.database import fresh_database
from bench.load import percentile
from bench.processes import create_token, hub_server
from hub.agents import hash_password
from hub.api.auth import Principal
from hub.api.schemas import ViewFilters
from hub.console.handlers import _inbox
from hub.history import store
from hub.history.db import Database, Tx, open_database, redact
from hub.inbox import views
from hub.model import format_time

RESULTS = Path(__file__).resolve().parent / "results" / "inbox.json"
TARGET_INBOX_MS = 20.0
TARGET_SEARCH_MS = 50.0
PASSWORD = "bench-inbox-password"
FIRST = ("Maria", "James", "Wei", "Aisha", "Lucas", "Sofia", "Omar", "Yuki", "Elena", "David", "Fatima", "Noah",
         "Chloe", "Ivan", "Priya", "Mateo", "Hana", "Samuel", "Leila", "Tomas")
LAST = ("Garcia", "Smith", "Chen", "Khan", "Silva", "Rossi", "Haddad", "Tanaka", "Petrova", "Cohen", "Okafor",
        "Muller", "Dubois", "Novak", "Sharma", "Lopez", "Kim", "Jensen", "Nasser", "Costa")
#: words most messages are made of (the common search word is one of them) ...
COMMON = ("order", "refund", "delivery", "please", "thanks", "account", "payment", "help", "today", "package",
          "invoice", "address", "tracking", "card", "update", "cancel", "return", "shipping", "issue", "received")
#: ... and a long tail of others, Zipf-like, so the index has a realistic number of distinct terms
TAIL = 50_000
#: the rare search word, in RARE_HITS messages spread through the history
RARE = "zanzibar"
RARE_HITS = 50
CHANNELS = ("sms", "email", "webchat", "whatsapp", "voice")


def progress(line: str) -> None:
    print(f"[bench.inbox {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.inbox", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", action="append", metavar="sqlite|URL", help="sqlite (a fresh temporary file) or a "
                   "postgresql:// server URL (a fresh database is created there and dropped afterwards); repeat it "
                   "to measure both (default: sqlite)")
    p.add_argument("--conversations", type=int, default=100_000, metavar="N", help="open conversations")
    p.add_argument("--messages", type=int, default=10_000_000, metavar="N",
                   help="messages in all; conversations beyond the open ones are resolved history, about 20 "
                        "messages each")
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--queues", type=int, default=50)
    p.add_argument("--requests", type=int, default=100, metavar="N", help="requests per case")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--seeded", action="store_true",
                   help="with --db sqlite:///PATH (a file kept after the run) or a postgresql:// URL naming a database "
                        "kept by --keep: it was seeded by an earlier run with the same sizes and --seed; measure only")
    p.add_argument("--keep", action="store_true",
                   help="leave the PostgreSQL database on the server (its URL is printed; drop it yourself)")
    return p


@dataclass(frozen=True)
class Shape:
    """Who and what is seeded: ids are dense from 1, resolved conversations first (older), then the open ones."""

    open: int
    conversations: int
    customers: int
    messages: int
    agents: int
    queues: int

    @classmethod
    def of(cls, args: argparse.Namespace) -> Shape:
        conversations = max(args.conversations, args.messages // 20)
        customers = args.conversations + (conversations - args.conversations) // 2
        return cls(args.conversations, conversations, customers, args.messages, args.agents, args.queues)

    def queue(self, conv: int) -> str:
        return f"q{conv % self.queues:02d}"

    def agent_queues(self, agent: int) -> list[str]:
        """A supervisor (the last 2%) works every queue; an agent two."""
        if self.supervisor(agent):
            return [f"q{q:02d}" for q in range(self.queues)]
        return sorted({f"q{agent % self.queues:02d}", f"q{(agent * 7 + 3) % self.queues:02d}"})

    def supervisor(self, agent: int) -> bool:
        return agent > self.agents - max(1, self.agents // 50)

    def members(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for a in range(1, self.agents + 1):
            if not self.supervisor(a):
                for q in self.agent_queues(a):
                    out.setdefault(q, []).append(a)
        return out

    def customer(self, conv: int) -> int:
        """Open conversation k (the last OPEN ids) is customer k's one open conversation; history is spread."""
        resolved = self.conversations - self.open
        if conv > resolved:
            return conv - resolved
        return (conv - 1) % self.customers + 1

    def identity(self, customer: int) -> tuple[str, str, str]:
        """(name, phone, email) of a customer."""
        first, last = FIRST[customer % len(FIRST)], LAST[(customer // len(FIRST)) % len(LAST)]
        return (f"{first} {last}", f"+1415{customer:07d}",
                f"{first.lower()}.{last.lower()}{customer}@example.com")


def _words(rng: random.Random, messages: int) -> Callable[[int], str]:
    every = max(1, messages // RARE_HITS)
    tail = [f"w{n}" for n in range(TAIL)]
    weights = [1 / (n + 1) for n in range(TAIL)]
    cum = [0.0] * TAIL
    total = 0.0
    for n, w in enumerate(weights):
        total += w
        cum[n] = total

    def text(i: int) -> str:
        words = rng.choices(COMMON, k=rng.randint(3, 8)) + rng.choices(tail, cum_weights=cum, k=rng.randint(1, 5))
        if i % every == every // 2:
            words.append(RARE)
        rng.shuffle(words)
        return " ".join(words)

    return text


def _rows(shape: Shape, seed: int, now: datetime) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """(table, rows) in batches, in primary-key order."""
    rng = random.Random(seed)
    stamp = format_time(now)
    yield "queues", [(f"q{q:02d}", f"Queue {q:02d}") for q in range(shape.queues)]
    digest = hash_password(PASSWORD)  # one hash for all: each agent can sign in
    yield "agents", [(a, f"Agent {a}", f"agent{a}@example.com", "supervisor" if shape.supervisor(a) else "agent",
                      digest, stamp) for a in range(1, shape.agents + 1)]
    yield "agent_queues", [(a, q) for a in range(1, shape.agents + 1) for q in shape.agent_queues(a)]
    batch = 100_000
    for first in range(1, shape.customers + 1, batch):
        ids = range(first, min(first + batch, shape.customers + 1))
        people = [(c, *shape.identity(c)) for c in ids]
        yield "customers", [(c, name, stamp, stamp) for c, name, _, _ in people]
        yield "identities", [row for c, _, phone, email in people
                             for row in ((2 * c - 1, c, "phone", phone, stamp), (2 * c, c, "email", email, stamp))]
    members = shape.members()
    text = _words(rng, shape.messages)
    resolved = shape.conversations - shape.open
    history_start = now - timedelta(days=365)
    per, extra = divmod(shape.messages, shape.conversations)
    convs: list[tuple[Any, ...]] = []
    msgs: list[tuple[Any, ...]] = []
    message_id = 0
    for conv in range(1, shape.conversations + 1):
        queue = shape.queue(conv)
        customer = shape.customer(conv)
        channel = CHANNELS[conv % len(CHANNELS)]
        is_open = conv > resolved
        if is_open:  # opened over the last week, the newest last
            opened = now - timedelta(days=7) * (1 - (conv - resolved) / (shape.open + 1))
            agent = rng.choice(members[queue]) if rng.random() < 0.8 else None
        else:
            opened = history_start + timedelta(days=358) * (conv / max(1, resolved))
            agent = rng.choice(members[queue])
        count = per + (1 if conv <= extra else 0)
        at = opened
        _, phone, email = shape.identity(customer)
        ident = f"email:{email}" if channel == "email" else f"phone:{phone}"
        for i in range(count):
            message_id += 1
            at = opened + timedelta(seconds=90 * i)
            inbound = i % 2 == 0 or agent is None
            t = format_time(at)
            msgs.append((message_id, conv, customer, channel, "in" if inbound else "out", "text", text(message_id),
                         "received" if inbound else "delivered", ident, None if inbound else agent, t, t))
        last = format_time(at)
        status = ("assigned" if agent else "open") if is_open else "resolved"
        convs.append((conv, customer, status, channel, queue, agent if status != "open" else None, channel,
                      format_time(opened), last, None if is_open else last))
        if len(msgs) >= batch:
            yield "conversations", convs
            yield "messages", msgs
            convs, msgs = [], []
    if convs or msgs:
        yield "conversations", convs
        yield "messages", msgs


COLUMNS = {
    "queues": "name, title",
    "agents": "id, name, email, role, password_hash, created_at",
    "agent_queues": "agent_id, queue",
    "customers": "id, name, created_at, updated_at",
    "identities": "id, customer_id, kind, value, created_at",
    "conversations": "id, customer_id, status, channel, queue, agent_id, last_inbound_channel, created_at, "
                     "updated_at, resolved_at",
    "messages": "id, conversation_id, customer_id, channel, direction, kind, text, status, identity, agent_id, "
                "created_at, updated_at",
}


def load(url: str, shape: Shape, seed: int, now: datetime) -> None:
    """Bulk-load the center into the migrated database, streamed a batch at a time. The loaded tables' secondary
    indexes, their foreign keys (PostgreSQL) and triggers (SQLite: the FTS5 tables' mirrors) are dropped first and
    made again from their own definitions afterwards, the FTS5 tables filled by 'rebuild': the same indexes the hub
    keeps, built once rather than a row at a time (10,000,000 messages: over an hour row by row)."""
    start, loaded = time.perf_counter(), 0
    if url.startswith("sqlite:///"):
        import sqlite3

        lite = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        lite.execute("PRAGMA journal_mode = WAL")
        lite.execute("PRAGMA synchronous = OFF")  # set-up only: the hub opens it with its own settings
        lite.execute("PRAGMA cache_size = -262144")  # 256 MB for the index builds
        again = _sqlite_deferred(lite)
        for table, rows in _rows(shape, seed, now):
            cols = COLUMNS[table]
            marks = ", ".join("?" for _ in cols.split(", "))
            lite.execute("BEGIN")
            lite.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
            lite.execute("COMMIT")
            loaded = _loaded(table, rows, loaded, shape, start)
        for sql in again:
            progress(sql.splitlines()[0][:100])
            lite.execute(sql)
        progress("ANALYZE")
        lite.execute("ANALYZE")
        lite.close()
    else:
        import psycopg

        with psycopg.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SET maintenance_work_mem = '512MB'")
            again = _postgres_deferred(cur)
            conn.commit()
            for table, rows in _rows(shape, seed, now):
                with cur.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as cp:
                    for row in rows:
                        cp.write_row(row)
                conn.commit()
                loaded = _loaded(table, rows, loaded, shape, start)
            for sql in again:
                progress(sql[:100])
                cur.execute(sql)
                conn.commit()
            for table in ("agents", "customers", "identities", "conversations", "messages"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            progress("ANALYZE")
            cur.execute("ANALYZE")
            conn.commit()


def _sqlite_deferred(lite: Any) -> list[str]:
    """Drop the loaded tables' indexes and triggers; the statements that make them again, the FTS5 tables whose
    content they are filled in between."""
    tables = ", ".join(f"'{t}'" for t in COLUMNS)
    found = lite.execute(f"SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
                         f"AND tbl_name IN ({tables}) AND sql IS NOT NULL").fetchall()
    fts = [name for name, sql in lite.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                              "AND sql LIKE 'CREATE VIRTUAL TABLE%USING fts5%'").fetchall()
           if any(f"content='{t}'" in sql for t in COLUMNS)]
    for kind, name, _ in found:
        lite.execute(f"DROP {kind.upper()} {name}")
    return ([sql for kind, _, sql in found if kind == "index"]
            + [f"INSERT INTO {name} ({name}) VALUES ('rebuild')" for name in fts]
            + [sql for kind, _, sql in found if kind == "trigger"])


def _postgres_deferred(cur: Any) -> list[str]:
    """Drop the loaded tables' foreign keys and the indexes no constraint owns; the statements that make them
    again."""
    tables = list(COLUMNS)
    indexes = cur.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid::regclass::text = ANY(%s) AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)", (tables,)).fetchall()
    keys = cur.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)", (tables,)).fetchall()
    for table, name, _ in keys:
        cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    for name, _ in indexes:
        cur.execute(f"DROP INDEX {name}")
    return [sql for _, sql in indexes] + [f"ALTER TABLE {t} ADD CONSTRAINT {n} {d}" for t, n, d in keys]


def _loaded(table: str, rows: list[tuple[Any, ...]], loaded: int, shape: Shape, start: float) -> int:
    if table != "messages":
        return loaded
    before, loaded = loaded, loaded + len(rows)
    if before // 500_000 != loaded // 500_000 or loaded == shape.messages:
        rate = loaded / max(1e-9, time.perf_counter() - start)
        progress(f"loaded {loaded:,}/{shape.messages:,} messages ({rate:,.0f}/s)")
    return loaded


@dataclass(frozen=True)
class Case:
    name: str
    who: str  # agent | supervisor | none
    path: str
    target_ms: float
    direct: Callable[[Tx], object] | None  # the same store call, made directly on the database


def cases(shape: Shape, now: datetime, targets: dict[str, float]) -> list[Case]:
    agent, boss = 1, shape.agents
    mine = Principal(0, "agent", agent, tuple(shape.agent_queues(agent)))
    sup = Principal(0, "supervisor", boss, tuple(shape.agent_queues(boss)))
    queue = shape.agent_queues(boss)[min(7, shape.queues - 1)]
    one = shape.open // 2 + 1  # a customer with an open conversation
    name, phone, email = shape.identity(one)
    mine_view = views.View("mine", "Mine", "builtin", ViewFilters(agent_id=agent))
    queue_view = views.View("filter", "Filtered", "filter", ViewFilters(queue=queue))

    def inbox(p: Principal, view: views.View | None) -> Callable[[Tx], object]:
        return lambda tx: _inbox(tx, p, 200, targets, view)

    def search(p: Principal, q: str) -> Callable[[Tx], object]:
        scope = (p.queues, p.agent_id)
        return lambda tx: (store.search_customers(tx, q, 20, *scope), store.search_messages(tx, q, *scope, 20))

    def customers(p: Principal, q: str) -> Callable[[Tx], object]:
        return lambda tx: store.search_customers(tx, q, 20, p.queues, p.agent_id)

    out = [
        Case("healthz (baseline)", "none", "/healthz", 0.0, lambda tx: tx.one("SELECT 1 AS one")),
        Case("inbox: an agent's work list", "agent", "/api/v1/inbox", TARGET_INBOX_MS, inbox(mine, None)),
        Case("inbox: an agent's Mine", "agent", "/api/v1/inbox?view=mine", TARGET_INBOX_MS, inbox(mine, mine_view)),
        Case("inbox: a supervisor's whole inbox", "supervisor", "/api/v1/inbox", TARGET_INBOX_MS, inbox(sup, None)),
        Case(f"inbox: a supervisor, queue {queue}", "supervisor", f"/api/v1/inbox?queue={queue}", TARGET_INBOX_MS,
             inbox(sup, queue_view)),
    ]
    for who, p in (("agent", mine), ("supervisor", sup)):
        out += [
            Case(f"search ({who}): a common word", who, "/api/v1/search?q=refund", TARGET_SEARCH_MS,
                 search(p, "refund")),
            Case(f"search ({who}): a rare word", who, f"/api/v1/search?q={RARE}", TARGET_SEARCH_MS, search(p, RARE)),
            Case(f"search ({who}): two words", who, "/api/v1/search?q=tracking+invoice", TARGET_SEARCH_MS,
                 search(p, "tracking invoice")),
            Case(f"search ({who}): a name", who, f"/api/v1/search?q={name.split()[1][:5]}", TARGET_SEARCH_MS,
                 search(p, name.split()[1][:5])),
            Case(f"search ({who}): a phone prefix", who, f"/api/v1/search?q={phone[1:9]}", TARGET_SEARCH_MS,
                 search(p, phone[1:9])),
            Case(f"search ({who}): a whole phone", who, f"/api/v1/search?q={phone[1:]}", TARGET_SEARCH_MS,
                 search(p, phone[1:])),
            Case(f"search ({who}): an email prefix", who, f"/api/v1/search?q={email.split('@')[0]}",
                 TARGET_SEARCH_MS, search(p, email.split("@")[0])),
        ]
    # Customer search alone (GET /api/v1/customers?q=), which /api/v1/search runs beside the message search.
    typed = f"+1 ({phone[2:5]}) {phone[5:8]}-{phone[8:]}"  # the whole phone as people write it
    for who, p in (("agent", mine), ("supervisor", sup)):
        for what, q in (("a whole phone", phone[1:]), ("a phone as typed", typed),
                        ("an email prefix", email.split("@")[0]), ("a word no customer has", "refund")):
            out.append(Case(f"customers ({who}): {what}", who, f"/api/v1/customers?q={quote(q)}&limit=20",
                            TARGET_SEARCH_MS, customers(p, q)))
    return out


async def _sign_in(base: str, email: str) -> aiohttp.ClientSession:
    s = aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True))  # unsafe: cookies for 127.0.0.1
    async with s.post("/console/session", json={"email": email, "password": PASSWORD}) as resp:
        if resp.status != 200:
            await s.close()
            raise RuntimeError(f"signing in {email}: {resp.status} {(await resp.text())[:300]}")
    return s


async def _timed(n: int, call: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """(p50, p99) in seconds of N calls after one that warms the caches."""
    times = []
    for i in range(n + 1):
        t0 = time.perf_counter()
        await call()
        if i:
            times.append(time.perf_counter() - t0)
    times.sort()
    return percentile(times, 50), percentile(times, 99)


async def measure(base: str, url: str, shape: Shape, all_cases: list[Case], n: int) -> list[dict[str, Any]]:
    sessions = {"agent": await _sign_in(base, "agent1@example.com"),
                "supervisor": await _sign_in(base, f"agent{shape.agents}@example.com"),
                "none": aiohttp.ClientSession(base)}
    db: Database = open_database(url)
    out: list[dict[str, Any]] = []
    try:
        for case in all_cases:
            s = sessions[case.who]
            sizes: list[int] = []

            async def get(s: aiohttp.ClientSession = s, path: str = case.path, sizes: list[int] = sizes) -> None:
                async with s.get(path) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{path}: {resp.status} {body[:300]!r}")
                sizes.append(_found(json.loads(body)))

            p50, p99 = await _timed(n, get)
            row: dict[str, Any] = {"case": case.name, "path": case.path, "found": sizes[-1], "p50": p50, "p99": p99,
                                   "target_ms": case.target_ms}
            if case.direct is not None:
                work = case.direct

                async def direct(work: Callable[[Tx], object] = work) -> None:
                    await db.read(work)

                row["direct_p50"], row["direct_p99"] = await _timed(n, direct)
            out.append(row)
            progress(f"{case.name}: {row['found']} found, p99 {p99 * 1000:.1f} ms "
                     f"(store directly {row.get('direct_p99', 0) * 1000:.1f} ms)")
    finally:
        for s in sessions.values():
            await s.close()
        await db.close()
    return out


def _found(body: Any) -> int:
    if isinstance(body, dict) and "items" in body:
        return len(body["items"])
    if isinstance(body, dict) and "messages" in body:
        return len(body["messages"]) + len(body["customers"])
    return 0


def report(db: str, shape: Shape, results: list[dict[str, Any]]) -> bool:
    """Print one database's table; whether every target was met."""
    base = results[0]["p50"]
    print(f"\nbench.inbox on {db.split('://')[0]}: {shape.open:,} open of {shape.conversations:,} conversations, "
          f"{shape.messages:,} messages, {shape.customers:,} customers, {shape.agents:,} agents, {shape.queues} "
          "queues; one connection, ms")
    print(f"{'case':<47} {'found':>5} {'p50':>7} {'p99':>7} {'store p50':>9} {'store p99':>9} {'p50/healthz':>11}  "
          "target")
    met = True
    for r in results:
        ok = r["target_ms"] == 0 or r["p99"] * 1000 < r["target_ms"]
        met = met and ok
        verdict = "" if r["target_ms"] == 0 else f"< {r['target_ms']:.0f} {'ok' if ok else 'MISSED'}"
        print(f"{r['case']:<47} {r['found']:>5} {r['p50'] * 1000:>7.2f} {r['p99'] * 1000:>7.2f} "
              f"{r.get('direct_p50', 0) * 1000:>9.2f} {r.get('direct_p99', 0) * 1000:>9.2f} "
              f"{r['p50'] / base:>10.1f}x  {verdict}")
    return met


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # SIGTERM (`timeout`, a CI's cancel) unwinds like Ctrl-C: the server stopped, the files and databases removed.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _database(db: str, workdir: Path, args: argparse.Namespace) -> Iterator[str]:
    """The database to measure: DB itself when --seeded, else a fresh one (left on the server with --keep)."""
    if args.seeded:
        yield db
        return
    with fresh_database(db, workdir, keep=args.keep) as url:
        if args.keep:
            progress(f"keeping {redact(url)}")
        yield url


def _run(args: argparse.Namespace) -> int:
    shape = Shape.of(args)
    now = datetime.now(UTC)
    # Each queue with a first-response target, so the inbox computes when a reply is due, as a center would set it.
    queues = {f"q{q:02d}": {"title": f"Queue {q:02d}", "first_response": 300} for q in range(shape.queues)}
    env = {"HUB_ROUTING__QUEUES": json.dumps(queues), "HUB_ROUTING__DEFAULT_QUEUE": "q00"}
    targets = {q: 300.0 for q in queues}
    met, out = True, {}
    for db in args.db or ["sqlite"]:
        with tempfile.TemporaryDirectory(prefix="hub-bench-inbox-") as tmp, _database(db, Path(tmp), args) as url:
            if args.seeded:
                progress(f"{redact(url)}: seeded by an earlier run, measuring only")
            else:
                progress(f"{redact(url)}: migrating, then loading {shape.messages:,} messages")
                create_token(url)  # migrates
                t0 = time.perf_counter()
                load(url, shape, args.seed, now)
                progress(f"loaded in {time.perf_counter() - t0:.0f} s; starting `hub serve`")
            t0 = time.perf_counter()
            with hub_server(url, Path(tmp), env, ready_timeout=1800) as server:
                progress(f"`hub serve` ready in {time.perf_counter() - t0:.0f} s")
                results = asyncio.run(measure(server.url, url, shape, cases(shape, now, targets), args.requests))
        met = report(db, shape, results) and met
        out[db.split("://")[0]] = results
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"args": vars(args), "databases": out}, indent=2))
    return 0 if met or not args.check else 1


if __name__ == "__main__":
    raise SystemExit(main())
