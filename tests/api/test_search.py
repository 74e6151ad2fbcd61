"""GET /api/v1/search and GET /api/v1/channels, on SQLite and PostgreSQL: customers and messages with snippets,
and an agent finds only messages of their queues and own conversations."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.api.search_routes import snippet
from hub.keys import DB
from tests.api.client import Api, inbound

Client = TestClient[Any, Any]


async def test_search_finds_customers_and_messages(api: Api, client: Client) -> None:
    long = ("Hello there. " * 20) + "The tracking number 1Z999 shows the parcel stuck in Memphis. " + ("Thanks! " * 20)
    first = await inbound(api, "email:maria@example.com", long, name="Maria Lopez")
    await inbound(api, "phone:+14155550100", "Is Memphis pickup possible?", name="Tom Reed")
    found = await api.call("GET", "/api/v1/search", "/api/v1/search?q=memphis")
    assert [m["customer"]["name"] for m in found["messages"]] == ["Tom Reed", "Maria Lopez"]
    hit = found["messages"][1]
    assert hit["conversation"]["id"] == first["conversation"]["id"] and hit["message"]["id"] == first["message"]["id"]
    assert "Memphis" in hit["snippet"] and hit["snippet"].startswith("…") and len(hit["snippet"]) < 170
    assert found["customers"] == [] and found["terms"] == ["memphis"]
    by_name = await api.call("GET", "/api/v1/search", "/api/v1/search?q=maria")
    assert [c["name"] for c in by_name["customers"]] == ["Maria Lopez"]
    for typed in ("555-0100", "(415)%20555-0100", "%2B14155550100"):
        by_phone = await api.call("GET", "/api/v1/search", f"/api/v1/search?q={typed}")
        assert [c["name"] for c in by_phone["customers"]] == ["Tom Reed"], typed
    await api.call("GET", "/api/v1/search", "/api/v1/search?q=%20", expect=400)
    await api.call("GET", "/api/v1/search", "/api/v1/search?q=x&limit=500", expect=400)


async def test_agents_find_only_their_queues_and_own_work(api: Api, client: Client) -> None:
    support = await inbound(api, "phone:+14155550100", "refund for my blender please", name="Sue Port")
    sales = await inbound(api, "phone:+14155550101", "refund policy for 50 seats?", name="Sal Es")
    await client.app[DB].write(lambda tx: tx.exec("UPDATE conversations SET queue = 'sales' WHERE id = ?",
                                                  (sales["conversation"]["id"],)))
    bob = await add_agent(client.app[DB], "Bob", "bob@example.com", "correct horse", "agent", ["sales"])
    as_bob = Api(client, {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', bob.id)}"},
                 api.spec)
    found = await as_bob.call("GET", "/api/v1/search", "/api/v1/search?q=refund")
    assert [m["customer"]["name"] for m in found["messages"]] == ["Sal Es"]
    assert (await as_bob.call("GET", "/api/v1/search", "/api/v1/search?q=sue"))["customers"] == []
    # Assigned to Bob, a support conversation becomes his to find.
    await client.app[DB].write(lambda tx: tx.exec("UPDATE conversations SET agent_id = ? WHERE id = ?",
                                                  (bob.id, support["conversation"]["id"])))
    found = await as_bob.call("GET", "/api/v1/search", "/api/v1/search?q=refund")
    assert sorted(m["customer"]["name"] for m in found["messages"]) == ["Sal Es", "Sue Port"]


async def test_channels_list_capabilities(api: Api) -> None:
    got = await api.call("GET", "/api/v1/channels", "/api/v1/channels")
    api_channel = next(c for c in got["items"] if c["name"] == "api")
    assert api_channel["media"] is True and api_channel["voice"] is False
    assert api_channel["capabilities"]["max_text_length"] == 100_000
    assert got["max_attachment_bytes"] > 0


def test_snippet_centres_on_the_first_hit() -> None:
    assert snippet("short text", ["text"]) == "short text"
    text = "a" * 300 + " needle " + "b" * 300
    cut = snippet(text, ["need"])
    assert "needle" in cut and cut.startswith("…") and cut.endswith("…")
    assert snippet("x" * 400, ["zzz"]).startswith("xxx")
