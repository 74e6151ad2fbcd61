"""Customer profiles through the API: the name and custom attribute values (any agent who serves the customer, by
hub.visibility's rule), and the attributes' definitions (admins define them, everyone reads them)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub import visibility
from hub.api.auth import PRINCIPAL, Principal, require_admin
from hub.api.errors import BadBody, read_json
from hub.api.params import path_id
from hub.api.schemas import AttributeDefinitionBody, AttributeDefinitionPatchBody, CustomerPatchBody
from hub.customer_profile import (
    DEFINITION_COLUMNS,
    AttributeDefinition,
    AttributeValueError,
    check_options,
    check_value,
    definition_from_row,
    definitions,
)
from hub.events import Event
from hub.history import store
from hub.history.db import Tx
from hub.keys import BUS, DB
from hub.model import format_time, utcnow


def _definition_json(d: AttributeDefinition) -> dict[str, Any]:
    return {"key": d.key, "label": d.label, "type": d.type, "options": list(d.options), "position": d.position}


def attribute_values(tx: Tx, customer_id: int) -> dict[str, str]:
    rows = tx.all("SELECT name, value FROM customer_attributes WHERE customer_id = ? ORDER BY name", (customer_id,))
    return {str(r["name"]): str(r["value"]) for r in rows}


async def list_definitions(request: web.Request) -> web.Response:
    items = await request.app[DB].read(definitions)
    return web.json_response({"items": [_definition_json(d) for d in items]})


async def create_definition(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request, AttributeDefinitionBody)
    try:
        options = check_options(body.type, body.options)
    except AttributeValueError as e:
        raise BadBody(422, str(e)) from None
    now = format_time(utcnow())

    def write(tx: Tx) -> AttributeDefinition:
        if tx.one("SELECT key FROM customer_attribute_definitions WHERE key = ?", (body.key,)) is not None:
            raise web.HTTPConflict(text=f"there is already an attribute {body.key!r}: choose another key")
        tx.exec("INSERT INTO customer_attribute_definitions (key, label, type, options, position, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (body.key, body.label, body.type, json.dumps(list(options)), body.position, now, now))
        return AttributeDefinition(body.key, body.label, body.type, options, body.position)

    return web.json_response(_definition_json(await request.app[DB].write(write)), status=201)


async def _existing_definition(request: web.Request) -> AttributeDefinition:
    key = request.match_info["key"]
    row = await request.app[DB].read(
        lambda tx: tx.one(f"SELECT {DEFINITION_COLUMNS} FROM customer_attribute_definitions WHERE key = ?", (key,)))
    if row is None:
        raise web.HTTPNotFound(text=f"no customer attribute {key!r}")
    return definition_from_row(row)


async def update_definition(request: web.Request) -> web.Response:
    """Label, order and a list's options change; the type does not (stored values were checked against it)."""
    require_admin(request)
    before = await _existing_definition(request)
    body = await read_json(request, AttributeDefinitionPatchBody)
    try:
        options = before.options if body.options is None else check_options(before.type, body.options)
    except AttributeValueError as e:
        raise BadBody(422, str(e)) from None
    after = AttributeDefinition(before.key, body.label or before.label, before.type, options,
                                before.position if body.position is None else body.position)
    now = format_time(utcnow())
    await request.app[DB].write(lambda tx: tx.exec(
        "UPDATE customer_attribute_definitions SET label = ?, options = ?, position = ?, updated_at = ? WHERE key = ?",
        (after.label, json.dumps(list(after.options)), after.position, now, after.key)))
    return web.json_response(_definition_json(after))


async def delete_definition(request: web.Request) -> web.Response:
    """The attribute and every customer's value of it."""
    require_admin(request)
    d = await _existing_definition(request)

    def write(tx: Tx) -> None:
        tx.exec("DELETE FROM customer_attributes WHERE name = ?", (d.key,))
        tx.exec("DELETE FROM customer_attribute_definitions WHERE key = ?", (d.key,))

    await request.app[DB].write(write)
    return web.Response(status=204)


async def update_customer(request: web.Request) -> web.Response:
    """PATCH /customers/{id}: the name and attribute values, each value checked against its attribute's type (422
    with the reason, and nothing changed, when one does not fit)."""
    p: Principal = request[PRINCIPAL]
    cid = path_id(request)
    body = await read_json(request, CustomerPatchBody)
    now = format_time(utcnow())

    def write(tx: Tx) -> dict[str, Any]:
        customer = store.customer(tx, cid)
        if not visibility.sees_customer(tx, p, cid):
            raise visibility.hidden("customer", cid)
        if customer.merged_into is not None:
            raise web.HTTPConflict(text=f"customer {cid} was merged into customer {customer.merged_into}: "
                                        "edit that one")
        known = {d.key: d for d in definitions(tx)}
        values: dict[str, str | None] = {}
        for key, value in (body.attributes or {}).items():
            if key not in known:
                raise BadBody(422, f"attributes.{key}: no such customer attribute (an admin defines them)")
            try:
                values[key] = None if value is None or value == "" else check_value(known[key], value)
            except AttributeValueError as e:
                raise BadBody(422, f"attributes.{key}: {e}") from None
        if body.name is not None:
            tx.exec("UPDATE customers SET name = ?, updated_at = ? WHERE id = ?", (body.name.strip(), now, cid))
        for key, text in values.items():
            tx.exec("DELETE FROM customer_attributes WHERE customer_id = ? AND name = ?", (cid, key))
            if text is not None:
                tx.exec("INSERT INTO customer_attributes (customer_id, name, value, updated_at, updated_by) "
                        "VALUES (?, ?, ?, ?, ?)", (cid, key, text, now, p.agent_id))
        return profile_json(tx, cid)

    out = await request.app[DB].write(write)
    await request.app[BUS].publish(Event("customer.updated", {"customer": out, "customer_id": cid}))
    return web.json_response(out)


def profile_json(tx: Tx, customer_id: int) -> dict[str, Any]:
    """The customer as the API shows them, with their attribute values."""
    return store.customer(tx, customer_id).to_json() | {"attributes": attribute_values(tx, customer_id)}


def routes() -> list[web.RouteDef]:
    return [
        web.patch(r"/api/v1/customers/{id:\d+}", update_customer),
        web.get("/api/v1/customer-attributes", list_definitions),
        web.post("/api/v1/customer-attributes", create_definition),
        web.patch(r"/api/v1/customer-attributes/{key:[a-z][a-z0-9_]{0,39}}", update_definition),
        web.delete(r"/api/v1/customer-attributes/{key:[a-z][a-z0-9_]{0,39}}", delete_definition),
    ]
