"""REST API for automation: rules (admin), their dry run, and business hours (read: anyone; change: admin)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from aiohttp import web

from hub import customer_profile
from hub.api.auth import require_admin
from hub.api.errors import BadBody, read_json
from hub.api.params import path_id, whole_number
from hub.api.responses import DeletedId, DeletedName, answer
from hub.automation import hours as business_hours
from hub.automation import rule_store
from hub.automation.hours import BusinessHours
from hub.automation.rules import RuleBody
from hub.history.db import Tx
from hub.history.store import NotFound
from hub.inbox import labels
from hub.keys import AUTOMATION, BUSINESS_HOURS, DB, SETTINGS
from hub.model import format_time, utcnow


def _labels_defined(tx: Tx, body: RuleBody, now: str) -> RuleBody:
    """A rule names the labels agents use: one it names that no admin defined yet is defined with its name as the
    title (an admin gives it a title and color in Admin → Labels), so API clients that wrote rules before labels
    had definitions keep working."""
    named = [str(a.value) for a in body.actions if a.type in ("add_label", "remove_label")]
    named += [str(c.value) for c in body.conditions if c.field == "label"]
    for name in named:
        labels.ensure(tx, name, now)
    return body


def _attributes_fit(tx: Tx, body: RuleBody) -> None:
    """A set_attribute value is checked as the customer-attribute API checks an agent's: against the type of the
    attribute an admin defined (a name no one defined stays free text, as business events' attributes are)."""
    for i, a in enumerate(body.actions):
        if a.type != "set_attribute":
            continue
        definition = customer_profile.definition(tx, str(a.name))
        if definition is None:
            continue
        try:
            customer_profile.check_value(definition, str(a.value))
        except customer_profile.AttributeValueError as e:
            raise BadBody(400, f"actions[{i}].value: {e}") from None


def _checked(tx: Tx, body: RuleBody, now: str) -> RuleBody:
    _attributes_fit(tx, body)
    return _labels_defined(tx, body, now)


def _rule_id(request: web.Request) -> int:
    return path_id(request)


async def list_rules(request: web.Request) -> web.Response:
    require_admin(request)
    rules = await request.app[DB].read(lambda tx: rule_store.listing(tx))
    return web.json_response({"items": [r.to_json() for r in rules]})


async def create_rule(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request, RuleBody)
    now = format_time(utcnow())
    rule = await request.app[DB].write(lambda tx: rule_store.create(tx, _checked(tx, body, now), now))
    return web.json_response(rule.to_json(), status=201)


async def get_rule(request: web.Request) -> web.Response:
    require_admin(request)
    rid = _rule_id(request)
    rule = await request.app[DB].read(lambda tx: rule_store.get(tx, rid))
    return web.json_response(rule.to_json())


async def replace_rule(request: web.Request) -> web.Response:
    require_admin(request)
    rid = _rule_id(request)
    body = await read_json(request, RuleBody)
    now = format_time(utcnow())
    rule = await request.app[DB].write(lambda tx: rule_store.replace(tx, rid, _checked(tx, body, now), now))
    return web.json_response(rule.to_json())


async def delete_rule(request: web.Request) -> web.Response:
    require_admin(request)
    rid = _rule_id(request)
    await request.app[DB].write(lambda tx: rule_store.delete(tx, rid))
    return answer(DeletedId(deleted=rid))


async def dry_run(request: web.Request) -> web.Response:
    require_admin(request)
    most = whole_number(request.query.get("limit", "200"), "limit", 1, 1000)
    body = await read_json(request, RuleBody)
    hits = await request.app[AUTOMATION].dry_run(body, most)
    return web.json_response({"examined": most, "matches": hits})


# -- business hours --------------------------------------------------------------------------------------------


def _hours_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if name != business_hours.DEFAULT and name not in request.app[SETTINGS].routing.queues:
        raise NotFound(f"{name!r} is neither {business_hours.DEFAULT!r} nor a queue")
    return name


def _status(hours: BusinessHours) -> dict[str, Any]:
    now = utcnow()
    opens = hours.next_open(now)
    return {"open": hours.is_open(now), "next_open": format_time(opens.astimezone(UTC)) if opens else None}


async def list_hours(request: web.Request) -> web.Response:
    items = await request.app[DB].read(business_hours.listing)
    return web.json_response({"items": {name: body | _status(BusinessHours.model_validate(body))
                                        for name, body in items.items()}})


async def get_hours(request: web.Request) -> web.Response:
    name = _hours_name(request)

    def load(tx: Tx) -> BusinessHours:
        found = business_hours.load(tx, name)
        if found is None:
            raise NotFound(f"no business hours set for {name!r} (always open)")
        return found

    hours = await request.app[DB].read(load)
    return web.json_response(hours.model_dump(mode="json") | _status(hours))


async def put_hours(request: web.Request) -> web.Response:
    require_admin(request)
    name = _hours_name(request)
    hours = await read_json(request, BusinessHours)
    now = format_time(utcnow())
    await request.app[DB].write(lambda tx: business_hours.save(tx, name, hours, now))
    request.app[BUSINESS_HOURS].forget()
    return web.json_response(hours.model_dump(mode="json") | _status(hours))


async def delete_hours(request: web.Request) -> web.Response:
    require_admin(request)
    name = _hours_name(request)
    if not await request.app[DB].write(lambda tx: business_hours.delete(tx, name)):
        raise NotFound(f"no business hours set for {name!r}")
    request.app[BUSINESS_HOURS].forget()
    return answer(DeletedName(deleted=name))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/automation/rules", list_rules),
        web.post("/api/v1/automation/rules", create_rule),
        web.post("/api/v1/automation/rules/dry-run", dry_run),
        web.get(r"/api/v1/automation/rules/{id:\d+}", get_rule),
        web.put(r"/api/v1/automation/rules/{id:\d+}", replace_rule),
        web.delete(r"/api/v1/automation/rules/{id:\d+}", delete_rule),
        web.get("/api/v1/business-hours", list_hours),
        web.get("/api/v1/business-hours/{name}", get_hours),
        web.put("/api/v1/business-hours/{name}", put_hours),
        web.delete("/api/v1/business-hours/{name}", delete_hours),
    ]
