"""Who owns a conversation, through the real app and both routing backends: "Assign to me" (a claim through
routing: capacity and one owner hold), claim on an agent's first reply, Reopen (Resolve's undo), and offers taken
back from an agent who stops being Available."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.config import Settings
from hub.keys import DB

Client = TestClient[Any, Any]
QUEUES = json.dumps({"support": {"title": "Support", "offer_timeout": 300}})
AGENTS = json.dumps([{"email": "alice@example.com", "capacity": {"chat": 1}}])


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES=QUEUES, HUB_ROUTING__AGENTS=AGENTS,
                         HUB_ROUTING__BACKEND=backend, HUB_ROUTING__KEY_PREFIX=prefix,
                         HUB_ROUTING__TICK_SECONDS="0.1")


async def agent(client: Client, name: str) -> tuple[int, dict[str, str]]:
    a = await add_agent(client.app[DB], name, f"{name.lower()}@example.com", "long password", "agent", ["support"])
    return a.id, {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', a.id)}"}


async def call(client: Client, method: str, path: str, headers: dict[str, str], body: Any = None,
               expect: int = 200) -> Any:
    resp = await client.request(method, path, json=body if body is not None else {}, headers=headers)
    data = await resp.json()
    assert resp.status == expect, (path, resp.status, data)
    return data


async def available(client: Client, headers: dict[str, str], presence: str = "available") -> None:
    await call(client, "POST", "/api/v1/agents/me/presence", headers, {"presence": presence})


async def opened(client: Client, admin: dict[str, str], who: str) -> int:
    body = {"identity": f"phone:{who}", "text": "hello?"}
    return int((await call(client, "POST", "/api/v1/inbound", admin, body, expect=201))["conversation"]["id"])


async def test_assign_to_me_takes_an_offer_from_another_agent_within_capacity(
    client: Client, admin_headers: dict[str, str]
) -> None:
    alice, alice_h = await agent(client, "Alice")
    _bob, bob_h = await agent(client, "Bob")
    await available(client, bob_h)
    first = await opened(client, admin_headers, "+14155550101")
    offers = (await call(client, "GET", "/api/v1/offers", bob_h))["items"]
    assert [o["conversation_id"] for o in offers] == [first]

    # Not Available: refused with the reason, nothing moves.
    refused = await call(client, "POST", f"/api/v1/conversations/{first}/claim", alice_h, expect=409)
    assert "Available" in refused["error"]["message"]
    await available(client, alice_h)
    # Alice got nothing herself (Bob holds the only offer); she takes Bob's offer: it is hers, Bob's is gone.
    mine = await call(client, "POST", f"/api/v1/conversations/{first}/claim", alice_h)
    assert mine["status"] == "assigned" and mine["agent_id"] == alice
    assert (await call(client, "GET", "/api/v1/offers", bob_h))["items"] == []
    await call(client, "POST", f"/api/v1/conversations/{first}/accept", bob_h, expect=409)
    # Already hers: claiming again changes nothing; Bob cannot take it from her by claiming.
    await call(client, "POST", f"/api/v1/conversations/{first}/claim", alice_h)
    taken = await call(client, "POST", f"/api/v1/conversations/{first}/claim", bob_h, expect=409)
    assert "already assigned" in taken["error"]["message"]

    # Alice's chat capacity is 1: a second claim is refused with her load, and the conversation stays waiting.
    second = await opened(client, admin_headers, "+14155550102")
    full = await call(client, "POST", f"/api/v1/conversations/{second}/claim", alice_h, expect=409)
    assert "capacity" in full["error"]["message"] and "1 of 1" in full["error"]["message"]
    agents = {a["id"]: a for a in (await call(client, "GET", "/api/v1/agents", admin_headers))["items"]}
    assert agents[alice]["load"] == {"chat": 1}
    conv = await call(client, "GET", f"/api/v1/conversations/{second}", admin_headers)
    assert conv["agent_id"] != alice


async def test_first_reply_claims_a_waiting_conversation(client: Client, admin_headers: dict[str, str]) -> None:
    alice, alice_h = await agent(client, "Alice")
    await available(client, alice_h)
    await available(client, alice_h, "away")
    conv = await opened(client, admin_headers, "+14155550103")
    # Away: the reply goes out, the conversation stays in its queue.
    await call(client, "POST", f"/api/v1/conversations/{conv}/messages", alice_h, {"text": "Looking"}, expect=201)
    assert (await call(client, "GET", f"/api/v1/conversations/{conv}", alice_h))["status"] == "open"
    await available(client, alice_h)  # it is offered to her now: a reply is as good as Accept
    # A note claims nothing; a reply does.
    await call(client, "POST", f"/api/v1/conversations/{conv}/messages", alice_h, {"text": "hm", "note": True},
               expect=201)
    assert (await call(client, "GET", f"/api/v1/conversations/{conv}", alice_h))["status"] == "open"
    await call(client, "POST", f"/api/v1/conversations/{conv}/messages", alice_h, {"text": "On it!"}, expect=201)
    c = await call(client, "GET", f"/api/v1/conversations/{conv}", alice_h)
    assert c["status"] == "assigned" and c["agent_id"] == alice


async def test_reopen_undoes_resolve(client: Client, admin_headers: dict[str, str]) -> None:
    alice, alice_h = await agent(client, "Alice")
    await available(client, alice_h)
    conv = await opened(client, admin_headers, "+14155550104")
    await call(client, "POST", f"/api/v1/conversations/{conv}/accept", alice_h)
    await call(client, "POST", f"/api/v1/conversations/{conv}/reopen", alice_h, expect=409)  # not resolved
    await call(client, "POST", f"/api/v1/conversations/{conv}/resolve", alice_h)
    agents = {a["id"]: a for a in (await call(client, "GET", "/api/v1/agents", admin_headers))["items"]}
    assert agents[alice]["load"].get("chat", 0) == 0

    back = await call(client, "POST", f"/api/v1/conversations/{conv}/reopen", alice_h)
    assert back["status"] == "assigned" and back["agent_id"] == alice and back["claim_refused"] is None
    agents = {a["id"]: a for a in (await call(client, "GET", "/api/v1/agents", admin_headers))["items"]}
    assert agents[alice]["load"] == {"chat": 1}
    timeline = await call(client, "GET", f"/api/v1/customers/{back['customer_id']}/timeline", alice_h)
    assert any(m["kind"] == "event" and m["text"] == "Reopened by Alice" for m in timeline["items"])

    # A newer open conversation of the same customer: reopening the old one would make two.
    await call(client, "POST", f"/api/v1/conversations/{conv}/resolve", alice_h)
    newer = await opened(client, admin_headers, "+14155550104")
    assert newer != conv
    refused = await call(client, "POST", f"/api/v1/conversations/{conv}/reopen", alice_h, expect=409)
    assert f"#{newer}" in refused["error"]["message"]


async def test_going_away_hands_offers_back_at_once(client: Client, admin_headers: dict[str, str]) -> None:
    _alice, alice_h = await agent(client, "Alice")
    _bob, bob_h = await agent(client, "Bob")
    await available(client, alice_h)
    conv = await opened(client, admin_headers, "+14155550105")
    assert [o["conversation_id"] for o in (await call(client, "GET", "/api/v1/offers", alice_h))["items"]] == [conv]
    await available(client, bob_h)
    await available(client, alice_h, "away")
    # Not after the 300 s offer timeout: now, and to the next agent.
    assert (await call(client, "GET", "/api/v1/offers", alice_h))["items"] == []
    assert [o["conversation_id"] for o in (await call(client, "GET", "/api/v1/offers", bob_h))["items"]] == [conv]
