"""`hub demo`'s web chat visitors: they talk over the widget's own WebSocket (`/webchat/ws`, hello frame, message
frames, acks), as the browser widget does, read agents' replies and answer them. One is signed in by the "shop"
(the channel's identity_secret), so their chat joins the timeline they already have by email and SMS."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from hub.channels.webchat.channel import sign_identity

log = logging.getLogger("hub.demo.webchat")


@dataclass
class WebchatVisitor:
    """A visitor of the shop's site: anonymous (a pre-chat name at most), or signed in as EMAIL with the secret."""

    hub_url: str
    name: str
    lines: list[str]
    answers: list[str] = field(default_factory=lambda: ["Thanks!", "OK, I'll wait for that.", "Great 👍"])
    email: str | None = None
    identity_secret: str = ""
    #: what agents sent, newest last
    received: list[str] = field(default_factory=list)
    visitor_id: str | None = None

    @property
    def who(self) -> str:
        return self.name or "(anonymous)"

    def _hello(self) -> dict[str, Any]:
        hello: dict[str, Any] = {"type": "hello", "visitor_id": self.visitor_id, "page": self.hub_url + "/chat",
                                 "profile": {"name": self.name}}
        if self.email and self.identity_secret:
            hello["identity"] = {"email": self.email, "name": self.name,
                                 "user_hash": sign_identity(self.identity_secret, self.email)}
        return hello

    async def run(self, interval: float = 9.0, start_after: float = 0.0) -> None:
        """Write the lines (slowly), then answer what agents send; reconnects if the hub goes away."""
        await asyncio.sleep(start_after)
        pending = list(self.lines)
        answers = itertools.cycle(self.answers)
        url = self.hub_url.replace("http", "ws", 1) + "/webchat/ws"
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.ws_connect(url, headers={"Origin": self.hub_url}) as ws:
                        await ws.send_json(self._hello())
                        welcome = await ws.receive_json(timeout=15)
                        self.visitor_id = welcome.get("visitor_id", self.visitor_id)
                        await self._talk(ws, pending, answers, interval)
                except (aiohttp.ClientError, TimeoutError, TypeError, ValueError) as e:
                    log.warning("simulated web chat visitor %s lost the chat: %s", self.who, e)
                await asyncio.sleep(interval)

    async def _talk(self, ws: aiohttp.ClientWebSocketResponse, pending: list[str],
                    answers: itertools.cycle[str], interval: float) -> None:
        due = asyncio.get_running_loop().time() + interval * random.uniform(0.5, 1.5)
        while not ws.closed:
            if pending and asyncio.get_running_loop().time() >= due:
                await self._say(ws, pending.pop(0))
                due = asyncio.get_running_loop().time() + interval * random.uniform(0.5, 1.5)
            try:
                frame = await ws.receive_json(timeout=1.0)
            except TimeoutError:
                continue
            if frame.get("type") == "message" and frame["message"].get("direction") == "out":
                text = str(frame["message"].get("text") or "[file]")
                self.received.append(text)
                log.info("simulated web chat visitor %s received %r", self.who, text)
                await asyncio.sleep(interval * random.uniform(0.3, 0.6))
                await self._say(ws, next(answers))

    async def _say(self, ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
        await ws.send_json({"type": "typing", "typing": True})
        await asyncio.sleep(0.8)
        await ws.send_json({"type": "message", "client_id": secrets.token_urlsafe(9), "text": text})
        log.info("simulated web chat visitor %s wrote %r", self.who, text)
