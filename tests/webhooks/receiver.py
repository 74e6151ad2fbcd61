"""A real webhook receiver for tests: an aiohttp server that verifies each delivery's signature the way
docs/webhooks.md tells users to (its own few lines, not the hub's code), and answers as told."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def verified(secret: str, headers: Any, body: bytes, tolerance: int = 300) -> bool:
    """As in docs/webhooks.md."""
    timestamp = headers.get("Hub-Timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get("Hub-Signature", ""))


@dataclass
class Receiver:
    secret: str = ""
    #: answers to give, in order, before answering 200 (e.g. [500, 500])
    failures: list[int] = field(default_factory=list)
    #: (delivery id, event) of every verified delivery answered 2xx, in arrival order
    accepted: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    #: when each of `accepted` arrived (time.monotonic())
    at: list[float] = field(default_factory=list)
    #: every request, verified or not: (delivery id, event type, signature ok)
    seen: list[tuple[int, str, bool]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        ok = verified(self.secret, request.headers, body)
        self.seen.append((int(request.headers.get("Hub-Delivery", "0")), request.headers.get("Hub-Event", ""), ok))
        if not ok:
            return web.Response(status=401, text="bad signature")
        if self.failures:
            return web.Response(status=self.failures.pop(0), text="not now")
        self.accepted.append((int(request.headers["Hub-Delivery"]), json.loads(body)))
        self.at.append(time.monotonic())
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app
