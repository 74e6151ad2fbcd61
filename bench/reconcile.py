"""`python -m bench.reconcile`: how long the routing reconciler's passes take with many open conversations, in the
hub's own process objects (no HTTP): the start-up rebuild of an empty state, then a periodic pass that compares
everything and finds nothing to repair, then a busy one (--changes conversations given a new priority since the
last pass, store first then state, as a busy center's decisions change both sides between two passes), then one that
finds nothing changed since. Each is printed beside the baseline measured in the same run: one read of the open
conversations' ids (the least a comparison of everything reads).

    python -m bench.reconcile --conversations 100000                      # SQLite and memory routing
    python -m bench.reconcile --db postgresql://postgres@127.0.0.1:5432/postgres --backend redis
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.database import fresh_database
from hub.config import load_settings
from hub.events import MemoryBus
from hub.history.db import Database, Tx, open_database
from hub.history.schema import migrate
from hub.model import format_time, utcnow
from hub.routing.service import Router


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="sqlite", metavar="sqlite|URL", help="sqlite (a fresh temporary file) or a "
                   "postgresql:// server URL (a fresh database on it, dropped afterwards)")
    p.add_argument("--backend", choices=("memory", "redis"), default="memory")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--conversations", type=int, default=100_000, metavar="N", help="open conversations")
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--passes", type=int, default=5, help="periodic passes of each kind (the median is printed)")
    p.add_argument("--changes", type=int, default=200, metavar="K", help="conversations changed before each busy "
                   "pass (200: about 40 decisions a second at the default 5-second pass)")
    return p


def open_conversations(tx: Tx, agents: list[int], start: int, count: int, now: str) -> None:
    """COUNT open conversations of new customers, numbered from START: every 5th assigned to one of AGENTS, every
    7th offered, the rest waiting (also the seed of tests/routing/test_reconcile_cost.py)."""
    for i in range(start, start + count):
        customer = tx.one("INSERT INTO customers (name, created_at, updated_at) VALUES (?, ?, ?) RETURNING id",
                          (f"Customer {i}", now, now))
        assert customer is not None
        status, agent, offered = "open", None, None
        if i % 5 == 0:
            status, agent = "assigned", agents[i % len(agents)]
        elif i % 7 == 0:
            offered = agents[i % len(agents)]
        tx.exec("INSERT INTO conversations (customer_id, status, channel, queue, agent_id, offered_to, "
                "offer_deadline, created_at, updated_at) VALUES (?, ?, 'webchat', 'support', ?, ?, ?, ?, ?)",
                (customer["id"], status, agent, offered, 4e9 if offered else None, now, now))


async def seed(db: Database, conversations: int, agents: int) -> None:
    """AGENTS agents in one queue; CONVERSATIONS open conversations (open_conversations)."""
    now = format_time(utcnow())

    def write(tx: Tx) -> None:
        tx.exec("INSERT INTO queues (name, title) VALUES ('support', 'Support')")
        for i in range(agents):
            row = tx.one("INSERT INTO agents (name, email, role, password_hash, created_at) "
                         "VALUES (?, ?, 'agent', '-', ?) RETURNING id", (f"Agent {i}", f"agent{i}@bench.test", now))
            assert row is not None
            tx.exec("INSERT INTO agent_queues (agent_id, queue) VALUES (?, 'support')", (row["id"],))
        ids = [int(r["id"]) for r in tx.all("SELECT id FROM agents ORDER BY id")]
        open_conversations(tx, ids, 0, conversations, now)

    await db.write(write)


async def timed(label: str, runs: int, baseline: float, run: Callable[[], Awaitable[object]]) -> None:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await run()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(f"{label:<44} {median * 1000:>10.1f} ms  {median / baseline:>8.1f}x baseline", flush=True)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db, Path(tmp)) as url:
        db = open_database(url)
        await migrate(db)
        t0 = time.perf_counter()
        await seed(db, args.conversations, args.agents)
        print(f"seeded {args.conversations:,} open conversations, {args.agents:,} agents "
              f"in {time.perf_counter() - t0:.0f} s ({db.dialect}, {args.backend})", flush=True)
        os.environ.update({
            "HUB_DATABASE__URL": url, "HUB_ROUTING__BACKEND": args.backend, "HUB_ROUTING__REDIS_URL": args.redis,
            "HUB_ROUTING__KEY_PREFIX": f"bench-reconcile:{uuid.uuid4().hex[:8]}:",
            "HUB_ROUTING__QUEUES": json.dumps({"support": {"title": "Support", "offer_timeout": 3600}}),
            "HUB_ROUTING__DEFAULT_CAPACITY": json.dumps({"voice": 1, "chat": 1000, "email": 5}),
        })
        router = Router(db, load_settings(None), MemoryBus())
        try:
            ids = "SELECT id FROM conversations WHERE status IN ('open', 'assigned')"
            baseline_times = []
            for _ in range(args.passes):
                t0 = time.perf_counter()
                await db.read(lambda tx: tx.all(ids))
                baseline_times.append(time.perf_counter() - t0)
            baseline = statistics.median(baseline_times)
            print(f"{'baseline: one read of the open ids':<44} {baseline * 1000:>10.1f} ms", flush=True)
            t0 = time.perf_counter()
            await router.start()  # the state loaded, then the first pass rebuilds it: what /readyz waits for
            start = time.perf_counter() - t0
            print(f"{'start: load and rebuild the state':<44} {start * 1000:>10.1f} ms  "
                  f"{start / baseline:>8.1f}x baseline", flush=True)
            await router.reconciler.run()

            async def full() -> None:
                """A pass that compares everything (at start, after a wipe, at least every FULL_SECONDS)."""
                router.reconciler._cursors = None
                await router.reconciler.run()

            await timed("periodic pass, comparing everything", args.passes, baseline, full)
            await router.reconciler.run()
            open_ids = [int(r["id"]) for r in await db.read(lambda tx: tx.all(ids + " ORDER BY id"))]
            rounds = iter(range(1, args.passes + 1))

            async def busy() -> None:
                """A pass after K conversations changed on both sides since the last one (timed: the pass only)."""
                n = next(rounds)
                changed = open_ids[n * 7919 % len(open_ids):][:args.changes]

                def write(tx: Tx) -> None:
                    for cid in changed:
                        tx.exec("UPDATE conversations SET priority = ? WHERE id = ?", (n, cid))

                await db.write(write)
                for cid in changed:
                    await router.set_priority(cid, n)
                t0 = time.perf_counter()
                await router.reconciler.run()
                times.append(time.perf_counter() - t0)

            times: list[float] = []
            for _ in range(args.passes):
                await busy()
            median = statistics.median(times)
            label = f"periodic pass, {args.changes} changed since"
            print(f"{label:<44} {median * 1000:>10.1f} ms  {median / baseline:>8.1f}x baseline", flush=True)
            await router.reconciler.run()
            await timed("periodic pass, nothing changed since", args.passes, baseline, router.reconciler.run)
        finally:
            if (clear := getattr(router.state, "clear", None)) is not None:
                await clear()
            await router.close()
            await db.close()


if __name__ == "__main__":
    asyncio.run(main(parser().parse_args()))
