"""Every WebSocket this process holds open (consoles' event streams, web-chat visitors), so a shutdown closes them
at once with 1001 going-away: clients reconnect to a live process instead of waiting on one that is draining."""

from __future__ import annotations

import asyncio
import weakref

from aiohttp import WSCloseCode, web


class OpenSockets:
    def __init__(self) -> None:
        self._open: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    def add(self, ws: web.WebSocketResponse) -> None:
        self._open.add(ws)

    def __len__(self) -> int:
        return len(self._open)

    async def close_all(self, app: web.Application | None = None) -> None:
        """The app's on_shutdown hook: without it the runner waits shutdown_timeout for every socket's handler."""
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down") for ws in list(self._open)),
            return_exceptions=True,
        )


OPEN_SOCKETS = web.AppKey("open_sockets", OpenSockets)
