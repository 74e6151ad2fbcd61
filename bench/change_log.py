"""`python -m bench.change_log`: what the routing change log's triggers (migration 115) cost the write path, in the
same run: the writes routing makes to conversations (open one, offer it, accept it, resolve it), as CPU time of the
statements, with the triggers, against the same writes after the triggers were dropped (the baseline), alternated in
rounds on one fresh database. (PostgreSQL: the server's work is not in this process's CPU; read the wall time.)

    python -m bench.change_log                                                 # SQLite
    python -m bench.change_log --db postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.database import fresh_database
from hub.history.db import Tx, open_database
from hub.history.schema import migrate
from hub.model import format_time, utcnow

_TRIGGERS = ("routing_changes_insert", "routing_changes_update", "routing_changes_delete")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.change_log", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="sqlite", metavar="sqlite|URL", help="sqlite (a fresh temporary file) or a "
                   "postgresql:// server URL (a fresh database on it, dropped afterwards)")
    p.add_argument("--conversations", type=int, default=500, help="conversations per round and way")
    p.add_argument("--rounds", type=int, default=5)
    return p


def open_conversation(tx: Tx, now: str) -> int:
    """A new customer's open sms conversation in the support queue, as bare rows (no routing): its id."""
    customer = tx.one("INSERT INTO customers (name, created_at, updated_at) VALUES ('c', ?, ?) RETURNING id",
                      (now, now))
    assert customer is not None
    row = tx.one("INSERT INTO conversations (customer_id, status, channel, queue, created_at, updated_at) "
                 "VALUES (?, 'open', 'sms', 'support', ?, ?) RETURNING id", (customer["id"], now, now))
    assert row is not None
    return int(row["id"])


def lifecycles(tx: Tx, count: int, agent: int) -> tuple[float, float]:
    """COUNT conversations opened, offered, accepted and resolved, in one transaction: the CPU seconds of the
    statements (the thread's own time: what SQLite's writer thread spends, less noisy than wall time on a busy
    machine; the triggers add no commit) and their wall seconds (PostgreSQL's work is in its server)."""
    now = format_time(utcnow())
    t0, w0 = time.thread_time(), time.perf_counter()
    for _ in range(count):
        cid = open_conversation(tx, now)
        tx.exec("UPDATE conversations SET offered_to = ?, offer_deadline = 4e9, updated_at = ? WHERE id = ?",
                (agent, now, cid))
        tx.exec("UPDATE conversations SET status = 'assigned', agent_id = ?, offered_to = NULL, updated_at = ? "
                "WHERE id = ?", (agent, now, cid))
        tx.exec("UPDATE conversations SET status = 'resolved', resolved_at = ?, updated_at = ? WHERE id = ?",
                (now, now, cid))
    return time.thread_time() - t0, time.perf_counter() - w0


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db, Path(tmp)) as url:
        db = open_database(url)
        await migrate(db)
        postgresql = db.dialect == "postgresql"
        row = await db.write(lambda tx: tx.one("INSERT INTO agents (name, email, role, password_hash, created_at) "
                                               "VALUES ('A', 'a@bench.test', 'agent', '-', 'now') RETURNING id"))
        assert row is not None
        agent = int(row["id"])
        # The triggers' definitions, to drop and create them again between rounds.
        if postgresql:
            definitions = [str(r["d"]) for r in await db.read(lambda tx: tx.all(
                "SELECT pg_get_triggerdef(oid) AS d FROM pg_trigger WHERE tgname LIKE 'routing_changes_%'"))]
        else:
            definitions = [str(r["sql"]) for r in await db.read(lambda tx: tx.all(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'routing_changes_%'"))]
        assert definitions, "no routing change log triggers: migration 115 missing"

        def drop(tx: Tx) -> None:
            for name in _TRIGGERS:
                tx.exec(f"DROP TRIGGER IF EXISTS {name}" + (" ON conversations" if postgresql else ""))

        def create(tx: Tx) -> None:
            for sql in definitions:
                tx.exec(sql)

        times: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}

        async def measure(count: int) -> tuple[float, float]:
            def write(tx: Tx) -> tuple[float, float]:
                return lifecycles(tx, count, agent)
            return await db.write(write)

        await measure(max(50, args.conversations // 10))  # warm-up
        for _ in range(args.rounds):
            await db.write(drop)
            times["without"].append(await measure(args.conversations))
            await db.write(create)
            times["with"].append(await measure(args.conversations))
        print(f"{db.dialect}: {args.conversations} conversations x 4 writes, {args.rounds} alternating rounds")
        writes = args.conversations * 4
        for label, ts in times.items():
            cpu, wall = (statistics.median(t[i] for t in ts) for i in (0, 1))
            print(f"  {label + ' the triggers':<22} CPU {cpu / writes * 1e6:>6.1f} us/write, "
                  f"wall {wall / writes * 1e6:>6.1f} us/write", flush=True)
        for i, what in ((0, "CPU"), (1, "wall")):
            ratios = [w[i] / wo[i] for w, wo in zip(times["with"], times["without"], strict=True)]
            print(f"  with / without, {what}: {statistics.median(ratios):.3f} "
                  f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})", flush=True)
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(parser().parse_args()))
