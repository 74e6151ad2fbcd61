"""`hub demo`'s workspace data works as an admin and an agent would use it: the customer attributes are listed with
Jordan's values (each one its attribute's type accepts), the macros apply (their canned replies filled from Jordan's
profile), and preparing the demo again adds nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.api.auth import create_token
from hub.customer_profile import AttributeDefinition, check_value
from hub.demo import sample_data
from hub.demo.runner import JORDAN, demo_settings, prepare
from hub.history import store
from hub.history.db import Tx
from hub.keys import DB
from hub.model import Identity
from tests.api.client import start_api


async def test_demo_attributes_and_macros_work_and_are_written_once(tmp_path: Path, aiohttp_client: Any) -> None:
    settings = demo_settings(tmp_path)
    settings.channels.telegram.enabled = settings.channels.email.enabled = False
    await prepare(settings)
    await prepare(settings)  # a second `hub demo` on the same data folder
    api = await start_api(aiohttp_client, settings)
    db = api.client.app[DB]

    defined = (await api.call("GET", "/api/v1/customer-attributes", "/api/v1/customer-attributes"))["items"]
    assert [d["key"] for d in defined] == [a[0] for a in sample_data.ATTRIBUTES]
    types = {d["key"]: AttributeDefinition(d["key"], d["label"], d["type"], tuple(d["options"])) for d in defined}
    _, _, phone = JORDAN

    def jordan(tx: Tx) -> int:
        customer_id = store.customer_by_identity(tx, Identity("phone", phone))
        assert customer_id is not None
        return customer_id

    jordan_id = await db.read(jordan)
    made = await api.call("POST", "/api/v1/inbound", "/api/v1/inbound",
                          {"identity": f"phone:{phone}", "text": "Where is my kettle?"}, expect=201)
    conv = made["conversation"]["id"]
    assert made["conversation"]["customer_id"] == jordan_id
    profile = await api.call("GET", "/api/v1/customers/{id}", f"/api/v1/customers/{jordan_id}")
    assert profile["attributes"] == sample_data.JORDAN_VALUES
    for key, value in profile["attributes"].items():
        assert check_value(types[key], value) == value

    macros = (await api.call("GET", "/api/v1/macros", "/api/v1/macros"))["items"]
    assert sorted(m["name"] for m in macros) == sorted(name for name, _ in sample_data.MACROS)
    assert len((await api.call("GET", "/api/v1/canned-responses", "/api/v1/canned-responses"))["items"]) == 3
    alice = await db.read(lambda tx: tx.one("SELECT id FROM agents WHERE email = 'alice@demo.hub'"))
    token = await create_token(db, "agent", int(alice["id"]))
    shipped = next(m for m in macros if m["name"].startswith("Order shipped"))
    await api.call("POST", "/api/v1/macros/{id}/apply", f"/api/v1/macros/{shipped['id']}/apply",
                   {"conversation_id": conv}, headers={"Authorization": f"Bearer {token}"})
    after = await api.call("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv}")
    assert after["status"] == "resolved" and after["labels"] == ["order-status"]
    reply = [m["text"] for m in after["messages"] if m["direction"] == "out"][-1]
    assert reply.startswith("Hi Jordan, thanks for your patience!") and "on its way with UPS" in reply
    assert reply.endswith("Alice")
