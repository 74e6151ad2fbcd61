"""What storing parsed emails costs the hub process, without IMAP, the worker or the rest of `hub serve`: generated
emails parsed once, then stored through the email channel's batch path (`EmailChannel.receive_batch` ->
`Ingest.ingest_batch`) on a fresh SQLite file, beside parsing the same emails measured in the same run. Prints the CPU
time per email of each (this process, every thread: the event loop and the database writer) and their ratio.

    python -m bench.email_store [--emails N] [--senders N] [--batch N]

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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.email_store", description=__doc__.split("\n\n")[0])
    p.add_argument("--emails", type=int, default=2000, metavar="N", help="generated emails (default: 2,000)")
    p.add_argument("--senders", type=int, default=200, metavar="N", help="distinct senders (default: 200)")
    p.add_argument("--batch", type=int, default=50, metavar="N", help="emails per stored batch (default: 50)")
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
    n = len(raws)
    return {"emails": n, "stored": outcomes.count("stored"), "parse_cpu_ms": parse_cpu / n * 1000,
            "store_cpu_ms": store_cpu / n * 1000, "store_wall_ms": store_wall / n * 1000}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    r = asyncio.run(run(args))
    print(f"{r['emails']:,.0f} emails ({r['stored']:,.0f} stored), batches of {args.batch}, SQLite:\n"
          f"  parse_email (baseline)        {r['parse_cpu_ms']:.3f} ms CPU an email\n"
          f"  store (receive_batch)         {r['store_cpu_ms']:.3f} ms CPU an email "
          f"({r['store_wall_ms']:.3f} ms wall)\n"
          f"  store / parse CPU             {r['store_cpu_ms'] / max(r['parse_cpu_ms'], 1e-9):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
