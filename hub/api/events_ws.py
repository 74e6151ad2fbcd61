"""GET /api/v1/events: the one WebSocket for live events. Authenticated like the REST API (bearer token, or the
console's session cookie with an Origin check), it sends a "hello" with the server time, then every bus event the
principal may see, and "lagged" when events were dropped so the client re-syncs through REST."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

from hub import tasks as background
from hub import visibility
from hub.api import live_access
from hub.api.auth import AUTH_VIA, PRINCIPAL, Principal
from hub.console.handlers import same_origin
from hub.console.sessions import SESSIONS
from hub.events import Event
from hub.history.db import Database
from hub.json_codec import dumps
from hub.keys import BUS, DB
from hub.model import format_time, utcnow
from hub.sockets import OPEN_SOCKETS

log = logging.getLogger("hub.api.events")

# How often a cookie-authenticated socket re-checks its session, so signing out (or expiry) closes it.
SESSION_RECHECK_SECONDS = 30.0
CLOSE_SESSION_ENDED = 4401
# Routing events that only concern the workforce view, never a particular conversation's readers.
SUPERVISOR_ONLY = frozenset({"routing.stats"})
#: routing events whose "queue" is where the conversation is now (written to the store before they are published)
IN_QUEUE = frozenset({"routing.queued", "routing.offered", "routing.escalated", "routing.unparked"})


def _conversation_id(data: dict[str, Any]) -> int | None:
    conv = data.get("conversation")
    if isinstance(conv, dict) and isinstance(conv.get("id"), int):
        return int(conv["id"])
    if isinstance(conv, int):
        return conv
    for key in ("conversation_id",):
        if isinstance(data.get(key), int):
            return int(data[key])
    msg = data.get("message")
    if isinstance(msg, dict) and isinstance(msg.get("conversation_id"), int):
        return int(msg["conversation_id"])
    return None


def _customer_id(data: dict[str, Any]) -> int | None:
    for key in ("conversation", "message", "customer"):
        inner = data.get(key)
        if isinstance(inner, dict) and isinstance(inner.get("customer_id"), int):
            return int(inner["customer_id"])
    cid = data.get("customer_id")
    return cid if isinstance(cid, int) else None


class Visibility:
    """Decides, per event, whether one principal may see it: hub.visibility's rule, applied to the stream. Events of a
    conversation are visible to whoever sees its customer."""

    # How long a customer's visibility is remembered between routing events (which always re-ask the store).
    REMEMBER_SECONDS = 2.0

    def __init__(self, db: Database, principal: Principal) -> None:
        self.db, self.p = db, principal
        self._customer_of: dict[int, int | None] = {}  # conversation -> customer
        self._seen: dict[int, tuple[float, bool]] = {}  # customer -> (until, visible)

    def rescope(self, principal: Principal) -> None:
        """The principal's role or queues changed: decide every later event by the new ones."""
        self.p = principal
        self._seen.clear()

    @property
    def sees_everything(self) -> bool:
        return visibility.sees_everything(self.p)

    @property
    def sees_workforce(self) -> bool:
        return self.p.role in ("admin", "supervisor")

    async def _customer(self, conv_id: int) -> int | None:
        if conv_id not in self._customer_of:
            row = await self.db.read(lambda tx: tx.one("SELECT customer_id FROM conversations WHERE id = ?",
                                                       (conv_id,)))
            if len(self._customer_of) > 5000:
                self._customer_of.clear()
            self._customer_of[conv_id] = int(row["customer_id"]) if row else None
        return self._customer_of[conv_id]

    async def _sees_customer(self, customer_id: int, fresh: bool = False) -> bool:
        now = time.monotonic()
        hit = self._seen.get(customer_id)
        if hit is not None and hit[0] > now and not fresh:
            return hit[1]
        seen = await self.db.read(lambda tx: visibility.sees_customer(tx, self.p, customer_id))
        if len(self._seen) > 5000:
            self._seen.clear()
        self._seen[customer_id] = (now + self.REMEMBER_SECONDS, seen)
        return seen

    async def allows(self, event: Event) -> bool:
        data, kind = event.data, event.type
        if kind == "mention.created":  # a notification for the agent mentioned, nobody else
            return data.get("agent_id") == self.p.agent_id
        if self.sees_everything:
            return True
        if kind in SUPERVISOR_ONLY:
            return self.sees_workforce
        if kind == "routing.presence":
            return self.sees_workforce or data.get("agent") == self.p.agent_id
        if kind in ("customer.merged", "customer.updated"):
            customer = data.get("customer")
            cid = customer.get("id") if isinstance(customer, dict) else None
            return isinstance(cid, int) and await self._sees_customer(cid, fresh=True)
        if kind.startswith("routing.") and self.p.agent_id is not None and self.p.agent_id in (
            data.get("agent"), data.get("to_agent"), data.get("from_agent")
        ):
            return True
        conv_id = _conversation_id(data)
        if conv_id is None:
            return self.sees_workforce and kind.startswith("routing.")
        if kind in IN_QUEUE and isinstance(data.get("queue"), str) and data["queue"] in self.p.queues:
            # Their own queue's work: asking the store (twice, fresh each routing event) held every later event of
            # this socket behind the read, one new conversation after another.
            return True
        conv = data.get("conversation")
        if isinstance(conv, dict) and "queue" in conv and visibility.may_act(self.p, conv.get("queue"),
                                                                             conv.get("agent_id")):
            return True  # their own work: no need to ask the store
        customer_id = _customer_id(data) or await self._customer(conv_id)
        if customer_id is None:
            return False
        # Routing moves conversations between queues and agents: ask the store again after each routing event.
        return await self._sees_customer(customer_id, fresh=kind.startswith("routing."))


