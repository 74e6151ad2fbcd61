"""@mentions in internal notes on both databases: "@Full Name" or "@handle" (the email's part before the @) in a
note notifies that agent, written with the note; only agents who see the customer are mentioned; the mentioned
agent's live stream (and nobody else's) carries it, and their Mentions list keeps it until read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.config import Settings
from hub.mentions import Named, named_in
from tests.api.client import call, person

Client = TestClient[Any, Any]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES='{"support": {"title": "Support"}, "sales": {}}')


def test_who_a_note_names() -> None:
    team = [Named(1, "Ann Lee", "ann@example.com"), Named(2, "Anna Bell", "anna@example.com"),
            Named(3, "Bo", "bo.k@example.com")]
    assert named_in("@Anna Bell and @ann please look", team) == [2, 1]
    assert named_in("ask @ANN LEE, not @annabel", team) == [1]
    assert named_in("mail ann@example.com or @bo.k", team) == [3]
    assert named_in("no one @Annie", team) == []


async def test_mention_notifies_only_that_agent(client: Client, admin_headers: dict[str, str]) -> None:
    alice_id, alice = await person(client, "Alice Brown", "agent", ["support"])
    bob_id, bob = await person(client, "Bob Stone", "agent", ["support"])
    _sam_id, sam = await person(client, "Sam Hill", "agent", ["sales"])
    conv = (await call(client, "POST", "/api/v1/inbound", admin_headers,
                       {"identity": "phone:+14155550190", "text": "my order is late"}, expect=201))["conversation"]

    bob_ws = await client.ws_connect("/api/v1/events", headers=bob)
    sam_ws = await client.ws_connect("/api/v1/events", headers=sam)
    for ws in (bob_ws, sam_ws):
        assert (await ws.receive_json(timeout=5))["type"] == "hello"

    note = await call(client, "POST", f"/api/v1/conversations/{conv['id']}/messages", alice,
                      {"text": "@Bob Stone can you check the carrier? @sam too", "note": True}, expect=201)
    assert note["kind"] == "note" and note["mentioned"] == [bob_id] and note["not_mentioned"] == ["Sam Hill"]

    async def next_mention(ws: Any, wait: float = 5.0) -> dict[str, Any]:
        while True:
            event = await ws.receive_json(timeout=wait)
            if event["type"] == "mention.created":
                return dict(event["data"]["mention"])

    got = await next_mention(bob_ws)
    assert got["agent_id"] == bob_id and got["by_agent_name"] == "Alice Brown" and got["read_at"] is None
    assert got["conversation_id"] == conv["id"] and "carrier" in got["text"]
    with pytest.raises(asyncio.TimeoutError):
        await next_mention(sam_ws, 1.0)  # not in the customer's queue: no notification, no mention
    await bob_ws.close()
    await sam_ws.close()

    # Persisted: Bob's list has it after any reload, until he reads it; Alice's (the author's) has nothing.
    listed = await call(client, "GET", "/api/v1/mentions", bob)
    assert listed["unread"] == 1 and [m["id"] for m in listed["items"]] == [got["id"]]
    assert (await call(client, "GET", "/api/v1/mentions", alice))["items"] == []
    assert (await call(client, "GET", "/api/v1/mentions", sam))["unread"] == 0
    await call(client, "POST", f"/api/v1/mentions/{got['id']}/read", alice, expect=404)
    read = await call(client, "POST", f"/api/v1/mentions/{got['id']}/read", bob)
    assert read["unread"] == 0 and read["mention"]["read_at"]
    assert (await call(client, "GET", "/api/v1/mentions?unread=true", bob))["items"] == []
    assert len((await call(client, "GET", "/api/v1/mentions", bob))["items"]) == 1
    # A reply (not a note) mentions nobody; mentioning oneself is no notification.
    await call(client, "POST", f"/api/v1/conversations/{conv['id']}/messages", alice,
               {"text": "@Bob Stone is here", "channel": "api"}, expect=201)
    mine = await call(client, "POST", f"/api/v1/conversations/{conv['id']}/messages", bob,
                      {"text": "@Bob Stone note to self, @alice FYI", "note": True}, expect=201)
    assert mine["mentioned"] == [alice_id]
    assert (await call(client, "GET", "/api/v1/mentions", bob))["unread"] == 0
    # Opening a conversation reads its mentions; others stay unread.
    other = (await call(client, "POST", "/api/v1/inbound", admin_headers,
                        {"identity": "phone:+14155550191", "text": "and another thing"}, expect=201))["conversation"]
    await call(client, "POST", f"/api/v1/conversations/{other['id']}/messages", bob,
               {"text": "@alice this one too", "note": True}, expect=201)
    assert (await call(client, "GET", "/api/v1/mentions", alice))["unread"] == 2
    opened = await call(client, "POST", "/api/v1/mentions/read", alice, {"conversation_id": other["id"]})
    assert opened["unread"] == 1
    assert (await call(client, "POST", "/api/v1/mentions/read", alice))["unread"] == 0
    await call(client, "GET", "/api/v1/mentions?unread=maybe", bob, expect=400)
    await call(client, "GET", "/api/v1/mentions", admin_headers, expect=400)  # an admin token is no agent
