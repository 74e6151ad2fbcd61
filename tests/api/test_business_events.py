"""Business events as an integrating system sends them, on SQLite and PostgreSQL: an order onto a customer's
timeline (by identity or by id), a replay answered the same, another body under the same external id refused,
attributes set, bad input refused with a reason; and automation rules acting on them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.config import Settings
from hub.keys import DB
from tests.api.client import Api, inbound
from tests.waiting import eventually

E = "/api/v1/events"
ORDER = {"external_id": "shop-order-1001", "type": "order.placed", "identity": "email:ann@example.com",
         "name": "Ann", "amount": 620.5, "currency": "EUR", "occurred_at": "2026-11-30T10:00:00Z",
         "items": [{"name": "Espresso machine", "quantity": 1, "price": 600.5},
                   {"name": "Beans", "quantity": 2, "price": 10}],
         "payload": {"order_number": "A-1001", "shipping": "express"},
         "attributes": {"open_order_value": "620.5", "plan": "gold"}}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, HUB_AUTOMATION__POLL_INTERVAL_SECONDS="0.1",
                         HUB_ROUTING__QUEUES='{"support": {}, "priority": {}}')


async def timeline(api: Api, customer: int) -> list[dict[str, Any]]:
    got = await api.call("GET", "/api/v1/customers/{id}/timeline", f"/api/v1/customers/{customer}/timeline")
    return list(got["items"])


async def attributes(api: Api, customer: int) -> dict[str, str]:
    rows = await api.client.app[DB].read(lambda tx: tx.all(
        "SELECT name, value FROM customer_attributes WHERE customer_id = ?", (customer,)))
    return {str(r["name"]): str(r["value"]) for r in rows}


async def test_an_order_lands_on_the_timeline_once_whatever_the_retries(api: Api) -> None:
    first = await api.call("POST", E, E, ORDER, expect=201)
    event = first["event"]
    assert first["duplicate"] is False and event["type"] == "order.placed" and event["amount"] == 620.5
    assert event["occurred_at"].startswith("2026-11-30T10:00:00")
    customer = event["customer_id"]
    card = [m for m in await timeline(api, customer) if m["kind"] == "event"]
    assert len(card) == 1 and card[0]["id"] == event["message_id"]
    assert card[0]["text"] == "Order placed · 620.50 EUR · 3 items"
    assert card[0]["meta"]["business_event"]["payload"]["order_number"] == "A-1001"
    assert await attributes(api, customer) == {"open_order_value": "620.5", "plan": "gold"}

    # The sender retries (a timeout on its side), twice at once, keys in another order: the same answer, nothing new.
    shuffled = dict(reversed(list(ORDER.items())))
    again = await asyncio.gather(*(api.call("POST", E, E, shuffled, expect=200) for _ in range(2)))
    assert all(a["event"] == event and a["duplicate"] is True for a in again)
    assert len([m for m in await timeline(api, customer) if m["kind"] == "event"]) == 1
    stats = await api.client.app[DB].read(lambda tx: tx.one(
        "SELECT orders, order_value FROM customer_stats WHERE customer_id = ?", (customer,)))
    assert stats is not None and (int(stats["orders"]), float(stats["order_value"])) == (1, 620.5)

    # The same external id for something else is a mistake the sender must hear about.
    clash = await api.call("POST", E, E, {**ORDER, "amount": 10.0}, expect=409)
    assert "shop-order-1001" in clash["error"]["message"]

    # By customer id; any type with a payload; an attribute removed with null.
    failed = await api.call("POST", E, E, {"external_id": "pay-77", "type": "payment.failed",
                                           "customer_id": customer, "payload": {"reason": "card declined"},
                                           "attributes": {"plan": None}}, expect=201)
    assert failed["event"]["customer_id"] == customer and failed["event"]["amount"] is None
    assert await attributes(api, customer) == {"open_order_value": "620.5"}
    texts = [m["text"] for m in await timeline(api, customer) if m["kind"] == "event"]
    assert texts == ["Order placed · 620.50 EUR · 3 items", "Payment failed"]


async def test_the_card_joins_the_open_conversation(api: Api) -> None:
    opened = await inbound(api, "phone:+14155550100", "where is my order?")
    conv = opened["conversation"]["id"]
    got = await api.call("POST", E, E, {"external_id": "ship-1", "type": "delivery.shipped",
                                        "identity": "phone:+14155550100", "payload": {"carrier": "DHL"}},
                         expect=201)
    assert got["event"]["conversation_id"] == conv
    detail = await api.call("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv}")
    assert detail["status"] != "resolved" and detail["messages"][-1]["text"] == "delivery.shipped"


@pytest.mark.parametrize(("body", "status", "reason"), [
    ({**ORDER, "customer_id": 1}, 422, "one of them"),
    ({k: v for k, v in ORDER.items() if k != "identity"}, 422, "one of them"),
    ({**ORDER, "amount": None}, 422, "needs amount and currency"),
    ({**ORDER, "currency": "euro"}, 422, "currency"),
    ({**ORDER, "type": "Order Placed"}, 422, "dotted lower-case"),
    ({**ORDER, "payload": {"blob": "x" * 20_000}}, 422, "payload is over"),
    ({**ORDER, "occurred_at": "2026-11-30T10:00:00"}, 422, "offset"),
    ({**ORDER, "attributes": {"has space": "x"}}, 422, "attribute 'has space'"),
    ({**ORDER, "identity": "nonsense"}, 422, "kind:value"),
    ({**{k: v for k, v in ORDER.items() if k not in ("identity", "name")}, "customer_id": 999_999}, 404,
     "does not exist"),
    ({k: v for k, v in ORDER.items() if k != "external_id"}, 422, "external_id"),
])
async def test_bad_events_get_reasons(api: Api, body: dict[str, Any], status: int, reason: str) -> None:
    bad = await api.call("POST", E, E, body, expect=status)
    assert reason in json.dumps(bad["error"])


async def test_only_admin_tokens_send_events(api: Api) -> None:
    a = await add_agent(api.client.app[DB], "Ann", "ann@example.com", "long password", "agent", ["support"])
    agent = {"Authorization": f"Bearer {await create_token(api.client.app[DB], 'agent', a.id)}"}
    await api.call("POST", E, E, ORDER, expect=403, headers=agent)
    await api.call("POST", E, E, ORDER, expect=401, headers={"Authorization": "Bearer hub_not-a-token"})


async def settled(api: Api) -> bool:
    row = await api.client.app[DB].read(lambda tx: tx.one("SELECT COUNT(*) AS n FROM hub_events "
                                                          "WHERE status = 'pending'"))
    return row is not None and int(row["n"]) == 0


async def test_rules_act_on_business_events_and_their_attributes(api: Api) -> None:
    rules = "/api/v1/automation/rules"
    await api.call("POST", rules, rules, {
        "name": "Big orders", "event": "business_event.received",
        "conditions": [{"field": "event_type", "op": "is", "value": "order.placed"},
                       {"field": "event_amount", "op": "gt", "value": 500},
                       {"field": "event_field", "name": "shipping", "op": "is", "value": "express"}],
        "actions": [{"type": "set_attribute", "name": "big_spender", "value": "yes"}]}, expect=201)
    await api.call("POST", rules, rules, {
        "name": "Open order over 500 goes first", "event": "conversation.opened",
        "conditions": [{"field": "customer_attribute", "name": "open_order_value", "op": "gt", "value": 500}],
        "actions": [{"type": "move_to_queue", "value": "priority"}, {"type": "add_label", "value": "open-order"}]},
        expect=201)
    big = await api.call("POST", E, E, ORDER, expect=201)
    small = await api.call("POST", E, E, {**ORDER, "external_id": "o-2", "identity": "email:bob@example.com",
                                          "name": "Bob", "amount": 20.0,
                                          "attributes": {"open_order_value": "20"}}, expect=201)
    await eventually(lambda: settled(api), what="events handled")
    assert (await attributes(api, big["event"]["customer_id"]))["big_spender"] == "yes"
    assert "big_spender" not in await attributes(api, small["event"]["customer_id"])

    ann = await inbound(api, "email:ann@example.com", "my machine has not arrived")
    bob = await inbound(api, "email:bob@example.com", "hello")
    await eventually(lambda: settled(api), what="events handled")
    path = "/api/v1/conversations/{id}"
    ann_conv = await api.call("GET", path, f"/api/v1/conversations/{ann['conversation']['id']}")
    bob_conv = await api.call("GET", path, f"/api/v1/conversations/{bob['conversation']['id']}")
    assert ann_conv["queue"] == "priority" and ann_conv["labels"] == ["open-order"]
    assert bob_conv["queue"] != "priority" and bob_conv["labels"] == []
