"""The baseline: a bare aiohttp server that reads the JSON body and answers with a small JSON, nothing else.

It also serves a reference point that is no target: `POST /durable/inbound` does the same and first commits the body
as one row to SQLite (WAL, synchronous=NORMAL, one writer thread, one transaction per request, as the hub's store is
set up), the least a server can do to acknowledge only what is durable.

Run as its own process (`python -m bench.bare --port N`) so it gets a core and an event loop like `hub serve` does.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

DURABLE_PATH = "/durable/inbound"


async def inbound(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"stored": True, "external_id": body.get("external_id")}, status=201)


async def get(request: web.Request) -> web.Response:
    return web.json_response({"items": [], "next": None})


class DurableInbound:
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


def build_app(durable: DurableInbound | None = None) -> web.Application:
    app = web.Application()
    app.router.add_post("/api/v1/inbound", inbound)
    if durable is not None:
        app.router.add_post(DURABLE_PATH, durable.handle)
    app.router.add_get("/{tail:.*}", get)
    return app


async def serve(host: str, port: int, sqlite_path: Path | None) -> None:
    durable = DurableInbound(sqlite_path) if sqlite_path else None
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
    args = p.parse_args()
    asyncio.run(serve(args.host, args.port, args.sqlite))


if __name__ == "__main__":
    main()
