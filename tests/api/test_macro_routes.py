"""Macros through the real app on both databases and both routing backends: admins define them (checked before
they are stored), agents apply them, each action runs through its single-action path (the reply goes through the
outbox and claims, assign is a claim through routing, resolve frees the agent), what can be known beforehand stops
the macro before anything is done, and an action refused later names itself and what ran before it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.config import Settings
from tests.api.client import call, person

Client = TestClient[Any, Any]
QUEUES = json.dumps({"support": {"title": "Support", "offer_timeout": 300}, "sales": {}})


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES=QUEUES, HUB_ROUTING__BACKEND=backend,
                         HUB_ROUTING__KEY_PREFIX=prefix, HUB_ROUTING__TICK_SECONDS="0.1")


async def test_macro_runs_each_action_through_its_own_path(client: Client, admin_headers: dict[str, str]) -> None:
    alice_id, alice = await person(client, "Alice Brown", "agent", ["support"])
    _sam, sam = await person(client, "Sam Hill", "agent", ["sales"])
    await call(client, "POST", "/api/v1/agents/me/presence", alice, {"presence": "available"})
    team = await call(client, "POST", "/api/v1/canned-responses", admin_headers, {
        "shortcut": "sorted", "title": "Sorted", "scope": "team",
        "body": "Thanks {{customer.first_name}}, all sorted. {{agent.first_name}}"}, expect=201)
    personal = await call(client, "POST", "/api/v1/canned-responses", alice,
                          {"shortcut": "mine", "title": "Mine", "body": "mine"}, expect=201)

    base = "/api/v1/macros"
    macro = {"name": "Thank and close", "actions": [
        {"type": "reply", "canned_response_id": team["id"]}, {"type": "label", "label": "done"},
        {"type": "assign"}, {"type": "resolve"}]}
    await call(client, "POST", base, alice, macro, expect=403)  # agents apply macros; admins manage them
    for actions, reason in (([{"type": "reply"}], "needs canned_response_id"),
                            ([{"type": "reply", "canned_response_id": personal["id"]}], "not a team canned response"),
                            ([{"type": "assign", "agent_id": 999}], "agent 999 does not exist"),
                            ([{"type": "label", "label": "x", "canned_response_id": team["id"]}], "takes no"),
                            ([{"type": "snooze"}], "actions.0.type"), ([], "actions")):
        error = await call(client, "POST", base, admin_headers, {"name": "Bad", "actions": actions}, expect=422)
        assert reason in error["error"]["message"], error
    made = await call(client, "POST", base, admin_headers, macro, expect=201)
    await call(client, "POST", base, admin_headers, macro, expect=409)
    assert [m["name"] for m in (await call(client, "GET", base, alice))["items"]] == ["Thank and close"]

    conv = (await call(client, "POST", "/api/v1/inbound", admin_headers, {
        "identity": "phone:+14155550188", "text": "where is my parcel", "name": "Maria Lopez"},
        expect=201))["conversation"]["id"]
    await call(client, "POST", f"{base}/{made['id']}/apply", sam, {"conversation_id": conv}, expect=404)
    done = await call(client, "POST", f"{base}/{made['id']}/apply", alice, {"conversation_id": conv})
    assert done["applied"] == ["reply", "label", "assign", "resolve"]
    assert done["conversation"]["status"] == "resolved" and done["conversation"]["agent_id"] == alice_id
    shown = await call(client, "GET", f"/api/v1/conversations/{conv}", alice)
    assert shown["labels"] == ["done"]
    replies = [m for m in shown["messages"] if m["direction"] == "out" and m["kind"] == "text"]
    assert [(m["text"], m["agent_id"]) for m in replies] == [("Thanks Maria, all sorted. Alice", alice_id)]

    # A reply whose variables this customer cannot fill stops the macro before anything is done.
    nameless = (await call(client, "POST", "/api/v1/inbound", admin_headers, {
        "identity": "phone:+14155550189", "text": "hi"}, expect=201))["conversation"]["id"]
    error = await call(client, "POST", f"{base}/{made['id']}/apply", alice, {"conversation_id": nameless}, expect=409)
    assert "customer.first_name" in error["error"]["message"] and "nothing was done" in error["error"]["message"]
    untouched = await call(client, "GET", f"/api/v1/conversations/{nameless}", alice)
    assert untouched["status"] == "open" and untouched["labels"] == []
    assert not [m for m in untouched["messages"] if m["direction"] == "out"]

    # An action refused as it runs names itself and what ran before it.
    await call(client, "PATCH", f"{base}/{made['id']}", admin_headers,
               {"actions": [{"type": "label", "label": "again"}, {"type": "resolve"}]})
    error = await call(client, "POST", f"{base}/{made['id']}/apply", alice, {"conversation_id": conv}, expect=409)
    message = error["error"]["message"]
    assert "step 2 (resolve) not done" in message and "step 1 (label) done" in message
    await call(client, "POST", f"{base}/999/apply", alice, {"conversation_id": conv}, expect=404)
    await call(client, "DELETE", f"{base}/{made['id']}", alice, expect=403)
    await call(client, "DELETE", f"{base}/{made['id']}", admin_headers, expect=204)
    assert (await call(client, "GET", base, alice))["items"] == []
