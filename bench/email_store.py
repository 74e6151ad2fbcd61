"""What storing parsed emails costs the hub process, without IMAP, the worker or the rest of `hub serve`: generated
emails parsed once, then stored through the email channel's batch path (`EmailChannel.receive_batch` ->
`Ingest.ingest_batch`) on a fresh SQLite file, beside parsing the same emails measured in the same run. Prints the CPU
time per email of each (this process, every thread: the event loop and the database writer) and their ratio; then
what the reports roller costs to fold the same emails afterwards (`plan` on a reader, `commit` on the writer, in rolls
of --roll-batch events, about what it folds each second of an import), as a ratio to parsing too.

    python -m bench.email_store [--emails N] [--senders N] [--batch N] [--roll-batch N]

docs/email.md ("Third round") has the figures of main and of the batch write path, run alternately.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from typing import Any

from bench.mailgen import generate
from hub.history.db import Database
from hub.reports.rollup import RollRules, commit, plan


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.email_store", description=__doc__.split("\n\n")[0])
    p.add_argument("--emails", type=int, default=2000, metavar="N", help="generated emails (default: 2,000)")
    p.add_argument("--senders", type=int, default=200, metavar="N", help="distinct senders (default: 200)")
    p.add_argument("--batch", type=int, default=50, metavar="N", help="emails per stored batch (default: 50)")
    p.add_argument("--roll-batch", type=int, default=400, metavar="N",
                   help="conversation events per roll of the reports roller (default: 400)")
    return p


async def run(args: argparse.Namespace) -> dict[str, float]:
    from tests.channels.email.dovecot import email_world

    raws = generate(args.emails, args.senders)
    with tempfile.TemporaryDirectory(prefix="hub-bench-store-") as folder:
        async with email_world(f"sqlite:///{folder}/hub.db", parse_processes=0) as w:
            cpu = time.process_time()
            parsed = [w.channel.read(raw) for raw in raws]
            parse_cpu = time.process_time() - cpu
            items: list[tuple[bytes, dict[str, Any]]] = [
                (raw, {"mailbox": "bench", "folder": "INBOX", "uidvalidity": 1, "uid": uid})
                for uid, raw in enumerate(raws, 1)]
            cpu, wall = time.process_time(), time.perf_counter()
            outcomes: list[str] = []
            for i in range(0, len(items), args.batch):
                outcomes += await w.channel.receive_batch(items[i : i + args.batch], parsed[i : i + args.batch])
            store_cpu, store_wall = time.process_time() - cpu, time.perf_counter() - wall
            plan_cpu, commit_cpu, rolled = await roll_all(w.db, args.roll_batch)
    n = len(raws)
    return {"emails": n, "stored": outcomes.count("stored"), "parse_cpu_ms": parse_cpu / n * 1000,
            "store_cpu_ms": store_cpu / n * 1000, "store_wall_ms": store_wall / n * 1000, "rolled": rolled,
            "plan_cpu_ms": plan_cpu / n * 1000, "commit_cpu_ms": commit_cpu / n * 1000}


async def roll_all(db: Database, limit: int) -> tuple[float, float, int]:
    """(plan CPU, commit CPU, events): the roller folding every stored event, LIMIT at a time."""
    rules = RollRules()
    plan_cpu = commit_cpu = 0.0
    rolled = 0
    while True:
        cpu = time.process_time()
        batch = await db.read(lambda tx: plan(tx, rules, None, limit))
        plan_cpu += time.process_time() - cpu
        if batch is None:
            return plan_cpu, commit_cpu, rolled
        cpu = time.process_time()
        rolled += await db.write(lambda tx, b=batch: commit(tx, b))  # type: ignore[misc]
        commit_cpu += time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    r = asyncio.run(run(args))
    print(f"{r['emails']:,.0f} emails ({r['stored']:,.0f} stored), batches of {args.batch}, SQLite:\n"
          f"  parse_email (baseline)        {r['parse_cpu_ms']:.3f} ms CPU an email\n"
          f"  store (receive_batch)         {r['store_cpu_ms']:.3f} ms CPU an email "
          f"({r['store_wall_ms']:.3f} ms wall)\n"
          f"  store / parse CPU             {r['store_cpu_ms'] / max(r['parse_cpu_ms'], 1e-9):.3f}\n"
          f"reports roller, {r['rolled']:,.0f} events in rolls of {args.roll_batch}:\n"
          f"  plan (reader)                 {r['plan_cpu_ms']:.3f} ms CPU an email\n"
          f"  commit (writer)               {r['commit_cpu_ms']:.3f} ms CPU an email\n"
          f"  roll / parse CPU              "
          f"{(r['plan_cpu_ms'] + r['commit_cpu_ms']) / max(r['parse_cpu_ms'], 1e-9):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
