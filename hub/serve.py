"""Serving an app until SIGINT/SIGTERM, then draining what is in flight: what `hub serve` and `hub demo` share,
on the event loop server.event_loop names."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, TypeVar

from aiohttp import web

log = logging.getLogger("hub")

T = TypeVar("T")
EventLoop = Literal["uvloop", "asyncio"]


def loop_factory(event_loop: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the loop EVENT_LOOP names (None: asyncio's own). uvloop costs the loop thread less CPU per request
    (docs/performance.md, `loopwork`); where it is not installed (it has no Windows build) asyncio's loop serves."""
    if event_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        log.warning("server.event_loop = \"uvloop\" but uvloop is not installed here: serving on asyncio's loop")
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], event_loop: EventLoop) -> T:
    """asyncio.run(MAIN) on the loop EVENT_LOOP names."""
    with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
        return runner.run(main)


async def run_server(
    app: web.Application, host: str, port: int, shutdown_timeout: float,
    started: Callable[[int], Awaitable[None]] | None = None, reuse_port: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM, then stop taking requests and drain what is in flight. REUSE_PORT: the port is
    shared with the other workers of `hub serve --workers N` (hub.workers), the kernel spreading connections."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("serving on http://%s:%d (event loop: %s)", host, bound, type(loop).__module__.partition(".")[0])
    # What the started app holds (modules, routes, settings, compiled schemas, routing's state: most of the heap)
    # lives as long as the process. A full collection walked all of it while every request waited: 60-90 ms of CPU
    # every few seconds under load, the agents' p99. Frozen, the collector walks only what came after.
    gc.collect()
    gc.freeze()
    try:
        if started is not None:
            await started(bound)
        await stop.wait()
        log.info("shutting down: draining in-flight requests")
    finally:
        gc.unfreeze()
        await runner.cleanup()
