"""Canned responses through the API on both databases: personal and team scopes and who may manage which, search,
shortcut clashes, bad input as 4xx, and variables filled for one conversation (missing ones named)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.config import Settings
from hub.keys import DB

Client = TestClient[Any, Any]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url)


async def call(client: Client, method: str, path: str, headers: dict[str, str], body: Any = None,
               expect: int = 200) -> Any:
    resp = await client.request(method, path, json=body, headers=headers)
    data = await resp.json() if resp.status != 204 else None
    assert resp.status == expect, (path, resp.status, data)
    return data


async def person(client: Client, name: str, role: str) -> tuple[int, dict[str, str]]:
    a = await add_agent(client.app[DB], name, f"{name.split()[0].lower()}@example.com", "long password", role,
                        ["support"])
    return a.id, {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', a.id)}"}


async def test_scopes_search_and_variables(client: Client, admin_headers: dict[str, str]) -> None:
    _alice, alice = await person(client, "Alice Brown", "agent")
    _bob, bob = await person(client, "Bob Stone", "agent")
    _dana, dana = await person(client, "Dana Kim", "supervisor")
    base = "/api/v1/canned-responses"
    team = {"shortcut": "refund", "title": "Refund issued", "scope": "team",
            "body": "Hi {{customer.first_name}}, your refund for order {{attributes.order_id}} is on its way. "
                    "{{agent.first_name}}"}
    # Agents cannot add team responses; supervisors can.
    await call(client, "POST", base, alice, team, expect=403)
    made = await call(client, "POST", base, dana, team, expect=201)
    assert made["scope"] == "team"
    await call(client, "POST", base, dana, team, expect=409)  # the shortcut is taken
    mine = await call(client, "POST", base, alice, {"shortcut": "thanks", "title": "Thanks", "body": "Thanks!"},
                      expect=201)
    assert mine["scope"] == "personal"
    await call(client, "POST", base, bob, {"shortcut": "thanks", "title": "Mine too", "body": "Ta"}, expect=201)

    # Alice sees hers first, then the team's; never Bob's. Search looks at shortcut, title and text.
    listed = (await call(client, "GET", base, alice))["items"]
    assert [i["shortcut"] for i in listed] == ["thanks", "refund"] and listed[0]["body"] == "Thanks!"
    assert [i["shortcut"] for i in (await call(client, "GET", f"{base}?q=REFUND", alice))["items"]] == ["refund"]
    assert [i["shortcut"] for i in (await call(client, "GET", f"{base}?q=way", alice))["items"]] == ["refund"]
    # Bob cannot change or even see Alice's; Alice cannot change the team's; Dana can.
    await call(client, "PATCH", f"{base}/{mine['id']}", bob, {"title": "x"}, expect=404)
    await call(client, "PATCH", f"{base}/{made['id']}", alice, {"title": "x"}, expect=403)
    changed = await call(client, "PATCH", f"{base}/{made['id']}", dana, {"title": "Refund sent"})
    assert changed["title"] == "Refund sent" and changed["body"] == team["body"]

    # Variables, filled for a conversation: the customer's name, the agent's, an attribute the customer's message
    # carried; a variable with no value comes back empty and named.
    inbound = {"identity": "phone:+14155550140", "text": "where is my refund", "name": "Maria Lopez",
               "meta": {"attributes": {"order_id": "4821"}}}
    conv = (await call(client, "POST", "/api/v1/inbound", admin_headers, inbound, expect=201))["conversation"]["id"]
    rendered = await call(client, "POST", f"{base}/{made['id']}/render", alice, {"conversation_id": conv})
    assert rendered == {"text": "Hi Maria, your refund for order 4821 is on its way. Alice", "missing": []}
    await call(client, "PATCH", f"{base}/{made['id']}", dana, {"body": "Tracking: {{attributes.tracking}} ok"})
    rendered = await call(client, "POST", f"{base}/{made['id']}/render", alice, {"conversation_id": conv})
    assert rendered == {"text": "Tracking:  ok", "missing": ["attributes.tracking"]}
    await call(client, "POST", f"{base}/{mine['id']}/render", bob, {"conversation_id": conv}, expect=404)

    # Bad input is a 4xx with the reason, never a 500.
    for bad in ({"shortcut": "Has Space", "title": "t", "body": "b"}, {"shortcut": "x", "title": "", "body": "b"},
                {"shortcut": "x", "title": "t", "body": "b", "scope": "everyone"}):
        error = await call(client, "POST", base, alice, bad, expect=422)
        assert error["error"]["message"]
    await call(client, "DELETE", f"{base}/{made['id']}", alice, expect=403)
    await call(client, "DELETE", f"{base}/{made['id']}", dana, expect=204)
    assert [i["shortcut"] for i in (await call(client, "GET", base, alice))["items"]] == ["thanks"]
