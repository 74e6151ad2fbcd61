"""Customer profiles through the API on both databases: anonymous visitors get a stable friendly name, agents who
serve a customer edit the name and typed custom attributes (checked by type: 422 with the reason, nothing stored),
admins define the attributes, and a merge keeps the survivor's values and fills gaps from the merged customer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.config import Settings
from hub.customer_profile import visitor_name
from tests.api.client import call, person

Client = TestClient[Any, Any]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES='{"support": {"title": "Support"}, "sales": {}}')


def test_visitor_names_are_stable_and_friendly() -> None:
    assert visitor_name("SVb7RIb9bT6RHUVykMFFFQ") == visitor_name("SVb7RIb9bT6RHUVykMFFFQ")
    names = {visitor_name(f"v{i}") for i in range(50)}
    assert all(n.startswith("Visitor ") and 1000 <= int(n.split()[1]) <= 9999 for n in names) and len(names) > 40


async def test_profile_name_and_typed_attributes(client: Client, admin_headers: dict[str, str]) -> None:
    _alice, alice = await person(client, "Alice Brown", "agent", ["support"])
    _sam, sam = await person(client, "Sam Hill", "agent", ["sales"])
    visitor = await call(client, "POST", "/api/v1/inbound", admin_headers,
                         {"identity": "webchat:SVb7RIb9bT6RHUVykMFFFQ", "text": "hello?"}, expect=201)
    cid = visitor["customer"]["id"]
    assert visitor["customer"]["display_name"] == visitor_name("SVb7RIb9bT6RHUVykMFFFQ")
    shown = await call(client, "GET", f"/api/v1/customers/{cid}", alice)
    assert shown["display_name"].startswith("Visitor ") and shown["attributes"] == {}
    inbox = await call(client, "GET", "/api/v1/inbox", alice)
    assert inbox["items"][0]["customer"]["display_name"] == shown["display_name"]

    # Admins define attributes; agents may not.
    base = "/api/v1/customer-attributes"
    plan = {"key": "plan", "label": "Plan", "type": "list", "options": ["Free", "Pro"]}
    await call(client, "POST", base, alice, plan, expect=403)
    for body in (plan, {"key": "seats", "label": "Seats", "type": "number", "position": 1},
                 {"key": "renewal", "label": "Renewal", "type": "date", "position": 2},
                 {"key": "company", "label": "Company", "type": "text", "position": 3}):
        await call(client, "POST", base, admin_headers, body, expect=201)
    await call(client, "POST", base, admin_headers, plan, expect=409)
    bad = await call(client, "POST", base, admin_headers, {"key": "tier", "label": "Tier", "type": "list"}, expect=422)
    assert "at least one option" in bad["error"]["message"]
    await call(client, "POST", base, admin_headers, {"key": "Bad Key", "label": "x", "type": "text"}, expect=422)
    listed = (await call(client, "GET", base, alice))["items"]
    assert [d["key"] for d in listed] == ["plan", "seats", "renewal", "company"]

    # An agent who serves the customer names them and fills attributes; values are checked against their type.
    path = f"/api/v1/customers/{cid}"
    done = await call(client, "PATCH", path, alice, {"name": "Maria Lopez", "attributes": {
        "plan": "Pro", "seats": "12", "renewal": "2027-03-01", "company": "  <b>Acme</b> "}})
    assert done["name"] == done["display_name"] == "Maria Lopez"
    assert done["attributes"] == {"plan": "Pro", "seats": "12", "renewal": "2027-03-01", "company": "<b>Acme</b>"}
    refused = (({"plan": "Gold"}, "Plan is one of Free, Pro"), ({"seats": "many"}, "Seats is a number"),
               ({"renewal": "2027-02-30"}, "Renewal is a date"), ({"renewal": "03/01/2027"}, "YYYY-MM-DD"),
               ({"seats": True}, "Seats is a number"), ({"nope": "x"}, "no such customer attribute"))
    for attributes, reason in refused:
        error = await call(client, "PATCH", path, alice, {"name": "Not Stored", "attributes": attributes}, expect=422)
        assert reason in error["error"]["message"], error
    after = await call(client, "GET", path, alice)
    assert after["name"] == "Maria Lopez" and after["attributes"]["plan"] == "Pro"  # a refused edit changes nothing
    cleared = await call(client, "PATCH", path, alice, {"attributes": {"seats": None, "company": ""}})
    assert cleared["attributes"] == {"plan": "Pro", "renewal": "2027-03-01"}
    # Someone who does not serve the customer does not see them, so cannot edit them either.
    await call(client, "PATCH", path, sam, {"name": "x"}, expect=404)
    # An attribute's type stays; its options change; removing it removes its values.
    await call(client, "PATCH", f"{base}/plan", admin_headers, {"options": ["Free", "Pro", "Enterprise"]})
    await call(client, "PATCH", path, alice, {"attributes": {"plan": "Enterprise"}})
    await call(client, "PATCH", f"{base}/plan", admin_headers, {"type": "text"}, expect=422)
    await call(client, "DELETE", f"{base}/plan", admin_headers, expect=204)
    assert "plan" not in (await call(client, "GET", path, alice))["attributes"]
    await call(client, "DELETE", f"{base}/plan", admin_headers, expect=404)


async def test_merge_keeps_survivor_values_and_fills_gaps(client: Client, admin_headers: dict[str, str]) -> None:
    for body in ({"key": "plan", "label": "Plan", "type": "text"},
                 {"key": "seats", "label": "Seats", "type": "number"}):
        await call(client, "POST", "/api/v1/customer-attributes", admin_headers, body, expect=201)
    one = (await call(client, "POST", "/api/v1/inbound", admin_headers,
                      {"identity": "email:ann@example.com", "text": "hi"}, expect=201))["customer"]["id"]
    two = (await call(client, "POST", "/api/v1/inbound", admin_headers,
                      {"identity": "phone:+14155550177", "text": "hi"}, expect=201))["customer"]["id"]
    await call(client, "PATCH", f"/api/v1/customers/{one}", admin_headers, {"attributes": {"plan": "Pro"}})
    await call(client, "PATCH", f"/api/v1/customers/{two}", admin_headers, {"attributes": {"plan": "Free", "seats": 3}})
    await call(client, "POST", f"/api/v1/customers/{one}/merge", admin_headers, {"customer_id": two})
    assert (await call(client, "GET", f"/api/v1/customers/{one}", admin_headers))["attributes"] == {
        "plan": "Pro", "seats": "3"}
    await call(client, "PATCH", f"/api/v1/customers/{two}", admin_headers, {"name": "x"}, expect=409)
