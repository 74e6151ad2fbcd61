"""`python -m bench.business_hours`: what counting business hours costs the reports roller. The same conversation
events (opened, assigned, agent replies, resolved, spread over a month) are read and folded in memory by the roller's
own code (plan; nothing is written, the writes being the same whichever hours are counted) three ways on one
database: with no business hours (the baseline), with `reports.business_hours` spans from the config, and with the
stored `default` business hours (weekly intervals and holidays) the roller reads when the config sets none. Each is
printed as a ratio to the baseline measured in the same run (the median of --repeat folds, in rotating order).

    python -m bench.business_hours --conversations 20000
    python -m bench.business_hours --db postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.database import fresh_database
from hub.automation import hours as business_hours
from hub.history.db import Database, Tx, open_database
from hub.history.schema import migrate
from hub.model import format_time
from hub.reports.events import record
from hub.reports.rollup import RollRules, plan

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
STORED = business_hours.BusinessHours(
    timezone="Europe/Berlin", weekly={d: ["09:00-12:30", "13:30-18:00"] for d in WEEKDAYS},
    holidays=[date(2026, 3, 20), date(2026, 4, 3)])
CONFIG = ("mon-fri 09:00-12:30", "mon-fri 13:30-18:00")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.business_hours", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="sqlite", metavar="sqlite|URL", help="sqlite (a fresh temporary file) or a "
                   "postgresql:// server URL (a fresh database on it, dropped afterwards)")
    p.add_argument("--conversations", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=3, help="rebuilds of each kind (the median is printed)")
    p.add_argument("--seed", type=int, default=7)
    return p


def history(tx: Tx, n: int, rng: random.Random) -> None:
    """N conversations over 30 days: answered after minutes to days, a reply or two, resolved later."""
    for cid in range(1, n + 1):
        t = START + timedelta(seconds=rng.uniform(0, 30 * 86400))
        at = format_time
        record(tx, "opened", cid, at(t), customer_id=cid, channel="sms", queue="support")
        t += timedelta(seconds=rng.expovariate(1 / 600))
        record(tx, "assigned", cid, at(t), channel="sms", queue="support", agent_id=1 + cid % 50, seconds=60.0)
        for _ in range(rng.randint(1, 3)):
            t += timedelta(seconds=rng.expovariate(1 / 7200))
            record(tx, "message_in", cid, at(t), channel="sms", queue="support")
            t += timedelta(seconds=rng.expovariate(1 / 3600))
            record(tx, "message_out", cid, at(t), channel="sms", queue="support", agent_id=1 + cid % 50)
        t += timedelta(seconds=rng.expovariate(1 / 86400))
        record(tx, "resolved", cid, at(t), customer_id=cid, channel="sms", queue="support", agent_id=1 + cid % 50)


async def timed_fold(db: Database, rules: RollRules) -> float:
    """Seconds to read and fold every event in memory (the roller's plan, nothing written: the writes are the same
    whichever hours are counted)."""
    began = time.perf_counter()
    batch = await db.read(lambda tx: plan(tx, rules, cutoff="9999", limit=10**9))
    assert batch is not None
    return time.perf_counter() - began


async def run(url: str, args: argparse.Namespace) -> None:
    db = open_database(url)
    try:
        await migrate(db)
        await db.write(lambda tx: history(tx, args.conversations, random.Random(args.seed)))
        counted = await db.read(lambda tx: tx.one("SELECT COUNT(*) AS n FROM conversation_events"))
        events = int(counted["n"]) if counted else 0
        plain = RollRules(time_zone="Europe/Berlin", keywords=False)
        kinds = {"no hours (baseline)": (plain, False), "config spans": (replace(plain, business_hours=CONFIG), False),
                 "stored default": (plain, True)}
        runs: dict[str, list[float]] = {name: [] for name in kinds}
        order = list(kinds)
        for i in range(args.repeat):  # each round in another order: a change in the machine's load hits all alike
            for name in order[i % 3:] + order[:i % 3]:
                rules, stored = kinds[name]
                if stored:
                    await db.write(lambda tx: business_hours.save(tx, business_hours.DEFAULT, STORED,
                                                                  format_time(START)))
                else:
                    await db.write(lambda tx: business_hours.delete(tx, business_hours.DEFAULT))
                runs[name].append(await timed_fold(db, rules))
        base = statistics.median(runs["no hours (baseline)"])
        print(f"bench.business_hours on {url.split(':')[0]}: {args.conversations:,} conversations, {events:,} events "
              f"folded in memory, median of {args.repeat}; load {os.getloadavg()[0]:.1f}")
        print(f"{'fold with':<22} {'seconds':>8} {'x baseline':>11}")
        for name, times in runs.items():
            med = statistics.median(times)
            print(f"{name:<22} {med:>8.2f} {med / base:>10.2f}x")
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db, Path(tmp)) as url:
        asyncio.run(run(url, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
