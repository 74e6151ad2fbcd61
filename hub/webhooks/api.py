"""REST API for outbound webhooks (admin only): subscriptions, their delivery log, and resending a delivery."""

from __future__ import annotations

from typing import Any, Literal, get_args

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.api.auth import require_admin
from hub.api.errors import BadBody, read_json
from hub.api.params import path_id, whole_number
from hub.api.responses import DeletedId, answer
from hub.event_log import TYPES
from hub.keys import DB, SETTINGS, WEBHOOKS
from hub.model import format_time, utcnow
from hub.webhooks import deliveries, subscriptions
from hub.webhooks.targets import TargetError, check_url

DeliveryStatus = Literal["pending", "delivered", "failed"]
STATUSES: tuple[str, ...] = get_args(DeliveryStatus)


def _events(v: list[str] | None) -> list[str] | None:
    if v is None:  # a change that leaves the event types as they are
        return v
    unknown = sorted(set(v) - {*TYPES, "*"})
    if unknown:
        raise ValueError(f"unknown event types {', '.join(unknown)}; known: {', '.join(TYPES)}, or * for all")
    return v


class WebhookCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="where deliveries are POSTed (http or https; public addresses)")
    events: list[str] = Field(min_length=1, max_length=len(TYPES) + 1, description="event types, or [\"*\"]")
    secret: str | None = Field(None, min_length=16, max_length=200,
                               description="signing secret; default: one the hub makes (shown once, in the answer)")
    description: str = Field("", max_length=200)

    _check_events = field_validator("events")(_events)


class WebhookPatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=2000)
    events: list[str] | None = Field(None, min_length=1, max_length=len(TYPES) + 1)
    enabled: bool | None = Field(None, description="true again after the hub disabled it resumes its deliveries")
    description: str | None = Field(None, max_length=200)
    rotate_secret: bool = Field(False, description="make a new secret (shown once, in the answer)")

    _check_events = field_validator("events")(_events)


def _sub_id(request: web.Request) -> int:
    return path_id(request)


def _target(request: web.Request, url: str) -> str:
    try:
        return check_url(url, request.app[SETTINGS].webhooks.allow_private_targets)
    except TargetError as e:
        raise BadBody(422, f"url: {e}", [{"field": "url", "message": str(e)}]) from None


async def list_subscriptions(request: web.Request) -> web.Response:
    require_admin(request)
    rows = await request.app[DB].read(subscriptions.listing)
    return web.json_response({"items": [subscriptions.to_json(r) for r in rows]})


async def create_subscription(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request, WebhookCreateBody)
    url = _target(request, body.url)
    secret = body.secret or subscriptions.new_secret()
    now = format_time(utcnow())
    row = await request.app[DB].write(
        lambda tx: subscriptions.create(tx, url, body.events, secret, body.description, now))
    return web.json_response(subscriptions.to_json(row, with_secret=True), status=201)


async def get_subscription(request: web.Request) -> web.Response:
    require_admin(request)
    sid = _sub_id(request)
    row = await request.app[DB].read(lambda tx: subscriptions.get(tx, sid))
    return web.json_response(subscriptions.to_json(row))


async def patch_subscription(request: web.Request) -> web.Response:
    require_admin(request)
    sid = _sub_id(request)
    body = await read_json(request, WebhookPatchBody)
    changes: dict[str, Any] = {k: v for k, v in body.model_dump(exclude={"rotate_secret"}).items() if v is not None}
    if "url" in changes:
        changes["url"] = _target(request, changes["url"])
    if body.rotate_secret:
        changes["secret"] = subscriptions.new_secret()
    now = format_time(utcnow())
    row = await request.app[DB].write(lambda tx: subscriptions.update(tx, sid, changes, now))
    if body.enabled:
        request.app[WEBHOOKS].wake.set()
    return web.json_response(subscriptions.to_json(row, with_secret=body.rotate_secret))


async def delete_subscription(request: web.Request) -> web.Response:
    require_admin(request)
    sid = _sub_id(request)
    await request.app[DB].write(lambda tx: subscriptions.delete(tx, sid))
    return answer(DeletedId(deleted=sid))


async def list_deliveries(request: web.Request) -> web.Response:
    require_admin(request)
    sid = _sub_id(request)
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise web.HTTPBadRequest(text=f"status is one of {', '.join(STATUSES)}")
    most = whole_number(request.query.get("limit", "50"), "limit", 1, 200)
    items = await request.app[DB].read(lambda tx: deliveries.listing(tx, sid, status, most))
    return web.json_response({"items": items})


async def resend(request: web.Request) -> web.Response:
    require_admin(request)
    sid, did = _sub_id(request), path_id(request, "delivery")
    now = format_time(utcnow())
    row = await request.app[DB].write(lambda tx: deliveries.resend(tx, sid, did, now))
    request.app[WEBHOOKS].wake.set()
    return web.json_response(row, status=202)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/webhooks", list_subscriptions),
        web.post("/api/v1/webhooks", create_subscription),
        web.get(r"/api/v1/webhooks/{id:\d+}", get_subscription),
        web.patch(r"/api/v1/webhooks/{id:\d+}", patch_subscription),
        web.delete(r"/api/v1/webhooks/{id:\d+}", delete_subscription),
        web.get(r"/api/v1/webhooks/{id:\d+}/deliveries", list_deliveries),
        web.post(r"/api/v1/webhooks/{id:\d+}/deliveries/{delivery:\d+}/resend", resend),
    ]
