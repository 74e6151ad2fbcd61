"""The other routing design, measured: a decision taken inside PostgreSQL's transaction (`SELECT ... FOR UPDATE SKIP
LOCKED`), against the hub's own (a Lua script on Redis, its state derived from the store), in the same run.

The decision is bench.routing's: an agent frees a slot and gets the best conversation of their queues (highest
priority, then oldest), within their capacity. In PostgreSQL it is one statement, so one round trip and one commit:
lock the agent's row if they have room, take the best waiting conversation nobody else has locked (SKIP LOCKED: two
deciders never wait on each other's conversation), mark it theirs and count it against their load. That statement IS
the store's write, so there is no second write to repair: what the Redis design needs a reconciler for. The sizes
follow bench.routing (agents = waiting/10, queues = waiting/100, 3 queues and 3 chats per agent); the resolve and the
new arrival that free each slot are set-up, not timed.

Baselines from the same run, same clients: a bare `SELECT 1` round trip, and one committed one-row `INSERT` (what
any durable decision in PostgreSQL costs at least, since each commit waits for the WAL to reach the disk). The Redis
rows use bench.routing's load on the same sizes (one client, and --clients concurrent callers): the decision
alone, and the decision followed by its committed write to the store, as the hub takes one.

This is a model of the decision, not a second routing backend: offers with timeouts, presence, wrap-up, skills and
the event bus are not in it. It answers the question the design choice needs: what one decision costs each way.

    python -m bench.skip_locked [--sizes 1000,10000] [--db URL] [--redis URL] [--clients N] [--decisions N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python bench/skip_locked.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench import routing

SCHEMA = """
CREATE TABLE agent (id int PRIMARY KEY, queues text[] NOT NULL, capacity int NOT NULL, load int NOT NULL DEFAULT 0);
CREATE TABLE conv (id bigserial PRIMARY KEY, queue text NOT NULL, priority int NOT NULL, arrived double precision
                   NOT NULL, status text NOT NULL DEFAULT 'waiting', agent int);
CREATE INDEX conv_waiting ON conv (queue, priority DESC, arrived) WHERE status = 'waiting';
CREATE INDEX conv_held ON conv (agent) WHERE status = 'assigned';
"""

# One statement: the agent's row locked if they have room; the best waiting conversation of their queues that no
# other decider holds; it becomes theirs and their load grows only if one was found.
DECIDE = """
WITH a AS (SELECT id, queues FROM agent WHERE id = %(agent)s AND load < capacity FOR UPDATE),
     c AS (SELECT conv.id FROM conv, a WHERE conv.status = 'waiting' AND conv.queue = ANY(a.queues)
           ORDER BY conv.priority DESC, conv.arrived LIMIT 1 FOR UPDATE OF conv SKIP LOCKED),
     u AS (UPDATE agent SET load = load + 1 FROM c WHERE agent.id = %(agent)s RETURNING agent.id)
UPDATE conv SET status = 'assigned', agent = %(agent)s FROM c WHERE conv.id = c.id RETURNING conv.id
"""


@dataclass
class Row:
    name: str
    waiting: int
    decisions: int
    per_second: float
    p50_ms: float
    p99_ms: float
    baseline_s: float  # the same run's durable floor (one committed INSERT) for this many clients

    def show(self) -> str:
        cost = 1 / self.per_second
        return (f"{self.name:18} {self.waiting:>7} {self.per_second:>11,.0f} {self.p50_ms:>7.2f} {self.p99_ms:>7.2f}"
                f" {cost / self.baseline_s:>9.2f}x")


def _row(name: str, waiting: int, latencies: list[float], wall: float, baseline: float) -> Row:
    latencies.sort()
    return Row(name, waiting, len(latencies), len(latencies) / wall, statistics.median(latencies) * 1e3,
               latencies[int(0.99 * (len(latencies) - 1))] * 1e3, baseline)


class Store:
    """A database of the run's own on the server at URL (created here, dropped by `close`)."""

    def __init__(self, url: str) -> None:
        self.admin_url = url
        self.name = f"hub_bench_{uuid.uuid4().hex[:12]}"
        base, _, _ = url.rpartition("/")
        self.url = f"{base}/{self.name}"

    async def open(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.admin_url, autocommit=True) as admin:
            await admin.execute(f'CREATE DATABASE "{self.name}"')

    async def close(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.admin_url, autocommit=True) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    async def connections(self, n: int) -> list[psycopg.AsyncConnection]:
        return [await psycopg.AsyncConnection.connect(self.url, autocommit=True) for _ in range(n)]


