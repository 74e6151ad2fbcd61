"""`python -m bench.roller_slices`: how long the reports roller holds the SQLite writer (which every inbound
acknowledgement shares) per write, in slices of SLICE_ROWS rows against the baseline of the same run: the whole
batch of pending events in one write (as the roller did before, up to 5,000 events a write). Two mixes of pending
events on fresh SQLite files: a busy second of the inbound benchmark (2,000 messages in one hour from 5,000 customers,
half of them opening a conversation) and 10,000 events of 2,000 conversations spread over a day and a half (a
rebuild's kind of history: little merges, so small slices write more rows in all). Also the process's CPU per event
folded (reads, fold and writes, every thread), the roller's cost on the hub's cores.

    python -m bench.roller_slices
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.history.db import Tx, open_database
from hub.history.schema import migrate
from hub.reports import rollup
from hub.reports.events import record

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
RULES = rollup.RollRules(time_zone="Europe/Berlin", business_hours=("mon-fri 09:00-17:00",))


def at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def live_second(tx: Tx) -> None:
    rnd, seen = random.Random(1), set()
    for i in range(2000):
        cust = rnd.randrange(5000) + 1
        if cust in seen:
            record(tx, "message_in", cust, at(i * 0.0005), customer_id=cust, channel="api", queue="default")
        else:
            seen.add(cust)
            record(tx, "opened", cust, at(i * 0.0005), customer_id=cust, channel="api", queue="default")
            record(tx, "offered", cust, at(i * 0.0005), channel="api", queue="default", agent_id=1)


def spread(tx: Tx) -> None:
    channels, queues = ("sms", "email", "webchat", "voice"), ("support", "sales", "billing")
    for conv in range(1, 2001):
        t, ch, q, agent, cust = 60.0 * conv, channels[conv % 4], queues[conv % 3], conv % 20, conv % 700 + 1
        record(tx, "opened", conv, at(t), customer_id=cust, channel=ch, queue=q)
        record(tx, "assigned", conv, at(t + 20), channel=ch, queue=q, agent_id=agent, seconds=20.0)
        record(tx, "message_out", conv, at(t + 120), channel=ch, queue=q, agent_id=agent)
        record(tx, "message_in", conv, at(t + 180), channel=ch, queue=q)
        record(tx, "resolved", conv, at(t + 540), customer_id=cust, channel=ch, queue=q, agent_id=agent)


async def roll(folder: Path, events: Callable[[Tx], None], limit: int,
               rows: int) -> tuple[list[float], int, float]:
    """Every pending event rolled, LIMIT events and ROWS rows a write at most: each write's ms on the writer, the
    most rows one wrote (events marked, clocks and deltas), and the process's CPU us per event rolled."""
    db = open_database(f"sqlite:///{folder / f'{limit}-{rows}.db'}")
    await migrate(db)
    await db.write(events)
    held: list[float] = []
    most = folded = 0
    cpu = time.process_time()
    while (batch := await db.read(lambda tx: rollup.plan(tx, RULES, "9999", limit, rows))) is not None:
        def write(tx: Tx, b: rollup._Batch = batch) -> tuple[int, float]:
            t = time.perf_counter()
            n = rollup.commit(tx, b)
            return n, (time.perf_counter() - t) * 1000  # kept once written (a write may run twice)

        n, ms = await db.write(write)
        folded += n
        held.append(ms)
        most = max(most, len(batch.ids) + len(batch.clocks) + batch.deltas.size())
    cpu = time.process_time() - cpu
    await db.close()
    return held, most, cpu * 1e6 / max(folded, 1)


async def run(repeat: int) -> None:
    print(f"reports roller writes on SQLite, median of {repeat} runs per row; load {os.getloadavg()}")
    print(f"  {'mix':<44} {'writes':>7} {'rows/write max':>15} {'longest ms':>11} {'median ms':>10} "
          f"{'sum ms':>8} {'longest x':>10} {'sum x':>7} {'cpu us/event':>13}")
    with tempfile.TemporaryDirectory() as d:
        for name, events in (("a busy second (3,650 events)", live_second), ("a day and a half (10,000)", spread)):
            figures: dict[str, list[tuple[int, int, float, float, float, float]]] = {"one write": [], "slices": []}
            for i in range(repeat):
                for kind, (limit, rows) in (("one write", (5000, 10**9)),
                                            ("slices", (rollup.BATCH, rollup.SLICE_ROWS))):
                    folder = Path(d) / f"{name[:3]}{i}{kind[0]}"
                    folder.mkdir()
                    held, most, cpu = await roll(folder, events, limit, rows)
                    figures[kind].append((len(held), most, max(held), statistics.median(held), sum(held), cpu))
            for kind, rows_ in figures.items():
                med = [statistics.median(f[k] for f in rows_) for k in range(6)]
                base = [statistics.median(f[k] for f in figures["one write"]) for k in range(6)]
                print(f"  {name + ', ' + kind:<44} {med[0]:>7.0f} {med[1]:>15.0f} {med[2]:>11.1f} {med[3]:>10.1f} "
                      f"{med[4]:>8.0f} {med[2] / base[2]:>10.3f} {med[4] / base[4]:>7.2f} {med[5]:>13.1f}")
    print(f"  load {os.getloadavg()}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.roller_slices", description=__doc__)
    p.add_argument("--repeat", type=int, default=3, help="runs per row, the median printed (default: 3)")
    args = p.parse_args(argv)
    asyncio.run(run(args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
