"""Web chat with two hub instances sharing one database and one real Redis event bus: a visitor connected to B gets
the reply an agent sends through A's API, and A's typing; A's console stream sees what the visitor wrote on B."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.channels.webchat.channel import WebchatChannel
from hub.config import Settings
from hub.keys import CHANNELS, DB
from tests.channels.webchat.test_channel import chat_env, connect, next_frame, say
from tests.waiting import eventually

Client = TestClient[Any, Any]


async def test_reply_and_typing_reach_a_visitor_held_by_another_process(
    make_settings: Callable[..., Settings], db_url: str, redis_url: str, aiohttp_client: Any
) -> None:
    bus = {"HUB_EVENTS__BACKEND": "redis", "HUB_EVENTS__REDIS_URL": redis_url,
           "HUB_EVENTS__CHANNEL": f"hub:test:{uuid.uuid4().hex}:events"}
    a: Client = await aiohttp_client(build_app(make_settings(db_url, **chat_env(**bus))))
    # B's outbox polls rarely, so A's (woken by the reply) is the one that sends it.
    b: Client = await aiohttp_client(build_app(make_settings(
        db_url, **chat_env(**bus, HUB_OUTBOX__POLL_INTERVAL_SECONDS="300"))))
    agent = await add_agent(a.app[DB], "Alice Agent", "alice@example.com", "alice-password-1", "agent", ["support"])
    alice = {"Authorization": f"Bearer {await create_token(a.app[DB], 'agent', agent.id)}"}
    admin = {"Authorization": f"Bearer {await create_token(a.app[DB], 'admin')}"}

    console = await a.ws_connect("/api/v1/events", headers=admin)
    assert (await console.receive_json(timeout=15))["type"] == "hello"

    ws, welcome = await connect(b)  # the visitor's socket is held by B
    await say(ws, "Is the red scarf still available?", "proc-0001")

    async def seen_on_a() -> dict[str, Any]:
        while True:
            event = await console.receive_json(timeout=20)
            msg = event.get("data", {}).get("message") or {}
            if event["type"] == "message.created" and msg.get("text") == "Is the red scarf still available?":
                return dict(msg)

    created = await asyncio.wait_for(seen_on_a(), 20)
    conv_id = created["conversation_id"]
    channel_a = a.app[CHANNELS]["webchat"]
    assert isinstance(channel_a, WebchatChannel)
    assert channel_a.sockets.count(f"webchat:{welcome['visitor_id']}") == 0, "A holds no socket of this visitor"

    resp = await a.post("/api/v1/webchat/typing", json={"conversation_id": conv_id, "typing": True}, headers=alice)
    assert resp.status == 200 and (await resp.json())["delivered"] == 0, "nobody on A; B delivers it"
    assert await next_frame(ws, "typing") == {"type": "typing", "typing": True, "agent_name": "Alice Agent"}

    resp = await a.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": "Yes, two left!"}, headers=alice)
    assert resp.status == 201, await resp.text()
    reply = await resp.json()
    frame = await next_frame(ws, "message")
    assert frame["message"]["id"] == reply["id"] and frame["message"]["text"] == "Yes, two left!"
    assert frame["message"]["agent_name"] == "Alice Agent"

    async def delivered() -> bool:
        got = await a.get(f"/api/v1/messages/{reply['id']}", headers=admin)
        return bool((await got.json())["status"] == "delivered")

    await eventually(delivered)  # B delivered it and said so, after A recorded it as sent

    # A second tab on A sees what the tab on B sends.
    tab_a, _ = await connect(a, visitor_id=welcome["visitor_id"])
    await say(ws, "Great, I'll order now", "proc-0002")
    echoed = await next_frame(tab_a, "message")
    assert echoed["message"]["client_id"] == "proc-0002"
    for sock in (ws, tab_a, console):
        await sock.close()