async def baselines(store: Store, clients: int, n: int) -> tuple[float, float]:
    """Seconds per bare round trip and per committed one-row INSERT, as aggregates over CLIENTS connections."""
    conns = await store.connections(clients)
    await conns[0].execute("CREATE TABLE IF NOT EXISTS floor (id bigserial PRIMARY KEY, at double precision)")

    async def timed(sql: str) -> float:
        async def caller(c: psycopg.AsyncConnection) -> None:
            for _ in range(n // clients):
                await c.execute(sql)

        start = time.perf_counter()
        await asyncio.gather(*(caller(c) for c in conns))
        return (time.perf_counter() - start) / (n // clients * clients)

    try:
        return await timed("SELECT 1"), await timed("INSERT INTO floor (at) VALUES (1)")
    finally:
        for c in conns:
            await c.close()


class Model:
    """The routing tables of one size, every agent holding 3 conversations and WAITING more in the queues."""

    def __init__(self, store: Store, waiting: int) -> None:
        self.store, self.waiting = store, waiting
        self.rng = random.Random(7)
        self.agents = max(1, waiting // 10)
        self.queues = [f"q{i}" for i in range(max(1, waiting // 100))]
        self.arrived = 0.0

    async def fill(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.store.url, autocommit=True) as c:
            await c.execute("DROP TABLE IF EXISTS conv, agent")
            await c.execute(SCHEMA)
            async with c.cursor() as cur:
                await cur.executemany("INSERT INTO agent (id, queues, capacity) VALUES (%s, %s, 3)", [
                    (a, self.rng.sample(self.queues, min(3, len(self.queues)))) for a in range(1, self.agents + 1)])
                await cur.executemany("INSERT INTO conv (queue, priority, arrived) VALUES (%s, %s, %s)",
                                      [self.arrival() for _ in range(self.waiting + 3 * self.agents)])
            await c.execute("ANALYZE")
            for a in range(1, self.agents + 1):
                for _ in range(3):
                    await c.execute(DECIDE, {"agent": a})

    def arrival(self) -> tuple[str, int, float]:
        self.arrived += 1e-3
        return self.rng.choice(self.queues), self.rng.choice((0, 0, 0, 1)), self.arrived

    async def free_a_slot(self, c: psycopg.AsyncConnection, agent: int) -> None:
        """Untimed: the agent resolves one of theirs and a new conversation arrives."""
        async with c.transaction():
            await c.execute("UPDATE conv SET status = 'resolved' WHERE id = (SELECT id FROM conv WHERE agent = %s "
                            "AND status = 'assigned' LIMIT 1)", (agent,))
            await c.execute("UPDATE agent SET load = load - 1 WHERE id = %s", (agent,))
            await c.execute("INSERT INTO conv (queue, priority, arrived) VALUES (%s, %s, %s)", self.arrival())

    async def run(self, clients: int, decisions: int, per_client: int = 25) -> tuple[list[float], float]:
        """Rounds like bench.routing.concurrent: free a slot for clients x per_client distinct agents (untimed), then
        every client decides for its agents one after another on its own connection; the wall clock is timed."""
        conns = await self.store.connections(clients)
        latencies: list[float] = []
        wall = 0.0
        try:
            for _ in range(max(1, decisions // (clients * per_client))):
                picked = self.rng.sample(range(1, self.agents + 1), min(self.agents, clients * per_client))
                for i, a in enumerate(picked):
                    await self.free_a_slot(conns[i % clients], a)

                async def client(c: psycopg.AsyncConnection, mine: list[int]) -> None:
                    for a in mine:
                        start = time.perf_counter()
                        got = await (await c.execute(DECIDE, {"agent": a})).fetchone()
                        latencies.append(time.perf_counter() - start)
                        if got is None:
                            raise AssertionError(f"agent {a} freed a slot but got nothing: the model is wrong")

                start = time.perf_counter()
                await asyncio.gather(*(client(conns[i], picked[i::clients]) for i in range(clients)))
                wall += time.perf_counter() - start
            await self.check()
        finally:
            for c in conns:
                await c.close()
        return latencies, wall

    async def check(self) -> None:
        """The invariants the design must keep: no agent over capacity, each load what they hold."""
        async with await psycopg.AsyncConnection.connect(self.store.url) as c:
            bad = await (await c.execute(
                "SELECT count(*) FROM agent a WHERE a.load > a.capacity OR a.load <> (SELECT count(*) FROM conv "
                "WHERE agent = a.id AND status = 'assigned')")).fetchone()
            if bad and bad[0]:
                raise AssertionError(f"{bad[0]} agents over capacity or with a load unlike what they hold")


async def redis_decisions(url: str, store: Store, size: int, clients: int, decisions: int, with_store: bool,
                          per_client: int = 25) -> tuple[list[float], float]:
    """The hub's design on the same load: the decision is one Lua script on Redis (bench.routing's), then, WITH_STORE,
    written to the store in a committed one-row UPDATE on the client's own PostgreSQL connection (the hub's write is
    a transaction of a few statements: this is its floor)."""
    state, client = await routing.redis_state(url, clients)
    conns = await store.connections(clients) if with_store else []
    latencies: list[float] = []
    wall = 0.0
    try:
        ld = await routing.load(state, size, concurrent=True)
        if conns:
            await conns[0].execute("DROP TABLE IF EXISTS decided")
            await conns[0].execute("CREATE TABLE decided (agent int PRIMARY KEY, conversation bigint)")
            await conns[0].execute("INSERT INTO decided SELECT g, 0 FROM generate_series(1, %s) g", (ld.agents,))
        agents = [a for a in ld.held if ld.held[a]]
        for _ in range(max(1, decisions // (clients * per_client))):
            ld.now += 1e-3
            picked = ld.rng.sample(agents, min(len(agents), clients * per_client))
            await asyncio.gather(*(ld.free_a_slot(a) for a in picked))

            async def decider(i: int, mine: list[int]) -> None:
                for a in mine:
                    start = time.perf_counter()
                    claim = await state.dispatch_agent(a, ld.now)
                    if claim is None:
                        raise AssertionError(f"agent {a} freed a slot but got nothing")
                    if conns:
                        await conns[i].execute("UPDATE decided SET conversation = %s WHERE agent = %s",
                                               (claim.conversation, a))
                    latencies.append(time.perf_counter() - start)
                    ld.held[a].append(claim.conversation)

            start = time.perf_counter()
            await asyncio.gather(*(decider(i, picked[i::clients]) for i in range(clients)))
            wall += time.perf_counter() - start
    finally:
        await state.clear()  # type: ignore[attr-defined]
        await client.aclose()  # type: ignore[attr-defined]
        for c in conns:
            await c.close()
    return latencies, wall


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.skip_locked", description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server to make a database of this run's own on (default: %(default)s)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis for the hub's rows (default: "
                        "%(default)s); 'none' leaves them out")
    parser.add_argument("--sizes", default="1000,10000", help="waiting counts, comma-separated (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent deciders (default: %(default)s)")
    parser.add_argument("--decisions", type=int, default=2000, help="decisions per row (default: %(default)s)")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    store = Store(args.db)
    await store.open()
    try:
        print("baselines (same run, same server):", flush=True)
        floor: dict[int, float] = {}
        for n in (1, args.clients):
            trip, floor[n] = await baselines(store, n, 400 * n)
            print(f"  {n} client(s): SELECT 1 {trip * 1e3:.3f} ms, committed INSERT {floor[n] * 1e3:.3f} ms "
                  f"({1 / floor[n]:,.0f}/s in all)", flush=True)
        rows: list[Row] = []
        for size in sizes:
            model = Model(store, size)
            t0 = time.perf_counter()
            await model.fill()
            print(f"{size} waiting: tables filled in {time.perf_counter() - t0:.1f}s", flush=True)
            for n in (1, args.clients):
                latencies, wall = await model.run(n, args.decisions)
                rows.append(_row(f"skip locked x{n}", size, latencies, wall, floor[n]))
            if args.redis != "none":
                for n in (1, args.clients):
                    for with_store in (False, True):
                        latencies, wall = await redis_decisions(args.redis, store, size, n, args.decisions,
                                                                with_store)
                        name = f"redis{' + store' if with_store else ' lua'} x{n}"
                        rows.append(_row(name, size, latencies, wall, floor[n]))
        print("cost/floor = wall time per decision (all clients together) in units of the same run's committed "
              "INSERT with as many clients")
        print(f"{'design':18} {'waiting':>7} {'decisions/s':>11} {'p50 ms':>7} {'p99 ms':>7} {'cost/floor':>10}")
        for r in sorted(rows, key=lambda r: (r.name.split(" x")[0], r.waiting, r.name)):
            print(r.show())
        print("redis lua = the decision alone; redis + store = it and its committed write to the store (a "
              "one-row UPDATE), as the hub takes one; skip locked = decision and write in one statement")
    finally:
        await store.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