async def events(request: web.Request) -> web.StreamResponse:
    p = request[PRINCIPAL]
    via = request.get(AUTH_VIA, "token")
    # A cookie is sent by any page the browser opens: only our own console may open a socket with it.
    if via == "session" and not same_origin(request):
        raise web.HTTPForbidden(text="WebSocket connections with a session cookie must come from the console's origin")
    ws = web.WebSocketResponse(heartbeat=25.0, max_msg_size=64 * 1024)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="this is a WebSocket endpoint: connect with Upgrade: websocket")
    await ws.prepare(request)
    if OPEN_SOCKETS in request.app:
        request.app[OPEN_SOCKETS].add(ws)
    # Subscribe before saying hello: anything after the client's re-sync is then already queued for it.
    sub = request.app[BUS].subscribe()
    seen = Visibility(request.app[DB], p)
    await ws.send_json({"type": "hello", "at": format_time(utcnow()),
                        "data": {"server_time": time.time(), "agent_id": p.agent_id, "role": p.role}})

    async def pump() -> None:
        try:
            await forward()
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("event stream failed; closing it so the client reconnects and re-syncs")
            await ws.close(code=1011, message=b"internal error")

    async def follow_access() -> bool:
        """Re-read the principal (its rights were changed, or events were dropped); False: the socket closed."""
        now = await live_access.current(request)
        if now is None:
            await ws.close(code=CLOSE_SESSION_ENDED, message=b"access revoked")
            return False
        if now != seen.p:
            seen.rescope(now)
            # The console re-syncs through REST on "lagged": what it may no longer see leaves its lists too.
            await ws.send_json({"type": "lagged", "at": format_time(utcnow()), "data": {"reason": "access changed"}})
        return True

    async def forward() -> None:
        async for event in sub:
            if sub.lagged:
                sub.lagged = False
                if not await follow_access():  # one of the dropped events may have been a revocation
                    return
                await ws.send_json({"type": "lagged", "at": format_time(utcnow()), "data": {}})
            if live_access.concerns(event, seen.p) and not await follow_access():
                return
            try:
                allowed = await seen.allows(event)
            except Exception:  # a store hiccup must not end the stream; the event is withheld, the client re-syncs
                log.exception("cannot decide visibility of %s", event.type)
                allowed = False
            if allowed:
                await ws.send_str(dumps(event.to_json()).decode())

    async def recheck() -> None:
        sessions = request.app[SESSIONS]
        token = request.cookies.get(sessions.cookie_name, "")
        while True:
            await asyncio.sleep(SESSION_RECHECK_SECONDS)
            if await sessions.verify(token) is None:
                await ws.close(code=CLOSE_SESSION_ENDED, message=b"session ended")
                return

    tasks = [asyncio.create_task(pump(), name="hub-ws-pump")]
    if via == "session":
        tasks.append(asyncio.create_task(recheck(), name="hub-ws-session"))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str("pong")
    finally:
        sub.close()
        await background.stop(tasks, expected=(ConnectionResetError,))
    return ws


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/events", events)]
