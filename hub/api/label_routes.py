"""Labels through the API: admins define them (slug, title, color); agents put them on the conversations they may
act on and the customers they see. Rules' label actions and conditions name the same labels."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub import visibility
from hub.api.auth import PRINCIPAL, require_admin
from hub.api.errors import read_json
from hub.api.responses import LabelsNow, answer
from hub.api.routes import check_conversation
from hub.api.schemas import LabelBody, LabelPatchBody
from hub.automation import rule_store
from hub.events import Event
from hub.history import store
from hub.history.db import Tx
from hub.inbox import labels
from hub.keys import BUS, DB
from hub.model import format_time, utcnow

#: the bus event consoles refresh labels on (not a webhook event)
CHANGED = "labels.changed"


async def list_labels(request: web.Request) -> web.Response:
    return web.json_response({"items": await request.app[DB].read(labels.definitions)})


def _one(tx: Tx, name: str) -> dict[str, Any]:
    found = [d for d in labels.definitions(tx) if d["name"] == name]
    if not found:
        raise web.HTTPNotFound(text=f"no label named {name!r}")
    return found[0]


async def create_label(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request, LabelBody)
    now = format_time(utcnow())

    def write(tx: Tx) -> dict[str, Any]:
        if labels.defined(tx, body.name):
            raise web.HTTPConflict(text=f"a label named {body.name!r} exists already")
        tx.exec("INSERT INTO labels (name, title, color, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (body.name, body.title.strip(), body.color.lower(), now, now))
        return _one(tx, body.name)

    made = await request.app[DB].write(write)
    await request.app[BUS].publish(Event(CHANGED, {"label": made}))
    return web.json_response(made, status=201)


async def update_label(request: web.Request) -> web.Response:
    require_admin(request)
    name = request.match_info["name"]
    body = await read_json(request, LabelPatchBody)
    now = format_time(utcnow())

    def write(tx: Tx) -> dict[str, Any]:
        _one(tx, name)
        if body.title is not None:
            tx.exec("UPDATE labels SET title = ?, updated_at = ? WHERE name = ?", (body.title.strip(), now, name))
        if body.color is not None:
            tx.exec("UPDATE labels SET color = ?, updated_at = ? WHERE name = ?", (body.color.lower(), now, name))
        return _one(tx, name)

    changed = await request.app[DB].write(write)
    await request.app[BUS].publish(Event(CHANGED, {"label": changed}))
    return web.json_response(changed)


async def delete_label(request: web.Request) -> web.Response:
    """Gone from every conversation and customer too; refused while a rule names it (change the rule first)."""
    require_admin(request)
    name = request.match_info["name"]

    def write(tx: Tx) -> None:
        _one(tx, name)
        for rule in rule_store.listing(tx):
            if any(a.type in ("add_label", "remove_label") and str(a.value) == name for a in rule.actions) or any(
                    c.field == "label" and str(c.value) == name for c in rule.conditions):
                raise web.HTTPConflict(text=f"rule {rule.name!r} uses label {name!r}: change the rule first")
        tx.exec("DELETE FROM conversation_labels WHERE label = ?", (name,))
        tx.exec("DELETE FROM customer_labels WHERE label = ?", (name,))
        tx.exec("DELETE FROM labels WHERE name = ?", (name,))

    await request.app[DB].write(write)
    await request.app[BUS].publish(Event(CHANGED, {"deleted": name}))
    return web.Response(status=204)


async def label_conversation(request: web.Request, conv_id: int, name: str, on: bool) -> list[str]:
    """Put a label on (or take it off) a conversation the caller may act on; the single and the bulk action."""
    await check_conversation(request, conv_id)

    def write(tx: Tx) -> list[str]:
        if not labels.defined(tx, name):
            raise web.HTTPNotFound(text=f"no label named {name!r}: an admin defines labels first (Admin → Labels)")
        (labels.add if on else labels.remove)(tx, "conversation", conv_id, name)
        return labels.of(tx, "conversation", conv_id)

    now_labels = await request.app[DB].write(write)
    await request.app[BUS].publish(Event(CHANGED, {"conversation_id": conv_id, "labels": now_labels}))
    return now_labels


async def conversation_label(request: web.Request) -> web.Response:
    """PUT puts the label on, DELETE takes it off."""
    conv_id = int(request.match_info["id"])
    on = request.method == "PUT"
    return answer(LabelsNow(labels=await label_conversation(request, conv_id, request.match_info["name"], on)))


async def customer_label(request: web.Request) -> web.Response:
    """PUT puts the label on a customer the caller sees, DELETE takes it off."""
    customer_id, name = int(request.match_info["id"]), request.match_info["name"]
    p = request[PRINCIPAL]
    on = request.method == "PUT"

    def write(tx: Tx) -> list[str]:
        store.customer(tx, customer_id)
        if not visibility.sees_customer(tx, p, customer_id):
            raise visibility.hidden("customer", customer_id)
        if not labels.defined(tx, name):
            raise web.HTTPNotFound(text=f"no label named {name!r}: an admin defines labels first (Admin → Labels)")
        (labels.add if on else labels.remove)(tx, "customer", customer_id, name)
        return labels.of(tx, "customer", customer_id)

    now_labels = await request.app[DB].write(write)
    await request.app[BUS].publish(Event(CHANGED, {"customer_id": customer_id, "labels": now_labels}))
    return answer(LabelsNow(labels=now_labels))


_NAME = r"{name:[a-z0-9][a-z0-9_-]{0,63}}"


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/labels", list_labels),
        web.post("/api/v1/labels", create_label),
        web.patch(f"/api/v1/labels/{_NAME}", update_label),
        web.delete(f"/api/v1/labels/{_NAME}", delete_label),
        web.put(rf"/api/v1/conversations/{{id:\d+}}/labels/{_NAME}", conversation_label),
        web.delete(rf"/api/v1/conversations/{{id:\d+}}/labels/{_NAME}", conversation_label),
        web.put(rf"/api/v1/customers/{{id:\d+}}/labels/{_NAME}", customer_label),
        web.delete(rf"/api/v1/customers/{{id:\d+}}/labels/{_NAME}", customer_label),
    ]
