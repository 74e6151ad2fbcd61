"""`python -m bench.sla_deadline`: what storing a first-response deadline costs a new conversation. The same inbound
load (each message a new customer, so each opens a conversation and enters its queue) against one in-process hub
with its queue's target set three ways, in rotating rounds: no target (the baseline: nothing stored), a calendar-time
target (the deadline, stored by the inbound transaction that opens the conversation), and a business-hours target
(the same, plus the hours read in that transaction and the deadline computed). Printed as req/s and as a ratio to the
baseline of the same run, with the load average.

    python -m bench.sla_deadline --messages 300 --rounds 3
    python -m bench.sla_deadline --db postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bench.database import fresh_database
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import load_settings
from hub.keys import DB

WAYS: dict[str, dict[str, Any]] = {
    "none": {"first_response": 0},
    "calendar": {"first_response": 1800, "first_response_hours": "calendar"},
    "business": {"first_response": 1800, "first_response_hours": "business"},
}
WEEK = {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}


async def _run(db_url: str, messages: int, rounds: int) -> dict[str, list[float]]:
    queues = {"support": {"title": "Support", "offer_timeout": 300}}
    settings = load_settings(None, environ={"HUB_DATABASE__URL": db_url, "HUB_ROUTING__QUEUES": json.dumps(queues),
                                            "HUB_REPORTS__ROLLER": "false"})
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(settings)))
    await client.start_server()
    try:
        admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
        resp = await client.put("/api/v1/business-hours/support", headers=admin,
                                json={"timezone": "America/New_York", "weekly": WEEK, "holidays": ["2026-12-25"]})
        assert resp.status == 200, await resp.text()
        rates: dict[str, list[float]] = {way: [] for way in WAYS}
        n = 0
        for r in range(rounds + 1):  # round 0 warms up and is not counted
            order = list(WAYS)[r % len(WAYS):] + list(WAYS)[:r % len(WAYS)]
            for way in order:
                resp = await client.put("/api/v1/routing/queues/support", headers=admin,
                                        json={"title": "Support", "offer_timeout": 300, **WAYS[way]})
                assert resp.status == 200, await resp.text()
                began = time.perf_counter()
                for _ in range(messages):
                    n += 1
                    resp = await client.post("/api/v1/inbound", headers=admin,
                                             json={"identity": f"webchat:bench-{n}", "text": "hello"})
                    assert resp.status == 201, await resp.text()
                if r:
                    rates[way].append(messages / (time.perf_counter() - began))
        stored = await client.app[DB].read(lambda tx: tx.one(
            "SELECT COUNT(*) AS n, COUNT(respond_by) AS dated FROM conversations"))
        assert stored is not None and int(stored["n"]) == n
        return rates
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=300, help="new conversations per way per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--db", default="sqlite", help="sqlite (a temporary file) or a PostgreSQL URL (a fresh database)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db, Path(tmp)) as url:
        rates = asyncio.run(_run(url, args.messages, args.rounds))
    base = statistics.median(rates["none"])
    print(f"new conversations through POST /api/v1/inbound, {args.db.split('://')[0]}, {args.messages} per way and "
          f"round, {args.rounds} rounds (median req/s); load average {os.getloadavg()}")
    for way, values in rates.items():
        median = statistics.median(values)
        print(f"  {way:9} {median:8.1f} req/s  ratio to no target {median / base:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
