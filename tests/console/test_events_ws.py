"""The events WebSocket and the inbox: who may connect, what each principal sees, hello and lagged; and the
console page's own safety (CSP, no HTML sinks in its scripts)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.config import Settings
from hub.events import Event
from hub.keys import BUS, DB

Client = TestClient[Any, Any]
PASSWORD = "correct horse battery"
STATIC = Path(__file__).parents[2] / "hub" / "console" / "static"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(
        db_url,
        HUB_ROUTING__QUEUES='{"support": {"title": "Support"}, "sales": {"title": "Sales"}}',
        HUB_ROUTING__RULES='[{"name": "pricing", "queue": "sales", "keywords": ["pricing"]}]',
    )


@pytest.fixture
async def agent_token(client: Client) -> str:
    a = await add_agent(client.app[DB], "Sam Sales", "sam@example.com", PASSWORD, "agent", ["sales"])
    return await create_token(client.app[DB], "agent", a.id)


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=10.0)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = msg.json()
    return data


def conversation_of(event: dict[str, Any]) -> Any:
    data = event["data"]
    conv = data.get("conversation")
    return conv.get("id") if isinstance(conv, dict) else conv or data.get("conversation_id")


async def test_agent_stream_shows_only_their_queues(client: Client, admin_headers: dict[str, str],
                                                    agent_token: str) -> None:
    agent_ws = await client.ws_connect("/api/v1/events", headers={"Authorization": f"Bearer {agent_token}"})
    admin_ws = await client.ws_connect("/api/v1/events", headers=admin_headers)
    hello = await receive(agent_ws)
    assert hello["type"] == "hello" and hello["data"]["role"] == "agent" and hello["data"]["server_time"] > 0
    assert (await receive(admin_ws))["type"] == "hello"
    support = await client.post("/api/v1/inbound", json={"identity": "phone:+14155550100", "text": "my order"},
                                headers=admin_headers)
    sales = await client.post("/api/v1/inbound", json={"identity": "phone:+14155550101", "text": "pricing please"},
                              headers=admin_headers)
    support_conv = (await support.json())["conversation"]["id"]
    sales_conv = (await sales.json())["conversation"]
    assert sales_conv["queue"] == "sales"
    # A reply carries only the message: the socket must find out where its conversation lives.
    await client.post(f"/api/v1/conversations/{support_conv}/messages", json={"text": "support reply"},
                      headers=admin_headers)
    await client.post(f"/api/v1/conversations/{sales_conv['id']}/messages", json={"text": "sales reply"},
                      headers=admin_headers)
    marker = Event("message.created", {"message": {"conversation_id": sales_conv["id"], "text": "marker"}})
    await client.app[BUS].publish(marker)

    seen: list[dict[str, Any]] = []
    while not any(e["data"].get("message", {}).get("text") == "marker" for e in seen):
        seen.append(await receive(agent_ws))
    texts = [e["data"]["message"]["text"] for e in seen if e["type"] == "message.created"]
    assert texts == ["pricing please", "sales reply", "marker"]
    convs = {conversation_of(e) for e in seen if e["type"] != "message.created"}
    assert support_conv not in convs

    admin_seen: list[dict[str, Any]] = []
    while not any(e["data"].get("message", {}).get("text") == "marker" for e in admin_seen):
        admin_seen.append(await receive(admin_ws))
    admin_texts = [e["data"]["message"]["text"] for e in admin_seen if e["type"] == "message.created"]
    assert {"my order", "support reply", "pricing please", "sales reply"} <= set(admin_texts)
    await agent_ws.close()
    await admin_ws.close()


async def test_cookie_socket_checks_origin(client: Client, agent_token: str) -> None:
    resp = await client.post("/console/session", json={"email": "sam@example.com", "password": PASSWORD})
    assert resp.status == 200
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/api/v1/events", headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/api/v1/events")  # no Origin at all: not a page of ours
    ws = await client.ws_connect("/api/v1/events", headers={"Origin": f"http://{client.host}:{client.port}"})
    assert (await receive(ws))["type"] == "hello"
    await ws.close()


async def test_socket_needs_credentials_and_an_upgrade(client: Client, admin_headers: dict[str, str]) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
        await client.ws_connect("/api/v1/events")
    assert anonymous.value.status == 401
    plain = await client.get("/api/v1/events", headers=admin_headers)
    assert plain.status == 400 and "WebSocket" in (await plain.json())["error"]["message"]


async def test_a_slow_client_is_told_it_lagged(client: Client, admin_headers: dict[str, str]) -> None:
    ws = await client.ws_connect("/api/v1/events", headers=admin_headers)
    assert (await receive(ws))["type"] == "hello"
    # MemoryBus.publish does not yield: the socket's queue overflows before its pump runs.
    for i in range(1100):
        await client.app[BUS].publish(Event("message.status", {"message_id": i, "conversation_id": 1}))
    first = await receive(ws)
    assert first["type"] == "lagged"
    await ws.close()


async def test_inbox_lists_open_work_with_names(client: Client, admin_headers: dict[str, str],
                                                agent_token: str) -> None:
    await client.post("/api/v1/inbound", json={"identity": "email:ann@example.com", "name": "Ann Lee",
                                               "text": "pricing for teams?", "meta": {"subject": "Pricing"}},
                      headers=admin_headers)
    await client.post("/api/v1/inbound", json={"identity": "phone:+14155550100", "text": "where is my order"},
                      headers=admin_headers)
    mine = await client.get("/api/v1/inbox", headers={"Authorization": f"Bearer {agent_token}"})
    items = (await mine.json())["items"]
    assert len(items) == 1
    assert items[0]["customer"] == {"id": items[0]["conversation"]["customer_id"], "name": "Ann Lee",
                                    "display_name": "Ann Lee", "identity": "email:ann@example.com", "labels": []}
    assert items[0]["last_message"]["text"] == "pricing for teams?"
    assert items[0]["last_message"]["subject"] == "Pricing"
    everything = await client.get("/api/v1/inbox", headers=admin_headers)
    assert len((await everything.json())["items"]) == 2


async def test_console_page_is_locked_down(client: Client) -> None:
    resp = await client.get("/console/")
    assert resp.status == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    redirect = await client.get("/console", allow_redirects=False)
    assert redirect.status == 302 and redirect.headers["Location"] == "/console/"
    js = await client.get("/console/static/js/app.js")
    assert js.status == 200 and "javascript" in js.headers["Content-Type"]


def test_console_scripts_never_parse_html() -> None:
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
                       r"createContextualFragment|DOMParser")
    scripts = sorted(STATIC.rglob("*.js"))
    assert scripts, "the console has scripts"
    for path in scripts:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            assert not sinks.search(line), f"{path.name}:{n} uses an HTML sink: {line.strip()}"


async def test_event_stream_keeps_going_after_bad_events(client: Client, agent_token: str) -> None:
    ws = await client.ws_connect("/api/v1/events", headers={"Authorization": f"Bearer {agent_token}"})
    me = (await receive(ws))["data"]["agent_id"]
    for data in ({}, {"conversation": "x"}, {"message": None}, {"customer": {"id": "7"}}, {"conversation": 99999}):
        await client.app[BUS].publish(Event("customer.merged", data))
        await client.app[BUS].publish(Event("message.created", data))
    await client.app[BUS].publish(Event("routing.presence", {"agent": me + 1, "presence": "away"}))
    await client.app[BUS].publish(Event("routing.stats", {"queues": []}))
    await client.app[BUS].publish(Event("routing.presence", {"agent": me, "presence": "away", "reason": "agent"}))
    first = await receive(ws)
    assert first["type"] == "routing.presence" and first["data"]["agent"] == me, "bad events were withheld"
    await ws.close()
