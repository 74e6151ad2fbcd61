"""Web chat abuse limits through the real app: a burst of fresh anonymous sockets from one address (or from
everyone) is refused past the setting with close code 1013 and a reason, creates no customer and no conversation,
and shows on /metrics; returning visitors and signed-in ones are never held back. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hub.app import build_app
from hub.channels.webchat.channel import sign_identity
from hub.channels.webchat.limits import NewVisitorGate
from hub.config import Settings, WebchatSettings
from hub.keys import DB
from tests.channels.webchat.test_channel import SECRET, SITE, chat_env, next_frame

Client = TestClient[Any, Any]


async def open_chat(client: Client, **hello: Any) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await client.ws_connect("/webchat/ws", headers={"Origin": SITE})
    await ws.send_json({"type": "hello", **hello})
    return ws, await ws.receive_json(timeout=15)


async def counts(client: Client) -> tuple[int, int]:
    rows = await client.app[DB].read(lambda tx: (tx.one("SELECT COUNT(*) AS n FROM customers"),
                                                 tx.one("SELECT COUNT(*) AS n FROM conversations")))
    return int(rows[0]["n"]), int(rows[1]["n"])


@pytest.fixture
async def chat(aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str) -> Client:
    settings = make_settings(db_url, **chat_env(HUB_CHANNELS__WEBCHAT__NEW_VISITORS_PER_ADDRESS_PER_MINUTE="5"))
    c: Client = await aiohttp_client(build_app(settings))
    return c


async def test_a_burst_of_fresh_sockets_from_one_address_is_refused_and_creates_nothing(chat: Client) -> None:
    async def visitor(i: int) -> str:
        ws, first = await open_chat(chat)
        if first["type"] == "welcome":
            await ws.send_json({"type": "message", "client_id": f"burst-{i:04d}", "text": "hi"})
            ack = await next_frame(ws, "ack")
            assert ack["message"] is not None
            await ws.close()
            return "welcome"
        assert first == {"type": "error", "code": "too_many_new_chats", "retry_after": first["retry_after"],
                         "reason": first["reason"]}, first
        assert first["retry_after"] >= 1 and "Try again" in first["reason"]
        msg = await ws.receive(timeout=15)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1013, msg
        return "refused"

    answers = await asyncio.gather(*(visitor(i) for i in range(100)))
    assert answers.count("welcome") == 5 and answers.count("refused") == 95
    assert await counts(chat) == (5, 5), "one customer and one conversation per admitted visitor, none for the rest"
    metrics = await (await chat.get("/metrics")).text()
    assert 'hub_webchat_refused_total{reason="new_visitors_address"} 95.0' in metrics


async def test_returning_and_signed_in_visitors_are_never_held_back(chat: Client) -> None:
    ws, welcome = await open_chat(chat)
    await ws.send_json({"type": "message", "client_id": "first-0001", "text": "hello"})
    await next_frame(ws, "ack")
    await ws.close()
    for _ in range(4):
        ws, first = await open_chat(chat)
        assert first["type"] == "welcome"
        await ws.close()
    ws, first = await open_chat(chat)
    assert first["code"] == "too_many_new_chats"
    # The visitor who already wrote comes back (a new tab, a reload) as often as they like.
    for _ in range(3):
        ws, again = await open_chat(chat, visitor_id=welcome["visitor_id"])
        assert again["type"] == "welcome" and [m["text"] for m in again["history"]] == ["hello"]
        await ws.close()
    # So does a customer the host site vouches for.
    claim = {"user_id": "u-42", "user_hash": sign_identity(SECRET, "u-42")}
    ws, signed = await open_chat(chat, identity=claim)
    assert signed["type"] == "welcome" and signed["verified"] is True
    await ws.close()


def test_the_overall_limit_holds_across_addresses_and_refills() -> None:
    now = [0.0]
    gate = NewVisitorGate(WebchatSettings(new_visitors_per_address_per_minute=2, new_visitors_per_minute=3),
                          clock=lambda: now[0])
    assert [gate.admit(a) for a in ("10.0.0.1", "10.0.0.1", "10.0.0.2")] == [None, None, None]
    assert gate.admit("10.0.0.1") == ("address", 30)
    assert gate.admit("10.0.0.3") == ("overall", 20)
    now[0] += 20
    assert gate.admit("10.0.0.3") is None, "a refusal overall did not use up that address's own allowance"
    assert gate.admit("10.0.0.3") == ("overall", 20)
