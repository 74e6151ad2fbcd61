"""Labels, views, snooze and bulk actions through the real app, on SQLite and PostgreSQL and both routing backends:
roles hold, filters and counts agree, a snooze frees capacity and wakes from the store, bulk actions go through
routing (capacity holds) and answer per conversation."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.config import Settings
from hub.keys import DB
from hub.model import format_time, utcnow
from tests.waiting import eventually

Client = TestClient[Any, Any]
QUEUES = json.dumps({"support": {"title": "Support", "offer_timeout": 300},
                     "billing": {"title": "Billing", "offer_timeout": 300}})
RULES = json.dumps([{"name": "bills", "keywords": ["invoice"], "queue": "billing"}])


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES=QUEUES, HUB_ROUTING__RULES=RULES,
                         HUB_ROUTING__BACKEND=backend, HUB_ROUTING__KEY_PREFIX=prefix,
                         HUB_ROUTING__TICK_SECONDS="0.1", HUB_CONSOLE__SNOOZE_POLL_SECONDS="0.2")


async def agent(client: Client, name: str, queues: list[str], capacity: int = 2) -> tuple[int, dict[str, str]]:
    a = await add_agent(client.app[DB], name, f"{name.lower()}@example.com", "long password", "agent", queues)
    headers = {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', a.id)}"}
    body = {"capacity": {"chat": capacity, "voice": 1, "email": capacity}}
    await call(client, "PUT", f"/api/v1/routing/agents/{a.id}", ADMIN[0], body)
    return a.id, headers


ADMIN: list[dict[str, str]] = [{}]


async def call(client: Client, method: str, path: str, headers: dict[str, str], body: Any = None,
               expect: int = 200) -> Any:
    resp = await client.request(method, path, json=body, headers=headers)
    data = await resp.json() if resp.status != 204 else None
    assert resp.status == expect, (method, path, resp.status, data)
    return data


async def opened(client: Client, who: str, text: str = "hello?") -> int:
    body = {"identity": f"phone:{who}", "text": text}
    return int((await call(client, "POST", "/api/v1/inbound", ADMIN[0], body, expect=201))["conversation"]["id"])


async def views(client: Client, headers: dict[str, str]) -> dict[str, int]:
    return {v["id"]: v["count"] for v in (await call(client, "GET", "/api/v1/views", headers))["items"]}


async def inbox_ids(client: Client, headers: dict[str, str], query: str) -> list[int]:
    items = (await call(client, "GET", f"/api/v1/inbox?{query}", headers))["items"]
    return sorted(i["conversation"]["id"] for i in items)


@pytest.fixture
async def setup(client: Client, admin_headers: dict[str, str]) -> Client:
    ADMIN[0] = admin_headers
    return client


async def test_labels_are_defined_by_admins_and_put_on_by_agents(setup: Client) -> None:
    client = setup
    _alice, alice_h = await agent(client, "Alice", ["support"])
    _bob, bob_h = await agent(client, "Bob", ["billing"])
    await call(client, "POST", "/api/v1/labels", alice_h, {"name": "vip", "title": "VIP"}, expect=403)
    made = await call(client, "POST", "/api/v1/labels", ADMIN[0], {"name": "vip", "title": "VIP", "color": "#B91C1C"},
                      expect=201)
    assert made == {"name": "vip", "title": "VIP", "color": "#b91c1c"}
    await call(client, "POST", "/api/v1/labels", ADMIN[0], {"name": "vip", "title": "again"}, expect=409)
    await call(client, "POST", "/api/v1/labels", ADMIN[0], {"name": "Not A Slug", "title": "x"}, expect=422)
    await call(client, "POST", "/api/v1/labels", ADMIN[0], {"name": "refund", "title": "Refund", "color": "red"},
               expect=422)
    await call(client, "POST", "/api/v1/labels", ADMIN[0], {"name": "refund", "title": "Refund"}, expect=201)
    names = [x["name"] for x in (await call(client, "GET", "/api/v1/labels", alice_h))["items"]]
    assert names == ["refund", "vip"]

    support = await opened(client, "+14155550101")
    billing = await opened(client, "+14155550102", "my invoice is wrong")
    assert (await call(client, "PUT", f"/api/v1/conversations/{support}/labels/vip", alice_h)) == {"labels": ["vip"]}
    # Not defined: refused with the reason; a conversation of a customer she does not serve: hidden.
    missing = await call(client, "PUT", f"/api/v1/conversations/{support}/labels/nope", alice_h, expect=404)
    assert "defines labels" in missing["error"]["message"]
    await call(client, "PUT", f"/api/v1/conversations/{billing}/labels/vip", alice_h, expect=404)  # not hers to see
    await call(client, "PUT", f"/api/v1/conversations/{billing}/labels/refund", bob_h)
    detail = await call(client, "GET", f"/api/v1/conversations/{support}", alice_h)
    assert detail["labels"] == ["vip"]

    # A customer's label: the conversations of that customer match the label filter too.
    customer = detail["customer_id"]
    await call(client, "PUT", f"/api/v1/customers/{customer}/labels/refund", alice_h)
    assert await inbox_ids(client, ADMIN[0], "label=refund") == sorted([support, billing])
    assert await inbox_ids(client, ADMIN[0], "label=vip") == [support]
    await call(client, "DELETE", f"/api/v1/conversations/{support}/labels/vip", alice_h)
    assert await inbox_ids(client, ADMIN[0], "label=vip") == []

    # Rules name the same labels: one no admin defined yet is defined (titled by its name), a used one cannot be
    # deleted.
    rule = {"name": "tag vip", "event": "message.received", "conditions": [],
            "actions": [{"type": "add_label", "value": "gold"}, {"type": "add_label", "value": "vip"}]}
    await call(client, "POST", "/api/v1/automation/rules", ADMIN[0], rule, expect=201)
    defined = (await call(client, "GET", "/api/v1/labels", alice_h))["items"]
    assert {"name": "gold", "title": "gold", "color": "#64748b"} in defined
    used = await call(client, "DELETE", "/api/v1/labels/vip", ADMIN[0], expect=409)
    assert "tag vip" in used["error"]["message"]
    await call(client, "DELETE", "/api/v1/labels/refund", alice_h, expect=403)
    await call(client, "DELETE", "/api/v1/labels/refund", ADMIN[0], expect=204)
    assert await inbox_ids(client, ADMIN[0], "label=refund") == []


async def test_views_count_what_they_list_and_saved_views_are_personal_or_shared(setup: Client) -> None:
    client = setup
    _alice, alice_h = await agent(client, "Alice", ["support", "billing"])
    await call(client, "POST", "/api/v1/agents/me/presence", alice_h, {"presence": "available"})
    first = await opened(client, "+14155550111")
    await take(client, alice_h, first)
    await call(client, "POST", "/api/v1/agents/me/presence", alice_h, {"presence": "away"})
    second = await opened(client, "+14155550112", "invoice please")
    counts = await views(client, alice_h)
    assert counts["mine"] == 1 and counts["unassigned"] == 1
    assert counts["queue:support"] == 1 and counts["queue:billing"] == 1
    assert counts["snoozed"] == 0 and counts["resolved"] == 0 and counts["mentions"] == 0
    assert await inbox_ids(client, alice_h, "view=mine") == [first]
    assert await inbox_ids(client, alice_h, "view=unassigned") == [second]
    await call(client, "GET", "/api/v1/inbox?view=saved:999", alice_h, expect=404)
    await call(client, "GET", "/api/v1/inbox?waiting_seconds=soon", alice_h, expect=400)

    # Waiting longer than X: the customer's unanswered message is that old.
    old = format_time(utcnow() - timedelta(minutes=20))
    await client.app[DB].write(lambda tx: tx.exec("UPDATE messages SET created_at = ? WHERE conversation_id = ?",
                                                  (old, second)))
    mine = await call(client, "POST", "/api/v1/views", alice_h,
                      {"name": "Billing waiting 10 min", "filters": {"queue": "billing", "waiting_seconds": 600}},
                      expect=201)
    assert mine["kind"] == "personal" and mine["id"].startswith("saved:")
    assert (await views(client, alice_h))[mine["id"]] == 1
    assert await inbox_ids(client, alice_h, f"view={mine['id']}") == [second]
    await call(client, "POST", f"/api/v1/conversations/{second}/messages", alice_h, {"text": "On it"}, expect=201)
    assert (await views(client, alice_h))[mine["id"]] == 0

    # Shared views: admins and supervisors; another agent sees shared ones, never Alice's own.
    await call(client, "POST", "/api/v1/views", alice_h,
               {"name": "Team SMS", "filters": {"channel": "sms"}, "shared": True}, expect=403)
    shared = await call(client, "POST", "/api/v1/views", ADMIN[0],
                        {"name": "Team SMS", "filters": {"channel": "sms"}, "shared": True}, expect=201)
    lead = await add_agent(client.app[DB], "Lee", "lee@example.com", "long password", "supervisor", ["support"])
    lead_h = {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', lead.id)}"}
    await call(client, "POST", "/api/v1/views", lead_h,
               {"name": "Team VIPs", "filters": {"label": "vip"}, "shared": True}, expect=201)
    _bob, bob_h = await agent(client, "Bob", ["support"])
    bobs = await views(client, bob_h)
    assert "Team VIPs" in [v["name"] for v in (await call(client, "GET", "/api/v1/views", bob_h))["items"]]
    assert shared["id"] in bobs and mine["id"] not in bobs and "queue:billing" not in bobs
    view_id = mine["id"].split(":")[1]
    await call(client, "DELETE", f"/api/v1/views/{view_id}", bob_h, expect=404)
    renamed = await call(client, "PATCH", f"/api/v1/views/{view_id}", alice_h, {"name": "Billing, slow"})
    assert renamed["name"] == "Billing, slow"
    await call(client, "DELETE", f"/api/v1/views/{view_id}", alice_h, expect=204)

    # Mentions: the conversations whose notes @mention her, open or not.
    await call(client, "POST", f"/api/v1/conversations/{second}/messages", ADMIN[0],
               {"text": "@Alice can you check the invoice?", "note": True}, expect=201)
    await call(client, "POST", f"/api/v1/conversations/{second}/resolve", alice_h)
    assert (await views(client, alice_h))["mentions"] == 1
    assert await inbox_ids(client, alice_h, "view=mentions") == [second]
    assert (await views(client, bob_h))["mentions"] == 0


async def take(client: Client, headers: dict[str, str], conv: int) -> None:
    """The agent is offered the conversation and accepts it."""
    await eventually(lambda: _offered(client, headers, conv))
    await call(client, "POST", f"/api/v1/conversations/{conv}/accept", headers)


async def _status(client: Client, conv: int) -> str:
    return str((await call(client, "GET", f"/api/v1/conversations/{conv}", ADMIN[0]))["status"])


async def test_snooze_frees_capacity_and_the_customer_or_the_time_wakes_it_back_to_its_owner(setup: Client) -> None:
    client = setup
    alice, alice_h = await agent(client, "Alice", ["support"], capacity=1)
    await call(client, "POST", "/api/v1/agents/me/presence", alice_h, {"presence": "available"})
    first = await opened(client, "+14155550121")
    await take(client, alice_h, first)
    second = await opened(client, "+14155550122")
    assert await _status(client, second) == "open"  # Alice is at capacity (1)

    snoozed = await call(client, "POST", f"/api/v1/conversations/{first}/snooze", alice_h, {})
    assert snoozed["status"] == "snoozed" and snoozed["snooze"] == {"until": None, "owner": alice}
    # Her slot is free: the waiting conversation is offered to her; the snoozed one left the active inbox.
    offers = await call(client, "GET", "/api/v1/offers", alice_h)
    assert [o["conversation_id"] for o in offers["items"]] == [second]
    assert first not in await inbox_ids(client, alice_h, "")
    assert await inbox_ids(client, alice_h, "view=snoozed") == [first]
    await call(client, "POST", f"/api/v1/conversations/{second}/accept", alice_h)

    # The customer writes: it wakes, waits in its queue, and Alice (at capacity again) is not forced over it.
    await opened(client, "+14155550121", "any news?")
    await eventually(lambda: _is(client, first, "open"))
    assert await inbox_ids(client, alice_h, "view=snoozed") == []
    timeline = (await call(client, "GET", f"/api/v1/conversations/{first}", alice_h))["messages"]
    assert [m["text"] for m in timeline if m["kind"] == "event"][-2:] == [
        "Snoozed until the customer writes by Alice", "Snooze ended: the customer wrote"]
    await call(client, "POST", f"/api/v1/conversations/{second}/resolve", alice_h)
    # Her slot freed: the woken conversation comes back to her (offered to its owner first).
    offers = await call(client, "GET", "/api/v1/offers", alice_h)
    assert [o["conversation_id"] for o in offers["items"]] == [first]
    await call(client, "POST", f"/api/v1/conversations/{first}/accept", alice_h)

    # A timed snooze: woken by the store's poll, offered to its owner.
    until = format_time(utcnow() + timedelta(seconds=1))
    bad = await call(client, "POST", f"/api/v1/conversations/{first}/snooze", alice_h, {"until": "tomorrow"},
                     expect=422)
    assert "ISO 8601" in bad["error"]["message"]
    await call(client, "POST", f"/api/v1/conversations/{first}/snooze", alice_h,
               {"until": "2020-01-01T00:00:00Z"}, expect=422)
    await call(client, "POST", f"/api/v1/conversations/{first}/snooze", alice_h, {"until": until})
    assert await _status(client, first) == "snoozed"
    await eventually(lambda: _offered(client, alice_h, first))
    # Resolved: cannot be snoozed; not snoozed: cannot be woken.
    await call(client, "DELETE", f"/api/v1/conversations/{first}/snooze", alice_h, expect=409)


async def _is(client: Client, conv: int, status: str) -> bool:
    return await _status(client, conv) == status


async def _offered(client: Client, headers: dict[str, str], conv: int) -> bool:
    items = (await call(client, "GET", "/api/v1/offers", headers))["items"]
    return conv in [o["conversation_id"] for o in items]


async def test_bulk_actions_go_through_the_single_actions_path(setup: Client) -> None:
    client = setup
    alice, alice_h = await agent(client, "Alice", ["support"], capacity=2)
    _bob, bob_h = await agent(client, "Bob", ["billing"])
    await call(client, "POST", "/api/v1/labels", ADMIN[0], {"name": "refund", "title": "Refund"}, expect=201)
    convs = [await opened(client, f"+1415555013{i}") for i in range(3)]
    other = await opened(client, "+14155550139", "invoice")

    labelled = await call(client, "POST", "/api/v1/conversations/bulk", alice_h,
                          {"conversation_ids": [*convs, other], "action": "label", "label": "refund"})
    assert labelled["done"] == 3 and labelled["failed"] == 1
    assert [r["status"] for r in labelled["results"]] == [200, 200, 200, 404]  # Bob's customer: hidden
    assert await inbox_ids(client, alice_h, "label=refund") == sorted(convs)

    # Assign to me: a claim through routing, so capacity holds: two of three, the third refused with the reason.
    away = await call(client, "POST", "/api/v1/conversations/bulk", alice_h,
                      {"conversation_ids": convs, "action": "assign", "agent_id": alice})
    assert away["done"] == 0 and "Available" in away["results"][0]["error"]
    await call(client, "POST", "/api/v1/agents/me/presence", alice_h, {"presence": "available"})
    await eventually(lambda: _offer_count(client, alice_h, 2))  # routing offers her two: her capacity
    claimed = await call(client, "POST", "/api/v1/conversations/bulk", alice_h,
                         {"conversation_ids": convs, "action": "assign", "agent_id": alice})
    refused = [r for r in claimed["results"] if not r["ok"]]
    assert len(refused) == 1 and "capacity" in refused[0]["error"]
    assert await _count_assigned(client, alice, 2)

    resolved = await call(client, "POST", "/api/v1/conversations/bulk", alice_h,
                          {"conversation_ids": convs, "action": "resolve"})
    assert resolved["done"] == 3
    assert (await views(client, alice_h))["resolved"] == 3
    again = await call(client, "POST", "/api/v1/conversations/bulk", alice_h,
                       {"conversation_ids": convs[:1], "action": "snooze"})
    assert again["results"][0]["status"] == 409
    await call(client, "POST", "/api/v1/conversations/bulk", alice_h,
               {"conversation_ids": convs, "action": "label"}, expect=422)
    await call(client, "POST", "/api/v1/conversations/bulk", bob_h,
               {"conversation_ids": [], "action": "resolve"}, expect=422)


async def _offer_count(client: Client, headers: dict[str, str], n: int) -> bool:
    return len((await call(client, "GET", "/api/v1/offers", headers))["items"]) == n


async def _count_assigned(client: Client, agent_id: int, n: int) -> bool:
    items = (await call(client, "GET", f"/api/v1/inbox?agent_id={agent_id}", ADMIN[0]))["items"]
    return len(items) == n


async def test_reports_slice_by_label(setup: Client) -> None:
    from hub.keys import SETTINGS
    from hub.reports.rollup import RollRules, catch_up

    client = setup
    await call(client, "POST", "/api/v1/labels", ADMIN[0], {"name": "refund", "title": "Refund"}, expect=201)
    labelled = await opened(client, "+14155550151", "refund please")
    await opened(client, "+14155550152", "hello")
    await call(client, "PUT", f"/api/v1/conversations/{labelled}/labels/refund", ADMIN[0])
    await call(client, "POST", f"/api/v1/conversations/{labelled}/resolve", ADMIN[0])
    s = client.app[SETTINGS]
    await catch_up(client.app[DB], RollRules.from_settings(s.reports, s.routing), cutoff=format_time(utcnow()))
    rows = (await call(client, "GET", "/api/v1/reports/breakdown?by=label", ADMIN[0]))["rows"]
    assert [(r["value"], r["label"]) for r in rows] == [("refund", "Refund")]
    figures = rows[0]["figures"]
    everything = (await call(client, "GET", "/api/v1/reports/summary", ADMIN[0]))["figures"]
    only = (await call(client, "GET", "/api/v1/reports/summary?label=refund", ADMIN[0]))["figures"]
    assert figures["conversations_resolved"] == 1 == only["conversations_resolved"]
    assert only["conversations_opened"] == 1 and everything["conversations_opened"] == 2


async def test_a_rule_routes_a_labelled_customers_new_conversation(setup: Client) -> None:
    """Labels are usable by routing: a rule on conversation.opened moves a VIP customer's conversation to billing."""
    client = setup
    await call(client, "POST", "/api/v1/labels", ADMIN[0], {"name": "vip", "title": "VIP"}, expect=201)
    rule = {"name": "VIPs to billing", "event": "conversation.opened",
            "conditions": [{"field": "label", "op": "contains", "value": "vip"}],
            "actions": [{"type": "move_to_queue", "value": "billing"}]}
    await call(client, "POST", "/api/v1/automation/rules", ADMIN[0], rule, expect=201)
    first = await opened(client, "+14155550161", "hello")
    customer = (await call(client, "GET", f"/api/v1/conversations/{first}", ADMIN[0]))["customer_id"]
    await call(client, "PUT", f"/api/v1/customers/{customer}/labels/vip", ADMIN[0])
    await call(client, "POST", f"/api/v1/conversations/{first}/resolve", ADMIN[0])
    plain = await opened(client, "+14155550162", "hello")
    again = await opened(client, "+14155550161", "me again")
    assert again != first

    async def queue_of(conv: int) -> str:
        return str((await call(client, "GET", f"/api/v1/conversations/{conv}", ADMIN[0]))["queue"])

    await eventually(lambda: _in_queue(client, again, "billing"), what="the VIP's conversation moved to billing")
    assert await queue_of(plain) == "support"


async def _in_queue(client: Client, conv: int, queue: str) -> bool:
    return (await call(client, "GET", f"/api/v1/conversations/{conv}", ADMIN[0]))["queue"] == queue
