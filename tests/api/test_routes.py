"""The REST API as a user drives it: conversations, replies, resolve, merge, roles; every response checked
against the OpenAPI document the hub serves."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.config import Settings
from hub.keys import DB
from tests.api.client import Api, inbound

Client = TestClient[Any, Any]


def test_every_api_route_is_documented(client: Client, spec: dict[str, Any], settings: Settings) -> None:
    from hub.app import build_app

    # Channels serve API routes of their own (web chat's typing): count those of a hub with all of them on.
    everything = build_app(settings.model_copy(update={"channels": settings.channels.model_copy(update={
        "webchat": settings.channels.webchat.model_copy(update={"enabled": True})})}))
    served = set()
    for route in [*client.app.router.routes(), *everything.router.routes()]:
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/api/v1/") and path != "/api/v1/openapi.json" and route.method != "HEAD":
            served.add((route.method.lower(), path))
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert served == documented


async def test_customer_lookup_and_timeline(api: Api) -> None:
    first = await inbound(api, "phone:+14155550100", "hello", "a1", name="Ann")
    cid = first["customer"]["id"]
    found = await api.call("GET", "/api/v1/customers", "/api/v1/customers?identity=phone:(415)%20555-0100")
    assert [c["id"] for c in found["items"]] == [cid]
    assert (await api.call("GET", "/api/v1/customers", "/api/v1/customers?q=ann"))["items"][0]["id"] == cid
    assert (await api.call("GET", "/api/v1/customers", "/api/v1/customers?identity=email:x@y.com"))["items"] == []
    cust = await api.call("GET", "/api/v1/customers/{id}", f"/api/v1/customers/{cid}")
    assert cust["name"] == "Ann" and cust["conversations"][0]["id"] == first["conversation"]["id"]
    for i in range(4):
        await inbound(api, "phone:+14155550100", f"more {i}", f"a{i + 2}")
    page = await api.call("GET", "/api/v1/customers/{id}/timeline", f"/api/v1/customers/{cid}/timeline?limit=3")
    assert [m["text"] for m in page["items"]] == ["hello", "more 0", "more 1"]
    rest = await api.call("GET", "/api/v1/customers/{id}/timeline",
                          f"/api/v1/customers/{cid}/timeline?limit=3&cursor={page['next']}")
    assert [m["text"] for m in rest["items"]] == ["more 2", "more 3"] and rest["next"] is None
    await api.call("GET", "/api/v1/customers/{id}", "/api/v1/customers/999999", expect=404)
    await api.call("GET", "/api/v1/customers/{id}/timeline", f"/api/v1/customers/{cid}/timeline?limit=0", expect=400)
    await api.call("GET", "/api/v1/customers/{id}/timeline", f"/api/v1/customers/{cid}/timeline?cursor=zz", expect=400)
    await api.call("GET", "/api/v1/customers", "/api/v1/customers", expect=400)


async def test_reply_defaults_to_last_channel_and_resolve(api: Api) -> None:
    first = await inbound(api, "email:ann@example.com", "question", "m1")
    conv = first["conversation"]["id"]
    reply = await api.call("POST", "/api/v1/conversations/{id}/messages", f"/api/v1/conversations/{conv}/messages",
                           {"text": "answer"}, expect=201)
    assert reply["channel"] == "api" and reply["direction"] == "out" and reply["status"] == "queued"
    assert reply["identity"] == "email:ann@example.com"
    note = await api.call("POST", "/api/v1/conversations/{id}/messages", f"/api/v1/conversations/{conv}/messages",
                          {"text": "VIP", "note": True}, expect=201)
    assert note["kind"] == "note"
    err = await api.call("POST", "/api/v1/conversations/{id}/messages", f"/api/v1/conversations/{conv}/messages",
                         {"text": "x", "channel": "telegram"}, expect=422)
    assert "channel 'telegram' is not configured" in err["error"]["message"]
    detail = await api.call("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv}")
    assert [m["kind"] for m in detail["messages"]] == ["text", "text", "note"]
    msg = await api.call("GET", "/api/v1/messages/{id}", f"/api/v1/messages/{reply['id']}")
    assert msg["id"] == reply["id"]
    listed = await api.call("GET", "/api/v1/conversations", "/api/v1/conversations?status=open&queue=support")
    assert [c["id"] for c in listed["items"]] == [conv]
    resolved = await api.call("POST", "/api/v1/conversations/{id}/resolve", f"/api/v1/conversations/{conv}/resolve",
                              {"note": "answered"})
    assert resolved["status"] == "resolved" and resolved["resolved_at"]
    await api.call("POST", "/api/v1/conversations/{id}/resolve", f"/api/v1/conversations/{conv}/resolve", {},
                   expect=409)
    again = await inbound(api, "email:ann@example.com", "new question", "m2")
    assert again["conversation"]["id"] != conv
    await api.call("GET", "/api/v1/conversations", "/api/v1/conversations?status=closed", expect=400)


async def test_reply_with_a_file(api: Api, client: Client) -> None:
    first = await inbound(api, "email:ann@example.com", "send me the invoice", "f1")
    conv = first["conversation"]["id"]
    path, template = f"/api/v1/conversations/{conv}/messages", "/api/v1/conversations/{id}/messages"
    pdf = b"%PDF-1.4 " + bytes(range(256)) * 8000  # 2 MB: over server.max_body_bytes once base64-encoded
    file = {"filename": "invoice.pdf", "content_type": "application/pdf", "data_base64": base64.b64encode(pdf).decode()}
    reply = await api.call("POST", template, path, {"text": "", "attachments": [file]}, expect=201)
    assert [(a["filename"], a["size"], a["status"]) for a in reply["attachments"]] == [("invoice.pdf", len(pdf),
                                                                                        "stored")]
    got = await client.get(reply["attachments"][0]["url"], headers=api.headers)
    assert got.status == 200 and await got.read() == pdf
    bad = await api.call("POST", template, path, {"attachments": [{**file, "data_base64": "%%%"}]}, expect=422)
    assert "not valid base64" in bad["error"]["message"]
    empty = await api.call("POST", template, path, {"text": " "}, expect=422)
    assert "text is empty" in empty["error"]["message"]


async def test_merge_through_the_api(api: Api) -> None:
    a = await inbound(api, "phone:+14155550100", "from phone")
    b = await inbound(api, "email:ann@example.com", "from mail")
    sid, mid = a["customer"]["id"], b["customer"]["id"]
    merged = await api.call("POST", "/api/v1/customers/{id}/merge", f"/api/v1/customers/{sid}/merge",
                            {"customer_id": mid})
    assert {i["id"] for i in merged["customer"]["identities"]} == {"phone:+14155550100", "email:ann@example.com"}
    assert merged["event"]["kind"] == "event"
    tl = await api.call("GET", "/api/v1/customers/{id}/timeline", f"/api/v1/customers/{sid}/timeline")
    assert [m["text"] for m in tl["items"]][:2] == ["from phone", "from mail"]
    await api.call("POST", "/api/v1/customers/{id}/merge", f"/api/v1/customers/{sid}/merge", {"customer_id": mid},
                   expect=409)
    await api.call("POST", "/api/v1/customers/{id}/merge", f"/api/v1/customers/{sid}/merge", {"customer_id": 424242},
                   expect=404)


@pytest.fixture
async def agent_headers(client: Client) -> AsyncIterator[dict[str, str]]:
    agent = await add_agent(client.app[DB], "Bob", "bob@example.com", "correct horse", "agent", ["sales"])
    token = await create_token(client.app[DB], "agent", agent.id)
    yield {"Authorization": f"Bearer {token}"}


async def test_agent_sees_only_their_queues(api: Api, agent_headers: dict[str, str]) -> None:
    support = await inbound(api, "phone:+14155550100", "support question")  # default queue: support
    conv, cid = support["conversation"]["id"], support["customer"]["id"]
    bob = Api(api.client, agent_headers, api.spec)
    assert (await bob.call("GET", "/api/v1/conversations", "/api/v1/conversations"))["items"] == []
    await bob.call("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv}", expect=404)
    await bob.call("GET", "/api/v1/customers/{id}", f"/api/v1/customers/{cid}", expect=404)
    await bob.call("GET", "/api/v1/customers/{id}/timeline", f"/api/v1/customers/{cid}/timeline", expect=404)
    await bob.call("POST", "/api/v1/conversations/{id}/messages", f"/api/v1/conversations/{conv}/messages",
                   {"text": "sneaky"}, expect=404)
    found = await bob.call("GET", "/api/v1/customers", "/api/v1/customers?identity=phone:+14155550100")
    assert found["items"] == []
    resp = await api.client.post("/api/v1/inbound", json={"identity": "phone:+14155550101", "text": "x"},
                                 headers=agent_headers)
    assert resp.status == 403, "feeding messages in takes an admin token"
    resp = await api.client.post(f"/api/v1/customers/{cid}/merge", json={"customer_id": cid}, headers=agent_headers)
    assert resp.status == 403


async def test_agent_sees_conversations_of_their_queue(api: Api, agent_headers: dict[str, str],
                                                       client: Client) -> None:
    first = await inbound(api, "phone:+14155550100", "sales question")
    conv = first["conversation"]["id"]
    # Until routing lands, move it to sales directly in the store to check visibility.
    await client.app[DB].write(lambda tx: tx.exec("UPDATE conversations SET queue = 'sales' WHERE id = ?", (conv,)))
    bob = Api(api.client, agent_headers, api.spec)
    listed = await bob.call("GET", "/api/v1/conversations", "/api/v1/conversations")
    assert [c["id"] for c in listed["items"]] == [conv]
    reply = await bob.call("POST", "/api/v1/conversations/{id}/messages", f"/api/v1/conversations/{conv}/messages",
                           {"text": "happy to help"}, expect=201)
    assert reply["agent_id"] is not None


async def test_health_ready_metrics(client: Client, admin_headers: dict[str, str]) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"
    await client.post("/api/v1/inbound", json={"identity": "phone:+14155550100", "text": "x"}, headers=admin_headers)
    text = await (await client.get("/metrics")).text()
    assert 'hub_inbound_messages_total{channel="api",outcome="stored"} 1.0' in text
    assert 'hub_http_requests_total{method="POST",route="/api/v1/inbound",status="201"} 1.0' in text
    assert "hub_inbound_messages_created" not in text
