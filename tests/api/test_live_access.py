"""Live channels follow authorization changes at once (hub.api.live_access): revoking a token, signing out,
disabling an agent, or changing an agent's role or queues closes or re-scopes every socket of theirs within a
second, also when the change is made through another hub process (memory bus: one process; Redis bus: two)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.keys import DB

Client = TestClient[Any, Any]
PASSWORD = "correct horse battery"
# Within a second of the change's answer: the socket is closed, or tells the console to re-sync.
AT_ONCE = 1.0


@dataclass
class Hubs:
    change: Client  # where the admin makes the change
    watch: Client  # where the agent's sockets are open (another process on the Redis bus)
    admin: dict[str, str]


@pytest.fixture(params=["memory", "redis"])
async def hubs(request: pytest.FixtureRequest, make_settings: Callable[..., Settings], db_url: str,
               aiohttp_client: Any) -> AsyncIterator[Hubs]:
    env = {"HUB_ROUTING__QUEUES": json.dumps({"support": {}, "sales": {}}),
           "HUB_ROUTING__RULES": json.dumps([{"name": "pricing", "queue": "sales", "keywords": ["pricing"]}])}
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        env |= {"HUB_EVENTS__BACKEND": "redis", "HUB_EVENTS__REDIS_URL": redis_url,
                "HUB_EVENTS__CHANNEL": f"hub:test:{uuid.uuid4().hex}:events"}
    change: Client = await aiohttp_client(build_app(make_settings(db_url, **env)))
    watch = change if request.param == "memory" else await aiohttp_client(build_app(make_settings(db_url, **env)))
    admin = {"Authorization": f"Bearer {await create_token(change.app[DB], 'admin')}"}
    yield Hubs(change, watch, admin)


async def _sign_in(client: Client, email: str) -> tuple[str, str]:
    resp = await client.post("/console/session", json={"email": email, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    cookie = resp.cookies["hub_session"].value
    client.session.cookie_jar.clear()
    return cookie, (await resp.json())["csrf_token"]


async def _socket(client: Client, token: str | None = None, cookie: str | None = None
                  ) -> aiohttp.ClientWebSocketResponse:
    headers = {"Authorization": f"Bearer {token}"} if token else {
        "Cookie": f"hub_session={cookie}", "Origin": str(client.make_url("")).rstrip("/")}
    ws = await client.ws_connect("/api/v1/events", headers=headers)
    hello = (await ws.receive(timeout=10)).json()
    assert hello["type"] == "hello"
    return ws


async def _next(ws: aiohttp.ClientWebSocketResponse, within: float, want: Callable[[dict[str, Any]], bool]
                ) -> dict[str, Any] | int:
    """The first event WANT accepts, or the close code if the socket closes first."""
    deadline = time.monotonic() + within
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if msg.type == aiohttp.WSMsgType.CLOSE:
            # The code in the server's close frame: aiohttp's close_code turns 1006 when its own reply to that frame
            # meets a transport the server has already shut.
            return int(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code or 0
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        event: dict[str, Any] = msg.json()
        if want(event):
            return event


async def _alive(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """The socket still answers a ping (events that arrive meanwhile are skipped)."""
    await ws.send_str("ping")
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return False
        if msg.data == "pong":
            return True


def _resync(event: dict[str, Any]) -> bool:
    return event["type"] == "lagged" and event["data"].get("reason") == "access changed"


def _text(event: dict[str, Any]) -> str | None:
    message = event["data"].get("message") if event["type"] == "message.created" else None
    return message.get("text") if isinstance(message, dict) else None


async def _only_support_now(h: Hubs, sockets: list[aiohttp.ClientWebSocketResponse]) -> None:
    """A new sales customer's message does not reach the sockets; a support one does, and arrives first."""
    for identity, text in (("email:new-sales@example.com", "pricing for me"), ("email:new-sup@example.com", "help")):
        resp = await h.change.post("/api/v1/inbound", json={"identity": identity, "text": text}, headers=h.admin)
        assert resp.status == 201
    for ws in sockets:
        first = await _next(ws, 10, lambda e: _text(e) is not None)
        assert isinstance(first, dict) and _text(first) == "help", first


async def test_token_and_session_sockets_follow_queue_changes_revocation_and_sign_out(hubs: Hubs) -> None:
    h = hubs
    sam = await add_agent(h.change.app[DB], "Sam", "sam@example.com", PASSWORD, "agent", ["sales"])
    token = await create_token(h.change.app[DB], "agent", sam.id)
    cookie, csrf = await _sign_in(h.change, "sam@example.com")
    by_token, by_cookie = await _socket(h.watch, token=token), await _socket(h.watch, cookie=cookie)

    # Moved from sales to support: both sockets re-scope at once (the seen leak: queues fixed at connect).
    started = time.monotonic()
    resp = await h.change.patch(f"/api/v1/agents/{sam.id}", json={"queues": ["support"]}, headers=h.admin)
    assert resp.status == 200
    for ws in (by_token, by_cookie):
        assert isinstance(await _next(ws, AT_ONCE - (time.monotonic() - started), _resync), dict)
    await _only_support_now(h, [by_token, by_cookie])

    # The token is revoked: its socket closes at once (the seen leak: it streamed 40 s on); the session's stays.
    tokens = (await (await h.change.get("/api/v1/tokens", headers=h.admin)).json())["items"]
    token_id = next(t["id"] for t in tokens if t["agent_id"] == sam.id)
    started = time.monotonic()
    assert (await h.change.delete(f"/api/v1/tokens/{token_id}", headers=h.admin)).status == 200
    assert await _next(by_token, AT_ONCE - (time.monotonic() - started), lambda e: False) == 4401
    assert await _alive(by_cookie)

    # Signing out (in another tab, through the other process) closes the session's socket at once.
    started = time.monotonic()
    resp = await h.change.delete("/console/session", headers={"Cookie": f"hub_session={cookie}",
                                                              "X-CSRF-Token": csrf})
    assert resp.status == 200
    assert await _next(by_cookie, AT_ONCE - (time.monotonic() - started), lambda e: False) == 4401


async def test_a_role_change_rescopes_and_disabling_closes(hubs: Hubs) -> None:
    h = hubs
    await add_agent(h.change.app[DB], "Ada", "ada@example.com", PASSWORD, "admin", [])  # not the last admin
    dana = await add_agent(h.change.app[DB], "Dana", "dana@example.com", PASSWORD, "admin", ["support"])
    other = await add_agent(h.change.app[DB], "Other", "other@example.com", PASSWORD, "agent", ["support"])
    cookie, _ = await _sign_in(h.change, "dana@example.com")
    other_cookie, _ = await _sign_in(h.change, "other@example.com")
    ws, bystander = await _socket(h.watch, cookie=cookie), await _socket(h.watch, cookie=other_cookie)

    started = time.monotonic()
    resp = await h.change.patch(f"/api/v1/agents/{dana.id}", json={"role": "agent"}, headers=h.admin)
    assert resp.status == 200
    assert isinstance(await _next(ws, AT_ONCE - (time.monotonic() - started), _resync), dict)
    await _only_support_now(h, [ws])  # as an admin she saw every queue; now only support

    started = time.monotonic()
    resp = await h.change.patch(f"/api/v1/agents/{dana.id}", json={"disabled": True}, headers=h.admin)
    assert resp.status == 200
    assert await _next(ws, AT_ONCE - (time.monotonic() - started), lambda e: False) == 4401
    # Nobody else's socket was touched.
    assert other.id != dana.id and await _alive(bystander)
    await bystander.close()
