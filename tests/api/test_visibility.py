"""The one visibility rule (hub.visibility), held by every endpoint and search, across roles:
whoever serves a customer reads that customer's whole history; acting stays with the conversation's queue; what is
out of reach answers exactly as what is absent."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.config import Settings
from hub.keys import DB
from tests.api.client import Api, inbound

Client = TestClient[Any, Any]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES=json.dumps({"support": {}, "sales": {}}),
                         HUB_ROUTING__RULES=json.dumps([{"name": "pricing", "queue": "sales",
                                                         "keywords": ["pricing"]}]))


@dataclass
class World:
    admin: Api
    roles: dict[str, Api]  # support agent, sales agent, support supervisor, an agent of no queue
    ann: int  # served by support (resolved) and now by sales (open, with an internal note)
    ann_sales: int
    ann_note: int
    bob: int  # sales only
    bob_conv: int
    bob_msg: int


async def _as(client: Client, spec: dict[str, Any], name: str, role: str, queues: list[str]) -> Api:
    a = await add_agent(client.app[DB], name, f"{name.lower()}@example.com", "long password", role, queues)
    return Api(client, {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', a.id)}"}, spec)


@pytest.fixture
async def world(api: Api, client: Client, spec: dict[str, Any]) -> World:
    roles = {
        "support": await _as(client, spec, "Alice", "agent", ["support"]),
        "sales": await _as(client, spec, "Sam", "agent", ["sales"]),
        "supervisor": await _as(client, spec, "Dana", "supervisor", ["support"]),
        "nobody": await _as(client, spec, "Nemo", "agent", []),
    }
    first = await inbound(api, "email:ann@example.com", "my parcel is late", name="Ann")
    conv = first["conversation"]["id"]
    await api.call("POST", "/api/v1/conversations/{id}/resolve", f"/api/v1/conversations/{conv}/resolve")
    second = await inbound(api, "email:ann@example.com", "pricing for 20 seats?")
    assert second["conversation"]["queue"] == "sales"
    sales = second["conversation"]["id"]
    note = await api.call("POST", "/api/v1/conversations/{id}/messages", f"/api/v1/conversations/{sales}/messages",
                          {"text": "VIP: discount approved", "note": True}, expect=201)
    bob = await inbound(api, "email:bob@example.com", "pricing for one seat", name="Bob")
    return World(api, roles, first["customer"]["id"], sales, note["id"], bob["customer"]["id"],
                 bob["conversation"]["id"], bob["message"]["id"])


# Who reads Ann's history (the support agent and supervisor served her before; sales serves her now) and Bob's.
SEES = {"support": {"ann"}, "sales": {"ann", "bob"}, "supervisor": {"ann"}, "nobody": set()}


@pytest.mark.parametrize("role", sorted(SEES))
async def test_reading_follows_the_customer(world: World, role: str) -> None:
    api = world.roles[role]
    reads = {
        "ann": [("/api/v1/customers/{id}", f"/api/v1/customers/{world.ann}"),
                ("/api/v1/customers/{id}/timeline", f"/api/v1/customers/{world.ann}/timeline"),
                ("/api/v1/conversations/{id}", f"/api/v1/conversations/{world.ann_sales}"),
                ("/api/v1/messages/{id}", f"/api/v1/messages/{world.ann_note}")],
        "bob": [("/api/v1/customers/{id}", f"/api/v1/customers/{world.bob}"),
                ("/api/v1/customers/{id}/timeline", f"/api/v1/customers/{world.bob}/timeline"),
                ("/api/v1/conversations/{id}", f"/api/v1/conversations/{world.bob_conv}"),
                ("/api/v1/messages/{id}", f"/api/v1/messages/{world.bob_msg}")],
    }
    for who, calls in reads.items():
        for template, path in calls:
            if who in SEES[role]:
                await api.call("GET", template, path)
            else:
                err = await api.call("GET", template, path, expect=404)
                # Worded as for an id that does not exist: nothing says it is there, nor where it lives.
                parts = path.split("/")
                ident, parts[4] = parts[4], "99999"
                absent = await api.call("GET", template, "/".join(parts), expect=404)
                assert err["error"]["message"].replace(ident, "N") == absent["error"]["message"].replace("99999", "N")
    timeline = await world.admin.call("GET", "/api/v1/customers/{id}/timeline",
                                      f"/api/v1/customers/{world.ann}/timeline")
    assert "VIP: discount approved" in [m["text"] for m in timeline["items"]]
    listed = await api.call("GET", "/api/v1/conversations", "/api/v1/conversations")
    customers = {c["customer_id"] for c in listed["items"]}
    assert customers == {world.ann if "ann" in SEES[role] else None,
                         world.bob if "bob" in SEES[role] else None} - {None}
    found = await api.call("GET", "/api/v1/search", "/api/v1/search?q=pricing")
    assert {m["customer"]["id"] for m in found["messages"]} == {
        cid for who, cid in (("ann", world.ann), ("bob", world.bob)) if who in SEES[role]}
    names = await api.call("GET", "/api/v1/customers", "/api/v1/customers?q=example.com")
    assert {c["name"] for c in names["items"]} == {n.title() for n in SEES[role]}


async def test_the_note_in_another_queue_reads_the_same_everywhere(world: World) -> None:
    """The seen leak: the timeline showed a sales note that /messages/{id} and /conversations/{id} refused."""
    alice = world.roles["support"]
    note = await alice.call("GET", "/api/v1/messages/{id}", f"/api/v1/messages/{world.ann_note}")
    conv = await alice.call("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{world.ann_sales}")
    timeline = await alice.call("GET", "/api/v1/customers/{id}/timeline", f"/api/v1/customers/{world.ann}/timeline")
    assert note["id"] in {m["id"] for m in conv["messages"]} & {m["id"] for m in timeline["items"]}


async def test_acting_stays_with_the_queue(world: World) -> None:
    alice, sam = world.roles["support"], world.roles["sales"]
    path = f"/api/v1/conversations/{world.ann_sales}"
    err = await alice.call("POST", "/api/v1/conversations/{id}/messages", path + "/messages",
                           {"text": "hello from support"}, expect=403)
    assert "queue sales" in err["error"]["message"]
    await alice.call("POST", "/api/v1/conversations/{id}/resolve", path + "/resolve", expect=403)
    await alice.call("POST", "/api/v1/conversations/{id}/transfer", path + "/transfer", {"queue": "support"},
                     expect=403)
    # Out of reach entirely: the same 404 as an absent conversation.
    bob = f"/api/v1/conversations/{world.bob_conv}"
    await alice.call("POST", "/api/v1/conversations/{id}/messages", bob + "/messages", {"text": "x"}, expect=404)
    await sam.call("POST", "/api/v1/conversations/{id}/messages", path + "/messages", {"text": "Hi Ann"},
                   expect=201)


async def test_search_applies_visibility_before_its_limit(api: Api, world: World) -> None:
    """The seen gap: 25 hidden matches filled the page and the agent found nothing."""
    for i in range(25):
        await inbound(api, f"email:hidden{i}@example.com", f"pricing refund request {i}", name=f"Hidden {i}")
    alice = world.roles["support"]
    await inbound(api, "email:ann@example.com", "refund please")  # joins Ann's open sales conversation
    found = await alice.call("GET", "/api/v1/search", "/api/v1/search?q=refund&limit=5")
    assert [m["customer"]["id"] for m in found["messages"]] == [world.ann]
    people = await alice.call("GET", "/api/v1/search", "/api/v1/search?q=example.com&limit=5")
    assert [c["id"] for c in people["customers"]] == [world.ann]
    listed = await alice.call("GET", "/api/v1/customers", "/api/v1/customers?q=example&limit=5")
    assert [c["id"] for c in listed["items"]] == [world.ann]


async def test_contact_details_of_agents_are_for_managers(world: World) -> None:
    for role, sees in (("support", False), ("supervisor", True)):
        items = (await world.roles[role].call("GET", "/api/v1/agents", "/api/v1/agents"))["items"]
        assert all(("phone" in a) == ("email" in a) == sees for a in items), role
    items = (await world.admin.call("GET", "/api/v1/agents", "/api/v1/agents"))["items"]
    assert all("phone" in a and "@" in a["email"] for a in items)


async def test_the_event_stream_follows_the_same_rule(world: World, client: Client) -> None:
    """A socket carries what its REST reads show: Ann's sales conversation reaches the support agent who served her,
    Bob's does not."""
    alice = world.roles["support"]
    ws = await client.ws_connect("/api/v1/events", headers=alice.headers)
    assert (await ws.receive_json(timeout=10))["type"] == "hello"
    for conv, text in ((world.bob_conv, "for bob"), (world.ann_sales, "for ann")):
        await world.admin.call("POST", "/api/v1/conversations/{id}/messages", f"/api/v1/conversations/{conv}/messages",
                               {"text": text, "note": True}, expect=201)
    texts = []
    while "for ann" not in texts:
        event = await ws.receive_json(timeout=10)
        if event["type"] == "message.created":
            texts.append(event["data"]["message"]["text"])
    assert texts == ["for ann"]
    await ws.close()
