"""The baseline: a bare aiohttp server that reads the JSON body and answers with a small JSON, nothing else.

It also serves the durable floor: `POST /durable/inbound` does the same and first commits the body as one row, the
least a server can do to acknowledge only what is durable. On SQLite (WAL, synchronous=NORMAL, one writer thread, one
transaction per request, as the hub's store is set up), or with `--postgres URL` one `INSERT` committed per request
on PostgreSQL (a pool of threads with a connection each, as the hub's store is set up).

Run as its own process (`python -m bench.bare --port N`) so it gets a core and an event loop like `hub serve` does.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

DURABLE_PATH = "/durable/inbound"


async def inbound(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"stored": True, "external_id": body.get("external_id")}, status=201)


async def get(request: web.Request) -> web.Response:
    return web.json_response({"items": [], "next": None})


class DurableInbound:
    """SQLite: one writer thread, one transaction per request."""

    def __init__(self, path: Path) -> None:
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="bare-db-write")
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")

    def _insert(self, body: str) -> int:
        row = self._conn.execute("INSERT INTO events (body) VALUES (?) RETURNING id", (body,)).fetchone()
        return int(row[0])

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.text()
        body = await request.json()
        event_id = await asyncio.get_running_loop().run_in_executor(self._writer, self._insert, raw)
        return web.json_response({"stored": event_id, "external_id": body.get("external_id")}, status=201)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._conn.close()


class PostgresInbound(DurableInbound):
    """PostgreSQL: POOL threads with a connection each, one INSERT committed per request."""

    def __init__(self, url: str, pool: int = 4) -> None:
        import psycopg

        self._url = url
        self._writer = ThreadPoolExecutor(pool, thread_name_prefix="bare-db-pg")
        self._local = threading.local()
        self._conns: list[Any] = []
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench_floor_events (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)")

    def _insert(self, body: str) -> int:
        import psycopg

        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = psycopg.connect(self._url)
            self._conns.append(conn)
        with conn.transaction():
            row = conn.execute("INSERT INTO bench_floor_events (body) VALUES (%s) RETURNING id", (body,)).fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        for c in self._conns:
            c.close()


def build_app(durable: DurableInbound | None = None) -> web.Application:
    app = web.Application()
    app.router.add_post("/api/v1/inbound", inbound)
    if durable is not None:
        app.router.add_post(DURABLE_PATH, durable.handle)
    app.router.add_get("/{tail:.*}", get)
    return app


async def serve(host: str, port: int, sqlite_path: Path | None, postgres: str | None = None, pool: int = 4) -> None:
    durable = PostgresInbound(postgres, pool) if postgres else DurableInbound(sqlite_path) if sqlite_path else None
    # The same runner set-up as `hub serve` (no access log), so the two differ only in what the handlers do.
    runner = web.AppRunner(build_app(durable), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if durable is not None:
            durable.close()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bare", description="The bare aiohttp baseline server.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sqlite", type=Path, help=f"serve {DURABLE_PATH} too, committing each body to this file")
    p.add_argument("--postgres", metavar="URL", help=f"serve {DURABLE_PATH} committing each body to PostgreSQL instead")
    p.add_argument("--pool", type=int, default=4, help="--postgres: threads with a connection each (default: 4)")
    args = p.parse_args()
    asyncio.run(serve(args.host, args.port, args.sqlite, args.postgres, args.pool))


if __name__ == "__main__":
    main()
