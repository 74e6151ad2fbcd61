"""The web chat channel through the real app and store, with a real WebSocket client (aiohttp's): visitors,
history, signed identities, origins, limits, typing, and agent replies sent through the REST API and the outbox."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.channels.webchat.channel import sign_identity
from hub.config import Settings
from hub.events import Event
from hub.keys import BUS, DB
from tests.waiting import eventually

Client = TestClient[Any, Any]
SECRET = "host-site-shared-secret"
SITE = "https://shop.example.com"


def chat_env(**more: str) -> dict[str, str]:
    return {
        "HUB_CHANNELS__WEBCHAT__ENABLED": "true",
        "HUB_CHANNELS__WEBCHAT__ALLOWED_ORIGINS": f'["{SITE}"]',
        "HUB_CHANNELS__WEBCHAT__IDENTITY_SECRET": SECRET,
        "HUB_OUTBOX__POLL_INTERVAL_SECONDS": "0.2",
        **more,
    }


@pytest.fixture
def chat_settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, **chat_env())


@pytest.fixture
async def chat(aiohttp_client: Any, chat_settings: Settings) -> Client:
    c: Client = await aiohttp_client(build_app(chat_settings))
    return c


@pytest.fixture
async def admin(chat: Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_token(chat.app[DB], 'admin')}"}


@pytest.fixture
async def alice(chat: Client) -> dict[str, str]:
    agent = await add_agent(chat.app[DB], "Alice Agent", "alice@example.com", "alice-password-1", "agent", ["support"])
    return {"Authorization": f"Bearer {await create_token(chat.app[DB], 'agent', agent.id)}"}


async def connect(client: Client, **hello: Any) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await client.ws_connect("/webchat/ws", headers={"Origin": SITE})
    await ws.send_json({"type": "hello", **hello})
    welcome = await ws.receive_json(timeout=15)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


async def next_frame(ws: aiohttp.ClientWebSocketResponse, kind: str, wait: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        frame: dict[str, Any] = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        if frame["type"] == kind:
            return frame


async def say(ws: aiohttp.ClientWebSocketResponse, text: str, client_id: str) -> dict[str, Any]:
    await ws.send_json({"type": "message", "client_id": client_id, "text": text})
    return await next_frame(ws, "ack")


async def customer(client: Client, admin: dict[str, str], identity: str) -> dict[str, Any] | None:
    resp = await client.get("/api/v1/customers", params={"identity": identity}, headers=admin)
    items = (await resp.json())["items"]
    return items[0] if items else None


async def reply(client: Client, headers: dict[str, str], conversation_id: int, text: str) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": text},
                             headers=headers)
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def test_visitor_message_and_agent_reply_round_trip(
    chat: Client, admin: dict[str, str], alice: dict[str, str]
) -> None:
    ws, welcome = await connect(chat)
    visitor = welcome["visitor_id"]
    assert re.fullmatch(r"v_[A-Za-z0-9_-]{22}", visitor) and welcome["history"] == []
    assert welcome["verified"] is False

    ack = await say(ws, "Hi! Is the blue jacket back in stock?", "client-0001")
    sent = ack["message"]
    assert sent["text"] == "Hi! Is the blue jacket back in stock?" and sent["direction"] == "in"
    cust = await customer(chat, admin, f"webchat:{visitor}")
    assert cust is not None

    got = await reply(chat, alice, sent_conversation(await timeline(chat, admin, cust["id"])), "Yes, since today!")
    frame = await next_frame(ws, "message")
    assert frame["message"]["text"] == "Yes, since today!"
    assert frame["message"]["agent_name"] == "Alice Agent" and frame["message"]["direction"] == "out"
    assert frame["message"]["id"] == got["id"]

    async def delivered() -> bool:
        resp = await chat.get(f"/api/v1/messages/{got['id']}", headers=admin)
        return bool((await resp.json())["status"] == "delivered")

    await eventually(delivered)
    await ws.close()

    # Back later (a reload): the visitor's id brings their history back, agent name included; notes never show.
    resp = await chat.post(f"/api/v1/conversations/{sent['id'] and got['conversation_id']}/messages",
                           json={"text": "VIP customer, be nice", "note": True}, headers=admin)
    assert resp.status == 201
    ws2, again = await connect(chat, visitor_id=visitor)
    assert again["visitor_id"] == visitor
    assert [(m["direction"], m["text"], m["agent_name"]) for m in again["history"]] == [
        ("in", "Hi! Is the blue jacket back in stock?", None),
        ("out", "Yes, since today!", "Alice Agent"),
    ]
    assert again["history"][0]["client_id"] == "client-0001"
    await ws2.close()


def sent_conversation(items: list[dict[str, Any]]) -> int:
    return int(items[0]["conversation_id"])


async def timeline(client: Client, admin: dict[str, str], customer_id: int) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/v1/customers/{customer_id}/timeline", headers=admin)
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def test_resent_message_is_stored_once_and_other_tabs_see_it(chat: Client, admin: dict[str, str]) -> None:
    ws, welcome = await connect(chat)
    tab2, _ = await connect(chat, visitor_id=welcome["visitor_id"])
    first = await say(ws, "hello", "resend-0001")
    echoed = await next_frame(tab2, "message")
    assert echoed["message"]["client_id"] == "resend-0001"
    again = await say(ws, "hello", "resend-0001")  # the offline queue re-sending after a dropped socket
    assert again["message"]["id"] == first["message"]["id"]
    cust = await customer(chat, admin, f"webchat:{welcome['visitor_id']}")
    assert cust is not None and len(await timeline(chat, admin, cust["id"])) == 1
    await ws.close()
    await tab2.close()


async def test_foreign_origins_are_refused(chat: Client) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await chat.ws_connect("/webchat/ws", headers={"Origin": "https://evil.example.net"})
    assert e.value.status == 403
    own = f"http://{chat.server.host}:{chat.server.port}"
    ws = await chat.ws_connect("/webchat/ws", headers={"Origin": own})  # the hub's own /chat page
    await ws.send_json({"type": "hello"})
    assert (await ws.receive_json(timeout=15))["type"] == "welcome"
    await ws.close()


async def test_ids_not_minted_here_are_replaced(chat: Client) -> None:
    _ws, welcome = await connect(chat, visitor_id="visitor-7f3a")
    assert welcome["visitor_id"] != "visitor-7f3a" and welcome["visitor_id"].startswith("v_")
    ws = await chat.ws_connect("/webchat/ws", headers={"Origin": SITE})
    await ws.send_json({"type": "message", "client_id": "abcdefgh", "text": "no hello"})
    msg = await ws.receive(timeout=15)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and msg.data == 4400


async def test_size_and_rate_limits(make_settings: Callable[..., Settings], aiohttp_client: Any) -> None:
    settings = make_settings(None, **chat_env(HUB_CHANNELS__WEBCHAT__MAX_MESSAGE_CHARS="50",
                                              HUB_CHANNELS__WEBCHAT__MESSAGES_PER_MINUTE="3"))
    client: Client = await aiohttp_client(build_app(settings))
    ws, _ = await connect(client)
    await ws.send_json({"type": "message", "client_id": "long-0001", "text": "x" * 51})
    err = await next_frame(ws, "error")
    assert err["code"] == "too_long" and "50 characters" in err["reason"] and err["client_id"] == "long-0001"
    await ws.send_json({"type": "message", "client_id": "bad id!", "text": "hi"})
    assert (await next_frame(ws, "error"))["code"] == "bad_message"
    for i in range(3):
        assert (await say(ws, f"message {i}", f"rate-000{i}"))["message"] is not None
    await ws.send_json({"type": "message", "client_id": "rate-0009", "text": "one too many"})
    err = await next_frame(ws, "error")
    assert err["code"] == "rate_limited" and err["retry_after"] > 0


async def test_signed_identity_joins_the_customer_and_bad_signatures_merge_nothing(
    chat: Client, admin: dict[str, str]
) -> None:
    resp = await chat.post("/api/v1/inbound", json={"identity": "email:ann@example.com", "text": "order question",
                                                     "name": "Ann Lee"}, headers=admin)
    ann = (await resp.json())["customer"]

    forged = {"email": "ann@example.com", "user_hash": sign_identity("wrong-secret", "ann@example.com")}
    ws, welcome = await connect(chat, identity=forged)
    assert welcome["verified"] is False and "does not match" in welcome["identity_error"]
    await say(ws, "I am Ann, show me her orders", "forged-0001")
    anon = await customer(chat, admin, f"webchat:{welcome['visitor_id']}")
    assert anon is not None and anon["id"] != ann["id"]
    after = await customer(chat, admin, "email:ann@example.com")
    assert after is not None and [i["id"] for i in after["identities"]] == ["email:ann@example.com"]
    assert len(await timeline(chat, admin, ann["id"])) == 1, "nothing joined Ann's timeline"
    await ws.close()

    signed = {"email": "Ann@Example.com", "name": "Ann Lee", "user_hash": sign_identity(SECRET, "Ann@Example.com")}
    ws, welcome = await connect(chat, identity=signed)
    assert welcome["verified"] is True and welcome["identity_error"] is None
    ack = await say(ws, "Hi, it's Ann from the website", "signed-0001")
    assert ack["message"]["direction"] == "in"
    items = await timeline(chat, admin, ann["id"])
    assert [m["text"] for m in items] == ["order question", "Hi, it's Ann from the website"]
    assert items[1]["channel"] == "webchat" and items[1]["meta"]["webchat"]["verified"] is True

    # The agent's reply goes back over the socket even though the visitor writes as email:ann@example.com.
    await reply(chat, admin, items[1]["conversation_id"], "Welcome back, Ann")
    assert (await next_frame(ws, "message"))["message"]["text"] == "Welcome back, Ann"
    await ws.close()

    by_id = {"user_id": "42", "user_hash": sign_identity(SECRET, "42")}
    ws, welcome = await connect(chat, identity=by_id)
    assert welcome["verified"] is True
    await say(ws, "logged in by id", "userid-0001")
    assert await customer(chat, admin, "webchat:u.42") is not None
    await ws.close()


async def test_prechat_details_are_kept_but_never_merge(chat: Client, admin: dict[str, str]) -> None:
    resp = await chat.post("/api/v1/inbound", json={"identity": "email:raj@example.com", "text": "hi"},
                           headers=admin)
    raj = (await resp.json())["customer"]
    ws, welcome = await connect(chat, profile={"name": "Raj Patel", "email": "raj@example.com"})
    await say(ws, "pricing question", "prechat-0001")
    anon = await customer(chat, admin, f"webchat:{welcome['visitor_id']}")
    assert anon is not None and anon["id"] != raj["id"] and anon["name"] == "Raj Patel"
    [msg] = await timeline(chat, admin, anon["id"])
    assert msg["meta"]["prechat"] == {"name": "Raj Patel", "email": "raj@example.com"}
    await ws.close()


async def test_typing_both_ways(chat: Client, admin: dict[str, str], alice: dict[str, str]) -> None:
    events = chat.app[BUS].subscribe()
    ws, _welcome = await connect(chat)
    ack = await say(ws, "hello", "typing-0001")
    await ws.send_json({"type": "typing", "typing": True})

    async def customer_typing() -> Event:
        async for e in events:
            if e.type == "typing":
                return e
        raise AssertionError("bus closed")

    event = await asyncio.wait_for(customer_typing(), 20)
    assert event.data["who"] == "customer" and event.data["typing"] is True and event.data["channel"] == "webchat"
    conv_id = event.data["conversation_id"]
    events.close()

    resp = await chat.post("/api/v1/webchat/typing", json={"conversation_id": conv_id, "typing": True},
                           headers=alice)
    assert resp.status == 200 and (await resp.json())["delivered"] == 1
    frame = await next_frame(ws, "typing")
    assert frame == {"type": "typing", "typing": True, "agent_name": "Alice Agent"}
    resp = await chat.post("/api/v1/webchat/typing", json={"conversation_id": conv_id}, headers={})
    assert resp.status == 401
    assert ack["message"] is not None
    await ws.close()


async def test_reply_to_an_offline_visitor_waits_in_their_history(chat: Client, admin: dict[str, str]) -> None:
    ws, welcome = await connect(chat)
    ack = await say(ws, "are you there?", "offline-0001")
    await ws.close()
    cust = await customer(chat, admin, f"webchat:{welcome['visitor_id']}")
    assert cust is not None
    got = await reply(chat, admin, (await timeline(chat, admin, cust["id"]))[0]["conversation_id"], "We are!")

    async def sent() -> bool:
        resp = await chat.get(f"/api/v1/messages/{got['id']}", headers=admin)
        return bool((await resp.json())["status"] == "sent")

    await eventually(sent)
    ws, again = await connect(chat, visitor_id=welcome["visitor_id"])
    assert [m["text"] for m in again["history"]] == ["are you there?", "We are!"]
    assert ack["message"]["id"] == again["history"][0]["id"]
    await ws.close()


async def test_widget_files_and_config_are_served(chat: Client) -> None:
    resp = await chat.get("/widget.js")
    assert resp.status == 200 and resp.content_type == "text/javascript"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    body = await resp.text()
    assert "import { ChatClient }" in body
    for name in ("client.js", "ui.js", "widget.css"):
        assert (await chat.get(f"/webchat/static/{name}")).status == 200
    assert (await chat.get("/webchat/static/..%2Fchannel.py")).status == 404
    page = await chat.get("/chat")
    assert page.status == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
    config = await (await chat.get("/webchat/config")).json()
    assert config["title"] == "Chat with us" and "identity_secret" not in config
    ui = await (await chat.get("/webchat/static/ui.js")).text()
    assert "innerHTML" not in ui and "insertAdjacentHTML" not in ui, "message text is only ever set as text"
